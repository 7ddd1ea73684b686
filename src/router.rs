//! The cascade: fast path, then decision cache, then LLM, then the default agent.
//!
//! [`Router::route`] is the whole routing policy in one short function. Each tier lives in its
//! own module; this one only orders them and turns their outcomes into a [`Decision`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cache::DecisionCache;
use crate::catalogue::{Catalogue, CatalogueError};
use crate::fastpath::{FastOutcome, FastPath};
use crate::llm::{
    Classifier, LLM_CONFIDENCE, PromptError, Usage, parse_answer, render_system_prompt,
};

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
}

/// Settings of the LLM tier and its decision cache.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSettings {
    /// System prompt template (see [`crate::llm::render_system_prompt`]).
    pub prompt_template: String,
    /// Deadline for the whole tier, retries included. Default 2 s.
    pub deadline: Duration,
    /// Kept free of the caller's remaining time (e.g. the Lambda deadline) for the rest of the
    /// request. Default 250 ms.
    pub safety_margin: Duration,
    /// Entries the decision cache holds; 0 disables it. Default 10,000.
    pub cache_capacity: usize,
    /// How long a cached decision is reused. Default 5 minutes.
    pub cache_ttl: Duration,
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            prompt_template: crate::llm::DEFAULT_SYSTEM_PROMPT.to_owned(),
            deadline: Duration::from_secs(2),
            safety_margin: Duration::from_millis(250),
            cache_capacity: 10_000,
            cache_ttl: Duration::from_secs(300),
        }
    }
}

/// Below this much time left, the LLM is not asked at all.
const MIN_LLM_BUDGET: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct LlmTier {
    classifier: Arc<dyn Classifier>,
    system_prompt: String,
    settings: LlmSettings,
    cache: Option<DecisionCache>,
}

/// The routing engine: a catalogue and its compiled tiers. Share it behind an [`Arc`].
#[derive(Debug)]
pub struct Router {
    catalogue: Arc<Catalogue>,
    fast: FastPath,
    llm: Option<LlmTier>,
}

impl Router {
    /// Compiles the tiers for a validated catalogue.
    pub fn new(catalogue: Catalogue) -> Result<Router, CatalogueError> {
        let fast = FastPath::new(&catalogue)?;
        Ok(Router {
            catalogue: Arc::new(catalogue),
            fast,
            llm: None,
        })
    }

    /// Adds the decision cache and LLM tier behind `classifier`.
    pub fn with_llm(
        mut self,
        classifier: Arc<dyn Classifier>,
        settings: LlmSettings,
    ) -> Result<Router, PromptError> {
        let system_prompt = render_system_prompt(&settings.prompt_template, &self.catalogue)?;
        let cache = (settings.cache_capacity > 0)
            .then(|| DecisionCache::new(settings.cache_capacity, settings.cache_ttl));
        self.llm = Some(LlmTier {
            classifier,
            system_prompt,
            settings,
            cache,
        });
        Ok(self)
    }

    /// The rendered system prompt, when the LLM tier is on.
    pub fn system_prompt(&self) -> Option<&str> {
        self.llm.as_ref().map(|l| l.system_prompt.as_str())
    }

    /// The catalogue this router routes over.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The compiled fast path, for tools that evaluate it on its own.
    pub fn fast_path(&self) -> &FastPath {
        &self.fast
    }

    /// Decides which agent takes `query`, with no outer deadline but the LLM tier's own.
    pub async fn route(&self, query: &str) -> Decision {
        self.route_within(query, None).await
    }

    /// The cascade: fast path, decision cache, LLM, default agent. `remaining` is the caller's
    /// time left (e.g. until the Lambda deadline); the LLM gets at most that minus a margin.
    pub async fn route_within(&self, query: &str, remaining: Option<Duration>) -> Decision {
        let started = Instant::now();
        let mut decision = match (self.fast.decide(query), &self.llm) {
            (
                FastOutcome::Decided {
                    agent,
                    keywords,
                    score,
                    runner_up,
                    confidence,
                },
                _,
            ) => self.fast_decision(agent, &keywords, score, runner_up, confidence),
            (FastOutcome::Unrouted { why, .. }, None) => self.fallback(
                FallbackReason::LlmDisabled,
                format!("fast path did not decide ({why}); the LLM tier is off"),
            ),
            (FastOutcome::Unrouted { .. }, Some(llm)) => {
                let key = DecisionCache::key(query);
                match llm.cache.as_ref().and_then(|c| c.get(&key)) {
                    Some(hit) => self.cached_decision(llm, hit.agent, hit.age),
                    None => self.ask_llm(llm, query, key, remaining).await,
                }
            }
        };
        decision.timings_us.route = micros(started);
        decision
    }

    /// Tier 3: one model call under the deadline, its answer checked against the agent names.
    async fn ask_llm(
        &self,
        llm: &LlmTier,
        query: &str,
        key: String,
        remaining: Option<Duration>,
    ) -> Decision {
        let budget = match remaining {
            Some(r) => llm
                .settings
                .deadline
                .min(r.saturating_sub(llm.settings.safety_margin)),
            None => llm.settings.deadline,
        };
        if budget < MIN_LLM_BUDGET {
            return self.fallback(
                FallbackReason::LlmTimeout,
                "no time left before the deadline to ask the LLM".into(),
            );
        }
        let started = Instant::now();
        let result = llm
            .classifier
            .classify(&llm.system_prompt, query, budget)
            .await;
        let llm_us = micros(started);
        let mut decision = match result {
            Ok(answer) => match parse_answer(&answer.text, &self.catalogue) {
                Some(agent) => {
                    if let Some(cache) = &llm.cache {
                        cache.insert(key, agent);
                    }
                    Decision {
                        agent: self.catalogue.agents()[agent].name.clone(),
                        routing_method: RoutingMethod::Llm,
                        reason: "the LLM chose this agent".into(),
                        fallback_reason: None,
                        matched: Vec::new(),
                        confidence: LLM_CONFIDENCE,
                        timings_us: Timings::default(),
                        model_id: None,
                        usage: Some(answer.usage),
                    }
                }
                None => {
                    tracing::warn!(
                        answer_len = answer.text.len(),
                        "LLM answer is not an agent name"
                    );
                    tracing::debug!(answer = %answer.text, "unrecognised LLM answer");
                    let mut d = self.fallback(
                        FallbackReason::LlmUnrecognisedAnswer,
                        "the LLM's answer is not one of the agent names".into(),
                    );
                    d.usage = Some(answer.usage);
                    d
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, budget_ms = budget.as_millis() as u64, "LLM tier failed open");
                self.fallback(e.fallback_reason(), format!("LLM tier failed open: {e}"))
            }
        };
        decision.model_id = Some(llm.classifier.model_id().to_owned());
        decision.timings_us.llm = Some(llm_us);
        decision
    }

    fn cached_decision(&self, llm: &LlmTier, agent: usize, age: Duration) -> Decision {
        Decision {
            agent: self.catalogue.agents()[agent].name.clone(),
            routing_method: RoutingMethod::Cache,
            reason: format!(
                "the LLM chose this agent for the same query {}s ago",
                age.as_secs()
            ),
            fallback_reason: None,
            matched: Vec::new(),
            confidence: LLM_CONFIDENCE,
            timings_us: Timings::default(),
            model_id: Some(llm.classifier.model_id().to_owned()),
            usage: None,
        }
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
            model_id: None,
            usage: None,
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
            model_id: None,
            usage: None,
        }
    }
}

/// Microseconds since `started`, saturating.
pub(crate) fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
