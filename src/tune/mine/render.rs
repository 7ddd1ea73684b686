//! From a fitted model to a routes file: the catalogue, its descriptions, the file's header and
//! the report for stderr.

use super::corpus::Corpus;
use super::train::Model;
use super::{MIN_WEIGHT, MineOptions, Mined};
use crate::routing::{Agent, Catalogue, CatalogueBuilder, CatalogueError, Keyword, LinearSettings};
use crate::tune::Example;

/// Rounded to 0.01, as written.
fn rounded(v: f64) -> f32 {
    ((v * 100.0).round() / 100.0) as f32
}

/// The catalogue of a fitted model, every score multiplied by `beta` (threshold 0.5 until
/// [`with_linear`] sets the chosen one). `use_example` says which examples the model saw (for
/// the descriptions).
pub(super) fn catalogue(
    corpus: &Corpus,
    candidates: &[usize],
    model: &Model,
    beta: f64,
    use_example: &dyn Fn(usize) -> bool,
) -> Result<Catalogue, CatalogueError> {
    let k = corpus.agents();
    // Per agent: (keyword text, weight, examples of the agent containing it, clean edges).
    let mut per_agent: Vec<Vec<(&str, f32, usize, bool)>> = vec![Vec::new(); k + 1];
    let mut counts = vec![0usize; k + 1];
    for (c, weights) in model.weights.iter().enumerate() {
        if weights.is_empty() {
            continue;
        }
        let g = candidates[c];
        corpus.class_counts(g, use_example, &mut counts);
        let gram = &corpus.grams[g];
        for &(a, w) in weights {
            let w = w * beta;
            if w.abs() < MIN_WEIGHT || rounded(w) == 0.0 {
                continue;
            }
            per_agent[a as usize].push((
                &gram.text,
                rounded(w),
                counts[a as usize],
                gram.clean_edges,
            ));
        }
    }
    let mut builder = CatalogueBuilder::new(corpus.default_name.clone());
    builder.linear(LinearSettings {
        threshold: 0.5,
        none_bias: 0.0,
        unknown_word_weight: rounded(model.unknown_weight * beta),
    });
    let mut none: Vec<(&str, f32, usize, bool)> = std::mem::take(&mut per_agent[k]);
    none.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(y.0)));
    builder.none_keywords(
        none.iter()
            .map(|&(text, weight, _, _)| Keyword {
                text: text.to_owned(),
                weight,
            })
            .collect(),
    );
    for (a, name) in corpus.labels.iter().enumerate() {
        let mut kws = std::mem::take(&mut per_agent[a]);
        kws.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(y.0)));
        builder.agent(Agent {
            name: name.clone(),
            description: describe(&kws),
            bias: if kws.is_empty() {
                0.0
            } else {
                rounded(model.bias[a] * beta)
            },
            keywords: kws
                .iter()
                .map(|&(text, weight, _, _)| Keyword {
                    text: text.to_owned(),
                    weight,
                })
                .collect(),
            target: None,
        });
    }
    builder.agent(Agent {
        name: corpus.default_name.clone(),
        description: "Anything the other agents do not cover (route-only default).".to_owned(),
        keywords: Vec::new(),
        bias: 0.0,
        target: None,
    });
    builder.build()
}

/// `catalogue` with another linear decision rule.
pub(super) fn with_linear(
    catalogue: &Catalogue,
    settings: LinearSettings,
) -> Result<Catalogue, CatalogueError> {
    let mut builder = CatalogueBuilder::new(catalogue.default_agent().name.clone());
    builder.linear(settings);
    builder.none_keywords(catalogue.none_keywords().to_vec());
    for a in catalogue.agents() {
        builder.agent(a.clone());
    }
    builder.build()
}

/// "Queries about: w1, w2, ..." from an agent's strongest frequent keywords (each adding a new
/// word), sorted by weight times support.
fn describe(keywords: &[(&str, f32, usize, bool)]) -> String {
    const LISTED: usize = 8;
    let mut ranked: Vec<&(&str, f32, usize, bool)> =
        keywords.iter().filter(|k| k.1 > 0.0 && k.3).collect();
    let score = |k: &(&str, f32, usize, bool)| f64::from(k.1) * k.2 as f64;
    ranked.sort_by(|x, y| score(y).total_cmp(&score(x)).then_with(|| x.0.cmp(y.0)));
    let mut listed: Vec<&str> = Vec::new();
    let mut seen_words: Vec<&str> = Vec::new();
    for k in ranked {
        if !k.0.split(' ').any(|w| !seen_words.contains(&w)) {
            continue;
        }
        seen_words.extend(k.0.split(' '));
        listed.push(k.0);
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

/// Distinct keyword texts, and how many of them weigh on more than one agent.
fn keyword_counts(catalogue: &Catalogue) -> (usize, usize, usize) {
    let mut agents_of: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut weights = 0;
    for a in catalogue.agents() {
        for k in &a.keywords {
            *agents_of.entry(k.text.as_str()).or_default() += 1;
            weights += 1;
        }
    }
    let shared = agents_of.values().filter(|&&n| n > 1).count();
    (agents_of.len(), weights, shared)
}

/// The routes file for a mining result: a comment header (what it was mined from, the hold-out
/// figures) and the catalogue. Deterministic: no paths, no times.
pub fn render(mined: &Mined, examples: &[Example], options: &MineOptions) -> String {
    let oos = examples.iter().filter(|e| e.agent.is_none()).count();
    let h = &mined.holdout;
    let (texts, weights, shared) = keyword_counts(&mined.catalogue);
    let mut out = format!(
        "# Mined by `agent-router keywords` from {} labelled examples ({} out of scope):\n\
         # a linear model over 1-3 word n-grams (L1-penalised multinomial logistic regression),\n\
         # {} agents, {} keywords ({} weighing on several agents), {} weights;\n\
         # out of scope: {} keywords, {} per unknown word.\n\
         # Calibrated (scores x {:.3}) and threshold chosen by {}-fold cross-validation for\n\
         # precision >= {} (with a reserve){}:\n\
         # held-out coverage {:.2}%, precision {:.2}%, out of scope taken {:.2}%.\n\n",
        examples.len(),
        oos,
        mined.catalogue.agents().len(),
        texts,
        shared,
        weights,
        mined.catalogue.none_keywords().len(),
        mined
            .catalogue
            .linear()
            .map_or(0.0, |l| l.unknown_word_weight),
        h.beta,
        options.folds,
        options.min_precision,
        if h.targets_met {
            ""
        } else {
            " (NOT reached: highest threshold used)"
        },
        h.coverage * 100.0,
        h.precision * 100.0,
        h.oos_fast_rate * 100.0,
    );
    out.push_str(&mined.catalogue.to_toml_string());
    out
}

/// Lines for stderr describing a mining result: hold-out figures and keywords per agent.
pub fn report_lines(mined: &Mined, examples: &[Example]) -> Vec<String> {
    let h = &mined.holdout;
    let threshold = linear_field(mined, |l| l.threshold);
    let (texts, weights, shared) = keyword_counts(&mined.catalogue);
    let mut lines = vec![
        format!(
            "mined {} examples: threshold {}, scores x {:.3}; cross-validated coverage {:.2}%, precision {:.2}%, out of scope taken {:.2}%{}",
            examples.len(),
            threshold,
            h.beta,
            h.coverage * 100.0,
            h.precision * 100.0,
            h.oos_fast_rate * 100.0,
            if h.targets_met {
                ""
            } else {
                " (targets NOT reached: highest threshold used)"
            }
        ),
        format!(
            "{} of {} candidate n-grams kept ({} on several agents), {} weights; out of scope: {} keywords, {} per unknown word",
            texts,
            mined.candidates,
            shared,
            weights,
            mined.catalogue.none_keywords().len(),
            linear_field(mined, |l| l.unknown_word_weight),
        ),
    ];
    for a in mined.catalogue.agents() {
        lines.push(format!(
            "  {:<24} {:>5} keywords, bias {}",
            a.name,
            a.keywords.len(),
            a.bias
        ));
    }
    lines
}

/// A number of the mined file's linear settings (NaN if it had none).
fn linear_field(mined: &Mined, field: fn(&LinearSettings) -> f32) -> f32 {
    mined.catalogue.linear().map_or(f32::NAN, |l| field(&l))
}
