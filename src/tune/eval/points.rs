//! Operating points: for each precision target, the thresholds that would cover most of the
//! evaluated data (`margin` and `min_score` in the additive form, `threshold` in the linear one).

use super::{OPERATING_TARGETS, OperatingPoint, PointFigures};
use crate::routing::{FastPath, Scan};
use crate::tune::mine::DEFAULT_MAX_OOS_RATE;
use crate::tune::thresholds::{Judged, Scored, Tally, best_pair, best_threshold};

/// The evaluated queries as the thresholds see them.
pub(super) enum Points {
    /// Additive form: scores and runner-ups.
    Additive(Vec<Scored>),
    /// Linear form: the best agent's probability.
    Linear(Vec<Judged>),
}

impl Points {
    pub fn new(catalogue_is_linear: bool) -> Points {
        if catalogue_is_linear {
            Points::Linear(Vec::new())
        } else {
            Points::Additive(Vec::new())
        }
    }

    /// Adds one scanned query labelled `expected` (`None` out of scope).
    pub fn push(&mut self, fast: &FastPath, scan: &Scan, expected: Option<usize>) {
        match self {
            Points::Additive(scored) => scored.push(Scored::from_scan(scan, expected)),
            Points::Linear(judged) => {
                let matched = !scan.hits.is_empty();
                let (best, p, tie) = fast.probability(scan).unwrap_or((0, 0.0, true));
                judged.push(Judged {
                    in_scope: expected.is_some(),
                    right: matched && expected == Some(best),
                    decidable: matched && !tie,
                    confidence: p,
                });
            }
        }
    }

    /// One operating point per [`OPERATING_TARGETS`] entry.
    pub fn finish(&self) -> Vec<OperatingPoint> {
        let figures = |margin, min_score, threshold, t: Tally| PointFigures {
            margin,
            min_score,
            threshold,
            coverage: t.coverage(),
            precision: t.precision(),
            oos_fast_rate: t.oos_rate(),
            llm_call_rate: t.llm_call_rate(),
        };
        OPERATING_TARGETS
            .iter()
            .map(|&target| OperatingPoint {
                target_precision: target,
                max_oos_rate: DEFAULT_MAX_OOS_RATE,
                best: match self {
                    Points::Additive(scored) => best_pair(scored, target, DEFAULT_MAX_OOS_RATE)
                        .map(|(p, t)| figures(Some(p.margin), Some(p.min_score), None, t)),
                    Points::Linear(judged) => best_threshold(judged, target, DEFAULT_MAX_OOS_RATE)
                        .map(|(th, t)| figures(None, None, Some(th), t)),
                },
            })
            .collect()
    }
}
