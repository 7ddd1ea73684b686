//! Mining a routes file from labelled queries (the `keywords` command).
//!
//! The method, in order:
//!
//! 1. **Tokens and n-grams.** Each query is normalised like the fast path does it
//!    ([`crate::normalize`]) and cut into words (runs of letters, digits and `_`). Candidate
//!    keywords are the 1- to 3-word n-grams whose words are separated by exactly one space, so a
//!    phrase matches the query exactly as the fast path will see it. A general list of English
//!    function words ([`STOP_WORDS`]) is never a keyword on its own, and an n-gram made only of
//!    them is never a keyword either (it is only used as a back-off parent, see 3). Each n-gram
//!    counts once per query.
//! 2. **Negative evidence.** Out-of-scope examples (label `none`) form one more class, weighted
//!    so that together they weigh as much as an average agent's examples: an n-gram seen out of
//!    scope loses precision towards every agent, and is dropped when it falls below
//!    [`KEEP_PRECISION`].
//! 3. **Smoothed precision with back-off.** For each n-gram and agent `a`,
//!    `p_a = (count_a + S * parent_a) / (weighted_total + S)` with `S =` [`SMOOTHING`], where the
//!    parent of a word is `a`'s share of the examples and the parent of a longer n-gram is the
//!    better of its two (n-1)-word parts' `p_a`. A rare n-gram thus inherits what its parts say
//!    instead of claiming certainty from three examples, and a frequent one speaks for itself.
//! 4. **Keywords and weights.** An n-gram becomes a keyword of its most frequent agent when that
//!    agent has it at least `min_support` times and `p >=` [`KEEP_PRECISION`]. Its weight is the
//!    log-odds `ln(p / (1 - p))`, capped at the log-odds of
//!    `min(min_precision,` [`MAX_KEYWORD_PRECISION`]`)`, so several keywords add their evidence
//!    and no single n-gram claims more certainty than the fast path is asked for. N-grams with
//!    support in two classes but no clear owner are dropped and reported as collisions.
//! 5. **Longer n-grams earn their place.** The fast path matches leftmost-longest, so a phrase
//!    replaces its parts' evidence. A 2- or 3-word n-gram is kept only when its log-odds beat
//!    every shorter keyword of the same agent inside it by [`LONGER_GAIN`].
//! 6. **Thresholds by cross-validation.** The examples are split deterministically into
//!    [`MineOptions::folds`] folds by runs of consecutive examples (at most [`HOLDOUT_BLOCK`] in a
//!    run: examples written together are often near-paraphrases and must not sit on both sides
//!    of the split). For each fold, keywords are mined from the other folds and the real
//!    [`FastPath`] scores the held-out queries. Over all held-out scores, `margin` and
//!    `min_score` are chosen on a [`THRESHOLD_STEP`] grid to maximise in-scope coverage subject
//!    to the precision's lower confidence bound reaching [`MineOptions::min_precision`] and the
//!    out-of-scope take rate's upper confidence bound staying within
//!    [`MineOptions::max_oos_rate`] (when there are out-of-scope examples).
//! 7. The final keywords are mined from all examples, and a route-only default agent (`general`,
//!    or `general_default` when a label is already called `general`) takes what the fast path
//!    leaves.
//!
//! Everything is sorted before it is written, so the same input gives a byte-identical file.

use std::collections::{BTreeMap, HashMap};

use crate::catalogue::{
    Agent, Catalogue, CatalogueBuilder, CatalogueError, FastPathSettings, Keyword,
};
use crate::fastpath::FastPath;
use crate::normalize::{is_word_char, normalize_into};
use crate::tune::{Example, TuneError, agent_name_for_label};

/// English function words: never a keyword alone, and an n-gram made only of them is skipped.
/// A general list (pronouns, articles, auxiliaries, prepositions, conjunctions, contraction
/// pieces), not derived from any data set.
pub const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "across",
    "after",
    "afterwards",
    "again",
    "against",
    "ain",
    "all",
    "almost",
    "along",
    "already",
    "also",
    "although",
    "always",
    "am",
    "among",
    "an",
    "and",
    "another",
    "any",
    "anybody",
    "anyone",
    "anything",
    "anyway",
    "anywhere",
    "are",
    "aren",
    "around",
    "as",
    "at",
    "be",
    "became",
    "because",
    "become",
    "been",
    "before",
    "behind",
    "being",
    "below",
    "beside",
    "besides",
    "between",
    "beyond",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "cant",
    "could",
    "couldn",
    "couldnt",
    "d",
    "did",
    "didn",
    "didnt",
    "do",
    "does",
    "doesn",
    "doesnt",
    "doing",
    "don",
    "dont",
    "down",
    "during",
    "each",
    "either",
    "else",
    "enough",
    "etc",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "id",
    "if",
    "im",
    "in",
    "into",
    "is",
    "isn",
    "isnt",
    "it",
    "its",
    "itself",
    "ive",
    "just",
    "least",
    "less",
    "ll",
    "m",
    "many",
    "may",
    "me",
    "might",
    "mightn",
    "mine",
    "more",
    "most",
    "much",
    "must",
    "mustn",
    "my",
    "myself",
    "needn",
    "neither",
    "never",
    "no",
    "nor",
    "not",
    "now",
    "o",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "onto",
    "or",
    "other",
    "others",
    "otherwise",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "quite",
    "rather",
    "re",
    "s",
    "same",
    "shall",
    "shan",
    "she",
    "should",
    "shouldn",
    "since",
    "so",
    "some",
    "somebody",
    "someone",
    "something",
    "somewhere",
    "such",
    "t",
    "than",
    "that",
    "thats",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "therefore",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "till",
    "to",
    "too",
    "toward",
    "towards",
    "under",
    "unless",
    "until",
    "up",
    "upon",
    "us",
    "ve",
    "very",
    "via",
    "was",
    "wasn",
    "we",
    "were",
    "weren",
    "what",
    "whatever",
    "whats",
    "when",
    "whenever",
    "where",
    "whereas",
    "wherever",
    "whether",
    "which",
    "while",
    "who",
    "whoever",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "won",
    "would",
    "wouldn",
    "y",
    "yet",
    "you",
    "your",
    "youre",
    "yours",
    "yourself",
    "yourselves",
];

/// Strength `S` of the back-off prior in `p_a = (count_a + S * parent_a) / (total + S)`.
pub const SMOOTHING: f64 = 2.0;

/// Smoothed precision an n-gram needs to become a keyword (log-odds weight above zero).
pub const KEEP_PRECISION: f64 = 0.5;

/// Log-odds a longer n-gram must add over each shorter keyword of the same agent inside it.
pub const LONGER_GAIN: f64 = 0.1;

/// Highest precision one keyword may claim: its log-odds weight is capped at the lower of this
/// and [`MineOptions::min_precision`], so no single n-gram seen often in one agent outweighs
/// everything else in a query.
pub const MAX_KEYWORD_PRECISION: f64 = 0.999;

/// Longest run of consecutive examples kept in one cross-validation fold.
pub const HOLDOUT_BLOCK: usize = 10;

/// Step of the grid that `margin` and `min_score` are chosen from.
pub const THRESHOLD_STEP: f32 = 0.05;

/// Largest `margin` or `min_score` considered.
pub const MAX_THRESHOLD: f32 = 10.0;

/// One-sided z-score of the confidence bounds used when choosing thresholds (95 %).
pub const CONFIDENCE_Z: f64 = 1.645;

/// How the miner works; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct MineOptions {
    /// Precision the fast path must keep on the internal hold-out (lower confidence bound).
    pub min_precision: f64,
    /// Share of out-of-scope examples the fast path may take on the internal hold-out (upper
    /// confidence bound). Ignored when the data has no out-of-scope example.
    pub max_oos_rate: f64,
    /// Fewest examples of an agent that must contain an n-gram for it to become a keyword.
    pub min_support: usize,
    /// Longest n-gram, in words (1 to 3).
    pub max_words: usize,
    /// Number of cross-validation folds for choosing the thresholds (at least 2).
    pub folds: usize,
}

impl Default for MineOptions {
    fn default() -> Self {
        MineOptions {
            min_precision: 0.99,
            max_oos_rate: 0.10,
            min_support: 3,
            max_words: 3,
            folds: 5,
        }
    }
}

/// An n-gram dropped because two classes claim it.
#[derive(Debug, Clone, PartialEq)]
pub struct Collision {
    /// The n-gram, normalised.
    pub ngram: String,
    /// Every class that has it at least `min_support` times, with its count, most first
    /// (`none` for out-of-scope examples, unweighted).
    pub classes: Vec<(String, usize)>,
}

/// What the cross-validation measured with the chosen thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holdout {
    /// Share of held-out in-scope examples decided.
    pub coverage: f64,
    /// Share of those decisions that were right.
    pub precision: f64,
    /// Share of held-out out-of-scope examples decided (0 when there are none).
    pub oos_fast_rate: f64,
    /// Whether the precision and out-of-scope targets could be met at all (when not, the most
    /// precise thresholds on the grid were taken).
    pub targets_met: bool,
}

/// The result of [`mine`]: the routes file and what went into it.
#[derive(Debug, Clone)]
pub struct Mined {
    /// The mined catalogue (valid; render it with [`Catalogue::to_toml_string`]).
    pub catalogue: Catalogue,
    /// N-grams dropped because two classes claim them, most frequent first.
    pub collisions: Vec<Collision>,
    /// Cross-validated figures for the chosen thresholds.
    pub holdout: Holdout,
}

/// Mines a routes file from labelled examples. `source` names the data in error messages.
pub fn mine(examples: &[Example], options: &MineOptions, source: &str) -> Result<Mined, TuneError> {
    check_options(options)?;
    let corpus = Corpus::build(examples, options, source)?;
    let folds = options.folds;
    // Runs of consecutive examples (often paraphrases written together) stay in one fold, so
    // the hold-out is not flattered by near-duplicates; runs are shorter for small data sets so
    // that every fold still gets examples.
    let block = (examples.len() / (folds * HOLDOUT_BLOCK)).clamp(1, HOLDOUT_BLOCK);
    let fold_of = |i: usize| (i / block) % folds;
    let mut scored: Vec<Scored> = Vec::with_capacity(examples.len());
    for fold in 0..folds {
        let selection = corpus.select(options, |i| fold_of(i) != fold);
        let catalogue = corpus.catalogue(&selection, FastPathSettings::default(), source)?;
        let fast = FastPath::new(&catalogue).map_err(|e| catalogue_error(source, e))?;
        for (i, ex) in examples
            .iter()
            .enumerate()
            .filter(|(i, _)| fold_of(*i) == fold)
        {
            let scan = fast.scan(&ex.query);
            let (mut best, mut best_score, mut runner_up) = (usize::MAX, 0.0f32, 0.0f32);
            for (a, &s) in scan.scores.iter().enumerate() {
                if s > best_score {
                    runner_up = best_score;
                    best_score = s;
                    best = a;
                } else if s > runner_up {
                    runner_up = s;
                }
            }
            scored.push(Scored {
                label: corpus.example_label[i],
                best: if scan.hits.is_empty() {
                    None
                } else {
                    Some(best)
                },
                score: best_score,
                runner_up,
            });
        }
    }
    let (settings, holdout) = choose_thresholds(&scored, corpus.labels.len(), options);
    let selection = corpus.select(options, |_| true);
    let catalogue = corpus.catalogue(&selection, settings, source)?;
    Ok(Mined {
        catalogue,
        collisions: selection.collisions,
        holdout,
    })
}

/// How many collisions [`report_lines`] lists one by one.
pub const LISTED_COLLISIONS: usize = 40;

/// The routes file for a mining result: a comment header (what it was mined from, the hold-out
/// figures) and the catalogue. Deterministic: no paths, no times.
pub fn render(mined: &Mined, examples: &[Example], options: &MineOptions) -> String {
    let oos = examples.iter().filter(|e| e.agent.is_none()).count();
    let h = &mined.holdout;
    let keywords: usize = mined
        .catalogue
        .agents()
        .iter()
        .map(|a| a.keywords.len())
        .sum();
    let mut out = format!(
        "# Mined by `agent-router keywords` from {} labelled examples ({} out of scope):\n\
         # {} agents, {} keywords; 1-3 word n-grams, weight = log-odds of smoothed precision.\n\
         # Thresholds chosen by {}-fold cross-validation for precision >= {} (lower bound){}:\n\
         # held-out coverage {:.2}%, precision {:.2}%, out of scope taken {:.2}%.\n\n",
        examples.len(),
        oos,
        mined.catalogue.agents().len(),
        keywords,
        options.folds,
        options.min_precision,
        if h.targets_met {
            ""
        } else {
            " (NOT reached: most precise thresholds used)"
        },
        h.coverage * 100.0,
        h.precision * 100.0,
        h.oos_fast_rate * 100.0,
    );
    out.push_str(&mined.catalogue.to_toml_string());
    out
}

/// Lines for stderr describing a mining result: hold-out figures, keywords per agent and the
/// collisions dropped (the [`LISTED_COLLISIONS`] most frequent listed one by one).
pub fn report_lines(mined: &Mined, examples: &[Example]) -> Vec<String> {
    let h = &mined.holdout;
    let fp = mined.catalogue.fast_path();
    let mut lines = vec![format!(
        "mined {} examples: margin {}, min_score {}; cross-validated coverage {:.2}%, precision {:.2}%, out of scope taken {:.2}%{}",
        examples.len(),
        fp.margin,
        fp.min_score,
        h.coverage * 100.0,
        h.precision * 100.0,
        h.oos_fast_rate * 100.0,
        if h.targets_met {
            ""
        } else {
            " (targets NOT reached: most precise thresholds used)"
        }
    )];
    for a in mined.catalogue.agents() {
        lines.push(format!("  {:<24} {:>5} keywords", a.name, a.keywords.len()));
    }
    lines.push(format!(
        "dropped {} collisions (n-grams claimed by two classes){}",
        mined.collisions.len(),
        if mined.collisions.len() > LISTED_COLLISIONS {
            format!(", the {LISTED_COLLISIONS} most frequent:")
        } else if mined.collisions.is_empty() {
            String::new()
        } else {
            ":".to_owned()
        }
    ));
    for c in mined.collisions.iter().take(LISTED_COLLISIONS) {
        let classes: Vec<String> = c.classes.iter().map(|(n, k)| format!("{n} {k}")).collect();
        lines.push(format!("  {:?}: {}", c.ngram, classes.join(", ")));
    }
    lines
}

fn check_options(o: &MineOptions) -> Result<(), TuneError> {
    let bad = |m: String| Err(TuneError::Option(m));
    if !(o.min_precision > 0.0 && o.min_precision <= 1.0) {
        return bad(format!(
            "--min-precision is {}; it must be in (0, 1]",
            o.min_precision
        ));
    }
    if !(0.0..=1.0).contains(&o.max_oos_rate) {
        return bad(format!(
            "max out-of-scope rate is {}; it must be in [0, 1]",
            o.max_oos_rate
        ));
    }
    if o.min_support == 0 {
        return bad("--min-support must be at least 1".to_owned());
    }
    if !(1..=3).contains(&o.max_words) {
        return bad(format!("n-grams of {} words: use 1 to 3", o.max_words));
    }
    if o.folds < 2 {
        return bad(format!("{} folds: use at least 2", o.folds));
    }
    Ok(())
}

fn catalogue_error(source: &str, e: CatalogueError) -> TuneError {
    TuneError::Catalogue {
        path: format!("mined from {source}"),
        source: e,
    }
}

/// A held-out example's fast-path scores.
#[derive(Debug, Clone, Copy)]
struct Scored {
    /// Class index (`labels.len()` for out-of-scope).
    label: usize,
    /// Best-scoring agent, `None` when no keyword matched.
    best: Option<usize>,
    score: f32,
    runner_up: f32,
}

/// Word ids of an n-gram, padded with [`NO_WORD`].
type GramKey = [u32; 3];
const NO_WORD: u32 = u32::MAX;

struct Gram {
    key: GramKey,
    words: usize,
    text: String,
    /// Made only of stop words: never a keyword, only a back-off parent of longer n-grams.
    stop_only: bool,
    /// Starts and ends with a word that is not a stop word (fit for a description).
    clean_edges: bool,
    /// Examples containing it, ascending.
    postings: Vec<u32>,
}

/// The examples, tokenised once and indexed by n-gram.
struct Corpus {
    /// Agent names, sorted; class `labels.len()` is out-of-scope.
    labels: Vec<String>,
    example_label: Vec<usize>,
    /// N-grams with enough support to ever be kept, sorted by text.
    grams: Vec<Gram>,
    gram_index: HashMap<GramKey, usize>,
    default_name: String,
}

/// One n-gram chosen as a keyword.
#[derive(Debug, Clone, Copy)]
struct KeptKeyword {
    /// Index into [`Corpus::grams`].
    gram: usize,
    weight: f32,
    /// Smoothed precision towards its agent.
    precision: f64,
    /// Examples of its agent that contain it.
    count: usize,
}

/// Keywords chosen from a subset of the examples.
struct Selection {
    /// Per agent, in n-gram order.
    keywords: Vec<Vec<KeptKeyword>>,
    collisions: Vec<Collision>,
}

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

impl Corpus {
    fn build(
        examples: &[Example],
        options: &MineOptions,
        source: &str,
    ) -> Result<Corpus, TuneError> {
        // Labels -> agent names, sorted, checked for clashes.
        let mut by_name: BTreeMap<String, String> = BTreeMap::new();
        for ex in examples {
            if let Some(label) = &ex.agent {
                let name = agent_name_for_label(label);
                match by_name.get(&name) {
                    Some(first) if first != label => {
                        let (first, second) = if first < label {
                            (first.clone(), label.clone())
                        } else {
                            (label.clone(), first.clone())
                        };
                        return Err(TuneError::LabelClash {
                            path: source.to_owned(),
                            first,
                            second,
                            name,
                        });
                    }
                    Some(_) => {}
                    None => {
                        by_name.insert(name, label.clone());
                    }
                }
            }
        }
        if by_name.is_empty() {
            return Err(TuneError::NoInScope {
                path: source.to_owned(),
            });
        }
        let labels: Vec<String> = by_name.keys().cloned().collect();
        let class_of: HashMap<&str, usize> = by_name
            .values()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let example_label: Vec<usize> = examples
            .iter()
            .map(|ex| match &ex.agent {
                Some(l) => class_of[l.as_str()],
                None => labels.len(),
            })
            .collect();
        let mut default_name = "general".to_owned();
        while by_name.contains_key(&default_name) {
            default_name.push_str("_default");
        }

        // Tokenise and count n-grams (once per example).
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut words: Vec<String> = Vec::new();
        let mut stop: Vec<bool> = Vec::new();
        let mut postings: HashMap<GramKey, Vec<u32>> = HashMap::new();
        let mut norm = String::new();
        let mut toks: Vec<(u32, bool)> = Vec::new(); // (word id, preceded by exactly one space)
        let mut keys: Vec<GramKey> = Vec::new();
        for (i, ex) in examples.iter().enumerate() {
            normalize_into(&ex.query, &mut norm);
            toks.clear();
            let mut start: Option<usize> = None;
            let mut gap_start = 0;
            for (pos, c) in norm
                .char_indices()
                .chain(std::iter::once((norm.len(), ' ')))
            {
                let word_char = pos < norm.len() && is_word_char(c);
                match (word_char, start) {
                    (true, None) => start = Some(pos),
                    (false, Some(s)) => {
                        let w = &norm[s..pos];
                        let id = match vocab.get(w) {
                            Some(&id) => id,
                            None => {
                                let id = words.len() as u32;
                                vocab.insert(w.to_owned(), id);
                                words.push(w.to_owned());
                                stop.push(is_stop_word(w));
                                id
                            }
                        };
                        let spaced = !toks.is_empty() && &norm[gap_start..s] == " ";
                        toks.push((id, spaced));
                        start = None;
                        gap_start = pos;
                    }
                    _ => {}
                }
            }
            keys.clear();
            for s in 0..toks.len() {
                let mut key = [NO_WORD; 3];
                for n in 0..options.max_words.min(toks.len() - s) {
                    let (id, spaced) = toks[s + n];
                    if n > 0 && !spaced {
                        break;
                    }
                    key[n] = id;
                    keys.push(key);
                }
            }
            keys.sort_unstable();
            keys.dedup();
            for k in &keys {
                postings.entry(*k).or_default().push(i as u32);
            }
        }
        let mut grams: Vec<Gram> = postings
            .into_iter()
            .filter(|(_, p)| p.len() >= options.min_support)
            .map(|(key, postings)| {
                let n = key.iter().take_while(|&&w| w != NO_WORD).count();
                let text = key[..n]
                    .iter()
                    .map(|&w| words[w as usize].as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                Gram {
                    key,
                    words: n,
                    text,
                    stop_only: key[..n].iter().all(|&w| stop[w as usize]),
                    clean_edges: !stop[key[0] as usize] && !stop[key[n - 1] as usize],
                    postings,
                }
            })
            .collect();
        grams.sort_by(|a, b| a.words.cmp(&b.words).then_with(|| a.text.cmp(&b.text)));
        let gram_index = grams.iter().enumerate().map(|(i, g)| (g.key, i)).collect();
        Ok(Corpus {
            labels,
            example_label,
            grams,
            gram_index,
            default_name,
        })
    }

    /// Chooses keywords from the examples `use_example` accepts.
    fn select(&self, options: &MineOptions, use_example: impl Fn(usize) -> bool) -> Selection {
        let k = self.labels.len();
        let mut class_size = vec![0usize; k + 1];
        for (i, &l) in self.example_label.iter().enumerate() {
            if use_example(i) {
                class_size[l] += 1;
            }
        }
        let in_scope: usize = class_size[..k].iter().sum();
        let oos = class_size[k];
        // Out-of-scope examples together weigh like one average-sized agent's examples.
        let oos_weight = if oos > 0 {
            (in_scope as f64 / k as f64) / oos as f64
        } else {
            0.0
        };
        let weighted_total = (in_scope as f64 + oos_weight * oos as f64).max(1.0);
        let prior: Vec<f64> = class_size[..k]
            .iter()
            .map(|&n| n as f64 / weighted_total)
            .collect();
        let target = options.min_precision.min(MAX_KEYWORD_PRECISION);
        let max_log_odds = (target / (1.0 - target)).ln();

        // Smoothed precision towards every agent, per n-gram (row-major, k per n-gram).
        let mut dists: Vec<f64> = vec![0.0; self.grams.len() * k];
        let mut parent = vec![0.0f64; k];
        // Per n-gram: Some((agent, log-odds)) when it became a keyword.
        let mut kept: Vec<Option<(usize, f64)>> = vec![None; self.grams.len()];
        let mut keywords: Vec<Vec<KeptKeyword>> = vec![Vec::new(); k];
        let mut collisions = Vec::new();
        let mut counts = vec![0usize; k + 1];
        let min_support = options.min_support;
        for (gi, g) in self.grams.iter().enumerate() {
            counts.iter_mut().for_each(|c| *c = 0);
            for &e in &g.postings {
                if use_example(e as usize) {
                    counts[self.example_label[e as usize]] += 1;
                }
            }
            let in_count: usize = counts[..k].iter().sum();
            let total = in_count as f64 + oos_weight * counts[k] as f64;
            // Back-off: an n-gram's precision shrinks towards the better of its two
            // (n-1)-word parts (computed earlier: the n-grams are sorted by length), a word's
            // towards the agents' shares of the examples.
            parent.copy_from_slice(&prior);
            if g.words > 1 {
                let mut first = true;
                for (from, to) in [(0, g.words - 1), (1, g.words)] {
                    let mut sub = [NO_WORD; 3];
                    sub[..to - from].copy_from_slice(&g.key[from..to]);
                    if let Some(&si) = self.gram_index.get(&sub) {
                        let sub_dist = &dists[si * k..(si + 1) * k];
                        for (p, &d) in parent.iter_mut().zip(sub_dist) {
                            *p = if first { d } else { p.max(d) };
                        }
                        first = false;
                    }
                }
            }
            for b in 0..k {
                dists[gi * k + b] =
                    (counts[b] as f64 + SMOOTHING * parent[b]) / (total + SMOOTHING);
            }
            if g.stop_only {
                continue; // only a parent for longer n-grams
            }
            let (mut agent, mut top) = (0, 0);
            for (a, &c) in counts[..k].iter().enumerate() {
                if c > top {
                    (agent, top) = (a, c);
                }
            }
            if top < min_support {
                continue;
            }
            let p = dists[gi * k + agent];
            if p < KEEP_PRECISION {
                let mut classes: Vec<(String, usize)> = counts
                    .iter()
                    .enumerate()
                    .filter(|&(c, &n)| n >= min_support || (c == k && n > 0))
                    .map(|(c, &n)| {
                        let name = if c == k {
                            super::OUT_OF_SCOPE_LABEL
                        } else {
                            &self.labels[c]
                        };
                        (name.to_owned(), n)
                    })
                    .collect();
                if classes.len() >= 2 {
                    classes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    collisions.push(Collision {
                        ngram: g.text.clone(),
                        classes,
                    });
                }
                continue;
            }
            let log_odds = (p / (1.0 - p)).ln().min(max_log_odds);
            // A longer n-gram must beat the same agent's keywords inside it.
            if g.words > 1 {
                let mut best_inside = f64::NEG_INFINITY;
                for from in 0..g.words {
                    for to in from + 1..=g.words {
                        if to - from == g.words {
                            continue;
                        }
                        let mut sub = [NO_WORD; 3];
                        sub[..to - from].copy_from_slice(&g.key[from..to]);
                        if let Some(&si) = self.gram_index.get(&sub)
                            && let Some((a, lo)) = kept[si]
                            && a == agent
                        {
                            best_inside = best_inside.max(lo);
                        }
                    }
                }
                if log_odds < best_inside + LONGER_GAIN {
                    continue;
                }
            }
            kept[gi] = Some((agent, log_odds));
            keywords[agent].push(KeptKeyword {
                gram: gi,
                weight: ((log_odds * 100.0).round() / 100.0).max(0.01) as f32,
                precision: p,
                count: top,
            });
        }
        collisions.sort_by(|a, b| {
            let total = |c: &Collision| c.classes.iter().map(|x| x.1).sum::<usize>();
            total(b).cmp(&total(a)).then_with(|| a.ngram.cmp(&b.ngram))
        });
        Selection {
            keywords,
            collisions,
        }
    }

    /// Turns a selection into a validated catalogue.
    fn catalogue(
        &self,
        selection: &Selection,
        settings: FastPathSettings,
        source: &str,
    ) -> Result<Catalogue, TuneError> {
        let mut builder = CatalogueBuilder::new(self.default_name.clone());
        builder.fast_path(settings);
        for (a, name) in self.labels.iter().enumerate() {
            let mut kws = selection.keywords[a].clone();
            kws.sort_by(|x, y| {
                y.weight
                    .total_cmp(&x.weight)
                    .then_with(|| self.grams[x.gram].text.cmp(&self.grams[y.gram].text))
            });
            builder.agent(Agent {
                name: name.clone(),
                description: self.describe(&selection.keywords[a]),
                keywords: kws
                    .iter()
                    .map(|kw| Keyword {
                        text: self.grams[kw.gram].text.clone(),
                        weight: kw.weight,
                    })
                    .collect(),
                target: None,
            });
        }
        builder.agent(Agent {
            name: self.default_name.clone(),
            description: "Anything the other agents do not cover (route-only default).".to_owned(),
            keywords: Vec::new(),
            target: None,
        });
        builder.build().map_err(|e| catalogue_error(source, e))
    }

    /// "Queries about: w1, w2, ..." from an agent's most frequent precise keywords.
    fn describe(&self, keywords: &[KeptKeyword]) -> String {
        const LISTED: usize = 8;
        let mut ranked: Vec<&KeptKeyword> = keywords
            .iter()
            .filter(|k| self.grams[k.gram].clean_edges)
            .collect();
        let score = |k: &KeptKeyword| k.count as f64 * k.precision;
        ranked.sort_by(|x, y| {
            score(y)
                .total_cmp(&score(x))
                .then_with(|| self.grams[x.gram].text.cmp(&self.grams[y.gram].text))
        });
        let mut listed: Vec<&str> = Vec::new();
        let mut seen_words: Vec<u32> = Vec::new();
        for k in ranked {
            let g = &self.grams[k.gram];
            let new_word = g.key[..g.words].iter().any(|w| !seen_words.contains(w));
            if !new_word {
                continue;
            }
            seen_words.extend_from_slice(&g.key[..g.words]);
            listed.push(&g.text);
            if listed.len() == LISTED {
                break;
            }
        }
        if listed.is_empty() {
            "Queries for this agent (no distinctive keywords found).".to_owned()
        } else {
            format!("Queries about: {}, ...", listed.join(", "))
        }
    }
}

/// One-sided Wilson lower bound of a proportion.
fn wilson_lower(successes: usize, n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let (n, p, z) = (n as f64, successes as f64 / n as f64, CONFIDENCE_Z);
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    (centre - spread) / (1.0 + z * z / n)
}

/// One-sided Wilson upper bound of a proportion.
fn wilson_upper(successes: usize, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    1.0 - wilson_lower(n - successes, n)
}

/// Picks `margin` and `min_score` on the grid from the held-out scores.
fn choose_thresholds(
    scored: &[Scored],
    agents: usize,
    options: &MineOptions,
) -> (FastPathSettings, Holdout) {
    let in_scope = scored.iter().filter(|s| s.label < agents).count();
    let oos = scored.len() - in_scope;
    let top = scored.iter().map(|s| s.score).fold(0.0f32, f32::max);
    let steps = ((top.min(MAX_THRESHOLD) / THRESHOLD_STEP).ceil() as u32 + 1).max(1);
    let grid = |i: u32| i as f32 / (1.0 / THRESHOLD_STEP);
    let mut by_score: Vec<&Scored> = scored.iter().filter(|s| s.best.is_some()).collect();
    by_score.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Maximised lexicographically among pairs that meet the targets: coverage, fewer
    // out-of-scope taken, more correct, then the larger thresholds.
    let mut best: Option<(usize, std::cmp::Reverse<usize>, usize, u32, u32)> = None;
    // Fallback when no pair meets the targets: the most precise (then most covering) pair.
    let mut best_precise: Option<(f64, usize, u32, u32)> = None;
    let mut order: Vec<&Scored> = Vec::with_capacity(by_score.len());
    for mi in 0..steps {
        let margin = grid(mi);
        order.clear();
        order.extend(
            by_score
                .iter()
                .filter(|s| s.score > s.runner_up && s.score - s.runner_up >= margin),
        );
        let (mut decided, mut correct, mut oos_taken) = (0usize, 0usize, 0usize);
        let mut next = 0;
        for si in (0..steps).rev() {
            let min_score = grid(si);
            while next < order.len() && order[next].score >= min_score {
                let s = order[next];
                if s.label < agents {
                    decided += 1;
                    correct += usize::from(s.best == Some(s.label));
                } else {
                    oos_taken += 1;
                }
                next += 1;
            }
            if decided == 0 {
                continue;
            }
            let precise = wilson_lower(correct, decided) >= options.min_precision;
            let oos_ok = oos == 0 || wilson_upper(oos_taken, oos) <= options.max_oos_rate;
            if precise && oos_ok {
                let cand = (decided, std::cmp::Reverse(oos_taken), correct, si, mi);
                if best.is_none_or(|b| cand > b) {
                    best = Some(cand);
                }
            }
            let precision = correct as f64 / decided as f64;
            if best_precise.is_none_or(|b| (precision, decided) > (b.0, b.1)) {
                best_precise = Some((precision, decided, si, mi));
            }
        }
    }
    let (targets_met, settings) = match (best, best_precise) {
        (Some(b), _) => (true, (b.3, b.4)),
        (None, Some(p)) => (false, (p.2, p.3)),
        (None, None) => (false, (u32::MAX, u32::MAX)),
    };
    let settings = match settings {
        // Nothing held out was ever decided: keep the routes file's defaults.
        (u32::MAX, _) => FastPathSettings::default(),
        (si, mi) => FastPathSettings {
            margin: grid(mi),
            min_score: grid(si),
        },
    };
    // Measure the chosen pair.
    let (mut decided, mut correct, mut oos_taken) = (0usize, 0usize, 0usize);
    for s in scored {
        let takes = s.best.is_some()
            && s.score >= settings.min_score
            && s.score > s.runner_up
            && s.score - s.runner_up >= settings.margin;
        if takes {
            if s.label < agents {
                decided += 1;
                correct += usize::from(s.best == Some(s.label));
            } else {
                oos_taken += 1;
            }
        }
    }
    let ratio = |a: usize, b: usize, empty: f64| if b == 0 { empty } else { a as f64 / b as f64 };
    (
        settings,
        Holdout {
            coverage: ratio(decided, in_scope, 0.0),
            precision: ratio(correct, decided, 1.0),
            oos_fast_rate: ratio(oos_taken, oos, 0.0),
            targets_met,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_and_unique() {
        for w in STOP_WORDS.windows(2) {
            assert!(w[0] < w[1], "{:?} must come before {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn wilson_bounds() {
        assert!((wilson_lower(99, 100) - 0.95).abs() < 0.02);
        assert!(wilson_upper(0, 100) < 0.03);
        assert_eq!(wilson_lower(0, 0), 1.0);
    }
}
