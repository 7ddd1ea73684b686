//! The reliability of `confidence`: fast-path decisions grouped by confidence, and the expected
//! calibration error.
//!
//! Every decision the fast path makes on the evaluated data (in scope or not: an out-of-scope
//! query decided for an agent is a wrong decision) falls in one of [`CALIBRATION_BUCKETS`]
//! equal-width buckets of its confidence. For each populated bucket the report gives the number
//! of decisions, their mean confidence and their accuracy (the share decided for the labelled
//! agent). A calibrated fast path has accuracy close to mean confidence in every bucket. The
//! expected calibration error (ECE) is the decision-weighted mean of `|accuracy - mean
//! confidence|` over the buckets.

use serde::Serialize;

/// Number of equal-width confidence buckets.
pub const CALIBRATION_BUCKETS: usize = 10;

/// One confidence bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Lowest confidence in the bucket (inclusive).
    pub low: f64,
    /// Highest confidence (exclusive, except 1.0 for the last bucket).
    pub high: f64,
    /// Fast-path decisions with a confidence in `[low, high)`.
    pub count: usize,
    /// Their mean confidence (undefined, `null`, when `count` is 0).
    pub mean_confidence: f64,
    /// Share of them decided for the labelled agent (undefined when `count` is 0).
    pub accuracy: f64,
}

/// The reliability table and the expected calibration error, over fast-path decisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Fast-path decisions counted (in and out of scope).
    pub decisions: usize,
    /// Decision-weighted mean of `|accuracy - mean_confidence|` over the buckets (undefined,
    /// `null`, with no decision).
    pub ece: f64,
    /// Mean confidence of all decisions (undefined with none).
    pub mean_confidence: f64,
    /// Accuracy of all decisions (undefined with none).
    pub accuracy: f64,
    /// [`CALIBRATION_BUCKETS`] buckets, lowest confidence first.
    pub buckets: Vec<Bucket>,
}

/// Accumulates decisions into buckets.
#[derive(Debug, Clone, Default)]
pub(super) struct Reliability {
    /// Per bucket: (count, sum of confidence, right).
    sums: [(usize, f64, usize); CALIBRATION_BUCKETS],
}

impl Reliability {
    /// Counts one decision made with `confidence`, `right` or not.
    pub fn record(&mut self, confidence: f32, right: bool) {
        let c = f64::from(confidence).clamp(0.0, 1.0);
        let b = ((c * CALIBRATION_BUCKETS as f64) as usize).min(CALIBRATION_BUCKETS - 1);
        let s = &mut self.sums[b];
        s.0 += 1;
        s.1 += c;
        s.2 += usize::from(right);
    }

    /// The table.
    pub fn finish(&self) -> Calibration {
        let decisions: usize = self.sums.iter().map(|s| s.0).sum();
        let mut ece = 0.0;
        let buckets = self
            .sums
            .iter()
            .enumerate()
            .map(|(i, &(count, sum, right))| {
                let (mean_confidence, accuracy) = if count == 0 {
                    (f64::NAN, f64::NAN)
                } else {
                    (sum / count as f64, right as f64 / count as f64)
                };
                if count > 0 {
                    ece += count as f64 / decisions as f64 * (accuracy - mean_confidence).abs();
                }
                Bucket {
                    low: i as f64 / CALIBRATION_BUCKETS as f64,
                    high: (i + 1) as f64 / CALIBRATION_BUCKETS as f64,
                    count,
                    mean_confidence,
                    accuracy,
                }
            })
            .collect();
        let total_conf: f64 = self.sums.iter().map(|s| s.1).sum();
        let total_right: usize = self.sums.iter().map(|s| s.2).sum();
        let undefined = decisions == 0;
        Calibration {
            decisions,
            ece: if undefined { f64::NAN } else { ece },
            mean_confidence: if undefined {
                f64::NAN
            } else {
                total_conf / decisions as f64
            },
            accuracy: if undefined {
                f64::NAN
            } else {
                total_right as f64 / decisions as f64
            },
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_is_the_weighted_gap() {
        let mut r = Reliability::default();
        // Bucket 0.9: 4 decisions at 0.95, 3 right (accuracy 0.75, gap 0.2).
        for right in [true, true, true, false] {
            r.record(0.95, right);
        }
        // Bucket 0.5: 1 decision at 0.5, right (gap 0.5); 1.0 falls in the last bucket.
        r.record(0.5, true);
        r.record(1.0, true);
        let c = r.finish();
        assert_eq!(c.decisions, 6);
        assert_eq!(c.buckets[9].count, 5);
        assert_eq!(c.buckets[5].count, 1);
        let gap9 = (0.8f64 - (0.95 * 4.0 + 1.0) / 5.0).abs();
        let want = 5.0 / 6.0 * gap9 + 1.0 / 6.0 * 0.5;
        assert!((c.ece - want).abs() < 1e-6, "{} vs {want}", c.ece); // 0.95 is an f32
        assert!(c.buckets[0].mean_confidence.is_nan());
        assert!(Reliability::default().finish().ece.is_nan());
    }
}
