//! The cascade: fast path, then decision cache, then LLM, then the default agent.
//!
//! [`Router::route`] is the whole routing policy in one short function. Each tier lives in its
//! own module; this one only orders them and turns their outcomes into a [`Decision`].

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::catalogue::{Catalogue, CatalogueError};
use crate::fastpath::{FastOutcome, FastPath};

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
}

impl RoutingMethod {
    /// The wire name (`"fast"`, `"cache"`, `"llm"`, `"default"`).
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMethod::Fast => "fast",
            RoutingMethod::Cache => "cache",
            RoutingMethod::Llm => "llm",
            RoutingMethod::Default => "default",
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
}

/// The routing engine: a catalogue and its compiled tiers. Cheap to share behind an [`Arc`].
#[derive(Debug, Clone)]
pub struct Router {
    catalogue: Arc<Catalogue>,
    fast: FastPath,
}

impl Router {
    /// Compiles the tiers for a validated catalogue.
    pub fn new(catalogue: Catalogue) -> Result<Router, CatalogueError> {
        let fast = FastPath::new(&catalogue)?;
        Ok(Router {
            catalogue: Arc::new(catalogue),
            fast,
        })
    }

    /// The catalogue this router routes over.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The compiled fast path, for tools that evaluate it on its own.
    pub fn fast_path(&self) -> &FastPath {
        &self.fast
    }

    /// Decides which agent takes `query`: fast path, then the later tiers, then the default.
    pub async fn route(&self, query: &str) -> Decision {
        let started = Instant::now();
        let mut decision = match self.fast.decide(query) {
            FastOutcome::Decided {
                agent,
                keywords,
                score,
                runner_up,
                confidence,
            } => self.fast_decision(agent, &keywords, score, runner_up, confidence),
            FastOutcome::Unrouted { why, .. } => self.fallback(
                FallbackReason::LlmDisabled,
                format!("fast path did not decide ({why}); no LLM tier is configured"),
            ),
        };
        decision.timings_us.route = micros(started);
        decision
    }

    fn fast_decision(
        &self,
        agent: usize,
        keywords: &[usize],
        score: f32,
        runner_up: f32,
        confidence: f32,
    ) -> Decision {
        let a = &self.catalogue.agents()[agent];
        let matched: Vec<String> = keywords
            .iter()
            .map(|&k| a.keywords[k].text.clone())
            .collect();
        Decision {
            agent: a.name.clone(),
            routing_method: RoutingMethod::Fast,
            reason: format!(
                "keywords {} scored {score} against runner-up {runner_up}",
                matched.join(", ")
            ),
            fallback_reason: None,
            matched,
            confidence,
            timings_us: Timings::default(),
        }
    }

    /// The default agent's decision, with the reason no tier decided.
    fn fallback(&self, why: FallbackReason, reason: String) -> Decision {
        Decision {
            agent: self.catalogue.default_agent().name.clone(),
            routing_method: RoutingMethod::Default,
            reason,
            fallback_reason: Some(why),
            matched: Vec::new(),
            confidence: 0.0,
            timings_us: Timings::default(),
        }
    }
}

/// Microseconds since `started`, saturating.
pub(crate) fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
