//! The agent catalogue: the routes file that names every agent, its keywords and its target.
//!
//! The catalogue is declarative TOML (see the README's "Routes file" section). It is parsed and
//! validated once, when the router starts, so a mistake in it fails the process start (in Lambda:
//! the init phase, where the console shows the message) and never a request.
//!
//! ```
//! let toml = r#"
//! default_agent = "general"
//!
//! [[agents]]
//! name = "cost"
//! description = "Spend, bills and budgets."
//! keywords = ["cost", "bill", { phrase = "savings plan", weight = 2.0 }]
//!
//! [[agents]]
//! name = "general"
//! description = "Anything else."
//! "#;
//! let catalogue = agent_router::Catalogue::from_toml_str(toml).unwrap();
//! assert_eq!(catalogue.default_agent().name, "general");
//! ```
//!
//! With `model = "linear"` at the top, the file describes a linear model instead (see
//! [`LinearSettings`]): a keyword may appear in several agents' lists, weights may be negative,
//! each agent may have a `bias`, and the fast path decides on a probability:
//!
//! ```
//! let toml = r#"
//! model = "linear"
//! default_agent = "general"
//!
//! [fast_path]
//! threshold = 0.8
//!
//! [[agents]]
//! name = "cost"
//! description = "Spend, bills and budgets."
//! bias = -1.0
//! keywords = ["cost", { phrase = "costing", weight = 4.0 }, { phrase = "logs", weight = -3.0 }]
//!
//! [[agents]]
//! name = "monitoring"
//! description = "Logs, metrics and alarms."
//! bias = -1.0
//! keywords = [{ phrase = "logs", weight = 3.0 }]
//!
//! [[agents]]
//! name = "general"
//! description = "Anything else."
//! "#;
//! let catalogue = agent_router::Catalogue::from_toml_str(toml).unwrap();
//! assert_eq!(catalogue.linear().unwrap().threshold, 0.8);
//! ```

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::normalize::{is_word_char, normalize_query};

/// The default catalogue shipped with the router (the AWS operations assistant), compiled in so
/// the binary runs with no files around it.
pub const DEFAULT_ROUTES_TOML: &str = include_str!("../../prompts/routes.toml");

/// [`DEFAULT_ROUTES_TOML`] as JSON, converted at build time (`build.rs`): what
/// [`Catalogue::embedded_default`] loads, since JSON needs no whole-document tree.
const DEFAULT_ROUTES_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/routes.json"));

/// Longest agent name accepted, in bytes. Names travel in LLM answers, environment variable names
/// and metric dimensions, so they are kept short.
pub const MAX_AGENT_NAME_LEN: usize = 64;

/// Largest sum of one agent's keyword weights. An agent's fast-path score is a sum of its
/// weights, and the winner's and runner-up's scores are added up for the confidence, so keeping
/// each agent's total at a quarter of `f32::MAX` keeps every score and confidence finite.
pub const MAX_AGENT_WEIGHT: f32 = f32::MAX / 4.0;

/// Largest `none_bias` or agent `bias`, in absolute value, and largest sum of the absolute values
/// of one agent's bias and weights in the linear form: keeps every score finite (see
/// [`MAX_AGENT_WEIGHT`]).
pub const MAX_LINEAR_WEIGHT: f32 = MAX_AGENT_WEIGHT;

/// More distinct words than any query can hold (queries are limited to a few KiB), for the bound
/// on `unknown_word_weight`.
pub(crate) const MAX_QUERY_WORDS: f32 = 65536.0;

/// A validated agent catalogue: the agents, the default agent and the fast-path settings.
///
/// Built only through [`Catalogue::from_toml_str`], [`Catalogue::from_path`] or
/// [`CatalogueBuilder`], all of which validate, so a value of this type is always usable.
#[derive(Debug, Clone)]
pub struct Catalogue {
    agents: Vec<Agent>,
    default_index: usize,
    fast_path: FastPathSettings,
    /// Agents marked `stream = true`: invoked with `InvokeWithResponseStream` on a streamed
    /// `POST /query`.
    streaming: Vec<String>,
    linear: Option<LinearSettings>,
    none_keywords: Vec<Keyword>,
}

/// One downstream agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Unique name, lower-case letters, digits, `-` and `_`; what responses and the LLM use.
    pub name: String,
    /// One line that tells the LLM (and people) what the agent handles.
    pub description: String,
    /// Keywords and phrases that send a query to this agent on the fast path (in the linear
    /// form: the evidence for or, with negative weights, against it).
    pub keywords: Vec<Keyword>,
    /// The agent's score before any keyword matches; linear form only (0 otherwise).
    pub bias: f32,
    /// The agent's Lambda function (name, ARN or alias); `None` for a route-only agent.
    pub target: Option<String>,
}

/// A keyword or multi-word phrase with its weight in the fast path's scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyword {
    /// The keyword as written in the routes file (reported back in `matched`).
    pub text: String,
    /// How much a match adds to the agent's score; positive and finite (any finite number in
    /// the linear form). Default 1.0.
    pub weight: f32,
}

/// Fast-path decision thresholds, set in the routes file's `[fast_path]` table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FastPathSettings {
    /// The winner's score must exceed the runner-up's by at least this much. Default 1.0.
    pub margin: f32,
    /// The winner's score must be at least this much. Default 1.0.
    pub min_score: f32,
}

/// The linear form's decision rule, set by `model = "linear"` and the `[fast_path]` table.
///
/// Each agent that has keywords scores its `bias` plus the weights of the distinct keywords found
/// in the query (every match on word boundaries counts, overlapping or not). Those scores and
/// `none_bias`, the score of "none of them" (an out-of-scope query), go through a softmax; the fast
/// path decides when the best agent's probability reaches `threshold`, and that probability is the
/// decision's confidence. Agents without keywords (such as a route-only default) take no part.
///
/// The out-of-scope class may have keywords of its own (`none_keywords` in `[fast_path]`, see
/// [`Catalogue::none_keywords`]): phrases that say a query is none of the agents' business. Its
/// score is then `none_bias` plus the weights of those found in the query. With
/// `unknown_word_weight`, it also grows with every distinct word of the query that appears in
/// no keyword of the file (a word the routes have never heard of is a sign the query is about
/// something else).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSettings {
    /// Probability the best agent needs for a fast-path decision, in (0, 1]. Default 0.9.
    pub threshold: f32,
    /// Score of the out-of-scope class. Default 0.0.
    pub none_bias: f32,
    /// Added to the out-of-scope class's score for each distinct word of the query that is in
    /// no keyword of the file (agents' or `none_keywords`). Default 0.0 (words not counted).
    pub unknown_word_weight: f32,
}

impl Default for LinearSettings {
    fn default() -> Self {
        LinearSettings {
            threshold: 0.9,
            none_bias: 0.0,
            unknown_word_weight: 0.0,
        }
    }
}

impl Default for FastPathSettings {
    fn default() -> Self {
        FastPathSettings {
            margin: 1.0,
            min_score: 1.0,
        }
    }
}

/// Why a routes file was rejected. Every message names the agent or keyword to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    /// The file could not be read.
    #[error("cannot read routes file {path}: {message}")]
    Read {
        /// The path that was tried.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// The file is not valid TOML or does not have the routes file's shape.
    #[error("routes file is not valid: {0}")]
    Parse(String),
    /// The file lists no agents at all.
    #[error("routes file lists no agents: add at least one [[agents]] table")]
    NoAgents,
    /// An agent name is empty, too long, or has characters outside `a-z 0-9 - _`.
    #[error(
        "agent name {name:?} is not valid: use 1 to {MAX_AGENT_NAME_LEN} lower-case letters, digits, '-' or '_'"
    )]
    InvalidAgentName {
        /// The offending name.
        name: String,
    },
    /// Two agents share a name.
    #[error("agent {name:?} is defined twice: agent names must be unique")]
    DuplicateAgent {
        /// The repeated name.
        name: String,
    },
    /// Two agent names differ only by `-` against `_`, so one `ROUTER_TARGET_<AGENT>` variable
    /// would retarget both.
    #[error(
        "agents {first:?} and {second:?} differ only by '-' and '_', so ROUTER_TARGET_<AGENT> cannot tell them apart: rename one"
    )]
    AgentNamesClash {
        /// The first of the two, in file order.
        first: String,
        /// The second.
        second: String,
    },
    /// `default_agent` names no agent in the file.
    #[error("default_agent {name:?} is not one of the agents ({known}): add it or fix the name")]
    UnknownDefaultAgent {
        /// The name given as default.
        name: String,
        /// The agents that exist, comma-separated.
        known: String,
    },
    /// An agent's description is empty, spans several lines or holds a control character.
    #[error("agent {agent:?}: description must be one non-empty line without control characters")]
    InvalidDescription {
        /// The agent whose description is wrong.
        agent: String,
    },
    /// A target is present but empty.
    #[error("agent {agent:?}: target is empty; remove the line for a route-only agent")]
    EmptyTarget {
        /// The agent whose target is empty.
        agent: String,
    },
    /// A keyword is empty or made only of whitespace.
    #[error("agent {agent:?}: keyword #{index} is empty; remove it")]
    EmptyKeyword {
        /// The agent that lists it.
        agent: String,
        /// Its 1-based position in the agent's keyword list.
        index: usize,
    },
    /// A keyword has no letter or digit, so it could never match on word boundaries.
    #[error(
        "agent {agent:?}: keyword {keyword:?} has no letter or digit and can never match; remove it"
    )]
    PunctuationKeyword {
        /// The agent that lists it.
        agent: String,
        /// The keyword.
        keyword: String,
    },
    /// A keyword's weight is not finite, or (outside the linear form) zero or negative.
    #[error(
        "agent {agent:?}: keyword {keyword:?} has weight {weight}; weights must be positive (any finite number with model = \"linear\")"
    )]
    InvalidWeight {
        /// The agent that lists it.
        agent: String,
        /// The keyword.
        keyword: String,
        /// The rejected weight.
        weight: f32,
    },
    /// The same keyword (after lower-casing and folding whitespace) appears twice: on two agents
    /// (allowed only in the linear form) or twice on one agent.
    #[error("{}", duplicate_keyword_message(keyword, first, second))]
    DuplicateKeyword {
        /// The keyword, normalised.
        keyword: String,
        /// The agent that lists it first.
        first: String,
        /// The agent that lists it again (may equal `first`).
        second: String,
    },
    /// An agent's keyword weights add up to more than [`MAX_AGENT_WEIGHT`].
    #[error(
        "agent {agent:?}: keyword weights (and bias, in absolute value) add up to {total:e}, over the limit {MAX_AGENT_WEIGHT:e}"
    )]
    WeightsTooLarge {
        /// The agent whose weights are too large.
        agent: String,
        /// The sum of its weights.
        total: f64,
    },
    /// `model` names no known form.
    #[error("model {0:?} is not known: use \"linear\" or leave the line out")]
    UnknownModel(String),
    /// A setting of one form is used in a file of the other (e.g. `bias` without
    /// `model = "linear"`, or `margin` with it).
    #[error("{what} {needs}")]
    WrongForm {
        /// The setting, e.g. `agent "cost": bias`.
        what: String,
        /// What to do about it.
        needs: &'static str,
    },
    /// A linear-form bias is not finite or too large.
    #[error(
        "{what} is {value}; it must be a finite number between -{MAX_LINEAR_WEIGHT:e} and {MAX_LINEAR_WEIGHT:e}"
    )]
    InvalidBias {
        /// `none_bias` or `agent "cost": bias`.
        what: String,
        /// The rejected value.
        value: f32,
    },
    /// The linear form's `threshold` is not in (0, 1].
    #[error("fast_path.threshold is {0}; it must be a probability in (0, 1]")]
    InvalidProbability(f32),
    /// A `[fast_path]` threshold is negative or not finite.
    #[error("fast_path.{field} is {value}; it must be a finite number >= 0")]
    InvalidThreshold {
        /// `margin` or `min_score`.
        field: &'static str,
        /// The rejected value.
        value: f32,
    },
    /// A problem found at a line of the routes file (1-based); [`CatalogueError::kind`] is the
    /// problem itself.
    #[error("line {line}: {error}")]
    AtLine {
        /// The line the problem is on.
        line: usize,
        /// The problem.
        error: Box<CatalogueError>,
    },
    /// A keyword of the out-of-scope class (`fast_path.none_keywords`) is empty, has no letter
    /// or digit, has a weight that is not finite, or is listed twice; or the class's weights and
    /// `none_bias` add up to more than [`MAX_LINEAR_WEIGHT`].
    #[error("fast_path.none_keywords: keyword {keyword:?} {problem}")]
    InvalidNoneKeyword {
        /// The keyword as written (normalised for a duplicate).
        keyword: String,
        /// What is wrong and what to do.
        problem: &'static str,
    },
    /// The fast-path automaton could not be built (for example, too many keywords).
    #[error("cannot build the keyword automaton: {0}")]
    Automaton(String),
}

fn duplicate_keyword_message(keyword: &str, first: &str, second: &str) -> String {
    if first == second {
        format!("agent {first:?} lists keyword {keyword:?} twice: remove one")
    } else {
        format!(
            "keyword {keyword:?} is listed for both {first:?} and {second:?}: a keyword may belong to one agent only (unless the file says model = \"linear\")"
        )
    }
}

impl CatalogueError {
    /// The problem itself, without the line it was found at.
    pub fn kind(&self) -> &CatalogueError {
        match self {
            CatalogueError::AtLine { error, .. } => error.kind(),
            other => other,
        }
    }
}

impl Catalogue {
    /// Parses and validates a routes file's text. A problem found after parsing is reported with
    /// the line it is on ([`CatalogueError::AtLine`]).
    pub fn from_toml_str(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue = toml::from_str(text)
            .map_err(|e| CatalogueError::Parse(e.to_string().trim().to_owned()))?;
        Catalogue::from_raw(raw, |e| locate(text, e))
    }

    /// Parses and validates a routes file written as JSON: the same fields and checks as the
    /// TOML form (see [`Catalogue::to_json_string`]), parsed about four times faster and with no
    /// whole-document tree in memory, which counts for big mined files on a cold start.
    /// Problems found after parsing carry no line.
    pub fn from_json_str(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue = serde_json::from_str(text)
            .map_err(|e| CatalogueError::Parse(e.to_string().trim().to_owned()))?;
        Catalogue::from_raw(raw, |e| e)
    }

    /// Parses and validates a routes file in either form: JSON when its first character other
    /// than whitespace is `{` (which cannot start a TOML document), TOML otherwise.
    pub fn from_str_any(text: &str) -> Result<Catalogue, CatalogueError> {
        if text.trim_start().starts_with('{') {
            Catalogue::from_json_str(text)
        } else {
            Catalogue::from_toml_str(text)
        }
    }

    fn from_raw(
        raw: RawCatalogue,
        locate: impl FnOnce(CatalogueError) -> CatalogueError,
    ) -> Result<Catalogue, CatalogueError> {
        let linear = match raw.model.as_deref() {
            None | Some("additive") => false,
            Some("linear") => true,
            Some(other) => return Err(CatalogueError::UnknownModel(other.to_owned())),
        };
        let wrong = |what: String, needs| Err(CatalogueError::WrongForm { what, needs });
        let mut builder = CatalogueBuilder::new(raw.default_agent);
        let streaming = raw
            .agents
            .iter()
            .filter(|a| a.stream)
            .map(|a| a.name.clone())
            .collect();
        let fp = raw.fast_path.unwrap_or_default();
        if linear {
            for (name, set) in [("margin", fp.margin), ("min_score", fp.min_score)] {
                if set.is_some() {
                    return wrong(
                        format!("fast_path.{name}"),
                        "belongs to the additive form: with model = \"linear\" use threshold",
                    );
                }
            }
            let defaults = LinearSettings::default();
            builder.linear(LinearSettings {
                threshold: fp.threshold.unwrap_or(defaults.threshold),
                none_bias: fp.none_bias.unwrap_or(defaults.none_bias),
                unknown_word_weight: fp
                    .unknown_word_weight
                    .unwrap_or(defaults.unknown_word_weight),
            });
            builder.none_keywords(
                fp.none_keywords
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| k.0)
                    .collect(),
            );
        } else {
            for (name, set) in [
                ("threshold", fp.threshold.is_some()),
                ("none_bias", fp.none_bias.is_some()),
                ("none_keywords", fp.none_keywords.is_some()),
                ("unknown_word_weight", fp.unknown_word_weight.is_some()),
            ] {
                if set {
                    return wrong(
                        format!("fast_path.{name}"),
                        "needs model = \"linear\" at the top of the file",
                    );
                }
            }
            builder.fast_path(FastPathSettings {
                margin: fp.margin.unwrap_or(1.0),
                min_score: fp.min_score.unwrap_or(1.0),
            });
        }
        for a in raw.agents {
            if !linear && a.bias.is_some() {
                return wrong(
                    format!("agent {:?}: bias", a.name),
                    "needs model = \"linear\" at the top of the file",
                );
            }
            builder.agent(Agent {
                name: a.name,
                description: a.description,
                keywords: a.keywords.into_iter().map(|k| k.0).collect(),
                bias: a.bias.unwrap_or(0.0),
                target: a.target,
            });
        }
        let mut catalogue = builder.build().map_err(locate)?;
        catalogue.streaming = streaming;
        Ok(catalogue)
    }

    /// Reads, parses and validates a routes file, TOML or JSON (see [`Catalogue::from_str_any`]).
    pub fn from_path(path: &Path) -> Result<Catalogue, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogueError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Catalogue::from_str_any(&text)
    }

    /// The compiled-in default catalogue (`prompts/routes.toml`, embedded as the JSON that
    /// `build.rs` converts it to, and validated like any routes file). When it is not valid, the
    /// error comes from the TOML, so it names the line of `prompts/routes.toml` to fix.
    pub fn embedded_default() -> Result<Catalogue, CatalogueError> {
        Catalogue::from_json_str(DEFAULT_ROUTES_JSON)
            .or_else(|_| Catalogue::from_toml_str(DEFAULT_ROUTES_TOML))
    }

    /// All agents, in file order.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// The agent that takes every query no other tier decides.
    pub fn default_agent(&self) -> &Agent {
        &self.agents[self.default_index]
    }

    /// Index of the default agent in [`Catalogue::agents`].
    pub fn default_index(&self) -> usize {
        self.default_index
    }

    /// The agent with this exact name, if any.
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// Index of the agent with this exact name, if any.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.agents.iter().position(|a| a.name == name)
    }

    /// The additive form's decision thresholds (unused by a linear-form catalogue).
    pub fn fast_path(&self) -> FastPathSettings {
        self.fast_path
    }

    /// Whether the agent is marked `stream = true` in the routes file: its function writes its
    /// answer as a stream, which a streamed `POST /query` forwards as it comes.
    pub fn streams(&self, agent: &str) -> bool {
        self.streaming.iter().any(|a| a == agent)
    }

    /// The linear form's decision rule, `None` for an additive-form catalogue.
    pub fn linear(&self) -> Option<LinearSettings> {
        self.linear
    }

    /// Linear form: the out-of-scope class's keywords (`none_keywords` in `[fast_path]`), whose
    /// weights add to `none_bias` when they are found; empty when it has none (always in the
    /// additive form).
    pub fn none_keywords(&self) -> &[Keyword] {
        &self.none_keywords
    }

    /// Replaces agents' targets, e.g. from `ROUTER_TARGET_<AGENT>` variables, keyed by agent name;
    /// a blank target makes the agent route-only. Start-up looks up one variable per agent, so
    /// every name here is an agent's; variables that name no agent are reported by start-up.
    pub fn override_targets(&mut self, targets: &HashMap<String, String>) {
        for agent in &mut self.agents {
            if let Some(target) = targets.get(&agent.name) {
                let target = target.trim();
                agent.target = (!target.is_empty()).then(|| target.to_owned());
            }
        }
    }

    /// Renders the catalogue back to routes-file TOML (used by the `keywords` command).
    pub fn to_toml_string(&self) -> String {
        let mut out = String::new();
        if self.linear.is_some() {
            out.push_str("model = \"linear\"\n");
        }
        out.push_str(&format!(
            "default_agent = {}\n\n",
            toml_str(&self.default_agent().name)
        ));
        match self.linear {
            Some(l) => {
                out.push_str(&format!(
                    "[fast_path]\nthreshold = {}\nnone_bias = {}\n",
                    toml_f32(l.threshold),
                    toml_f32(l.none_bias)
                ));
                if l.unknown_word_weight != 0.0 {
                    out.push_str(&format!(
                        "unknown_word_weight = {}\n",
                        toml_f32(l.unknown_word_weight)
                    ));
                }
                if !self.none_keywords.is_empty() {
                    out.push_str("none_keywords = [");
                    push_keywords(&mut out, &self.none_keywords);
                }
            }
            None => out.push_str(&format!(
                "[fast_path]\nmargin = {}\nmin_score = {}\n",
                toml_f32(self.fast_path.margin),
                toml_f32(self.fast_path.min_score)
            )),
        }
        for a in &self.agents {
            out.push_str(&format!(
                "\n[[agents]]\nname = {}\ndescription = {}\n",
                toml_str(&a.name),
                toml_str(&a.description)
            ));
            if let Some(t) = &a.target {
                out.push_str(&format!("target = {}\n", toml_str(t)));
            }
            if self.streams(&a.name) {
                out.push_str("stream = true\n");
            }
            if a.bias != 0.0 {
                out.push_str(&format!("bias = {}\n", toml_f32(a.bias)));
            }
            out.push_str("keywords = [");
            push_keywords(&mut out, &a.keywords);
        }
        out
    }
}

impl Catalogue {
    /// Renders the catalogue as a JSON routes file: the fields of the TOML form, one keyword a
    /// line (read back by [`Catalogue::from_json_str`] into the same catalogue).
    pub fn to_json_string(&self) -> String {
        let mut out = String::from("{\n");
        if self.linear.is_some() {
            out.push_str("\"model\": \"linear\",\n");
        }
        out.push_str(&format!(
            "\"default_agent\": {},\n\"fast_path\": {{",
            json_str(&self.default_agent().name)
        ));
        match self.linear {
            Some(l) => {
                out.push_str(&format!(
                    "\"threshold\": {}, \"none_bias\": {}",
                    l.threshold, l.none_bias
                ));
                if l.unknown_word_weight != 0.0 {
                    out.push_str(&format!(
                        ", \"unknown_word_weight\": {}",
                        l.unknown_word_weight
                    ));
                }
                if !self.none_keywords.is_empty() {
                    out.push_str(", \"none_keywords\": [");
                    push_json_keywords(&mut out, &self.none_keywords);
                }
            }
            None => out.push_str(&format!(
                "\"margin\": {}, \"min_score\": {}",
                self.fast_path.margin, self.fast_path.min_score
            )),
        }
        out.push_str("},\n\"agents\": [");
        for (i, a) in self.agents.iter().enumerate() {
            out.push_str(if i == 0 { "\n{" } else { ",\n{" });
            out.push_str(&format!(
                "\"name\": {}, \"description\": {}",
                json_str(&a.name),
                json_str(&a.description)
            ));
            if let Some(t) = &a.target {
                out.push_str(&format!(", \"target\": {}", json_str(t)));
            }
            if self.streams(&a.name) {
                out.push_str(", \"stream\": true");
            }
            if a.bias != 0.0 {
                out.push_str(&format!(", \"bias\": {}", a.bias));
            }
            out.push_str(", \"keywords\": [");
            push_json_keywords(&mut out, &a.keywords);
            out.push('}');
        }
        out.push_str("\n]\n}\n");
        out
    }
}

/// The elements of a JSON keyword list, one a line, and the closing bracket.
fn push_json_keywords(out: &mut String, keywords: &[Keyword]) {
    for (i, k) in keywords.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        if k.weight == 1.0 {
            out.push_str(&json_str(&k.text));
        } else {
            // f32's Display is its shortest exact form, without exponent: valid JSON.
            out.push_str(&format!(
                "{{\"phrase\": {}, \"weight\": {}}}",
                json_str(&k.text),
                k.weight
            ));
        }
    }
    out.push_str(if keywords.is_empty() { "]" } else { "\n]" });
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

/// The elements of a keyword list, one a line, and the closing bracket.
fn push_keywords(out: &mut String, keywords: &[Keyword]) {
    for (i, k) in keywords.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        if k.weight == 1.0 {
            out.push_str(&format!("  {}", toml_str(&k.text)));
        } else {
            out.push_str(&format!(
                "  {{ phrase = {}, weight = {} }}",
                toml_str(&k.text),
                toml_f32(k.weight)
            ));
        }
    }
    out.push_str(if keywords.is_empty() { "]\n" } else { ",\n]\n" });
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn toml_f32(v: f32) -> String {
    let s = format!("{v}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Assembles a [`Catalogue`] in code and validates it on [`CatalogueBuilder::build`].
#[derive(Debug, Clone)]
pub struct CatalogueBuilder {
    default_agent: String,
    agents: Vec<Agent>,
    fast_path: FastPathSettings,
    linear: Option<LinearSettings>,
    none_keywords: Vec<Keyword>,
}

impl CatalogueBuilder {
    /// Starts a catalogue whose default agent is `default_agent` (which must be added too).
    pub fn new(default_agent: impl Into<String>) -> Self {
        CatalogueBuilder {
            default_agent: default_agent.into(),
            agents: Vec::new(),
            fast_path: FastPathSettings::default(),
            linear: None,
            none_keywords: Vec::new(),
        }
    }

    /// Adds an agent.
    pub fn agent(&mut self, agent: Agent) -> &mut Self {
        self.agents.push(agent);
        self
    }

    /// Sets the additive form's fast-path thresholds.
    pub fn fast_path(&mut self, settings: FastPathSettings) -> &mut Self {
        self.fast_path = settings;
        self
    }

    /// Makes the catalogue a linear-form one, with this decision rule (see [`LinearSettings`]).
    pub fn linear(&mut self, settings: LinearSettings) -> &mut Self {
        self.linear = Some(settings);
        self
    }

    /// Linear form: gives the out-of-scope class these keywords (see
    /// [`Catalogue::none_keywords`]).
    pub fn none_keywords(&mut self, keywords: Vec<Keyword>) -> &mut Self {
        self.none_keywords = keywords;
        self
    }

    /// Validates everything and returns the catalogue, or the first problem found.
    pub fn build(&self) -> Result<Catalogue, CatalogueError> {
        if self.agents.is_empty() {
            return Err(CatalogueError::NoAgents);
        }
        // `default_agent` stands first in a routes file, so it is checked first.
        if !self.agents.iter().any(|a| a.name == self.default_agent) {
            return Err(self.unknown_default());
        }
        for (field, value) in [
            ("margin", self.fast_path.margin),
            ("min_score", self.fast_path.min_score),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(CatalogueError::InvalidThreshold { field, value });
            }
        }
        let linear = self.linear.is_some();
        if let Some(l) = self.linear {
            if !(l.threshold > 0.0 && l.threshold <= 1.0) {
                return Err(CatalogueError::InvalidProbability(l.threshold));
            }
            check_bias("none_bias".to_owned(), l.none_bias)?;
            // A query has at most a few thousand distinct words, so this bound keeps the score
            // finite.
            check_bias(
                "unknown_word_weight".to_owned(),
                l.unknown_word_weight * MAX_QUERY_WORDS,
            )?;
        }
        let none_keywords = self.checked_none_keywords()?;
        let mut seen_names: HashMap<&str, ()> = HashMap::new();
        // Names with `-` read as `_`: `ROUTER_TARGET_<AGENT>` cannot tell `on-call` from `on_call`.
        let mut seen_folded: HashMap<String, &str> = HashMap::new();
        let most_keywords = self.agents.iter().map(|a| a.keywords.len()).max();
        // FNV: thousands of short keys from the routes file itself, hashed on every cold start.
        let mut seen_keywords: fnv::FnvHashMap<String, &str> =
            fnv::FnvHashMap::with_capacity_and_hasher(
                if linear {
                    most_keywords.unwrap_or(0)
                } else {
                    self.agents.iter().map(|a| a.keywords.len()).sum()
                },
                Default::default(),
            );
        let mut agents = Vec::with_capacity(self.agents.len());
        for a in &self.agents {
            if !valid_agent_name(&a.name) {
                return Err(CatalogueError::InvalidAgentName {
                    name: a.name.clone(),
                });
            }
            if seen_names.insert(&a.name, ()).is_some() {
                return Err(CatalogueError::DuplicateAgent {
                    name: a.name.clone(),
                });
            }
            if let Some(first) = seen_folded.insert(a.name.replace('-', "_"), &a.name) {
                return Err(CatalogueError::AgentNamesClash {
                    first: first.to_owned(),
                    second: a.name.clone(),
                });
            }
            let description = a.description.trim();
            // Any control character or Unicode line/paragraph separator would break the one
            // `name: description` line per agent in the LLM prompt.
            let breaks_line = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
            if description.is_empty() || description.contains(breaks_line) {
                return Err(CatalogueError::InvalidDescription {
                    agent: a.name.clone(),
                });
            }
            let target = match &a.target {
                Some(t) if t.trim().is_empty() => {
                    return Err(CatalogueError::EmptyTarget {
                        agent: a.name.clone(),
                    });
                }
                t => t.as_ref().map(|t| t.trim().to_owned()),
            };
            if !linear && a.bias != 0.0 {
                return Err(CatalogueError::WrongForm {
                    what: format!("agent {:?}: bias", a.name),
                    needs: "needs the linear form (model = \"linear\")",
                });
            }
            check_bias(format!("agent {:?}: bias", a.name), a.bias)?;
            // In the linear form a keyword may serve several agents, once per agent.
            if linear {
                seen_keywords.clear();
            }
            let mut keywords = Vec::with_capacity(a.keywords.len());
            let mut total_weight = f64::from(a.bias.abs());
            for (i, k) in a.keywords.iter().enumerate() {
                let norm = normalize_query(&k.text);
                if norm.is_empty() {
                    return Err(CatalogueError::EmptyKeyword {
                        agent: a.name.clone(),
                        index: i + 1,
                    });
                }
                if !norm.chars().any(is_word_char) {
                    return Err(CatalogueError::PunctuationKeyword {
                        agent: a.name.clone(),
                        keyword: k.text.clone(),
                    });
                }
                if !k.weight.is_finite() || (!linear && k.weight <= 0.0) {
                    return Err(CatalogueError::InvalidWeight {
                        agent: a.name.clone(),
                        keyword: k.text.clone(),
                        weight: k.weight,
                    });
                }
                match seen_keywords.entry(norm) {
                    Entry::Occupied(first) => {
                        return Err(CatalogueError::DuplicateKeyword {
                            keyword: first.key().clone(),
                            first: (*first.get()).to_owned(),
                            second: a.name.clone(),
                        });
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(&a.name);
                    }
                }
                keywords.push(Keyword {
                    text: k.text.trim().to_owned(),
                    weight: k.weight,
                });
                total_weight += f64::from(k.weight.abs());
            }
            // Finite weights can still add up to an infinite score (found by fuzz/ fastpath).
            if total_weight > f64::from(MAX_AGENT_WEIGHT) {
                return Err(CatalogueError::WeightsTooLarge {
                    agent: a.name.clone(),
                    total: total_weight,
                });
            }
            agents.push(Agent {
                name: a.name.clone(),
                description: description.to_owned(),
                keywords,
                bias: a.bias,
                target,
            });
        }
        let default_index = agents
            .iter()
            .position(|a| a.name == self.default_agent)
            .ok_or_else(|| self.unknown_default())?;
        Ok(Catalogue {
            agents,
            default_index,
            fast_path: self.fast_path,
            streaming: Vec::new(),
            linear: self.linear,
            none_keywords,
        })
    }

    /// The out-of-scope class's keywords, checked like an agent's (linear form only).
    fn checked_none_keywords(&self) -> Result<Vec<Keyword>, CatalogueError> {
        let Some(linear) = self.linear else {
            if self.none_keywords.is_empty() {
                return Ok(Vec::new());
            }
            return Err(CatalogueError::WrongForm {
                what: "fast_path.none_keywords".to_owned(),
                needs: "needs the linear form (model = \"linear\")",
            });
        };
        let bad = |keyword: &str, problem| {
            Err(CatalogueError::InvalidNoneKeyword {
                keyword: keyword.to_owned(),
                problem,
            })
        };
        let mut seen: fnv::FnvHashSet<String> =
            fnv::FnvHashSet::with_capacity_and_hasher(self.none_keywords.len(), Default::default());
        let mut total = f64::from(linear.none_bias.abs());
        let mut keywords = Vec::with_capacity(self.none_keywords.len());
        for k in &self.none_keywords {
            let norm = normalize_query(&k.text);
            if norm.is_empty() {
                return bad(&k.text, "is empty: remove it");
            }
            if !norm.chars().any(is_word_char) {
                return bad(
                    &k.text,
                    "has no letter or digit and can never match: remove it",
                );
            }
            if !k.weight.is_finite() {
                return bad(&k.text, "has a weight that is not a finite number");
            }
            if !seen.insert(norm.clone()) {
                return bad(&norm, "is listed twice: remove one");
            }
            total += f64::from(k.weight.abs());
            keywords.push(Keyword {
                text: k.text.trim().to_owned(),
                weight: k.weight,
            });
        }
        if total > f64::from(MAX_LINEAR_WEIGHT) {
            return bad(
                "(all)",
                "weights and none_bias add up to more than the limit: make them smaller",
            );
        }
        Ok(keywords)
    }
}

impl CatalogueBuilder {
    fn unknown_default(&self) -> CatalogueError {
        CatalogueError::UnknownDefaultAgent {
            name: self.default_agent.clone(),
            known: self
                .agents
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Where things stand in a routes file: parsed again, only on the error path, for the spans.
#[derive(Deserialize)]
struct SpanCatalogue {
    default_agent: Option<toml::Spanned<String>>,
    fast_path: Option<toml::Spanned<toml::Value>>,
    #[serde(default)]
    agents: Vec<SpanAgent>,
}

#[derive(Deserialize)]
struct SpanAgent {
    name: Option<toml::Spanned<String>>,
    #[serde(default)]
    keywords: Vec<toml::Spanned<toml::Value>>,
}

/// Attaches the line of the routes file `text` where `error` is, when it can be told.
fn locate(text: &str, error: CatalogueError) -> CatalogueError {
    let Ok(spans) = toml::from_str::<SpanCatalogue>(text) else {
        return error;
    };
    let agent_named = |name: &str, nth: usize| {
        spans
            .agents
            .iter()
            .filter(|a| a.name.as_ref().is_some_and(|n| n.get_ref() == name))
            .nth(nth)
    };
    let name_at = |a: &SpanAgent| a.name.as_ref().map(|n| n.span().start);
    let keyword_text = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Table(t) => t
            .get("phrase")
            .or_else(|| t.get("keyword"))
            .and_then(|p| p.as_str().map(str::to_owned)),
        _ => None,
    };
    // The `nth` listing (0-based) of `keyword` (compared normalised) in `agent`'s list.
    let keyword_at = |agent: &str, keyword: &str, nth: usize| {
        let wanted = normalize_query(keyword);
        let a = agent_named(agent, 0)?;
        a.keywords
            .iter()
            .filter(|k| keyword_text(k.get_ref()).is_some_and(|t| normalize_query(&t) == wanted))
            .nth(nth)
            .map(|k| k.span().start)
    };
    let offset = match &error {
        CatalogueError::InvalidAgentName { name } => agent_named(name, 0).and_then(name_at),
        CatalogueError::DuplicateAgent { name } => agent_named(name, 1).and_then(name_at),
        CatalogueError::AgentNamesClash { second, .. } => agent_named(second, 0).and_then(name_at),
        CatalogueError::InvalidDescription { agent }
        | CatalogueError::EmptyTarget { agent }
        | CatalogueError::WeightsTooLarge { agent, .. } => agent_named(agent, 0).and_then(name_at),
        CatalogueError::EmptyKeyword { agent, index } => agent_named(agent, 0)
            .and_then(|a| a.keywords.get(index.saturating_sub(1)))
            .map(|k| k.span().start),
        CatalogueError::PunctuationKeyword { agent, keyword }
        | CatalogueError::InvalidWeight { agent, keyword, .. } => keyword_at(agent, keyword, 0),
        CatalogueError::DuplicateKeyword {
            keyword,
            first,
            second,
        } => keyword_at(second, keyword, usize::from(first == second)),
        CatalogueError::UnknownDefaultAgent { .. } => {
            spans.default_agent.as_ref().map(|d| d.span().start)
        }
        CatalogueError::InvalidThreshold { .. } | CatalogueError::InvalidNoneKeyword { .. } => {
            spans.fast_path.as_ref().map(|f| f.span().start)
        }
        _ => None,
    };
    match offset {
        Some(at) => CatalogueError::AtLine {
            line: text[..at.min(text.len())].matches('\n').count() + 1,
            error: Box::new(error),
        },
        None => error,
    }
}

fn check_bias(what: String, value: f32) -> Result<(), CatalogueError> {
    if value.is_finite() && value.abs() <= MAX_LINEAR_WEIGHT {
        Ok(())
    } else {
        Err(CatalogueError::InvalidBias { what, value })
    }
}

/// Whether `name` is a valid agent name: 1..=64 bytes of `a-z`, `0-9`, `-`, `_`.
pub fn valid_agent_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_AGENT_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    #[serde(default)]
    model: Option<String>,
    default_agent: String,
    #[serde(default)]
    fast_path: Option<RawFastPath>,
    #[serde(default)]
    agents: Vec<RawAgent>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFastPath {
    margin: Option<f32>,
    min_score: Option<f32>,
    threshold: Option<f32>,
    none_bias: Option<f32>,
    unknown_word_weight: Option<f32>,
    #[serde(default)]
    none_keywords: Option<Vec<RawKeyword>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: String,
    description: String,
    #[serde(default)]
    keywords: Vec<RawKeyword>,
    #[serde(default)]
    bias: Option<f32>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    stream: bool,
}

/// A keyword as written: either `"text"` or `{ phrase = "text", weight = 2.0 }`.
struct RawKeyword(Keyword);

/// A field of a keyword table, read without allocating its name (mined files have thousands).
enum KeywordField {
    Phrase,
    Weight,
}

impl<'de> Deserialize<'de> for KeywordField {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeywordField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`phrase` or `weight`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeywordField, E> {
                match v {
                    "phrase" | "keyword" => Ok(KeywordField::Phrase),
                    "weight" => Ok(KeywordField::Weight),
                    other => Err(E::unknown_field(other, &["phrase", "weight"])),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for RawKeyword {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawKeyword;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a keyword string, or a table like { phrase = "savings plan", weight = 2.0 }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKeyword, E> {
                Ok(RawKeyword(Keyword {
                    text: v.to_owned(),
                    weight: 1.0,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKeyword, A::Error> {
                let mut text: Option<String> = None;
                let mut weight: Option<f32> = None;
                while let Some(field) = map.next_key::<KeywordField>()? {
                    match field {
                        KeywordField::Phrase => text = Some(map.next_value()?),
                        KeywordField::Weight => weight = Some(map.next_value()?),
                    }
                }
                let text = text.ok_or_else(|| de::Error::missing_field("phrase"))?;
                Ok(RawKeyword(Keyword {
                    text,
                    weight: weight.unwrap_or(1.0),
                }))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, keywords: &[&str]) -> Agent {
        Agent {
            name: name.into(),
            description: format!("{name} things"),
            keywords: keywords
                .iter()
                .map(|k| Keyword {
                    text: (*k).into(),
                    weight: 1.0,
                })
                .collect(),
            bias: 0.0,
            target: None,
        }
    }

    #[test]
    fn embedded_json_is_the_toml_catalogue() {
        let from_toml = Catalogue::from_toml_str(DEFAULT_ROUTES_TOML).unwrap();
        let embedded = Catalogue::embedded_default().unwrap();
        assert_eq!(embedded.agents(), from_toml.agents());
        assert_eq!(embedded.default_index(), from_toml.default_index());
        assert_eq!(embedded.fast_path(), from_toml.fast_path());
        assert_eq!(embedded.linear(), from_toml.linear());
        assert_eq!(embedded.to_toml_string(), from_toml.to_toml_string());
    }

    #[test]
    fn embedded_default_is_valid_and_rich() {
        let c = Catalogue::embedded_default().expect("embedded routes file must be valid");
        assert_eq!(c.default_agent().name, "general");
        for name in ["cost", "security", "resources", "monitoring"] {
            let a = c
                .agent(name)
                .unwrap_or_else(|| panic!("missing agent {name}"));
            assert!(
                a.keywords.len() >= 24,
                "{name} has only {} keywords",
                a.keywords.len()
            );
        }
    }

    #[test]
    fn round_trips_through_toml() {
        let c = Catalogue::embedded_default().unwrap();
        let again =
            Catalogue::from_toml_str(&c.to_toml_string()).expect("rendered TOML must parse");
        assert_eq!(c.agents(), again.agents());
        assert_eq!(c.default_index(), again.default_index());
        assert_eq!(c.fast_path(), again.fast_path());
    }

    #[test]
    fn json_form_reads_back_the_same_catalogue() {
        let linear = "model = \"linear\"\ndefault_agent = \"g\"\n[fast_path]\nthreshold = 0.8\nnone_bias = -0.5\nunknown_word_weight = 1.46\nnone_keywords = [{ phrase = \"when did\", weight = 2.22 }]\n[[agents]]\nname = \"a\"\ndescription = \"A \\\"quoted\\\" one\"\ntarget = \"fa\"\nstream = true\nbias = -1.79\nkeywords = [\"x\", { phrase = \"y z\", weight = -0.0000001 }, { phrase = \"w\", weight = 3e20 }]\n[[agents]]\nname = \"g\"\ndescription = \"G\"\n";
        for c in [
            Catalogue::embedded_default().unwrap(),
            Catalogue::from_toml_str(linear).unwrap(),
        ] {
            let json = c.to_json_string();
            for again in [
                Catalogue::from_json_str(&json).expect("rendered JSON must parse"),
                Catalogue::from_str_any(&format!("  \n{json}")).unwrap(),
            ] {
                assert_eq!(c.agents(), again.agents());
                assert_eq!(c.default_index(), again.default_index());
                assert_eq!(c.fast_path(), again.fast_path());
                assert_eq!(c.linear(), again.linear());
                assert_eq!(c.none_keywords(), again.none_keywords());
                for a in c.agents() {
                    assert_eq!(c.streams(&a.name), again.streams(&a.name));
                }
            }
        }
        // The same checks as the TOML form, and TOML still read by `from_str_any`.
        let bad = Catalogue::from_json_str(
            r#"{"default_agent": "a", "agents": [{"name": "a", "description": "A", "keywords": ["x", "X"]}]}"#,
        );
        assert!(matches!(bad, Err(CatalogueError::DuplicateKeyword { .. })));
        let unknown =
            Catalogue::from_json_str(r#"{"default_agent": "a", "colour": 1, "agents": []}"#);
        assert!(matches!(unknown, Err(CatalogueError::Parse(m)) if m.contains("colour")));
        assert!(Catalogue::from_str_any(DEFAULT_ROUTES_TOML).is_ok());
    }

    #[test]
    fn stream_flag_is_read_checked_and_written_back() {
        let text = "default_agent = \"a\"\n[[agents]]\nname = \"a\"\ndescription = \"A\"\ntarget = \"fa\"\nstream = true\n[[agents]]\nname = \"b\"\ndescription = \"B\"\n";
        let c = Catalogue::from_toml_str(text).unwrap();
        assert!(c.streams("a"));
        assert!(!c.streams("b") && !c.streams("nobody"));
        let again = Catalogue::from_toml_str(&c.to_toml_string()).unwrap();
        assert!(again.streams("a") && !again.streams("b"));
        let bad = text.replace("stream = true", "stream = \"yes\"");
        assert!(matches!(
            Catalogue::from_toml_str(&bad),
            Err(CatalogueError::Parse(m)) if m.contains("stream")
        ));
        assert!(!Catalogue::embedded_default().unwrap().streams("cost"));
    }

    #[test]
    fn override_targets_sets_and_clears() {
        let mut c = Catalogue::embedded_default().unwrap();
        let map = HashMap::from([
            (
                "cost".to_owned(),
                "arn:aws:lambda:us-east-1:1:function:c:live".to_owned(),
            ),
            ("nope".to_owned(), "x".to_owned()),
            ("security".to_owned(), " ".to_owned()),
        ]);
        c.override_targets(&map);
        assert_eq!(
            c.agent("cost").unwrap().target.as_deref(),
            Some("arn:aws:lambda:us-east-1:1:function:c:live")
        );
        assert_eq!(c.agent("security").unwrap().target, None);
    }

    #[test]
    fn builder_rejects_problems() {
        let cases: Vec<(CatalogueBuilder, &str)> = vec![
            (CatalogueBuilder::new("general"), "lists no agents"),
            (
                {
                    let mut b = CatalogueBuilder::new("general");
                    b.agent(agent("Cost", &["x"])).agent(agent("general", &[]));
                    b
                },
                "is not valid",
            ),
            (
                {
                    let mut b = CatalogueBuilder::new("general");
                    b.agent(agent("general", &[])).fast_path(FastPathSettings {
                        margin: -1.0,
                        min_score: 1.0,
                    });
                    b
                },
                "fast_path.margin",
            ),
        ];
        for (b, needle) in cases {
            let err = b.build().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}
