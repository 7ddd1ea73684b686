//! Why the fast path decided what it did: every agent with evidence, its score (and probability
//! in the linear form), the keywords that gave it, and the thresholds that applied. Computed only
//! when asked for (`"explain": true`), so the hot path pays nothing for it.

use serde::Serialize;

use super::catalogue::Catalogue;
use super::fastpath::{FastOutcome, FastPath};

/// The fast path's evidence for one query (the `explain` object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// `decided`, or why the fast path left the query to the next tier (`no_keyword_match`,
    /// `below_min_score`, `ambiguous`, `low_confidence`).
    pub fast_path: &'static str,
    /// The thresholds that applied.
    pub thresholds: Thresholds,
    /// Every agent with a matched keyword, or a non-zero score, best first.
    pub agents: Vec<AgentEvidence>,
}

/// The thresholds of the catalogue's form.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum Thresholds {
    /// Sum of keyword weights: the winner needs `min_score` and a lead of `margin`.
    Additive {
        /// Lead over the runner-up.
        margin: f32,
        /// Least winning score.
        min_score: f32,
    },
    /// Linear model: the winner's softmax probability needs `threshold`.
    Linear {
        /// Least winning probability.
        threshold: f32,
        /// Score of the out-of-scope class.
        none_bias: f32,
    },
}

/// One agent's evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentEvidence {
    /// The agent.
    pub agent: String,
    /// Its score: the sum of its matched keywords' weights (plus its bias in the linear form).
    pub score: f32,
    /// Linear form: its softmax probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f32>,
    /// The keywords that gave it, with their weights, in query order.
    pub keywords: Vec<KeywordWeight>,
}

/// A matched keyword and its weight for one agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeywordWeight {
    /// The keyword as written in the routes file.
    pub keyword: String,
    /// Its weight for the agent (negative weights push away, in the linear form).
    pub weight: f32,
}

/// Explains the fast path's verdict on `query`.
pub(crate) fn explain(fast: &FastPath, catalogue: &Catalogue, query: &str) -> Explanation {
    let scan = fast.scan(query);
    let outcome = fast.judge(&scan);
    let (additive, linear) = fast.thresholds();
    let thresholds = match linear {
        Some(l) => Thresholds::Linear {
            threshold: l.threshold,
            none_bias: l.none_bias,
        },
        None => Thresholds::Additive {
            margin: additive.margin,
            min_score: additive.min_score,
        },
    };
    let agents = catalogue.agents();
    let mut evidence: Vec<AgentEvidence> = (0..agents.len())
        .filter_map(|i| {
            let keywords: Vec<KeywordWeight> = scan
                .hits
                .iter()
                .filter(|h| h.agent == i)
                .map(|h| KeywordWeight {
                    keyword: agents[i].keywords[h.keyword].text.clone(),
                    weight: h.weight,
                })
                .collect();
            let score = scan.scores[i];
            if keywords.is_empty() && (score == 0.0 || linear.is_some()) {
                return None; // no evidence: a linear agent's bias alone is not shown
            }
            Some(AgentEvidence {
                agent: agents[i].name.clone(),
                score,
                probability: fast.agent_probability(&scan, i),
                keywords,
            })
        })
        .collect();
    evidence.sort_by(|a, b| b.score.total_cmp(&a.score));
    Explanation {
        fast_path: match outcome {
            FastOutcome::Decided { .. } => "decided",
            FastOutcome::Unrouted { why, .. } => why.as_str(),
        },
        thresholds,
        agents: evidence,
    }
}

impl Explanation {
    /// The explanation for a person: one line per agent, then the thresholds.
    pub fn to_text(&self) -> String {
        let mut out = format!("fast path: {}\n", self.fast_path);
        if self.agents.is_empty() {
            out.push_str("  no keyword of any agent matched\n");
        }
        for a in &self.agents {
            let p = a
                .probability
                .map(|p| format!("  p={:.3}", p))
                .unwrap_or_default();
            let kws: Vec<String> = a
                .keywords
                .iter()
                .map(|k| format!("{} ({:+})", k.keyword, k.weight))
                .collect();
            out.push_str(&format!(
                "  {:<16} score {:>7.3}{p}  {}\n",
                a.agent,
                a.score,
                kws.join(", ")
            ));
        }
        out.push_str(&match self.thresholds {
            Thresholds::Additive { margin, min_score } => format!(
                "thresholds: min_score {min_score}, margin {margin} (the winner needs both)\n"
            ),
            Thresholds::Linear {
                threshold,
                none_bias,
            } => format!(
                "thresholds: probability {threshold} (out-of-scope class score {none_bias})\n"
            ),
        });
        out
    }
}
