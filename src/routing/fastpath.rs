//! Tier 1, the fast path: one Aho-Corasick automaton over every agent's keywords.
//!
//! A query is normalised (see `normalize.rs`), scanned once for every keyword at once,
//! matches that do not sit on word boundaries are dropped, overlaps are resolved
//! leftmost-longest, and each agent scores the sum of its distinct matched keywords' weights.
//! The fast path decides only when the best agent reaches `min_score` and beats the runner-up by
//! `margin`; otherwise the query is *unrouted* and goes to the next tier.

use aho_corasick::{AhoCorasick, MatchKind};

use super::catalogue::{Catalogue, CatalogueError, FastPathSettings};
use super::normalize::{joins_words, normalize_into};

/// The compiled keyword automaton and what each pattern means. Build once per process.
#[derive(Debug, Clone)]
pub struct FastPath {
    automaton: AhoCorasick,
    patterns: Vec<Pattern>,
    agent_count: usize,
    settings: FastPathSettings,
}

#[derive(Debug, Clone)]
struct Pattern {
    agent: usize,
    keyword: usize,
    weight: f32,
    /// The normalised pattern starts (ends) with a character that joins words, so the query
    /// character before (after) the match must not join with it.
    bounded_start: bool,
    bounded_end: bool,
}

/// One keyword found in a query on word boundaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeywordHit {
    /// Index of the agent in [`Catalogue::agents`].
    pub agent: usize,
    /// Index of the keyword in that agent's `keywords`.
    pub keyword: usize,
    /// The keyword's weight.
    pub weight: f32,
}

/// Everything the fast path found in one query: the kept hits and each agent's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// Kept hits, in query order, each keyword at most once.
    pub hits: Vec<KeywordHit>,
    /// Score per agent, indexed like [`Catalogue::agents`].
    pub scores: Vec<f32>,
}

impl Scan {
    /// The best agent's index and score, and the runner-up's score (all 0 when nothing matched;
    /// on a tie the first agent in file order leads, and the runner-up has the same score).
    pub fn leaders(&self) -> (usize, f32, f32) {
        let (mut best, mut best_score, mut runner_up) = (0usize, 0.0f32, 0.0f32);
        for (i, &s) in self.scores.iter().enumerate() {
            if s > best_score {
                runner_up = best_score;
                best_score = s;
                best = i;
            } else if s > runner_up {
                runner_up = s;
            }
        }
        (best, best_score, runner_up)
    }
}

/// The fast path's verdict on a query.
#[derive(Debug, Clone, PartialEq)]
pub enum FastOutcome {
    /// One agent won by the margin.
    Decided {
        /// Index of the winning agent.
        agent: usize,
        /// The winner's matched keywords (indices into its `keywords`), in query order.
        keywords: Vec<usize>,
        /// The winner's score.
        score: f32,
        /// The best other agent's score.
        runner_up: f32,
        /// 0..1: the winner's share of the evidence, discounted when the evidence is thin.
        confidence: f32,
    },
    /// No keyword matched, or no agent won clearly.
    Unrouted {
        /// Why not.
        why: Unrouted,
        /// The best score seen (0 when nothing matched).
        best: f32,
        /// The runner-up's score.
        runner_up: f32,
    },
}

/// Why the fast path left a query to the next tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unrouted {
    /// No keyword matched on word boundaries.
    NoKeywordMatch,
    /// The best agent's score is below `min_score`.
    BelowMinScore,
    /// The best agent does not beat the runner-up by `margin` (or ties it).
    Ambiguous,
}

impl Unrouted {
    /// The stable name, e.g. `"ambiguous"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unrouted::NoKeywordMatch => "no_keyword_match",
            Unrouted::BelowMinScore => "below_min_score",
            Unrouted::Ambiguous => "ambiguous",
        }
    }
}

impl std::fmt::Display for Unrouted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FastPath {
    /// Compiles the automaton for a validated catalogue.
    pub fn new(catalogue: &Catalogue) -> Result<FastPath, CatalogueError> {
        let mut texts = Vec::new();
        let mut patterns = Vec::new();
        let mut buf = String::new();
        for (agent, a) in catalogue.agents().iter().enumerate() {
            for (keyword, k) in a.keywords.iter().enumerate() {
                normalize_into(&k.text, &mut buf);
                let bounded_start = buf.chars().next().is_some_and(joins_words);
                let bounded_end = buf.chars().next_back().is_some_and(joins_words);
                texts.push(buf.clone());
                patterns.push(Pattern {
                    agent,
                    keyword,
                    weight: k.weight,
                    bounded_start,
                    bounded_end,
                });
            }
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&texts)
            .map_err(|e| CatalogueError::Automaton(e.to_string()))?;
        Ok(FastPath {
            automaton,
            patterns,
            agent_count: catalogue.agents().len(),
            settings: catalogue.fast_path(),
        })
    }

    /// Number of keyword patterns in the automaton.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Finds every keyword in `query` and scores each agent.
    pub fn scan(&self, query: &str) -> Scan {
        let mut text = String::with_capacity(query.len());
        normalize_into(query, &mut text);
        // (start, end, pattern) of every match that sits on word boundaries.
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        for m in self.automaton.find_overlapping_iter(&text) {
            let p = &self.patterns[m.pattern().as_usize()];
            if p.bounded_start
                && text[..m.start()]
                    .chars()
                    .next_back()
                    .is_some_and(joins_words)
            {
                continue;
            }
            if p.bounded_end && text[m.end()..].chars().next().is_some_and(joins_words) {
                continue;
            }
            found.push((m.start(), m.end(), m.pattern().as_usize()));
        }
        // Leftmost-longest: earliest start first, the longer match first on a tie, then file order.
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut scores = vec![0.0f32; self.agent_count];
        let mut hits: Vec<KeywordHit> = Vec::new();
        let mut covered_to = 0;
        for (start, end, pid) in found {
            if start < covered_to {
                continue;
            }
            covered_to = end;
            let p = &self.patterns[pid];
            if hits
                .iter()
                .any(|h| h.agent == p.agent && h.keyword == p.keyword)
            {
                continue; // a keyword counts once, however often it is repeated
            }
            scores[p.agent] += p.weight;
            hits.push(KeywordHit {
                agent: p.agent,
                keyword: p.keyword,
                weight: p.weight,
            });
        }
        Scan { hits, scores }
    }

    /// How much evidence `scan` holds for `agent`, as a share of what a decision needs: its
    /// score over `min_score` (with `min_score` 0, 1 for any positive score), so 1 or more
    /// reaches the bar on its own. Used by the session policy.
    pub fn strength(&self, scan: &Scan, agent: usize) -> f32 {
        let score = scan.scores.get(agent).copied().unwrap_or(0.0);
        if score <= 0.0 {
            0.0
        } else if self.settings.min_score > 0.0 {
            score / self.settings.min_score
        } else {
            1.0
        }
    }

    /// Scans `query` and applies the margin rule.
    pub fn decide(&self, query: &str) -> FastOutcome {
        let scan = self.scan(query);
        self.judge(&scan)
    }

    /// Applies the margin rule to a scan.
    pub fn judge(&self, scan: &Scan) -> FastOutcome {
        let (best, best_score, runner_up) = scan.leaders();
        let unrouted = |why| FastOutcome::Unrouted {
            why,
            best: best_score,
            runner_up,
        };
        if scan.hits.is_empty() {
            return unrouted(Unrouted::NoKeywordMatch);
        }
        if best_score < self.settings.min_score {
            return unrouted(Unrouted::BelowMinScore);
        }
        // A tie never decides, even with margin = 0.
        if best_score - runner_up < self.settings.margin || best_score <= runner_up {
            return unrouted(Unrouted::Ambiguous);
        }
        let keywords = scan
            .hits
            .iter()
            .filter(|h| h.agent == best)
            .map(|h| h.keyword)
            .collect();
        let share = best_score / (best_score + runner_up);
        let strength = 1.0 - 0.5f32.powf(best_score);
        FastOutcome::Decided {
            agent: best,
            keywords,
            score: best_score,
            runner_up,
            confidence: (share * strength).clamp(0.0, 1.0),
        }
    }
}
