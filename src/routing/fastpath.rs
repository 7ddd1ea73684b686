//! Tier 1, the fast path: one Aho-Corasick automaton over every agent's keywords.
//!
//! A query is normalised (see `normalize.rs`), scanned once for every keyword at once,
//! matches that do not sit on word boundaries are dropped, overlaps are resolved
//! leftmost-longest, and each agent scores the sum of its distinct matched keywords' weights.
//! The fast path decides only when the best agent reaches `min_score` and beats the runner-up by
//! `margin`; otherwise the query is *unrouted* and goes to the next tier.
//!
//! A linear-form catalogue (`model = "linear"`, see [`LinearSettings`]) uses the same automaton and
//! word boundaries, but every keyword found counts (overlaps are not resolved: the weights were
//! fitted with every n-gram of the query present), each agent starts from its bias, and the
//! decision is made on the softmax probability of the best agent against the others and the
//! out-of-scope class, whose score is `none_bias` plus the weights of its own keywords found
//! (`none_keywords`; they share the automaton).

use aho_corasick::{AhoCorasick, MatchKind};

use super::catalogue::{
    Catalogue, CatalogueError, FastPathSettings, LinearSettings, MAX_QUERY_WORDS,
};
use super::normalize::{is_word_char, joins_words, normalize_into};

/// The compiled keyword automaton and what each pattern means. Build once per process.
#[derive(Debug, Clone)]
pub struct FastPath {
    automaton: AhoCorasick,
    /// One per distinct normalised keyword text.
    patterns: Vec<Pattern>,
    /// What each pattern means, `patterns[i].entries` indexing into it.
    entries: Vec<KeywordHit>,
    /// Each agent's score before any keyword (its bias; 0 in the additive form).
    biases: Vec<f32>,
    /// Agents that take part in the linear form's softmax (those with keywords).
    in_model: Vec<bool>,
    /// The out-of-scope class's score before any keyword (`none_bias`; 0 in the additive form).
    none_bias: f32,
    /// Linear form with `unknown_word_weight`: every word of every keyword (runs of word
    /// characters of the normalised texts). Empty when unknown words are not counted. Hashed
    /// with FNV-1a: short keys, looked up once per query word, from the routes file, so a keyed
    /// hash (the standard SipHash) buys nothing here and costs most of the lookup.
    vocabulary: fnv::FnvHashSet<Box<str>>,
    settings: FastPathSettings,
    linear: Option<LinearSettings>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The (agent, keyword, weight) entries of this text, in file order.
    entries: std::ops::Range<usize>,
    /// Its weight for the out-of-scope class (linear form; 0 when it has none).
    none_weight: f32,
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
    /// Score per agent, indexed like [`Catalogue::agents`]: the sum of its hits' weights, plus
    /// its bias in the linear form.
    pub scores: Vec<f32>,
    /// Linear form: the out-of-scope class's score, `none_bias` plus the weights of its keywords
    /// found (see [`Catalogue::none_keywords`]); 0 in the additive form.
    pub none: f32,
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
    /// One agent won by the margin (linear form: reached the probability threshold).
    Decided {
        /// Index of the winning agent.
        agent: usize,
        /// The winner's matched keywords (indices into its `keywords`), in query order (in the
        /// linear form, those with a positive weight).
        keywords: Vec<usize>,
        /// The winner's score.
        score: f32,
        /// The best other agent's score.
        runner_up: f32,
        /// 0..1. Linear form: the winner's calibrated probability. Additive form: the winner's
        /// share of the evidence, discounted when the evidence is thin.
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
    /// Linear form: the best agent's probability is below `threshold`.
    LowConfidence,
}

impl Unrouted {
    /// The stable name, e.g. `"ambiguous"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unrouted::NoKeywordMatch => "no_keyword_match",
            Unrouted::BelowMinScore => "below_min_score",
            Unrouted::Ambiguous => "ambiguous",
            Unrouted::LowConfidence => "low_confidence",
        }
    }
}

/// The id of `text` among `texts`, added at the end when it is new.
fn intern(
    by_text: &mut fnv::FnvHashMap<String, usize>,
    texts: &mut Vec<String>,
    text: &str,
) -> usize {
    if let Some(&id) = by_text.get(text) {
        return id;
    }
    texts.push(text.to_owned());
    by_text.insert(text.to_owned(), texts.len() - 1);
    texts.len() - 1
}

impl std::fmt::Display for Unrouted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FastPath {
    /// Compiles the automaton for a validated catalogue.
    pub fn new(catalogue: &Catalogue) -> Result<FastPath, CatalogueError> {
        // Group the entries by normalised text: one pattern per text (in the linear form a text
        // may carry weights for several agents), first appearance order.
        let total: usize = catalogue.agents().iter().map(|a| a.keywords.len()).sum();
        let mut by_text: fnv::FnvHashMap<String, usize> =
            fnv::FnvHashMap::with_capacity_and_hasher(total, Default::default());
        let mut texts: Vec<String> = Vec::with_capacity(total);
        let mut keyed: Vec<(usize, KeywordHit)> = Vec::with_capacity(total);
        let mut buf = String::new();
        for (agent, a) in catalogue.agents().iter().enumerate() {
            for (keyword, k) in a.keywords.iter().enumerate() {
                normalize_into(&k.text, &mut buf);
                let id = intern(&mut by_text, &mut texts, &buf);
                keyed.push((
                    id,
                    KeywordHit {
                        agent,
                        keyword,
                        weight: k.weight,
                    },
                ));
            }
        }
        let mut none_weights: Vec<f32> = Vec::new();
        for k in catalogue.none_keywords() {
            normalize_into(&k.text, &mut buf);
            let id = intern(&mut by_text, &mut texts, &buf);
            none_weights.resize(texts.len(), 0.0);
            none_weights[id] += k.weight;
        }
        none_weights.resize(texts.len(), 0.0);
        // Entries grouped by text, each text's in file order (a counting sort by text id): text
        // `id`'s entries are `offsets[id]..offsets[id + 1]`.
        let mut offsets = vec![0usize; texts.len() + 1];
        for &(id, _) in &keyed {
            offsets[id + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut fill = offsets.clone();
        let mut slots: Vec<Option<KeywordHit>> = vec![None; keyed.len()];
        for &(id, hit) in &keyed {
            slots[fill[id]] = Some(hit);
            fill[id] += 1;
        }
        let entries: Vec<KeywordHit> = slots.into_iter().flatten().collect();
        let patterns = texts
            .iter()
            .zip(none_weights)
            .enumerate()
            .map(|(id, (text, none_weight))| Pattern {
                entries: offsets[id]..offsets[id + 1],
                none_weight,
                bounded_start: text.chars().next().is_some_and(joins_words),
                bounded_end: text.chars().next_back().is_some_and(joins_words),
            })
            .collect();
        let linear = catalogue.linear();
        let mut vocabulary = fnv::FnvHashSet::default();
        if linear.is_some_and(|l| l.unknown_word_weight != 0.0) {
            for word in texts.iter().flat_map(|t| words(t)) {
                if !vocabulary.contains(word) {
                    vocabulary.insert(Box::from(word));
                }
            }
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&texts)
            .map_err(|e| CatalogueError::Automaton(e.to_string()))?;
        Ok(FastPath {
            automaton,
            patterns,
            entries,
            biases: catalogue
                .agents()
                .iter()
                .map(|a| if linear.is_some() { a.bias } else { 0.0 })
                .collect(),
            in_model: catalogue
                .agents()
                .iter()
                .map(|a| !a.keywords.is_empty())
                .collect(),
            none_bias: linear.map_or(0.0, |l| l.none_bias),
            vocabulary,
            settings: catalogue.fast_path(),
            linear,
        })
    }

    /// Number of distinct keyword patterns in the automaton.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Finds every keyword in `query` and scores each agent.
    pub fn scan(&self, query: &str) -> Scan {
        let mut text = String::with_capacity(query.len());
        normalize_into(query, &mut text);
        // (start, end, pattern) of every match that sits on word boundaries.
        let mut found: Vec<(usize, usize, usize)> = Vec::with_capacity(16);
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
        let mut scores = self.biases.clone();
        let mut none = self.none_bias;
        let mut hits: Vec<KeywordHit> = Vec::with_capacity(2 * found.len());
        let mut counted: Vec<usize> = Vec::with_capacity(found.len());
        let mut covered_to = 0;
        for (start, end, pid) in found {
            // The additive form resolves overlaps; in the linear form every match counts.
            if self.linear.is_none() {
                if start < covered_to {
                    continue;
                }
                covered_to = end;
            }
            if counted.contains(&pid) {
                continue; // a keyword counts once, however often it is repeated
            }
            counted.push(pid);
            none += self.patterns[pid].none_weight;
            for h in &self.entries[self.patterns[pid].entries.clone()] {
                scores[h.agent] += h.weight;
                hits.push(*h);
            }
        }
        if let Some(l) = self.linear.filter(|_| !self.vocabulary.is_empty()) {
            none += l.unknown_word_weight * self.unknown_words(&text);
        }
        Scan { hits, scores, none }
    }

    /// Distinct words of a normalised query that are in no keyword (at most
    /// [`MAX_QUERY_WORDS`], which keeps the score finite).
    fn unknown_words(&self, text: &str) -> f32 {
        let mut unknown: Vec<&str> = words(text)
            .filter(|w| !self.vocabulary.contains(*w))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        (unknown.len() as f32).min(MAX_QUERY_WORDS)
    }

    /// How much evidence `scan` holds for `agent`, as a share of what a decision needs, so 1 or
    /// more reaches the bar on its own; 0 when no keyword speaks for it. Additive form: its score
    /// over `min_score` (any positive score is 1 when `min_score` is 0). Linear form: its softmax
    /// probability over `threshold`, counted only when a keyword with a positive weight for it
    /// matched (a bias alone is no evidence). Used by the session policy.
    pub fn strength(&self, scan: &Scan, agent: usize) -> f32 {
        let score = scan.scores.get(agent).copied().unwrap_or(0.0);
        match self.linear {
            Some(linear) => {
                let spoken_for = scan.hits.iter().any(|h| h.agent == agent && h.weight > 0.0);
                match self.agent_probability(scan, agent) {
                    Some(p) if spoken_for => p / linear.threshold.max(f32::MIN_POSITIVE),
                    _ => 0.0,
                }
            }
            None if score <= 0.0 => 0.0,
            None if self.settings.min_score > 0.0 => score / self.settings.min_score,
            None => 1.0,
        }
    }

    /// Linear form: `agent`'s softmax probability against the agents in the model (those with
    /// keywords) and the out-of-scope class. `None` in the additive form, or for an agent
    /// without keywords.
    pub fn agent_probability(&self, scan: &Scan, agent: usize) -> Option<f32> {
        self.linear?;
        if !self.in_model.get(agent).copied().unwrap_or(false) {
            return None;
        }
        // Scores are finite and bounded by validation; subtracting the largest keeps every
        // exponent at or below 0, so the sum is at least 1 and never overflows.
        let top = scan
            .scores
            .iter()
            .zip(&self.in_model)
            .filter(|(_, m)| **m)
            .map(|(s, _)| f64::from(*s))
            .fold(f64::from(scan.none), f64::max);
        let mut sum = (f64::from(scan.none) - top).exp();
        for (s, m) in scan.scores.iter().zip(&self.in_model) {
            if *m {
                sum += (f64::from(*s) - top).exp();
            }
        }
        Some(((f64::from(scan.scores[agent]) - top).exp() / sum) as f32)
    }

    /// The thresholds a decision needs: the additive form's `margin` and `min_score`, or the
    /// linear form's settings.
    pub fn thresholds(&self) -> (FastPathSettings, Option<LinearSettings>) {
        (self.settings, self.linear)
    }

    /// Linear form: the best agent of a scan (on a tie, the first in file order), its softmax
    /// probability against the other agents with keywords and the out-of-scope class, and
    /// whether another agent ties it. `None` for an additive-form catalogue or when no agent
    /// has keywords.
    pub fn probability(&self, scan: &Scan) -> Option<(usize, f32, bool)> {
        self.linear?;
        let mut best: Option<usize> = None;
        let mut tie = false;
        for (i, &s) in scan.scores.iter().enumerate() {
            if !self.in_model[i] {
                continue;
            }
            match best {
                Some(b) if s < scan.scores[b] => {}
                Some(b) if s == scan.scores[b] => tie = true,
                _ => {
                    best = Some(i);
                    tie = false;
                }
            }
        }
        let best = best?;
        Some((best, self.agent_probability(scan, best)?, tie))
    }

    /// Scans `query` and applies the margin rule.
    pub fn decide(&self, query: &str) -> FastOutcome {
        let scan = self.scan(query);
        self.judge(&scan)
    }

    /// Applies the decision rule to a scan: the margin rule, or in the linear form the
    /// probability threshold.
    pub fn judge(&self, scan: &Scan) -> FastOutcome {
        if let Some(linear) = self.linear {
            return self.judge_linear(scan, linear);
        }
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

    fn judge_linear(&self, scan: &Scan, linear: LinearSettings) -> FastOutcome {
        let Some((best, p, tie)) = self.probability(scan) else {
            return FastOutcome::Unrouted {
                why: Unrouted::NoKeywordMatch,
                best: 0.0,
                runner_up: 0.0,
            };
        };
        let best_score = scan.scores[best];
        let runner_up = scan
            .scores
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != best && self.in_model[i])
            .map(|(_, &s)| s)
            .fold(f32::NEG_INFINITY, f32::max);
        let runner_up = if runner_up.is_finite() {
            runner_up
        } else {
            scan.none
        };
        let unrouted = |why| FastOutcome::Unrouted {
            why,
            best: best_score,
            runner_up,
        };
        if scan.hits.is_empty() {
            return unrouted(Unrouted::NoKeywordMatch);
        }
        if tie {
            return unrouted(Unrouted::Ambiguous);
        }
        if p < linear.threshold {
            return unrouted(Unrouted::LowConfidence);
        }
        FastOutcome::Decided {
            agent: best,
            keywords: scan
                .hits
                .iter()
                .filter(|h| h.agent == best && h.weight > 0.0)
                .map(|h| h.keyword)
                .collect(),
            score: best_score,
            runner_up,
            confidence: p.clamp(0.0, 1.0),
        }
    }
}

/// The words of a normalised text: maximal runs of word characters.
pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
}
