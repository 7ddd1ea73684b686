//! Offline tuning of routes files from labelled example queries.
//!
//! Two tools live here, both driven by a JSON-lines file of labelled queries, one object a line:
//! `{"query": "...", "agent": "<name>"}`, where `"agent": "none"` marks an out-of-scope query that
//! no agent should take on the fast path:
//!
//! - [`mod@eval`] runs only the fast path of a catalogue over the examples and reports coverage,
//!   precision, per-agent figures, confusions, the share of queries left to the LLM and what those
//!   calls would cost ([`eval::evaluate`], the `eval` command);
//! - [`mod@mine`] fits a linear fast-path model (signed keyword weights for several agents,
//!   per-agent biases) to the examples and writes a complete linear-form routes file, calibrated
//!   and thresholded by cross-validation on the examples themselves ([`mine::mine`], the
//!   `keywords` command);
//! - [`mod@eval`] also reports how well the fast path's confidence is calibrated.
//!
//! Nothing here touches the network.

pub mod conversations;
pub mod eval;
pub mod mine;
pub mod thresholds;

use std::path::Path;

use serde::Deserialize;

use crate::routing::{CatalogueError, MAX_AGENT_NAME_LEN, valid_agent_name};

pub use eval::{EvalOptions, EvalReport, evaluate};
pub use mine::{MineOptions, Mined, mine};

/// The label that marks an out-of-scope example (compared case-insensitively, after trimming).
pub const OUT_OF_SCOPE_LABEL: &str = "none";

/// One labelled example query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The query text, as written.
    pub query: String,
    /// The agent that should take it, or `None` for an out-of-scope query (label `none`).
    pub agent: Option<String>,
    /// The conversation it belongs to (`session_id` in the file): lines that carry one are, in
    /// file order, the turns of their conversation.
    pub session_id: Option<String>,
}

impl Example {
    /// An in-scope example for `agent`.
    pub fn new(query: impl Into<String>, agent: impl Into<String>) -> Example {
        Example {
            query: query.into(),
            agent: Some(agent.into()),
            session_id: None,
        }
    }

    /// An out-of-scope example.
    pub fn out_of_scope(query: impl Into<String>) -> Example {
        Example {
            query: query.into(),
            agent: None,
            session_id: None,
        }
    }
}

/// Why a tuning command failed. Every message names the file (and line) to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuneError {
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {message}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The path that was tried.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// A line of a labelled-data file is not a valid example.
    #[error("{path}:{line}: {message}")]
    BadLine {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The labelled-data file holds no examples at all.
    #[error("{path}: no labelled examples found")]
    NoExamples {
        /// The file.
        path: String,
    },
    /// The data has no in-scope example, so there is nothing to mine.
    #[error("{path}: every example is labelled {OUT_OF_SCOPE_LABEL:?}; nothing to mine")]
    NoInScope {
        /// The file.
        path: String,
    },
    /// Two labels map to the same agent name.
    #[error("{path}: labels {first:?} and {second:?} both become agent name {name:?}")]
    LabelClash {
        /// The file.
        path: String,
        /// The first label.
        first: String,
        /// The second label.
        second: String,
        /// The agent name both map to.
        name: String,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(String),
    /// The routes file (given or mined) is not valid.
    #[error("routes file {path}: {source}")]
    Catalogue {
        /// Where the catalogue came from.
        path: String,
        /// The validation error.
        source: CatalogueError,
    },
}

#[derive(Deserialize)]
struct RawExample {
    query: String,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    /// `decision` for a line of the router's decision log.
    #[serde(default)]
    kind: Option<String>,
    /// Decision-log lines: the LLM's answer, the label.
    #[serde(default)]
    llm_agent: Option<String>,
    /// Decision-log lines: the session's tag, which groups a conversation's turns.
    #[serde(default)]
    session: Option<String>,
    /// Decision-log lines: the LLM answered with the conversation's agent in its prompt.
    #[serde(default)]
    llm_context: bool,
}

/// What a labelled file held besides its examples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelCounts {
    /// Lines of the router's decision log (`"kind": "decision"`).
    pub decision_lines: usize,
    /// Of those, the ones without an LLM answer (or with one given inside a conversation),
    /// skipped: nothing says which agent was right for the query alone.
    pub skipped_without_llm: usize,
    /// CloudWatch metric lines (EMF, with an `_aws` object) from the same log, skipped.
    pub metric_lines: usize,
}

/// Parses labelled JSON-lines text; `path` is used in error messages only. Blank lines are
/// skipped; any other line must be an object with string fields `query` and `agent` (extra fields
/// are ignored, `session_id` groups a conversation's turns), or a line of the router's decision
/// log (`"kind": "decision"`, see [`crate::ops::decision_log`]), whose label is the LLM's answer
/// (`llm_agent`; lines without one are skipped and counted). CloudWatch metric lines (EMF, which
/// the router writes on the same stdout) are skipped and counted too, so a log group's export can
/// be read as it is.
pub fn parse_labelled(text: &str, path: &str) -> Result<(Vec<Example>, LabelCounts), TuneError> {
    let mut out = Vec::new();
    let mut counts = LabelCounts::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |message: String| TuneError::BadLine {
            path: path.to_owned(),
            line: line_no,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        if value.get("_aws").is_some() {
            // A metrics line of the same log (the router writes both on stdout).
            counts.metric_lines += 1;
            continue;
        }
        let raw: RawExample = serde_json::from_value(value).map_err(|e| {
            bad(format!(
                "not a {{\"query\": ..., \"agent\": ...}} object or a decision-log line: {e}"
            ))
        })?;
        let decision_line = raw.kind.as_deref() == Some(crate::ops::decision_log::KIND);
        let (label, session_id) = if decision_line {
            counts.decision_lines += 1;
            match raw.llm_agent.filter(|_| !raw.llm_context) {
                Some(l) => (l, raw.session),
                None => {
                    counts.skipped_without_llm += 1;
                    continue;
                }
            }
        } else {
            match raw.agent {
                Some(a) => (a, raw.session_id),
                None => return Err(bad("the line has no \"agent\" label".to_owned())),
            }
        };
        let label = label.trim();
        if label.is_empty() {
            return Err(bad("the \"agent\" label is empty".to_owned()));
        }
        out.push(Example {
            query: raw.query,
            agent: if label.eq_ignore_ascii_case(OUT_OF_SCOPE_LABEL) {
                None
            } else {
                Some(label.to_owned())
            },
            session_id: session_id.filter(|s| !s.trim().is_empty()),
        });
    }
    if out.is_empty() {
        return Err(TuneError::NoExamples {
            path: path.to_owned(),
        });
    }
    Ok((out, counts))
}

/// Like [`parse_labelled`], without the counts.
pub fn parse_examples(text: &str, path: &str) -> Result<Vec<Example>, TuneError> {
    parse_labelled(text, path).map(|(examples, _)| examples)
}

/// Reads and parses a labelled JSON-lines file, with its counts (see [`parse_labelled`]).
pub fn load_labelled(path: &Path) -> Result<(Vec<Example>, LabelCounts), TuneError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TuneError::Io {
        action: "read",
        path: shown.clone(),
        message: e.to_string(),
    })?;
    parse_labelled(&text, &shown)
}

/// A line for stderr about the decision-log lines of a file, if it had any.
fn decision_log_note(path: &Path, counts: &LabelCounts) -> Option<String> {
    (counts.decision_lines > 0).then(|| {
        format!(
            "{}: {} decision-log lines, {} labelled by the LLM's answer, {} skipped (no LLM answer); {} metric lines skipped",
            path.display(),
            counts.decision_lines,
            counts.decision_lines - counts.skipped_without_llm,
            counts.skipped_without_llm,
            counts.metric_lines
        )
    })
}

/// Reads and parses a labelled JSON-lines file (see [`parse_examples`]).
pub fn load_examples(path: &Path) -> Result<Vec<Example>, TuneError> {
    load_labelled(path).map(|(examples, _)| examples)
}

/// A share as a percentage with two decimals, or `n/a` when it is undefined (NaN: nothing to
/// divide by), for the text reports.
pub(crate) fn pct(x: f64) -> String {
    if x.is_nan() {
        "n/a".to_owned()
    } else {
        format!("{:.2}%", x * 100.0)
    }
}

/// A finite, non-negative number given on the command line (a price, a precision), compared
/// bit for bit so that parsed commands can be `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Number(pub f64);

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Number {}

impl std::str::FromStr for Number {
    type Err = String;

    fn from_str(s: &str) -> Result<Number, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Number(v)),
            _ => Err(format!("{s:?} is not a finite number >= 0")),
        }
    }
}

/// The agent name a label stands for: the label itself when it is a valid agent name, else the
/// label lower-cased with every character outside `a-z 0-9 - _` replaced by `_` (and cut to
/// [`MAX_AGENT_NAME_LEN`] bytes). Both commands use it, so a mined file evaluates cleanly on the
/// data it came from.
pub fn agent_name_for_label(label: &str) -> String {
    if valid_agent_name(label) {
        return label.to_owned();
    }
    let mut name: String = label
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_AGENT_NAME_LEN);
    if name.is_empty() {
        name.push('_');
    }
    name
}

/// The `eval` command: evaluates `catalogue` (named `routes` in warnings) on the labelled file at
/// `data` and returns what to print on stdout (the text report, or one JSON object when `json`)
/// and the warnings for stderr. The caller loads the routes like every other command does.
pub fn eval_command(
    catalogue: &crate::routing::Catalogue,
    routes: &str,
    data: &Path,
    json: bool,
    options: &EvalOptions,
) -> Result<(String, Vec<String>), TuneError> {
    let (examples, counts) = load_labelled(data)?;
    let report = evaluate(catalogue, &examples, options)?;
    let turns = conversations::evaluate_turns(catalogue, &examples, &options.session_policy)?;
    let mut warnings = Vec::new();
    let note = decision_log_note(data, &counts);
    if json {
        if !report.unknown_labels.is_empty() {
            let labels: Vec<&str> = report.unknown_labels.keys().map(String::as_str).collect();
            warnings.push(format!(
                "warning: labels that name no agent of {} (counted as misses): {}",
                routes,
                labels.join(", ")
            ));
        }
        let mut value =
            serde_json::to_value(&report).map_err(|e| TuneError::Option(e.to_string()))?;
        if let (Some(turns), Some(map)) = (&turns, value.as_object_mut()) {
            let turns =
                serde_json::to_value(turns).map_err(|e| TuneError::Option(e.to_string()))?;
            map.insert("turns".to_owned(), turns);
        }
        if let (true, Some(map)) = (counts.decision_lines > 0, value.as_object_mut()) {
            map.insert(
                "decision_log".to_owned(),
                serde_json::json!({
                    "lines": counts.decision_lines,
                    "skipped_without_llm": counts.skipped_without_llm,
                }),
            );
        }
        Ok((value.to_string() + "\n", warnings))
    } else {
        let mut text = note.map(|n| n + "\n").unwrap_or_default();
        text.push_str(&report.to_text());
        if let Some(turns) = &turns {
            text.push('\n');
            text.push_str(&turns.to_text());
        }
        Ok((text, warnings))
    }
}

/// The `keywords` command: mines a routes file from the labelled file at `data`. Returns the
/// routes file's text (already checked to load with [`Catalogue::from_toml_str`]) and the report
/// lines for stderr (hold-out figures and keywords per agent).
///
/// [`Catalogue::from_toml_str`]: crate::routing::Catalogue::from_toml_str
pub fn keywords_command(
    data: &Path,
    options: &MineOptions,
) -> Result<(String, Vec<String>), TuneError> {
    let (examples, counts) = load_labelled(data)?;
    let source = data.display().to_string();
    let mined = mine(&examples, options, &source)?;
    let toml = mine::render(&mined, &examples, options);
    crate::routing::Catalogue::from_toml_str(&toml).map_err(|source| TuneError::Catalogue {
        path: format!("mined from {}", data.display()),
        source,
    })?;
    let mut report: Vec<String> = decision_log_note(data, &counts).into_iter().collect();
    report.extend(thin_data_warnings(&examples));
    report.extend(mine::report_lines(&mined, &examples));
    Ok((toml, report))
}

/// Fewest examples of an agent below which `keywords` warns that its figures are unreliable:
/// cross-validation then holds out a handful of queries per agent, and the thresholds it picks
/// swing with every one of them.
pub const MIN_EXAMPLES_PER_AGENT: usize = 30;

/// One warning per agent with fewer than [`MIN_EXAMPLES_PER_AGENT`] examples.
pub fn thin_data_warnings(examples: &[Example]) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for agent in examples.iter().filter_map(|e| e.agent.as_deref()) {
        *counts.entry(agent).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|&(_, n)| n < MIN_EXAMPLES_PER_AGENT)
        .map(|(agent, n)| {
            format!(
                "warning: {agent} has only {n} examples (fewer than {MIN_EXAMPLES_PER_AGENT}): its keywords and the thresholds are unreliable; label more queries"
            )
        })
        .collect()
}
