//! Calibration and the threshold, both from the cross-validation hold-out.
//!
//! An L1-penalised model is shrunk towards its biases, so its probabilities lean to the cautious
//! side; cross-validated models also see a little less data than the final one. One number fixes
//! most of that: a temperature, the factor `beta` every score is multiplied by, chosen to
//! minimise the log-loss of the held-out queries (temperature scaling). The log-loss is convex in
//! `beta`, so a few Newton steps find it. The final model's weights and biases are multiplied by
//! `beta` before they are written, so the file's probabilities are the calibrated ones.

use crate::tune::thresholds::Judged;

/// Limits of the temperature factor (it is a correction, not a new model).
pub const BETA_RANGE: (f64, f64) = (0.25, 4.0);

/// One held-out query: the scores of the classes in play and the labelled one.
pub(super) struct HeldOut {
    /// Scores of the agents with keywords, then out of scope last.
    pub scores: Vec<f32>,
    /// Index of the labelled class in `scores`, `None` when the label names an agent left
    /// without keywords (it can never be right).
    pub label: Option<usize>,
    /// Labelled with an agent.
    pub in_scope: bool,
    /// At least one keyword matched.
    pub matched: bool,
}

/// Log-loss derivatives in `beta` over the held-out queries that matched a keyword.
fn derivatives(held: &[HeldOut], beta: f64) -> (f64, f64) {
    let (mut d1, mut d2) = (0.0, 0.0);
    for h in held.iter().filter(|h| h.matched) {
        let Some(label) = h.label else { continue };
        let top = h.scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (mut z, mut mean, mut second) = (0.0f64, 0.0f64, 0.0f64);
        for &s in &h.scores {
            let s = f64::from(s);
            let e = (beta * (s - f64::from(top))).exp();
            z += e;
            mean += e * s;
            second += e * s * s;
        }
        mean /= z;
        d1 += mean - f64::from(h.scores[label]);
        d2 += second / z - mean * mean;
    }
    (d1, d2)
}

/// The temperature factor that minimises the held-out log-loss, within [`BETA_RANGE`].
pub(super) fn temperature(held: &[HeldOut]) -> f64 {
    let mut beta = 1.0f64;
    for _ in 0..20 {
        let (d1, d2) = derivatives(held, beta);
        if d2 <= 1e-12 {
            break;
        }
        let next = (beta - d1 / d2).clamp(BETA_RANGE.0, BETA_RANGE.1);
        if (next - beta).abs() < 1e-6 {
            beta = next;
            break;
        }
        beta = next;
    }
    beta
}

/// The held-out queries as the threshold sees them, scores multiplied by `beta`.
pub(super) fn judged(held: &[HeldOut], beta: f64) -> Vec<Judged> {
    held.iter()
        .map(|h| {
            let agents = &h.scores[..h.scores.len() - 1];
            if agents.is_empty() {
                return Judged {
                    in_scope: h.in_scope,
                    right: false,
                    decidable: false,
                    confidence: 0.0,
                };
            }
            let mut best = 0;
            let mut tie = false;
            for (i, &s) in agents.iter().enumerate().skip(1) {
                if s > agents[best] {
                    (best, tie) = (i, false);
                } else if s == agents[best] {
                    tie = true;
                }
            }
            let top = h.scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z: f64 = h
                .scores
                .iter()
                .map(|&s| (beta * f64::from(s - top)).exp())
                .sum();
            let p = (beta * f64::from(agents[best] - top)).exp() / z;
            Judged {
                in_scope: h.in_scope,
                right: h.matched && h.label == Some(best),
                decidable: h.matched && !tie && !agents.is_empty(),
                confidence: p as f32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_sharpens_underconfident_scores() {
        // Right 9 times in 10 with a margin of 1: the calibrated probability of the winner is 0.9,
        // so beta must be ln(9) (two classes).
        let mut held = Vec::new();
        for i in 0..10 {
            held.push(HeldOut {
                scores: vec![1.0, 0.0],
                label: Some(if i < 9 { 0 } else { 1 }),
                in_scope: true,
                matched: true,
            });
        }
        let beta = temperature(&held);
        assert!((beta - 9f64.ln()).abs() < 1e-3, "{beta}");
        let j = judged(&held, beta);
        assert!((j[0].confidence - 0.9).abs() < 1e-3, "{:?}", j[0]);
    }
}
