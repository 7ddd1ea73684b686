//! The fast path's thresholds measured over scored queries: the additive form's `margin` and
//! `min_score` ([`Scored`], [`sweep`], [`best_pair`]) and the linear form's probability
//! `threshold` ([`Judged`], [`best_threshold`]).
//!
//! Both tuning commands need the same thing: the fast-path scores of labelled queries, and what
//! every threshold on a grid would do with them. `keywords` picks its threshold from its
//! cross-validation hold-out ([`mod@crate::tune::mine`]); `eval` reports, for a few precision
//! targets, the threshold that would cover most of the evaluated set ([`mod@crate::tune::eval`]).

use crate::routing::{FastPathSettings, Scan};

/// Step of the grid that `margin` and `min_score` are chosen from.
pub const THRESHOLD_STEP: f32 = 0.05;

/// Largest `margin` or `min_score` on the grid.
pub const MAX_THRESHOLD: f32 = 10.0;

/// One labelled query reduced to what the thresholds act on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Labelled with an agent (else out of scope).
    pub in_scope: bool,
    /// The best-scoring agent is the labelled one.
    pub right: bool,
    /// At least one keyword matched (the fast path never decides otherwise).
    pub matched: bool,
    /// The best agent's score.
    pub score: f32,
    /// The runner-up's score.
    pub runner_up: f32,
}

impl Scored {
    /// Reduces a scan of a query labelled `expected` (an agent index, `None` when out of scope;
    /// an index no agent has is never right).
    pub fn from_scan(scan: &Scan, expected: Option<usize>) -> Scored {
        let (best, score, runner_up) = scan.leaders();
        let matched = !scan.hits.is_empty();
        Scored {
            in_scope: expected.is_some(),
            right: matched && expected == Some(best),
            matched,
            score,
            runner_up,
        }
    }

    /// Whether the fast path decides this query under `settings` (the rule of
    /// [`crate::routing::FastPath::judge`]).
    pub fn decided(&self, settings: FastPathSettings) -> bool {
        self.matched
            && self.score >= settings.min_score
            && self.score > self.runner_up
            && self.score - self.runner_up >= settings.margin
    }
}

/// What one pair of thresholds does to a set of scored queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// In-scope queries.
    pub in_scope: usize,
    /// Out-of-scope queries.
    pub out_of_scope: usize,
    /// In-scope queries decided.
    pub decided: usize,
    /// Of those, decided for the labelled agent.
    pub correct: usize,
    /// Out-of-scope queries decided (for any agent).
    pub oos_taken: usize,
}

impl Tally {
    /// Counts the queries `settings` decide.
    pub fn of(scored: &[Scored], settings: FastPathSettings) -> Tally {
        let mut t = Tally::default();
        for s in scored {
            t.count(s, s.decided(settings));
        }
        t
    }

    fn count(&mut self, s: &Scored, decided: bool) {
        match (s.in_scope, decided) {
            (true, d) => {
                self.in_scope += 1;
                self.decided += usize::from(d);
                self.correct += usize::from(d && s.right);
            }
            (false, d) => {
                self.out_of_scope += 1;
                self.oos_taken += usize::from(d);
            }
        }
    }

    /// Decided in-scope queries / in-scope queries (0 when there are none).
    pub fn coverage(&self) -> f64 {
        ratio(self.decided, self.in_scope, 0.0)
    }

    /// Correct decisions / decisions (1 when nothing was decided).
    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.decided, 1.0)
    }

    /// Out-of-scope queries taken / out-of-scope queries (0 when there are none).
    pub fn oos_rate(&self) -> f64 {
        ratio(self.oos_taken, self.out_of_scope, 0.0)
    }

    /// Queries left to the next tier / all queries (0 when there are none).
    pub fn llm_call_rate(&self) -> f64 {
        let queries = self.in_scope + self.out_of_scope;
        ratio(queries - self.decided - self.oos_taken, queries, 0.0)
    }
}

/// `num / den`, or `empty` when `den` is 0.
pub(crate) fn ratio(num: usize, den: usize, empty: f64) -> f64 {
    if den == 0 {
        empty
    } else {
        num as f64 / den as f64
    }
}

/// Calls `visit` with every pair of thresholds on the grid (steps of [`THRESHOLD_STEP`] from 0
/// up to the highest score seen, at most [`MAX_THRESHOLD`]) and its tally. Sorting once makes
/// the whole grid cost one pass over the queries per `margin`.
pub fn sweep(scored: &[Scored], mut visit: impl FnMut(FastPathSettings, &Tally)) {
    let top = scored.iter().map(|s| s.score).fold(0.0f32, f32::max);
    let steps = ((top.min(MAX_THRESHOLD) / THRESHOLD_STEP).ceil() as u32 + 1).max(1);
    let grid = |i: u32| i as f32 / (1.0 / THRESHOLD_STEP);
    let mut base = Tally::default();
    for s in scored {
        base.count(s, false);
    }
    let mut by_score: Vec<&Scored> = scored.iter().filter(|s| s.matched).collect();
    by_score.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut order: Vec<&Scored> = Vec::with_capacity(by_score.len());
    for mi in 0..steps {
        let margin = grid(mi);
        order.clear();
        order.extend(
            by_score
                .iter()
                .filter(|s| s.score > s.runner_up && s.score - s.runner_up >= margin),
        );
        let mut tally = base;
        let mut next = 0;
        for si in (0..steps).rev() {
            let min_score = grid(si);
            while next < order.len() && order[next].score >= min_score {
                let s = order[next];
                if s.in_scope {
                    tally.decided += 1;
                    tally.correct += usize::from(s.right);
                } else {
                    tally.oos_taken += 1;
                }
                next += 1;
            }
            visit(FastPathSettings { margin, min_score }, &tally);
        }
    }
}

/// The pair that decides most in-scope queries while precision stays at or above
/// `min_precision` and the out-of-scope take rate at or below `max_oos_rate` (ignored when there
/// is no out-of-scope query); on a tie, fewer out-of-scope taken, then more correct, then the
/// larger `min_score` and `margin`. `None` when no pair that decides anything qualifies.
pub fn best_pair(
    scored: &[Scored],
    min_precision: f64,
    max_oos_rate: f64,
) -> Option<(FastPathSettings, Tally)> {
    let mut best: Option<(FastPathSettings, Tally)> = None;
    sweep(scored, |settings, t| {
        if t.decided == 0 || t.precision() < min_precision {
            return;
        }
        if t.out_of_scope > 0 && t.oos_rate() > max_oos_rate {
            return;
        }
        let better = match &best {
            None => true,
            Some((bs, bt)) => {
                let key = |t: &Tally| (t.decided, std::cmp::Reverse(t.oos_taken), t.correct);
                key(t)
                    .cmp(&key(bt))
                    .then(settings.min_score.total_cmp(&bs.min_score))
                    .then(settings.margin.total_cmp(&bs.margin))
                    .is_gt()
            }
        };
        if better {
            best = Some((settings, *t));
        }
    });
    best
}

/// Step of the grid the linear form's `threshold` is chosen from (0.5 to 1).
pub const PROBABILITY_STEP: f32 = 0.005;

/// One labelled query as the linear form's threshold sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// Labelled with an agent (else out of scope).
    pub in_scope: bool,
    /// The most probable agent is the labelled one.
    pub right: bool,
    /// A keyword matched and no other agent ties the best one: some threshold decides it.
    pub decidable: bool,
    /// The best agent's probability.
    pub confidence: f32,
}

impl Judged {
    /// Whether the fast path decides this query at `threshold` (the rule of
    /// [`crate::routing::FastPath::judge`] in the linear form).
    pub fn decided(&self, threshold: f32) -> bool {
        self.decidable && self.confidence >= threshold
    }
}

/// What `threshold` does to a set of judged queries.
pub fn tally_at(judged: &[Judged], threshold: f32) -> Tally {
    let mut t = Tally::default();
    for j in judged {
        let as_scored = Scored {
            in_scope: j.in_scope,
            right: j.right,
            matched: j.decidable,
            score: 0.0,
            runner_up: 0.0,
        };
        t.count(&as_scored, j.decided(threshold));
    }
    t
}

/// The thresholds on the grid (steps of [`PROBABILITY_STEP`] from 0.5 to 1), lowest first.
pub fn probability_grid() -> impl Iterator<Item = f32> {
    // In thousandths, so each value is the f32 nearest a round number (0.925, not 0.92499995).
    let step = (PROBABILITY_STEP * 1000.0).round() as u32;
    (0..=500 / step).map(move |i| (500 + i * step) as f32 / 1000.0)
}

/// The lowest threshold on the grid (the one that decides most) whose precision is at least
/// `min_precision` and whose out-of-scope take rate is at most `max_oos_rate` (ignored when there
/// is no out-of-scope query). `None` when no threshold that decides anything qualifies.
pub fn best_threshold(
    judged: &[Judged],
    min_precision: f64,
    max_oos_rate: f64,
) -> Option<(f32, Tally)> {
    probability_grid().find_map(|threshold| {
        let t = tally_at(judged, threshold);
        let ok = t.decided > 0
            && t.precision() >= min_precision
            && (t.out_of_scope == 0 || t.oos_rate() <= max_oos_rate);
        ok.then_some((threshold, t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(in_scope: bool, right: bool, score: f32, runner_up: f32) -> Scored {
        Scored {
            in_scope,
            right,
            matched: score > 0.0,
            score,
            runner_up,
        }
    }

    #[test]
    fn sweep_tallies_match_a_direct_count() {
        let scored = [
            s(true, true, 3.0, 0.0),
            s(true, true, 1.0, 0.5),
            s(true, false, 2.0, 1.0),
            s(false, false, 2.5, 0.0),
            s(true, false, 0.0, 0.0),
            s(true, true, 1.5, 1.5),
        ];
        let mut visited = 0;
        sweep(&scored, |settings, t| {
            visited += 1;
            assert_eq!(*t, Tally::of(&scored, settings), "at {settings:?}");
        });
        // 0..=3.0 in steps of 0.05 for each threshold.
        assert_eq!(visited, 61 * 61);
    }

    #[test]
    fn best_pair_table() {
        let scored = [
            s(true, true, 3.0, 0.0),
            s(true, true, 2.0, 0.0),
            s(true, false, 1.0, 0.0),
            s(false, false, 2.5, 0.0),
        ];
        // Precision 1 needs min_score above 1 (the out-of-scope 2.5 comes with the 2.0); taking
        // no out-of-scope query needs min_score above 2.5.
        let cases = [
            (1.0, 1.0, Some((2, 1))),
            (1.0, 0.0, Some((1, 0))),
            (0.6, 1.0, Some((3, 1))),
        ];
        for (min_precision, max_oos, want) in cases {
            let got =
                best_pair(&scored, min_precision, max_oos).map(|(_, t)| (t.decided, t.oos_taken));
            assert_eq!(got, want, "precision {min_precision}, oos {max_oos}");
        }
        let none = [s(true, false, 1.0, 0.0)];
        assert_eq!(best_pair(&none, 0.99, 1.0), None);
    }

    #[test]
    fn best_threshold_table() {
        let j = |in_scope, right, confidence| Judged {
            in_scope,
            right,
            decidable: true,
            confidence,
        };
        let judged = [
            j(true, true, 0.99),
            j(true, true, 0.9),
            j(true, false, 0.8),
            j(false, false, 0.95),
        ];
        // Precision 1 needs a threshold above 0.8; no out-of-scope query needs one above 0.95.
        let cases = [
            (1.0, 1.0, Some((2, 1))),
            (1.0, 0.0, Some((1, 0))),
            (0.6, 1.0, Some((3, 1))),
        ];
        for (min_precision, max_oos, want) in cases {
            let got = best_threshold(&judged, min_precision, max_oos)
                .map(|(_, t)| (t.decided, t.oos_taken));
            assert_eq!(got, want, "precision {min_precision}, oos {max_oos}");
        }
        let (threshold, _) = best_threshold(&judged, 1.0, 0.0).unwrap();
        assert!(threshold > 0.95 && threshold <= 0.99, "{threshold}");
    }

    #[test]
    fn rates() {
        let t = Tally {
            in_scope: 10,
            out_of_scope: 10,
            decided: 8,
            correct: 6,
            oos_taken: 2,
        };
        assert_eq!(t.coverage(), 0.8);
        assert_eq!(t.precision(), 0.75);
        assert_eq!(t.oos_rate(), 0.2);
        assert_eq!(t.llm_call_rate(), 0.5);
        assert_eq!(Tally::default().precision(), 1.0);
        assert_eq!(Tally::default().llm_call_rate(), 0.0);
    }
}
