//! Offline evaluation of a catalogue's fast path on labelled queries (the `eval` command).
//!
//! Only tier 1 runs: no cache, no network, no LLM. Every query either gets a fast-path decision or
//! is left *unrouted* (in production it would go to the LLM), and the report says how often each
//! happens, how often the decisions are right, and what the LLM calls for the rest would cost.
//!
//! Definitions (in-scope = labelled with an agent, out-of-scope = labelled `none`):
//! - `coverage`: decided in-scope queries / in-scope queries;
//! - `precision`: correct decisions / decided in-scope queries (undefined when nothing was);
//! - per agent: `precision` = correct decisions for it / in-scope decisions for it, `recall` =
//!   correct decisions for it / its in-scope queries (`support`); both undefined (`null` in JSON,
//!   `n/a` in text) when the denominator is 0;
//! - `oos_fast_rate`: out-of-scope queries the fast path decided (for any agent) / out-of-scope
//!   queries;
//! - `llm_call_rate`: unrouted queries / all queries;
//! - `operating_points`: for each of [`OPERATING_TARGETS`], the `margin` and `min_score` (linear
//!   form: the `threshold`) that would give the highest coverage of these queries at that
//!   precision, taking at most [`DEFAULT_MAX_OOS_RATE`](crate::tune::mine::DEFAULT_MAX_OOS_RATE) of the out-of-scope ones
//!   ([`crate::tune::thresholds`]);
//! - `calibration`: the fast-path decisions by confidence bucket (count, mean confidence,
//!   accuracy) and the expected calibration error (see `calibration.rs`).
//!
//! The pieces: `counting.rs` (totals, per agent, confusions), `points.rs` (operating points),
//! `calibration.rs` (reliability table), `text.rs` (the text report).
//!
//! A label that names no agent of the catalogue counts as an in-scope query that the catalogue
//! cannot get right: a decision for it is always wrong.

mod calibration;
mod counting;
mod points;
mod text;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::routing::{
    Catalogue, DEFAULT_SYSTEM_PROMPT, FastOutcome, FastPath, render_system_prompt,
};
use crate::tune::thresholds::ratio;
use crate::tune::{Example, TuneError};

use calibration::Reliability;
pub use calibration::{Bucket, CALIBRATION_BUCKETS, Calibration};
use counting::Counts;
use points::Points;

/// Estimated output tokens of one LLM routing answer (an agent name).
pub const LLM_OUTPUT_TOKENS: u64 = 5;

/// Bedrock price of Claude Haiku 4.5 input tokens, USD per million.
pub const DEFAULT_PRICE_PER_MTOK_IN: f64 = 1.0;

/// Bedrock price of Claude Haiku 4.5 output tokens, USD per million.
pub const DEFAULT_PRICE_PER_MTOK_OUT: f64 = 5.0;

/// How many confusions the report lists.
pub const TOP_CONFUSIONS: usize = 10;

/// How many example queries the report shows for each listed confusion.
pub const EXAMPLES_PER_CONFUSION: usize = 2;

/// The precision targets the report gives an operating point for.
pub const OPERATING_TARGETS: [f64; 5] = [0.95, 0.97, 0.98, 0.99, 0.995];

/// What the LLM cost estimate is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// USD per million input tokens.
    pub price_per_mtok_in: f64,
    /// USD per million output tokens.
    pub price_per_mtok_out: f64,
    /// The LLM tier's system prompt template (the router's own by default), rendered with the
    /// catalogue's agents to count the input tokens of one call.
    pub prompt_template: String,
    /// How conversations (lines with a `session_id`) hold their agent.
    pub session_policy: crate::routing::SessionPolicy,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            price_per_mtok_in: DEFAULT_PRICE_PER_MTOK_IN,
            price_per_mtok_out: DEFAULT_PRICE_PER_MTOK_OUT,
            prompt_template: DEFAULT_SYSTEM_PROMPT.to_owned(),
            session_policy: crate::routing::SessionPolicy::default(),
        }
    }
}

/// Figures for one agent (or one label that names no agent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStats {
    /// Correct decisions for the agent / in-scope decisions for it; undefined (NaN, `null` in
    /// JSON, `n/a` in the text report) when the fast path gave it none.
    pub precision: f64,
    /// Correct decisions for the agent / its in-scope queries; undefined (NaN, `null`, `n/a`)
    /// when no query is labelled with it.
    pub recall: f64,
    /// In-scope queries labelled with the agent.
    pub support: usize,
    /// In-scope queries the fast path gave the agent.
    pub decided: usize,
    /// Of those, the ones labelled with the agent.
    pub correct: usize,
}

/// One kind of mistake: queries labelled `expected` that the fast path gave `got`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// The label (`none` for out-of-scope queries).
    pub expected: String,
    /// The agent the fast path chose.
    pub got: String,
    /// How many queries.
    pub count: usize,
    /// The first few of those queries (at most [`EXAMPLES_PER_CONFUSION`]), with the keywords
    /// that decided them: what to reweigh, move or remove in the routes file.
    pub examples: Vec<ConfusionExample>,
}

/// A query the fast path got wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionExample {
    /// The query, as written in the data.
    pub query: String,
    /// The winning agent's keywords found in it.
    pub matched: Vec<String>,
}

/// The thresholds that would decide most in-scope queries of the evaluated data at one precision
/// target. Chosen on the data it is measured on, so its figures flatter it: pick from data the
/// routes were not mined from, and expect a little less on new queries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// Lowest precision accepted.
    pub target_precision: f64,
    /// Highest out-of-scope take rate accepted (ignored when the data has no out-of-scope query).
    pub max_oos_rate: f64,
    /// The best pair on the grid, `None` when no pair that decides anything meets the targets.
    pub best: Option<PointFigures>,
}

/// A pair of thresholds and what it does to the evaluated data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PointFigures {
    /// `[fast_path] margin` (additive form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f32>,
    /// `[fast_path] min_score` (additive form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f32>,
    /// `[fast_path] threshold` (linear form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// In-scope coverage.
    pub coverage: f64,
    /// Precision of the decisions.
    pub precision: f64,
    /// Share of out-of-scope queries taken.
    pub oos_fast_rate: f64,
    /// Share of all queries left to the LLM tier.
    pub llm_call_rate: f64,
}

/// The outcome of [`evaluate`]. Serialises to the `eval --json` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// All queries.
    pub queries: usize,
    /// Queries labelled with an agent (including labels that name no agent of the catalogue).
    pub in_scope: usize,
    /// Queries labelled `none`.
    pub out_of_scope: usize,
    /// In-scope queries the fast path decided.
    pub decided: usize,
    /// Of those, the ones decided for the labelled agent.
    pub correct: usize,
    /// `decided / in_scope` (0 when there is no in-scope query).
    pub coverage: f64,
    /// `correct / decided` (undefined, NaN: `null` in JSON, `n/a` in text, when nothing was decided).
    pub precision: f64,
    /// Out-of-scope queries the fast path decided.
    pub oos_fast: usize,
    /// `oos_fast / out_of_scope` (0 when there is no out-of-scope query).
    pub oos_fast_rate: f64,
    /// Queries the fast path left unrouted, in or out of scope.
    pub llm_calls: usize,
    /// `llm_calls / queries`.
    pub llm_call_rate: f64,
    /// Per agent of the catalogue and per unknown label, by name.
    pub per_agent: BTreeMap<String, AgentStats>,
    /// The most common mistakes, most frequent first (at most [`TOP_CONFUSIONS`]).
    pub confusions: Vec<Confusion>,
    /// Labels of the data that name no agent of the catalogue, with their query counts.
    pub unknown_labels: BTreeMap<String, usize>,
    /// Estimated input tokens of one LLM routing call (prompt, agent list, average query).
    pub est_input_tokens: u64,
    /// Estimated output tokens of one LLM routing call.
    pub est_output_tokens: u64,
    /// USD per million input tokens used for the estimate.
    pub price_per_mtok_in: f64,
    /// USD per million output tokens used for the estimate.
    pub price_per_mtok_out: f64,
    /// `llm_call_rate * 1e6 * cost of one call`: the LLM bill per million routed queries.
    pub est_cost_per_million_usd: f64,
    /// One per [`OPERATING_TARGETS`] entry: the thresholds that would trade precision for
    /// coverage on this data (the routes file's own `margin` and `min_score` are what the other
    /// figures use).
    pub operating_points: Vec<OperatingPoint>,
    /// How far `confidence` can be trusted on this data: the reliability table and the
    /// expected calibration error of the fast-path decisions.
    pub calibration: Calibration,
}

/// Runs the fast path of `catalogue` over `examples` and measures it.
pub fn evaluate(
    catalogue: &Catalogue,
    examples: &[Example],
    options: &EvalOptions,
) -> Result<EvalReport, TuneError> {
    let fast = FastPath::new(catalogue).map_err(|source| TuneError::Catalogue {
        path: "(given catalogue)".to_owned(),
        source,
    })?;
    for (what, price) in [
        ("--price-per-mtok-in", options.price_per_mtok_in),
        ("--price-per-mtok-out", options.price_per_mtok_out),
    ] {
        if !price.is_finite() || price < 0.0 {
            return Err(TuneError::Option(format!(
                "{what} is {price}; it must be a finite number >= 0"
            )));
        }
    }
    let mut counts = Counts::new(catalogue);
    let mut points = Points::new(catalogue.linear().is_some());
    let mut reliability = Reliability::default();
    for ex in examples {
        let expected = counts.expected(ex);
        let scan = fast.scan(&ex.query);
        points.push(&fast, &scan, expected);
        let (got, matched) = match fast.judge(&scan) {
            FastOutcome::Decided {
                agent,
                keywords,
                confidence,
                ..
            } => {
                reliability.record(confidence, expected == Some(agent));
                (Some(agent), keywords)
            }
            FastOutcome::Unrouted { .. } => (None, Vec::new()),
        };
        counts.record(ex, expected, got, &matched);
    }

    let queries = examples.len();
    let llm_calls = queries - counts.decided - counts.oos_fast;
    let llm_call_rate = ratio(llm_calls, queries, 0.0);
    // The LLM sees the unrouted queries; their average length (else all queries') stands for one.
    let avg_query_chars = if llm_calls > 0 {
        counts.unrouted_chars.div_ceil(llm_calls)
    } else {
        counts.all_chars.div_ceil(queries.max(1))
    };
    let est_input_tokens =
        estimate_prompt_tokens(&options.prompt_template, catalogue, avg_query_chars)?;
    let per_call_usd = (est_input_tokens as f64 * options.price_per_mtok_in
        + LLM_OUTPUT_TOKENS as f64 * options.price_per_mtok_out)
        / 1e6;
    Ok(EvalReport {
        queries,
        in_scope: counts.in_scope,
        out_of_scope: counts.out_of_scope,
        decided: counts.decided,
        correct: counts.correct,
        coverage: ratio(counts.decided, counts.in_scope, 0.0),
        precision: ratio(counts.correct, counts.decided, f64::NAN),
        oos_fast: counts.oos_fast,
        oos_fast_rate: ratio(counts.oos_fast, counts.out_of_scope, 0.0),
        llm_calls,
        llm_call_rate,
        per_agent: counts.per_agent(),
        confusions: counts.confusions(),
        unknown_labels: std::mem::take(&mut counts.unknown_labels),
        est_input_tokens,
        est_output_tokens: LLM_OUTPUT_TOKENS,
        price_per_mtok_in: options.price_per_mtok_in,
        price_per_mtok_out: options.price_per_mtok_out,
        est_cost_per_million_usd: llm_call_rate * 1e6 * per_call_usd,
        operating_points: points.finish(),
        calibration: reliability.finish(),
    })
}

/// Estimated input tokens of one LLM routing call: the system prompt the router would send
/// (`template` rendered with the catalogue's agents) and a query of `query_chars` characters, at
/// one token per four characters (rounded up).
pub fn estimate_prompt_tokens(
    template: &str,
    catalogue: &Catalogue,
    query_chars: usize,
) -> Result<u64, TuneError> {
    let prompt = render_system_prompt(template, catalogue)
        .map_err(|e| TuneError::Option(format!("the LLM prompt cannot be rendered: {e}")))?;
    Ok((prompt.chars().count() + query_chars).div_ceil(4) as u64)
}
