//! The cascade: fast path, then decision cache, then LLM, then the default agent.
//!
//! [`Router::route`] is the whole routing policy in one short function. Each tier lives in its
//! own module; this one only orders them and turns their outcomes into a [`Decision`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cache::DecisionCache;
use super::catalogue::{Catalogue, CatalogueError};
use super::decision::{Decision, FallbackReason, RoutingMethod, Timings};
use super::fastpath::{FastOutcome, FastPath};
use super::prompt::{LLM_CONFIDENCE, PromptError, parse_answer, render_system_prompt};
use super::session::{Conversation, Follow, SessionPolicy, Turn};
use crate::ports::Classifier;

/// Settings of the LLM tier and its decision cache.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSettings {
    /// System prompt template (see [`render_system_prompt`]).
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
            prompt_template: super::prompt::DEFAULT_SYSTEM_PROMPT.to_owned(),
            deadline: Duration::from_secs(2),
            safety_margin: Duration::from_millis(250),
            cache_capacity: 10_000,
            cache_ttl: Duration::from_secs(300),
        }
    }
}

/// Longest error detail written to a log line, in bytes.
const MAX_LOGGED_ERROR_BYTES: usize = 300;

/// `text` on one line (control characters become spaces), cut to at most `max` bytes.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cut = super::normalize::truncate_bytes(&flat, max);
    if cut.len() < flat.len() {
        format!("{cut}…")
    } else {
        cut.to_owned()
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
    /// When the model service last throttled a call (tokio time), for second opinions to stay
    /// out of its way.
    throttled_at: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// The LLM's answer for a query another tier already decided (a sampled second opinion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondOpinion {
    /// The LLM named this agent (allow-listed, like a real LLM decision).
    Agent(String),
    /// The LLM's answer named no agent.
    Unrecognised,
    /// The call failed or timed out.
    Failed(FallbackReason),
    /// Not asked: no LLM tier, or the model service throttled a call within the last minute.
    Skipped,
}

/// How long after a throttle second opinions stay off, so they never add to it.
const SHADOW_THROTTLE_BACKOFF: Duration = Duration::from_secs(60);

/// The routing engine: a catalogue and its compiled tiers. Share it behind an [`Arc`].
#[derive(Debug)]
pub struct Router {
    catalogue: Arc<Catalogue>,
    fast: FastPath,
    llm: Option<LlmTier>,
    sessions: SessionPolicy,
}

impl Router {
    /// Compiles the tiers for a validated catalogue.
    pub fn new(catalogue: Catalogue) -> Result<Router, CatalogueError> {
        let fast = FastPath::new(&catalogue)?;
        Ok(Router {
            catalogue: Arc::new(catalogue),
            fast,
            llm: None,
            sessions: SessionPolicy::default(),
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
            throttled_at: std::sync::Mutex::new(None),
        });
        Ok(self)
    }

    /// Sets how a conversation's agent weighs against the fast path's evidence.
    pub fn with_session_policy(mut self, policy: SessionPolicy) -> Router {
        self.sessions = policy;
        self
    }

    /// Asks the LLM tier about `query` as if no tier had decided, with the same prompt,
    /// deadline and allow-list, without the decision cache: a second opinion on a decision
    /// another tier made. Skipped while the model service throttles (a minute after the last
    /// throttle), so sampling never makes throttling worse.
    pub async fn second_opinion(&self, query: &str) -> SecondOpinion {
        let Some(llm) = &self.llm else {
            return SecondOpinion::Skipped;
        };
        let recently_throttled = llm
            .throttled_at
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|t| t.elapsed() < SHADOW_THROTTLE_BACKOFF);
        if recently_throttled {
            return SecondOpinion::Skipped;
        }
        let result = llm
            .classifier
            .classify(&llm.system_prompt, query, llm.settings.deadline)
            .await;
        match result {
            Ok(answer) => match parse_answer(&answer.text, &self.catalogue) {
                Some(agent) => SecondOpinion::Agent(self.catalogue.agents()[agent].name.clone()),
                None => SecondOpinion::Unrecognised,
            },
            Err(e) => {
                self.note_throttle(llm, &e);
                SecondOpinion::Failed(FallbackReason::from(&e))
            }
        }
    }

    fn note_throttle(&self, llm: &LlmTier, e: &crate::ports::LlmError) {
        if let (crate::ports::LlmError::Throttled(_), Ok(mut t)) = (e, llm.throttled_at.lock()) {
            *t = Some(tokio::time::Instant::now());
        }
    }

    /// Why the fast path decides what it does for `query`: every agent's evidence and the
    /// thresholds (the `explain` flag; the cascade itself does not compute it).
    pub fn explain(&self, query: &str) -> super::explain::Explanation {
        super::explain::explain(&self.fast, &self.catalogue, query)
    }

    /// Whether the LLM tier is on.
    pub fn has_llm(&self) -> bool {
        self.llm.is_some()
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
        self.route_turn(query, None, remaining).await
    }

    /// Routes one turn of a conversation whose last turn went to `conversation.agent` (or a
    /// first turn, with `None`): the session's agent is a prior (see [`SessionPolicy`]).
    pub async fn route_turn(
        &self,
        query: &str,
        conversation: Option<&Conversation<'_>>,
        remaining: Option<Duration>,
    ) -> Decision {
        let started = Instant::now();
        let scan = self.fast.scan(query);
        let fast = self.fast.judge(&scan);
        let turn = conversation.and_then(|c| {
            let agent = self.catalogue.index_of(c.agent)?;
            Some((
                c,
                agent,
                self.sessions.turn(
                    &self.fast,
                    &scan,
                    &fast,
                    agent,
                    self.catalogue.default_index(),
                ),
            ))
        });
        let mut decision = match turn {
            None => self.stateless(fast, query, remaining, None).await,
            Some((c, _, Turn::Decided)) => self
                .stateless(fast, query, remaining, None)
                .await
                .in_session(c),
            Some((c, _, Turn::Contested)) => self
                .stateless(fast, query, remaining, Some(c))
                .await
                .in_session(c),
            Some((c, agent, Turn::Follow(why))) => self.session_decision(c, agent, why),
        };
        decision.timings_us.route = micros(started);
        decision
    }

    /// The cascade without a conversation: fast path, cache, LLM, default agent.
    /// `context`: the conversation the LLM is told about, when the turn is contested.
    async fn stateless(
        &self,
        fast: FastOutcome,
        query: &str,
        remaining: Option<Duration>,
        context: Option<&Conversation<'_>>,
    ) -> Decision {
        match (fast, &self.llm) {
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
                // With a conversation the answer depends on its agent, so the key carries it.
                let key = match context {
                    None => DecisionCache::key(query),
                    Some(c) => format!("{}|{}", c.agent, DecisionCache::key(query)),
                };
                match llm.cache.as_ref().and_then(|c| c.get(&key)) {
                    Some(hit) => self.cached_decision(llm, hit.agent, hit.age),
                    None => self.ask_llm(llm, query, key, remaining, context).await,
                }
            }
        }
    }

    /// The session's agent keeps the turn.
    fn session_decision(&self, c: &Conversation<'_>, agent: usize, why: Follow) -> Decision {
        let reason = match why {
            Follow::NoEvidence => {
                "no decisive keyword: the conversation stays with its agent".to_owned()
            }
        };
        Decision {
            agent: self.catalogue.agents()[agent].name.clone(),
            routing_method: RoutingMethod::Session,
            reason,
            fallback_reason: None,
            matched: Vec::new(),
            confidence: self.sessions.follow_confidence,
            timings_us: Timings::default(),
            model_id: None,
            usage: None,
            session: None,
        }
        .in_session(c)
    }

    /// Tier 3: one model call under the deadline, its answer checked against the agent names.
    async fn ask_llm(
        &self,
        llm: &LlmTier,
        query: &str,
        key: String,
        remaining: Option<Duration>,
        context: Option<&Conversation<'_>>,
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
        // Inside a conversation the model learns the session's agent (trusted: a catalogue name)
        // in the system prompt; the previous user turn, when kept, goes with the query in the
        // user message, never in the system prompt.
        let (system, message) = match context {
            None => (
                Cow::Borrowed(llm.system_prompt.as_str()),
                Cow::Borrowed(query),
            ),
            Some(c) => (
                Cow::Owned(format!(
                    "{}\nThe conversation's previous turn went to {}: answer {} unless this message is clearly for another agent.",
                    llm.system_prompt, c.agent, c.agent
                )),
                match c.last_query {
                    Some(previous) => {
                        Cow::Owned(format!("Previous message: {previous}\nMessage: {query}"))
                    }
                    None => Cow::Borrowed(query),
                },
            ),
        };
        let started = Instant::now();
        let result = llm.classifier.classify(&system, &message, budget).await;
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
                        session: None,
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
                self.note_throttle(llm, &e);
                // The log gets the detail, on one bounded line; the client a stable sentence.
                let why = FallbackReason::from(&e);
                tracing::warn!(
                    fallback_reason = why.as_str(),
                    error = %one_line(&e.to_string(), MAX_LOGGED_ERROR_BYTES),
                    budget_ms = budget.as_millis() as u64,
                    "LLM tier failed open"
                );
                self.fallback(
                    why,
                    format!("the LLM tier failed open: {}", why.explanation()),
                )
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
            session: None,
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
            session: None,
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
            session: None,
        }
    }
}

/// Microseconds since `started`, saturating.
pub(crate) fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
