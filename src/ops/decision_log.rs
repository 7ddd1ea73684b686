//! The decision log: with `ROUTER_DECISION_LOG=on`, one JSON line per routed request on stdout
//! (in Lambda, CloudWatch Logs keeps it), which `keywords` and `eval` read directly: the LLM's
//! answer, when the LLM was asked (a real LLM decision or a sampled second opinion), is the label.
//! "Grow the fast path from production" is: export the lines, `keywords --data`, review, deploy.
//!
//! A line: `{"kind": "decision", "ts": <epoch ms>, "query", "agent", "routing_method",
//! "confidence", "llm_agent"?, "llm_source"?: "llm" | "shadow", "llm_context"?: true, "session"?:
//! <16-hex tag>}`; `llm_context` marks an LLM answer given with a conversation's agent in the
//! prompt, which `keywords` and `eval` do not take as a label. It holds
//! the query (that is its purpose, and why it is off by default) but never a session id: only its
//! tag.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::routing::{Decision, RoutingMethod, SecondOpinion};

/// The `kind` of a decision-log line, which `keywords` and `eval` recognise.
pub const KIND: &str = "decision";

/// One decision-log line.
#[derive(Debug, Serialize)]
pub struct DecisionLine<'a> {
    /// Always [`KIND`].
    pub kind: &'static str,
    /// When, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// The query as received.
    pub query: &'a str,
    /// The agent the router chose.
    pub agent: &'a str,
    /// The tier that decided.
    pub routing_method: RoutingMethod,
    /// The deciding tier's confidence.
    pub confidence: f32,
    /// The LLM's answer, when it was asked and named an agent: the label for `keywords`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_agent: Option<&'a str>,
    /// `llm` (the LLM decided, or its cache) or `shadow` (a sampled second opinion).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_source: Option<&'static str>,
    /// A tag of the session id (never the id itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The LLM was asked inside a conversation (told the session's agent): its answer depends
    /// on more than the query, so `keywords` does not learn from it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub llm_context: bool,
}

/// The line for a decision; `shadow` is the second opinion, when one was asked.
pub fn line<'a>(
    query: &'a str,
    decision: &'a Decision,
    shadow: Option<&'a SecondOpinion>,
    session: Option<&str>,
) -> DecisionLine<'a> {
    let (llm_agent, llm_source) = match (decision.routing_method, shadow) {
        (RoutingMethod::Llm | RoutingMethod::Cache, _) => {
            (Some(decision.agent.as_str()), Some("llm"))
        }
        (_, Some(SecondOpinion::Agent(a))) => (Some(a.as_str()), Some("shadow")),
        _ => (None, None),
    };
    DecisionLine {
        kind: KIND,
        ts: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        query,
        agent: &decision.agent,
        routing_method: decision.routing_method,
        confidence: decision.confidence,
        llm_agent,
        llm_source,
        session: session.map(crate::sessions::session_tag),
        llm_context: llm_source == Some("llm")
            && decision
                .session
                .as_ref()
                .is_some_and(|s| s.state == crate::routing::SessionStatus::Continued),
    }
}

/// Writes one line to stdout; a write error is ignored (the log must not fail a request).
pub fn write(line: &DecisionLine<'_>) {
    if let Ok(mut text) = serde_json::to_string(line) {
        text.push('\n');
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}
