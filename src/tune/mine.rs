//! Mining a routes file from labelled queries (the `keywords` command).
//!
//! The fast path scores an agent by the sum of the weights of its keywords found in a query, with
//! overlapping matches resolved leftmost-longest, each keyword on one agent only. The miner fits
//! exactly that model to the examples. The method, in order:
//!
//! 1. **Tokens and n-grams.** Each query is normalised like the fast path does it
//!    ([`crate::normalize`]) and cut into words (runs of letters, digits and `_`). Candidate
//!    keywords are the 1- to 3-word n-grams whose words are separated by exactly one space, so a
//!    phrase matches the query exactly as the fast path will see it. Each n-gram counts once per
//!    query. A general list of English function words ([`STOP_WORDS`]) is never a keyword on its
//!    own; phrases made only of them ("how are you", "what is my") may be.
//! 2. **Negative evidence.** Out-of-scope examples (label `none`) form one more class, weighted
//!    so that together they weigh as much as an average agent's examples.
//! 3. **Candidates.** An n-gram is a candidate of the agent with the most examples containing it
//!    when that agent has it at least `min_support` times. Because the fast path resolves
//!    overlaps leftmost-longest, a phrase hides the words inside it and any keyword it overlaps:
//!    a 2- or 3-word n-gram is only a candidate when its smoothed log-odds towards its agent,
//!    `ln(p / (1 - p))` with `p = (count_a + 1) / (weighted_total + 2)`, beat those of every
//!    shorter n-gram inside it (single stop words aside) by [`LONGER_GAIN`]. Rarely seen phrases
//!    thus leave the evidence to their better-estimated parts.
//! 4. **Weights by training.** The real [`FastPath`] scans every example with the candidates, so
//!    the model sees the hits the router will see (overlaps resolved as in production). The
//!    weights are then fitted as a multinomial logistic regression over the agents plus the
//!    out-of-scope class (whose score is one learned constant), with each keyword's weight
//!    non-negative and counting for its agent only, an L2 penalty of [`L2_PENALTY`], and
//!    [`EPOCHS`] deterministic passes of AdaGrad stochastic gradient descent. Correlated keywords
//!    thus share their evidence instead of adding it twice, and a keyword seen in several agents'
//!    queries gets the weight that helps most. After the first of [`ROUNDS`] rounds a candidate
//!    left at weight zero moves to the agent whose loss it would lower most (or is dropped), and
//!    the candidates are scanned and fitted again. Weights at or below [`MIN_WEIGHT`] are
//!    dropped; n-grams that two classes claim and that end without weight are reported as
//!    collisions.
//! 5. **Thresholds by cross-validation.** The examples are split deterministically into
//!    [`MineOptions::folds`] folds by runs of consecutive examples (at most [`HOLDOUT_BLOCK`] in a
//!    run: examples written together are often near-paraphrases and must not sit on both sides
//!    of the split). For each fold, candidates and weights come from the other folds and the real
//!    [`FastPath`] scores the held-out queries. Over all held-out scores, `margin` and
//!    `min_score` are chosen on a [`THRESHOLD_STEP`] grid to maximise in-scope coverage while the
//!    held-out precision keeps [`PRECISION_RESERVE`] of the error budget `1 - min_precision` in
//!    reserve and the out-of-scope take rate stays within [`OOS_SHARE`] of
//!    [`MineOptions::max_oos_rate`] (when there are out-of-scope examples: they are usually few
//!    and written in clusters, so their held-out rate is both noisy and optimistic).
//! 6. The final keywords are mined and trained from all examples, and a route-only default agent
//!    (`general`, or `general_default` when a label is already called `general`) takes what the
//!    fast path leaves.
//!
//! Training visits the examples in a fixed order and everything is sorted before it is written,
//! so the same input gives a byte-identical file.

use std::collections::{BTreeMap, HashMap};

use crate::routing::FastPath;
use crate::routing::{
    Agent, Catalogue, CatalogueBuilder, CatalogueError, FastPathSettings, Keyword,
};
use crate::routing::{is_word_char, normalize_into};
use crate::tune::thresholds::{Scored, Tally, best_pair, sweep};
use crate::tune::{Example, TuneError, agent_name_for_label};

/// English function words: never a keyword alone (phrases made only of them may be).
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

/// Log-odds a 2- or 3-word n-gram must gain over every shorter n-gram inside it to be a
/// candidate (it hides them on the fast path).
pub const LONGER_GAIN: f64 = 1.0;

/// L2 penalty on keyword weights, relative to the average loss of one example.
pub const L2_PENALTY: f64 = 3e-6;

/// Passes of stochastic gradient descent over the examples in each training round.
pub const EPOCHS: usize = 10;

/// AdaGrad's base step.
pub const LEARNING_RATE: f64 = 0.5;

/// Training rounds: after each but the last, candidates left at weight zero move to the agent
/// that wants them most (or are dropped) and the candidates are fitted again.
pub const ROUNDS: usize = 2;

/// Trained weights at or below this are dropped (weights are written rounded to 0.01).
pub const MIN_WEIGHT: f64 = 0.005;

/// Longest run of consecutive examples kept in one cross-validation fold.
pub const HOLDOUT_BLOCK: usize = 10;

pub use super::thresholds::{MAX_THRESHOLD, THRESHOLD_STEP};

/// Share of the error budget `1 - min_precision` that the held-out precision must leave unused:
/// held-out precision must reach `min_precision + PRECISION_RESERVE * (1 - min_precision)`
/// (99.25 % for 99 %), a margin for new data and for the choice among many thresholds.
pub const PRECISION_RESERVE: f64 = 0.25;

/// Share of [`MineOptions::max_oos_rate`] that the held-out out-of-scope take rate may use.
pub const OOS_SHARE: f64 = 0.5;

/// Default share of out-of-scope queries the fast path may take ([`MineOptions::max_oos_rate`];
/// also the limit of `eval`'s operating points).
pub const DEFAULT_MAX_OOS_RATE: f64 = 0.10;

/// How the miner works; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct MineOptions {
    /// Precision the fast path must keep on new queries; the held-out precision must exceed it
    /// by [`PRECISION_RESERVE`] of the error budget.
    pub min_precision: f64,
    /// Share of out-of-scope queries the fast path may take; the held-out rate must stay within
    /// [`OOS_SHARE`] of it. Ignored when the data has no out-of-scope example.
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
            max_oos_rate: DEFAULT_MAX_OOS_RATE,
            min_support: 3,
            max_words: 3,
            folds: 5,
        }
    }
}

/// An n-gram that several classes claim and that training left without weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Collision {
    /// The n-gram, normalised.
    pub ngram: String,
    /// Every class that has it at least `min_support` times, with its count, most first
    /// (`none` for out-of-scope examples, unweighted, listed when it has it at all).
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
    /// N-grams several classes claim that training left without weight, most frequent first.
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
        let keywords = corpus.keywords(options, &|i| fold_of(i) != fold, source)?;
        let catalogue = corpus.catalogue(&keywords, FastPathSettings::default(), source)?;
        let fast = FastPath::new(&catalogue).map_err(|e| catalogue_error(source, e))?;
        for (i, ex) in examples
            .iter()
            .enumerate()
            .filter(|(i, _)| fold_of(*i) == fold)
        {
            let label = corpus.example_label[i];
            let expected = (label < corpus.labels.len()).then_some(label);
            scored.push(Scored::from_scan(&fast.scan(&ex.query), expected));
        }
    }
    let (settings, holdout) = choose_thresholds(&scored, options);
    let keywords = corpus.keywords(options, &|_| true, source)?;
    let catalogue = corpus.catalogue(&keywords, settings, source)?;
    Ok(Mined {
        catalogue,
        collisions: corpus.collisions(&keywords, options),
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
         # {} agents, {} keywords; 1-3 word n-grams, weights fitted to the fast path's scoring.\n\
         # Thresholds chosen by {}-fold cross-validation for precision >= {} (with a reserve){}:\n\
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
        "dropped {} collisions (n-grams two classes claim, left without weight){}",
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

/// Word ids of an n-gram, padded with [`NO_WORD`].
type GramKey = [u32; 3];
const NO_WORD: u32 = u32::MAX;

struct Gram {
    key: GramKey,
    words: usize,
    text: String,
    /// Made only of stop words (never a keyword when it is one word).
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
    /// The examples' queries, as written (scanned by the real fast path while training).
    queries: Vec<String>,
}

/// One n-gram chosen as a candidate or keyword.
#[derive(Debug, Clone, Copy)]
struct KeptKeyword {
    /// Index into [`Corpus::grams`].
    gram: usize,
    /// Trained weight (0 for a candidate not trained yet).
    weight: f32,
    /// Smoothed precision towards its agent.
    precision: f64,
    /// Examples of its agent that contain it.
    count: usize,
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
            queries: examples.iter().map(|e| e.query.clone()).collect(),
        })
    }

    /// Candidates and trained weights from the examples `use_example` accepts: per agent, the
    /// kept keywords in n-gram order.
    fn keywords(
        &self,
        options: &MineOptions,
        use_example: &dyn Fn(usize) -> bool,
        source: &str,
    ) -> Result<Vec<Vec<KeptKeyword>>, TuneError> {
        let k = self.labels.len();
        let mut class_size = vec![0usize; k + 1];
        for (i, &l) in self.example_label.iter().enumerate() {
            if use_example(i) {
                class_size[l] += 1;
            }
        }
        let in_scope: usize = class_size[..k].iter().sum();
        // Out-of-scope examples together weigh like one average-sized agent's examples.
        let oos_weight = if class_size[k] > 0 {
            (in_scope as f64 / k as f64) / class_size[k] as f64
        } else {
            0.0
        };
        let candidates = self.candidates(options, use_example, oos_weight);
        self.train(candidates, use_example, oos_weight, source)
    }

    /// Examples of each class (`labels.len()` for out-of-scope) that contain n-gram `gram`.
    fn class_counts(&self, gram: usize, use_example: &dyn Fn(usize) -> bool, out: &mut [usize]) {
        out.iter_mut().for_each(|c| *c = 0);
        for &e in &self.grams[gram].postings {
            if use_example(e as usize) {
                out[self.example_label[e as usize]] += 1;
            }
        }
    }

    /// Smoothed log-odds and precision of n-gram counts `counts` towards `agent`.
    fn log_odds(counts: &[usize], agent: usize, oos_weight: f64) -> (f64, f64) {
        let k = counts.len() - 1;
        let total = counts[..k].iter().sum::<usize>() as f64 + oos_weight * counts[k] as f64;
        let p = (counts[agent] as f64 + 1.0) / (total + 2.0);
        ((p / (1.0 - p)).ln(), p)
    }

    /// The candidate keywords of each agent (weights not set yet), in n-gram order.
    fn candidates(
        &self,
        options: &MineOptions,
        use_example: &dyn Fn(usize) -> bool,
        oos_weight: f64,
    ) -> Vec<Vec<KeptKeyword>> {
        let k = self.labels.len();
        let mut counts = vec![0usize; k + 1];
        let mut sub_counts = vec![0usize; k + 1];
        let mut out: Vec<Vec<KeptKeyword>> = vec![Vec::new(); k];
        for (gi, g) in self.grams.iter().enumerate() {
            if g.words == 1 && g.stop_only {
                continue;
            }
            self.class_counts(gi, use_example, &mut counts);
            let (mut agent, mut top) = (0, 0);
            for (a, &c) in counts[..k].iter().enumerate() {
                if c > top {
                    (agent, top) = (a, c);
                }
            }
            if top < options.min_support {
                continue;
            }
            let (log_odds, precision) = Corpus::log_odds(&counts, agent, oos_weight);
            // A phrase hides what is inside it: it must say clearly more than every part.
            let mut earns_place = true;
            for from in 0..g.words {
                for to in from + 1..=g.words {
                    if to - from == g.words {
                        continue;
                    }
                    let mut sub = [NO_WORD; 3];
                    sub[..to - from].copy_from_slice(&g.key[from..to]);
                    let Some(&si) = self.gram_index.get(&sub) else {
                        continue;
                    };
                    if to - from == 1 && self.grams[si].stop_only {
                        continue; // never a keyword, hides nothing
                    }
                    self.class_counts(si, use_example, &mut sub_counts);
                    if log_odds < Corpus::log_odds(&sub_counts, agent, oos_weight).0 + LONGER_GAIN {
                        earns_place = false;
                    }
                }
            }
            if earns_place {
                out[agent].push(KeptKeyword {
                    gram: gi,
                    weight: 0.0,
                    precision,
                    count: top,
                });
            }
        }
        out
    }

    /// A fast path over `keywords` (weight 1 each, in the given order) for finding which of them
    /// the router would match in a query.
    fn scanner(&self, keywords: &[Vec<KeptKeyword>], source: &str) -> Result<FastPath, TuneError> {
        let mut builder = CatalogueBuilder::new(self.default_name.clone());
        for (a, name) in self.labels.iter().enumerate() {
            builder.agent(Agent {
                name: name.clone(),
                description: "candidates".to_owned(),
                keywords: keywords[a]
                    .iter()
                    .map(|kw| Keyword {
                        text: self.grams[kw.gram].text.clone(),
                        weight: 1.0,
                    })
                    .collect(),
                bias: 0.0,
                target: None,
            });
        }
        builder.agent(Agent {
            name: self.default_name.clone(),
            description: "default".to_owned(),
            keywords: Vec::new(),
            bias: 0.0,
            target: None,
        });
        let catalogue = builder.build().map_err(|e| catalogue_error(source, e))?;
        FastPath::new(&catalogue).map_err(|e| catalogue_error(source, e))
    }

    /// Fits the candidates' weights (see the module documentation, step 4) and returns the
    /// keywords that keep a weight.
    fn train(
        &self,
        mut keywords: Vec<Vec<KeptKeyword>>,
        use_example: &dyn Fn(usize) -> bool,
        oos_weight: f64,
        source: &str,
    ) -> Result<Vec<Vec<KeptKeyword>>, TuneError> {
        let k = self.labels.len();
        // Weight per n-gram, carried from one round to the next.
        let mut gram_weight = vec![0.0f64; self.grams.len()];
        let mut counts = vec![0usize; k + 1];
        for round in 0..ROUNDS {
            let last = round + 1 == ROUNDS;
            // Features: the candidates, flattened agent by agent.
            let mut owner: Vec<usize> = Vec::new();
            let mut base = vec![0usize; k];
            for (a, kws) in keywords.iter().enumerate() {
                base[a] = owner.len();
                owner.extend(std::iter::repeat_n(a, kws.len()));
            }
            let nf = owner.len();
            let mut w: Vec<f64> = keywords
                .iter()
                .flat_map(|kws| kws.iter().map(|kw| gram_weight[kw.gram]))
                .collect();
            // What the router would match in each example: (class, example weight, hits).
            let fast = self.scanner(&keywords, source)?;
            let mut hits: Vec<u32> = Vec::new();
            let mut rows: Vec<(usize, f64, usize, usize)> = Vec::new();
            for (i, query) in self.queries.iter().enumerate() {
                if !use_example(i) {
                    continue;
                }
                let start = hits.len();
                for h in fast.scan(query).hits {
                    hits.push((base[h.agent] + h.keyword) as u32);
                }
                let label = self.example_label[i];
                let weight = if label == k { oos_weight } else { 1.0 };
                rows.push((label, weight, start, hits.len()));
            }
            let n = rows.len();
            if n == 0 {
                return Ok(vec![Vec::new(); k]);
            }
            let mut freq = vec![0usize; nf];
            for &f in &hits {
                freq[f as usize] += 1;
            }
            // Softmax over the agents and the out-of-scope class, whose score is `bias`.
            let mut bias = 0.0f64;
            let mut probs = vec![0.0f64; k + 1];
            let softmax = |probs: &mut [f64], w: &[f64], bias: f64, row_hits: &[u32]| {
                probs.iter_mut().for_each(|p| *p = 0.0);
                probs[k] = bias;
                for &f in row_hits {
                    probs[owner[f as usize]] += w[f as usize];
                }
                let top = probs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for p in probs.iter_mut() {
                    *p = (*p - top).exp();
                    sum += *p;
                }
                probs.iter_mut().for_each(|p| *p /= sum);
            };
            let mut squared = vec![1e-8f64; nf];
            let mut squared_bias = 1e-8f64;
            // A fixed permutation of the examples: a stride coprime with their count.
            let mut stride = ((n as f64 * 0.618) as usize) | 1;
            while gcd(stride, n) != 1 {
                stride += 2;
            }
            let mut at = 0usize;
            for _ in 0..EPOCHS * n {
                at = (at + stride) % n;
                let (label, weight, start, end) = rows[at];
                let row_hits = &hits[start..end];
                softmax(&mut probs, &w, bias, row_hits);
                for &f in row_hits {
                    let f = f as usize;
                    let o = owner[f];
                    // The penalty is spread over the examples that contain the keyword.
                    let g = weight * (probs[o] - f64::from(u8::from(o == label)))
                        + L2_PENALTY * w[f] * n as f64 / freq[f] as f64;
                    squared[f] += g * g;
                    w[f] = (w[f] - LEARNING_RATE * g / squared[f].sqrt()).max(0.0);
                }
                let g = weight * (probs[k] - f64::from(u8::from(label == k)));
                squared_bias += g * g;
                bias -= LEARNING_RATE * g / squared_bias.sqrt();
            }
            // Candidates left at zero move to the agent whose loss they would lower most.
            let mut new_owner: Vec<Option<usize>> = vec![None; nf];
            if !last {
                let mut grad = vec![0.0f64; nf * k];
                for &(label, weight, start, end) in &rows {
                    let row_hits = &hits[start..end];
                    if row_hits.iter().all(|&f| w[f as usize] > 0.0) {
                        continue;
                    }
                    softmax(&mut probs, &w, bias, row_hits);
                    for &f in row_hits {
                        let f = f as usize;
                        if w[f] > 0.0 {
                            continue;
                        }
                        for (c, g) in grad[f * k..(f + 1) * k].iter_mut().enumerate() {
                            *g += weight * (probs[c] - f64::from(u8::from(c == label)));
                        }
                    }
                }
                for f in (0..nf).filter(|&f| w[f] <= 0.0) {
                    let (mut best, mut best_grad) = (owner[f], 0.0);
                    for (c, &g) in grad[f * k..(f + 1) * k].iter().enumerate() {
                        if g < best_grad {
                            (best, best_grad) = (c, g);
                        }
                    }
                    if best != owner[f] {
                        new_owner[f] = Some(best);
                    }
                }
            }
            let floor = if last { MIN_WEIGHT } else { 0.0 };
            let mut next: Vec<Vec<KeptKeyword>> = vec![Vec::new(); k];
            for (a, kws) in keywords.iter().enumerate() {
                for (j, kw) in kws.iter().enumerate() {
                    let f = base[a] + j;
                    if let Some(c) = new_owner[f] {
                        self.class_counts(kw.gram, use_example, &mut counts);
                        let (_, precision) = Corpus::log_odds(&counts, c, oos_weight);
                        next[c].push(KeptKeyword {
                            gram: kw.gram,
                            weight: 0.0,
                            precision,
                            count: counts[c],
                        });
                    } else if w[f] > floor {
                        gram_weight[kw.gram] = w[f];
                        next[a].push(KeptKeyword {
                            weight: ((w[f] * 100.0).round() / 100.0).max(0.01) as f32,
                            ..*kw
                        });
                    }
                }
            }
            for kws in &mut next {
                kws.sort_by_key(|kw| kw.gram);
            }
            keywords = next;
        }
        Ok(keywords)
    }

    /// N-grams that at least two classes claim (an agent with `min_support` examples, or any
    /// out-of-scope example) and that are not among `keywords`, most frequent first.
    fn collisions(&self, keywords: &[Vec<KeptKeyword>], options: &MineOptions) -> Vec<Collision> {
        let k = self.labels.len();
        let mut kept = vec![false; self.grams.len()];
        for kw in keywords.iter().flatten() {
            kept[kw.gram] = true;
        }
        let mut counts = vec![0usize; k + 1];
        let mut collisions = Vec::new();
        for (gi, g) in self.grams.iter().enumerate() {
            if kept[gi] || (g.words == 1 && g.stop_only) {
                continue;
            }
            self.class_counts(gi, &|_| true, &mut counts);
            if counts[..k].iter().all(|&c| c < options.min_support) {
                continue;
            }
            let mut classes: Vec<(String, usize)> = counts
                .iter()
                .enumerate()
                .filter(|&(c, &n)| n >= options.min_support || (c == k && n > 0))
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
        }
        collisions.sort_by(|a, b| {
            let total = |c: &Collision| c.classes.iter().map(|x| x.1).sum::<usize>();
            total(b).cmp(&total(a)).then_with(|| a.ngram.cmp(&b.ngram))
        });
        collisions
    }

    /// Turns trained keywords into a validated catalogue.
    fn catalogue(
        &self,
        keywords: &[Vec<KeptKeyword>],
        settings: FastPathSettings,
        source: &str,
    ) -> Result<Catalogue, TuneError> {
        let mut builder = CatalogueBuilder::new(self.default_name.clone());
        builder.fast_path(settings);
        for (a, name) in self.labels.iter().enumerate() {
            let mut kws = keywords[a].clone();
            kws.sort_by(|x, y| {
                y.weight
                    .total_cmp(&x.weight)
                    .then_with(|| self.grams[x.gram].text.cmp(&self.grams[y.gram].text))
            });
            builder.agent(Agent {
                name: name.clone(),
                description: self.describe(&keywords[a]),
                keywords: kws
                    .iter()
                    .map(|kw| Keyword {
                        text: self.grams[kw.gram].text.clone(),
                        weight: kw.weight,
                    })
                    .collect(),
                bias: 0.0,
                target: None,
            });
        }
        builder.agent(Agent {
            name: self.default_name.clone(),
            description: "Anything the other agents do not cover (route-only default).".to_owned(),
            keywords: Vec::new(),
            bias: 0.0,
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

/// Picks `margin` and `min_score` on the grid from the held-out scores: the widest coverage
/// that meets the targets (with their reserves), else the most precise pair.
fn choose_thresholds(scored: &[Scored], options: &MineOptions) -> (FastPathSettings, Holdout) {
    let precision_target =
        options.min_precision + PRECISION_RESERVE * (1.0 - options.min_precision);
    let oos_target = OOS_SHARE * options.max_oos_rate;
    let (targets_met, settings) = match best_pair(scored, precision_target, oos_target) {
        Some((settings, _)) => (true, Some(settings)),
        None => {
            // The most precise (then most covering) pair that decides anything.
            let mut best: Option<(f64, usize, FastPathSettings)> = None;
            sweep(scored, |settings, t| {
                if t.decided > 0 && best.is_none_or(|b| (t.precision(), t.decided) > (b.0, b.1)) {
                    best = Some((t.precision(), t.decided, settings));
                }
            });
            (false, best.map(|b| b.2))
        }
    };
    // Nothing held out was ever decided: keep the routes file's defaults.
    let settings = settings.unwrap_or_default();
    let t = Tally::of(scored, settings);
    (
        settings,
        Holdout {
            coverage: t.coverage(),
            precision: t.precision(),
            oos_fast_rate: t.oos_rate(),
            targets_met,
        },
    )
}

/// Greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
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
    fn gcd_table() {
        for (a, b, want) in [(12, 18, 6), (7, 5, 1), (9, 0, 9), (1, 1, 1)] {
            assert_eq!(gcd(a, b), want, "gcd({a}, {b})");
        }
    }
}
