//! What the router answers: the [`Decision`] and its typed parts.

use serde::Serialize;

use super::session::Conversation;
use crate::ports::{LlmError, Usage};

/// Which tier of the cascade decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMethod {
    /// The keyword automaton decided.
    Fast,
    /// A cached LLM decision was reused.
    Cache,
    /// The LLM classified the query.
    Llm,
    /// No tier decided; the default agent took the query.
    Default,
    /// The conversation's agent kept the turn (no decisive evidence for another one).
    Session,
}

impl RoutingMethod {
    /// The wire name (`"fast"`, `"cache"`, `"llm"`, `"default"`).
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMethod::Fast => "fast",
            RoutingMethod::Cache => "cache",
            RoutingMethod::Llm => "llm",
            RoutingMethod::Default => "default",
            RoutingMethod::Session => "session",
        }
    }
}

/// Why the default agent took a query (the `fallback_reason` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// The fast path did not decide and no LLM tier is configured.
    LlmDisabled,
    /// The LLM did not answer within the deadline.
    LlmTimeout,
    /// Bedrock throttled the call.
    LlmThrottled,
    /// Bedrock answered with an error (5xx, validation, access denied...).
    LlmError,
    /// Bedrock could not be reached or no credentials/region were found.
    LlmUnavailable,
    /// The LLM's answer was not exactly one of the agents' names.
    LlmUnrecognisedAnswer,
}

impl FallbackReason {
    /// The wire name, e.g. `"llm_timeout"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::LlmDisabled => "llm_disabled",
            FallbackReason::LlmTimeout => "llm_timeout",
            FallbackReason::LlmThrottled => "llm_throttled",
            FallbackReason::LlmError => "llm_error",
            FallbackReason::LlmUnavailable => "llm_unavailable",
            FallbackReason::LlmUnrecognisedAnswer => "llm_unrecognised_answer",
        }
    }
}

/// Time spent per tier, in microseconds (the `timings_us` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// The whole cascade.
    pub route: u64,
    /// The LLM call, when one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<u64>,
    /// The agent's invocation (`POST /query`), when one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<u64>,
}

/// The router's answer for one query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The chosen agent's name.
    pub agent: String,
    /// The tier that decided.
    pub routing_method: RoutingMethod,
    /// A short human-readable account of why.
    pub reason: String,
    /// Set when the default agent took the query, saying why no tier decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<FallbackReason>,
    /// The keywords that decided (fast path only; empty otherwise).
    pub matched: Vec<String>,
    /// 0..1, how sure the deciding tier is (0 for the default agent).
    pub confidence: f32,
    /// Time spent per tier.
    pub timings_us: Timings,
    /// The model asked, for `llm` and `cache` decisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Tokens the LLM call used (`llm` decisions, and fallbacks after an answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The conversation, when the request carried a `session_id` and sessions are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionInfo>,
}

impl Decision {
    /// Marks the decision as a turn of conversation `c` (state `continued`).
    pub(crate) fn in_session(mut self, c: &Conversation<'_>) -> Decision {
        self.session = Some(SessionInfo {
            state: SessionStatus::Continued,
            agent: Some(c.agent.to_owned()),
            turn: c.turns.saturating_add(1),
            write_failed: false,
        });
        self
    }
}

/// The conversation a decision belongs to (the `session` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// What the router knew of the conversation.
    pub state: SessionStatus,
    /// The agent that took the conversation's previous turn (`continued` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// This turn's number in the conversation (1 for a first turn; 0 when the store could not
    /// say).
    pub turn: u32,
    /// Whether saving this turn failed (for the logs and metrics; not sent to the client).
    #[serde(skip)]
    pub write_failed: bool,
}

/// What the router knew of a turn's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// No earlier turn (or the session was idle past its TTL): routed as a first turn.
    New,
    /// An earlier turn went to `agent`; the session policy applied.
    Continued,
    /// The store did not answer in time or failed: routed without the session (fail open).
    Unavailable,
}

impl SessionStatus {
    /// The wire name, e.g. `"unavailable"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::New => "new",
            SessionStatus::Continued => "continued",
            SessionStatus::Unavailable => "unavailable",
        }
    }
}

impl FallbackReason {
    /// A short, stable sentence for the response's `reason`: what happened, never the
    /// underlying error's text (which may name hosts or internal types; the log has it).
    pub fn explanation(self) -> &'static str {
        match self {
            FallbackReason::LlmDisabled => "the LLM tier is off",
            FallbackReason::LlmTimeout => "the LLM did not answer within the deadline",
            FallbackReason::LlmThrottled => "the model service throttled the call",
            FallbackReason::LlmError => "the model service answered with an error",
            FallbackReason::LlmUnavailable => {
                "the model service could not be reached (network, region or credentials)"
            }
            FallbackReason::LlmUnrecognisedAnswer => {
                "the LLM's answer is not one of the agent names"
            }
        }
    }
}

impl From<&LlmError> for FallbackReason {
    fn from(e: &LlmError) -> FallbackReason {
        match e {
            LlmError::Timeout => FallbackReason::LlmTimeout,
            LlmError::Throttled(_) => FallbackReason::LlmThrottled,
            LlmError::Service(_) => FallbackReason::LlmError,
            LlmError::Unavailable(_) => FallbackReason::LlmUnavailable,
        }
    }
}
