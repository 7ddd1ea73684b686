//! Mining a routes file from labelled queries (the `keywords` command).
//!
//! The result is a linear-form routes file (`model = "linear"`, see
//! [`crate::routing::LinearSettings`]): each keyword carries weights for the agents it speaks for
//! or against, each agent a bias, and the fast path decides on a calibrated probability. The
//! method, one file per step:
//!
//! 1. **Corpus** (`corpus.rs`). Each query is normalised like the fast path does it and cut into
//!    words (runs of letters, digits and `_`); its 1- to 3-word n-grams, words separated by
//!    exactly one space, are indexed (each once per query). A general list of English function
//!    words ([`stop_words`], the data file `src/tune/stopwords.txt`) is never a keyword on its
//!    own; phrases made only of them ("how are you") may be.
//! 2. **Candidates** (`candidates.rs`). Every n-gram that some agent has in at least
//!    [`MineOptions::min_support`] examples. Each example's features are the candidates it
//!    contains, overlapping ones included, exactly what the linear fast path counts.
//! 3. **Training** (`train.rs`). A multinomial logistic regression over the agents plus the
//!    out-of-scope class (examples labelled `none`, weighted like an average agent), with an L1
//!    penalty that leaves most candidates without any weight; fitted by stochastic proximal
//!    gradient descent in a fixed order (no randomness). When there are out-of-scope examples,
//!    that class gets keywords of its own and a weight per unknown word (a word in no keyword of
//!    the file); since the file's keywords are the fit's result, the model is fitted twice: with
//!    the candidates' words as the known ones, then with the words of the keywords kept.
//! 4. **Calibration and threshold** (`calibrate.rs`). The examples are split deterministically
//!    into [`MineOptions::folds`] folds by runs of consecutive examples (at most [`HOLDOUT_BLOCK`]
//!    in a run: examples written together are often near-paraphrases and must not sit on both
//!    sides of the split). For each fold, candidates and weights come from the other folds, the
//!    routes file is rendered, and the real [`FastPath`] scores the held-out queries. Over all
//!    held-out scores, one temperature is fitted (the scores' scale that minimises the held-out
//!    log-loss), then the probability `threshold` is the lowest on a grid whose held-out
//!    precision keeps [`PRECISION_RESERVE`] of the error budget `1 - min_precision` in reserve
//!    and whose out-of-scope take rate stays within [`OOS_SHARE`] of
//!    [`MineOptions::max_oos_rate`]. Only the training file is used.
//! 5. **Rendering** (`render.rs`). The final model is fitted on all examples, multiplied by the
//!    temperature, rounded to 0.01, and written with a route-only default agent (`general`, or
//!    `general_default` when a label is already called `general`) that takes what the fast path
//!    leaves.
//!
//! Everything is visited in a fixed order and sorted before it is written, so the same input
//! gives a byte-identical file.

mod calibrate;
mod candidates;
mod corpus;
mod render;
mod train;

use crate::routing::{Catalogue, CatalogueError, FastPath, LinearSettings};
use crate::tune::thresholds::{Judged, Tally, best_threshold, tally_at};
use crate::tune::{Example, TuneError};

pub use calibrate::BETA_RANGE;
pub use corpus::stop_words;
pub use render::{render, report_lines};
pub use train::{EPOCHS, L1_PENALTY, LEARNING_RATE, REFIT_EPOCHS};

use calibrate::HeldOut;
use candidates::{Rows, candidates};
use corpus::Corpus;

/// Longest run of consecutive examples kept in one cross-validation fold.
pub const HOLDOUT_BLOCK: usize = 10;

/// Share of the error budget `1 - min_precision` that the held-out precision must leave unused:
/// held-out precision must reach `min_precision + PRECISION_RESERVE * (1 - min_precision)`
/// (98.875 % for 98.5 %), a margin for new data and for the choice among many thresholds.
pub const PRECISION_RESERVE: f64 = 0.25;

/// Share of [`MineOptions::max_oos_rate`] that the held-out out-of-scope take rate may use.
pub const OOS_SHARE: f64 = 1.0;

/// Default share of out-of-scope queries the fast path may take ([`MineOptions::max_oos_rate`];
/// also the limit of `eval`'s operating points).
pub const DEFAULT_MAX_OOS_RATE: f64 = 0.10;

/// Weights whose absolute value is below this after calibration are dropped (weights are
/// written rounded to 0.01).
pub const MIN_WEIGHT: f64 = 0.005;

/// How the miner works; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct MineOptions {
    /// Precision the fast path must keep on new queries; the held-out precision must exceed it
    /// by [`PRECISION_RESERVE`] of the error budget.
    pub min_precision: f64,
    /// Share of out-of-scope queries the fast path may take; the held-out rate must stay within
    /// [`OOS_SHARE`] of it. Ignored when the data has no out-of-scope example.
    pub max_oos_rate: f64,
    /// Fewest examples of an agent that must contain an n-gram for it to become a candidate.
    pub min_support: usize,
    /// Longest n-gram, in words (1 to 3).
    pub max_words: usize,
    /// Number of cross-validation folds for calibration and the threshold (at least 2). Ten by
    /// default: each fold's model sees 90 % of the few out-of-scope examples.
    pub folds: usize,
}

impl Default for MineOptions {
    fn default() -> Self {
        MineOptions {
            min_precision: 0.985,
            max_oos_rate: DEFAULT_MAX_OOS_RATE,
            min_support: 3,
            max_words: 3,
            folds: 10,
        }
    }
}

/// What the cross-validation measured with the chosen threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holdout {
    /// Share of held-out in-scope examples decided.
    pub coverage: f64,
    /// Share of those decisions that were right.
    pub precision: f64,
    /// Share of held-out out-of-scope examples decided (0 when there are none).
    pub oos_fast_rate: f64,
    /// Whether the precision and out-of-scope targets could be met at all (when not, the
    /// highest threshold on the grid was taken).
    pub targets_met: bool,
    /// The temperature factor every score was multiplied by (see `calibrate.rs`).
    pub beta: f64,
}

/// The result of [`mine`]: the routes file and what went into it.
#[derive(Debug, Clone)]
pub struct Mined {
    /// The mined catalogue (valid, linear form; render it with [`render`]).
    pub catalogue: Catalogue,
    /// Cross-validated figures for the chosen threshold.
    pub holdout: Holdout,
    /// Candidates considered in the final fit.
    pub candidates: usize,
}

/// Mines a routes file from labelled examples. `source` names the data in error messages.
pub fn mine(examples: &[Example], options: &MineOptions, source: &str) -> Result<Mined, TuneError> {
    check_options(options)?;
    let corpus = Corpus::build(examples, options.max_words, options.min_support, source)?;
    let folds = options.folds;
    // Runs of consecutive examples (often paraphrases written together) stay in one fold, so
    // the hold-out is not flattered by near-duplicates; runs are shorter for small data sets so
    // that every fold still gets examples.
    let block = (examples.len() / (folds * HOLDOUT_BLOCK)).clamp(1, HOLDOUT_BLOCK);
    let fold_of = |i: usize| (i / block) % folds;
    let mut held: Vec<HeldOut> = Vec::with_capacity(examples.len());
    for fold in 0..folds {
        let (catalogue, _) = fit(&corpus, options, &|i| fold_of(i) != fold, 1.0, source)?;
        let fast = FastPath::new(&catalogue).map_err(|e| catalogue_error(source, e))?;
        let in_model: Vec<usize> = (0..catalogue.agents().len())
            .filter(|&a| !catalogue.agents()[a].keywords.is_empty())
            .collect();
        for (i, ex) in examples.iter().enumerate() {
            if fold_of(i) != fold {
                continue;
            }
            let scan = fast.scan(&ex.query);
            let mut scores: Vec<f32> = in_model.iter().map(|&a| scan.scores[a]).collect();
            scores.push(scan.none); // out of scope
            let label = corpus.example_label[i];
            held.push(HeldOut {
                scores,
                label: if label == corpus.agents() {
                    Some(in_model.len())
                } else {
                    in_model.iter().position(|&a| a == label)
                },
                in_scope: label < corpus.agents(),
                matched: !scan.hits.is_empty(),
            });
        }
    }
    let beta = calibrate::temperature(&held);
    let judged = calibrate::judged(&held, beta);
    let (threshold, holdout) = choose_threshold(&judged, options, beta);
    let (mut catalogue, candidates) = fit(&corpus, options, &|_| true, beta, source)?;
    catalogue = render::with_linear(
        &catalogue,
        LinearSettings {
            threshold,
            ..catalogue.linear().unwrap_or_default()
        },
    )
    .map_err(|e| catalogue_error(source, e))?;
    Ok(Mined {
        catalogue,
        holdout,
        candidates,
    })
}

/// Candidates, training and the catalogue from the examples `use_example` accepts, every score
/// multiplied by `beta`; also the number of candidates.
fn fit(
    corpus: &Corpus,
    options: &MineOptions,
    use_example: &dyn Fn(usize) -> bool,
    beta: f64,
    source: &str,
) -> Result<(Catalogue, usize), TuneError> {
    let cands = candidates(corpus, options.min_support, use_example);
    let rows = Rows::build(corpus, &cands, corpus.example_label.len());
    let train = |unknown: Option<&[f64]>| {
        let model = train::fit(
            &rows,
            &corpus.example_label,
            corpus.agents(),
            cands.len(),
            unknown,
            use_example,
        );
        render::catalogue(corpus, &cands, &model, beta, use_example)
            .map_err(|e| catalogue_error(source, e))
    };
    if !corpus.has_out_of_scope() {
        return Ok((train(None)?, cands.len()));
    }
    // Unknown words are those of no keyword in the file, which the fit decides: fitted once
    // with the candidates' words as the vocabulary, then again with the kept keywords' words.
    let mut known = vec![false; corpus.vocab.len()];
    for &g in &cands {
        let gram = &corpus.grams[g];
        for &w in &gram.key[..gram.words] {
            known[w as usize] = true;
        }
    }
    let first = train(Some(&corpus.unknown_words(&known)))?;
    known.iter_mut().for_each(|k| *k = false);
    let kept = first
        .agents()
        .iter()
        .flat_map(|a| &a.keywords)
        .chain(first.none_keywords());
    for k in kept {
        for w in k.text.split(' ') {
            known[corpus.vocab[w] as usize] = true;
        }
    }
    Ok((train(Some(&corpus.unknown_words(&known)))?, cands.len()))
}

/// The lowest threshold on the grid that meets the targets (with their reserves) on the
/// held-out queries, else the highest one.
fn choose_threshold(judged: &[Judged], options: &MineOptions, beta: f64) -> (f32, Holdout) {
    let precision_target =
        options.min_precision + PRECISION_RESERVE * (1.0 - options.min_precision);
    let oos_target = OOS_SHARE * options.max_oos_rate;
    let (threshold, targets_met) = match best_threshold(judged, precision_target, oos_target) {
        Some((threshold, _)) => (threshold, true),
        None => (1.0, false),
    };
    let t: Tally = tally_at(judged, threshold);
    (
        threshold,
        Holdout {
            coverage: t.coverage(),
            precision: t.precision(),
            oos_fast_rate: t.oos_rate(),
            targets_met,
            beta,
        },
    )
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
