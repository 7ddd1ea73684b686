//! The HTTP API, independent of how requests arrive (Lambda event or local socket).
//!
//! Adapters turn their request into an [`ApiRequest`] and send the [`http::Response`] back.
//! Endpoints: `POST /route`, `GET /route?q=`, `POST /query`, `GET /health`, and `GET /stats` where
//! counters are kept (the local server). Paths are matched on
//! their last segment, so API Gateway stage prefixes and custom-domain base paths need no setup.
//! `POST /query` with `Accept: text/event-stream` answers with Server-Sent Events as the agent
//! writes ([`Api::respond`], the [`stream`] module).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Serialize;

use crate::dispatch::{Dispatcher, agent_payload};
use crate::ops::metrics::MetricsConfig;
use crate::ops::stats::Stats;
use crate::routing::SecondOpinion;
use crate::routing::{Decision, Router, micros, truncate_bytes};
use crate::routing::{SessionInfo, SessionStatus};
use crate::sessions::{Loaded, Sessions, session_tag};
use crate::shadow::{ShadowResult, Shadows};

mod error;
mod input;
mod lambda;
mod server;
pub mod stream;

pub use error::{ApiError, error_response};
pub use input::{
    MAX_BODY_BYTES, MAX_QUERY_BYTES, MAX_REQUEST_ID_BYTES, MAX_SESSION_ID_BYTES, RouteInput,
    caller_request_id, parse_body, parse_query_string,
};
pub use lambda::{LambdaStreaming, run as run_lambda, to_api_request};
pub use server::{bind, serve};
pub use stream::{ReplyBody, wants_event_stream};

use error::{error_body, json_response};

/// A request as the API sees it, whatever transport carried it.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// URL path (stage prefixes allowed).
    pub path: String,
    /// Decoded query-string pairs, repeated keys kept.
    pub query: Vec<(String, String)>,
    /// Raw body bytes (already base64-decoded by the Lambda adapter).
    pub body: Bytes,
    /// Id reported in the response and logs (Lambda's request id, or a local one).
    pub request_id: String,
    /// Time left before the caller's deadline (the Lambda invocation's), if it has one.
    pub remaining: Option<std::time::Duration>,
}

/// The endpoints, by the last segment of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Route,
    Query,
    Health,
    /// The local server's counters (`GET /stats`); 404 where stats are not kept.
    Stats,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Route => "route",
            Endpoint::Query => "query",
            Endpoint::Health => "health",
            Endpoint::Stats => "stats",
        }
    }
}

/// The HTTP API over a [`Router`] (and, for `/query`, a [`Dispatcher`]).
#[derive(Debug, Clone)]
pub struct Api {
    router: Arc<Router>,
    dispatcher: Option<Arc<Dispatcher>>,
    metrics: MetricsConfig,
    sessions: Option<Sessions>,
    shadows: Option<Arc<Shadows>>,
    decision_log: bool,
    stats: Option<Arc<Stats>>,
}

#[derive(Serialize)]
struct DecisionBody<'a> {
    #[serde(flatten)]
    decision: &'a Decision,
    request_id: &'a str,
    /// `/query` only: whether the agent was invoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatched: Option<bool>,
    /// The fast path's evidence, when the request asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<crate::routing::Explanation>,
    /// `/query` only, when the agent was not invoked: why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_dispatched: Option<NotDispatched>,
    /// `/query` only: the agent's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
}

/// Why `POST /query` answered with the decision only (the `not_dispatched` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotDispatched {
    /// The caller sent `"dispatch": false`.
    NotRequested,
    /// The chosen agent has no `target`: it is route-only.
    RouteOnlyAgent,
    /// Dispatch is off in this process (`ROUTER_DISPATCH=off`, or no AWS configuration locally).
    DispatchOff,
}

/// What one request produced: the response, and the decision when routing happened.
type Outcome = (
    Result<(StatusCode, String), ApiError>,
    Option<Decision>,
    Option<ShadowResult>,
);

/// A request's answer: whole, or (a streamed `POST /query`) a stream to start.
enum Step {
    Whole(Outcome),
    Stream(stream::StreamPlan),
}

impl Api {
    /// Wraps a router; `/query` answers with the decision only until a dispatcher is added.
    pub fn new(router: Arc<Router>) -> Api {
        Api {
            router,
            dispatcher: None,
            metrics: MetricsConfig::Off,
            sessions: None,
            shadows: None,
            decision_log: false,
            stats: None,
        }
    }

    /// Asks the LLM for second opinions on a sample of the fast path's decisions.
    pub fn with_shadows(mut self, shadows: Shadows) -> Api {
        self.shadows = Some(Arc::new(shadows));
        self
    }

    /// Writes one decision-log line per routed request on stdout (`ROUTER_DECISION_LOG=on`).
    pub fn with_decision_log(mut self, on: bool) -> Api {
        self.decision_log = on;
        self
    }

    /// Keeps counters and latency percentiles, served at `GET /stats` (the local server).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Api {
        self.stats = Some(stats);
        self
    }

    /// Routes requests that carry a `session_id` within their conversation, kept in `sessions`.
    pub fn with_sessions(mut self, sessions: Sessions) -> Api {
        self.sessions = Some(sessions);
        self
    }

    /// Writes one CloudWatch EMF line per request as `metrics` says (off by default).
    pub fn with_metrics(mut self, metrics: MetricsConfig) -> Api {
        self.metrics = metrics;
        self
    }

    /// Lets `POST /query` invoke the chosen agent through `dispatcher`.
    pub fn with_dispatcher(mut self, dispatcher: Arc<Dispatcher>) -> Api {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Answers one request. Never fails: every problem becomes a JSON error response. Never
    /// streams: this is [`Api::respond`] without the event-stream opt-in.
    pub async fn handle(&self, req: ApiRequest) -> Response<String> {
        let started = Instant::now();
        match self.answer(&req, false, started).await {
            Step::Whole(outcome) => self.whole(&req, started, outcome),
            // Not reached without the opt-in; if it were, the whole stream is the body.
            Step::Stream(plan) => {
                let (parts, body) = stream::start(plan).into_parts();
                Response::from_parts(parts, body.collect().await)
            }
        }
    }

    /// Answers one request; with `events` (the caller sent `Accept: text/event-stream`, see
    /// [`wants_event_stream`]), a `POST /query` that gets past validation is answered with
    /// Server-Sent Events as the agent writes ([`stream`]). Everything else is answered as
    /// [`Api::handle`] does.
    pub async fn respond(&self, req: ApiRequest, events: bool) -> Response<ReplyBody> {
        let started = Instant::now();
        match self.answer(&req, events, started).await {
            Step::Whole(outcome) => self.whole(&req, started, outcome).map(ReplyBody::full),
            Step::Stream(plan) => stream::start(plan),
        }
    }

    /// The response for a whole answer, logged and counted.
    fn whole(&self, req: &ApiRequest, started: Instant, outcome: Outcome) -> Response<String> {
        let (result, decision, shadow) = outcome;
        let mut response = match result {
            Ok((status, body)) => json_response(status, body, &req.request_id),
            Err(err) => error_response(&err, &req.request_id),
        };
        if req.method == Method::HEAD {
            // The GET answer's headers, its length, and no body.
            let length = response.body().len();
            response.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(length),
            );
            response.body_mut().clear();
        }
        record_request(
            &self.metrics,
            self.stats.as_deref(),
            &Answered {
                request_id: &req.request_id,
                method: req.method.as_str(),
                path: &req.path,
                status: response.status().as_u16(),
                total_us: micros(started),
                decision: decision.as_ref(),
                shadow: shadow.as_ref(),
                ended: None,
            },
        );
        response
    }

    async fn answer(&self, req: &ApiRequest, events: bool, started: Instant) -> Step {
        let endpoint = match endpoint(&req.path) {
            Ok(e) => e,
            Err(e) => return Step::Whole((Err(e), None, None)),
        };
        // HEAD is GET without the body (HTTP semantics); the transports drop the body.
        let method = if req.method == Method::HEAD {
            &Method::GET
        } else {
            &req.method
        };
        let input = match (endpoint, method) {
            (Endpoint::Health, &Method::GET) => {
                return Step::Whole((
                    Ok((StatusCode::OK, r#"{"status":"ok"}"#.to_owned())),
                    None,
                    None,
                ));
            }
            (Endpoint::Stats, _) if self.stats.is_none() => Err(ApiError::NotFound(
                truncate_bytes(&req.path, 200).to_owned(),
            )),
            (Endpoint::Stats, &Method::GET) => match &self.stats {
                Some(stats) => {
                    return Step::Whole((
                        Ok((StatusCode::OK, stats.snapshot().to_string())),
                        None,
                        None,
                    ));
                }
                None => Err(ApiError::NotFound(
                    truncate_bytes(&req.path, 200).to_owned(),
                )),
            },
            (Endpoint::Route, &Method::GET) => parse_query_string(&req.query),
            (Endpoint::Route | Endpoint::Query, &Method::POST) => parse_body(&req.body),
            (ep, m) => {
                let (endpoint, allow) = match ep {
                    Endpoint::Route => ("route", "GET, HEAD, POST"),
                    Endpoint::Query => ("query", "POST"),
                    Endpoint::Health | Endpoint::Stats => (ep.name(), "GET, HEAD"),
                };
                Err(ApiError::MethodNotAllowed {
                    method: m.to_string(),
                    endpoint,
                    allow,
                })
            }
        };
        let input = match input {
            Ok(i) => i,
            Err(e) => return Step::Whole((Err(e), None, None)),
        };
        let request_id = req.request_id.as_str();
        tracing::debug!(request_id, query = %input.query, "query");
        let (mut decision, pending) = self.route_turn(&input, req.remaining, request_id).await;
        let explanation = input.explain.then(|| self.router.explain(&input.query));
        let target = self
            .router
            .catalogue()
            .agent(&decision.agent)
            .and_then(|a| a.target.clone());
        let invokes = endpoint == Endpoint::Query
            && input.dispatch
            && self.dispatcher.is_some()
            && target.is_some();
        // A second opinion only where one can be asked without the answer waiting for it:
        // beside an agent's buffered invocation, or in the background where the process
        // outlives the answer (not in Lambda). Sampling spends a slot of the per-second cap.
        let on_route = self.shadows.as_ref().is_some_and(|s| s.on_route());
        let can_ask = on_route || (invokes && !events);
        let second_opinion = can_ask && self.shadows.as_ref().is_some_and(|s| s.sample(&decision));
        if !invokes {
            // No agent to wait for: the turn is saved before the answer (Lambda may freeze the
            // process as soon as it is sent).
            let failed = self.save_turn(pending.as_ref(), request_id).await;
            mark_write(&mut decision, failed);
            if second_opinion && on_route {
                // The answer goes now; the second opinion follows in the background, then logs.
                self.spawn_second_opinion(&input, &decision);
            } else {
                self.observed(&input, &decision, None);
            }
        }
        let mut body = DecisionBody {
            decision: &decision,
            request_id,
            dispatched: None,
            not_dispatched: None,
            result: None,
            explain: explanation.clone(),
        };
        if endpoint != Endpoint::Query {
            return Step::Whole((Ok((StatusCode::OK, render(&body))), Some(decision), None));
        }
        let (dispatcher, target) = match (&self.dispatcher, target, input.dispatch) {
            (Some(dispatcher), Some(target), true) => (dispatcher, target),
            (_, _, false) | (None, _, _) | (_, None, _) => {
                let reason = if !input.dispatch {
                    NotDispatched::NotRequested
                } else if self.dispatcher.is_none() {
                    NotDispatched::DispatchOff
                } else {
                    NotDispatched::RouteOnlyAgent
                };
                if events {
                    return Step::Stream(stream::StreamPlan {
                        decision,
                        explain: explanation,
                        request_id: request_id.to_owned(),
                        dispatch: Err(reason),
                        metrics: self.metrics.clone(),
                        stats: self.stats.clone(),
                        started,
                    });
                }
                body.dispatched = Some(false);
                body.not_dispatched = Some(reason);
                return Step::Whole((Ok((StatusCode::OK, render(&body))), Some(decision), None));
            }
        };
        let payload = agent_payload(
            &input.query,
            input.session_id.as_deref(),
            &decision,
            request_id,
        );
        if events {
            // No second opinion joined to a stream: one is spawned where the process outlives
            // the answer (outside Lambda), else skipped; the decision log is written now.
            if second_opinion && self.shadows.as_ref().is_some_and(|s| s.on_route()) {
                self.spawn_second_opinion(&input, &decision);
            } else {
                self.observed(&input, &decision, None);
            }
            // Saved before the stream starts, so that the decision event reports the write (and
            // Lambda cannot freeze the process with the turn unsaved).
            let write_failed = self.save_turn(pending.as_ref(), request_id).await;
            mark_write(&mut decision, write_failed);
            let streams = self.router.catalogue().streams(&decision.agent);
            // The caller's time left now: routing, the session store and the save included.
            let remaining = req.remaining.map(|r| r.saturating_sub(started.elapsed()));
            return Step::Stream(stream::StreamPlan {
                decision,
                explain: explanation,
                request_id: request_id.to_owned(),
                dispatch: Ok(stream::AgentCall {
                    dispatcher: dispatcher.clone(),
                    target,
                    payload,
                    remaining,
                    streams,
                }),
                metrics: self.metrics.clone(),
                stats: self.stats.clone(),
                started,
            });
        }
        // The caller's time left now: routing and the session store included.
        let remaining = req.remaining.map(|r| r.saturating_sub(started.elapsed()));
        // The turn is saved, and a sampled second opinion asked, while the agent answers. The
        // answer waits for the agent and the save only: an opinion not back by then is dropped.
        let opinion = second_opinion.then(|| {
            let (router, query, d) = (self.router.clone(), input.query.clone(), decision.clone());
            tokio::spawn(async move { ask_second_opinion(&router, &query, &d).await })
        });
        let (dispatched, write_failed) = tokio::join!(
            dispatcher.dispatch(&decision.agent, &target, payload, remaining),
            self.save_turn(pending.as_ref(), request_id),
        );
        // Let a finished opinion's task hand its result over (it needs one more poll).
        tokio::task::yield_now().await;
        let opinion = match opinion {
            Some(task) if task.is_finished() => task.await.ok(),
            Some(task) => {
                task.abort();
                tracing::debug!("second opinion not back when the agent answered: dropped");
                None
            }
            None => None,
        };
        mark_write(&mut decision, write_failed);
        self.observed(&input, &decision, opinion.as_ref());
        let shadow = opinion;
        let outcome = match dispatched {
            Ok(done) => {
                decision.timings_us.agent = Some(done.agent_us);
                let body = DecisionBody {
                    decision: &decision,
                    request_id,
                    dispatched: Some(true),
                    not_dispatched: None,
                    result: Some(done.result),
                    explain: explanation,
                };
                (Ok((StatusCode::OK, render(&body))), Some(decision), shadow)
            }
            Err(e) => {
                tracing::warn!(request_id, agent = %decision.agent, error = %e, "dispatch failed");
                (Err(ApiError::Dispatch(e)), Some(decision), shadow)
            }
        };
        Step::Whole(outcome)
    }
}

/// One answered request, as the logs, the stats and the metrics see it.
pub(crate) struct Answered<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub total_us: u64,
    pub decision: Option<&'a Decision>,
    pub shadow: Option<&'a ShadowResult>,
    /// For a streamed answer, how the stream ended (`done`, `error`, `caller_gone`).
    pub ended: Option<&'static str>,
}

/// What every answered request records, buffered or streamed: one log line (`routed` with its
/// decision, else `answered`), the local server's stats and the CloudWatch metrics.
pub(crate) fn record_request(metrics: &MetricsConfig, stats: Option<&Stats>, a: &Answered<'_>) {
    match a.decision {
        Some(d) => tracing::info!(
            request_id = a.request_id,
            method = a.method,
            status = a.status,
            streamed = a.ended.map(|_| true),
            ended = a.ended,
            agent = %d.agent,
            routing_method = d.routing_method.as_str(),
            fallback_reason = d.fallback_reason.map(|r| r.as_str()),
            session = d.session.as_ref().map(|s| s.state.as_str()),
            route_us = d.timings_us.route,
            llm_us = d.timings_us.llm,
            agent_us = d.timings_us.agent,
            total_us = a.total_us,
            "routed"
        ),
        None => tracing::info!(
            request_id = a.request_id,
            method = a.method,
            path = a.path,
            status = a.status,
            total_us = a.total_us,
            "answered"
        ),
    }
    if let Some(stats) = stats {
        stats.record(a.decision, a.status, a.total_us);
    }
    crate::ops::metrics::record(
        metrics,
        a.decision,
        a.shadow,
        a.status,
        a.total_us,
        a.request_id,
    );
}

/// Asks the LLM for a second opinion on `decision` and logs a disagreement (agents only).
async fn ask_second_opinion(router: &Router, query: &str, decision: &Decision) -> ShadowResult {
    let result = ShadowResult {
        agent: decision.agent.clone(),
        opinion: router.second_opinion(query).await,
    };
    match (&result.opinion, result.agrees()) {
        (SecondOpinion::Agent(llm), Some(false)) => tracing::info!(
            agent = %decision.agent,
            llm_agent = %llm,
            routing_method = decision.routing_method.as_str(),
            "second opinion disagrees"
        ),
        (SecondOpinion::Failed(why), _) => {
            tracing::warn!(
                fallback_reason = why.as_str(),
                "second opinion failed (not retried)"
            )
        }
        _ => {}
    }
    result
}

/// Counts a finished observation (stats) and writes its decision-log line when the log is on.
fn finish_observation(
    decision_log: bool,
    stats: Option<&Stats>,
    query: &str,
    decision: &Decision,
    shadow: Option<&ShadowResult>,
    session: Option<&str>,
) {
    if let (Some(stats), Some(r)) = (stats, shadow) {
        stats.record_shadow(r);
    }
    if decision_log {
        crate::ops::decision_log::write(&crate::ops::decision_log::line(
            query,
            decision,
            shadow.map(|r| &r.opinion),
            session,
        ));
    }
}

impl Api {
    /// Asks the second opinion in the background (the answer does not wait), then counts it and
    /// writes the decision-log line.
    fn spawn_second_opinion(&self, input: &RouteInput, decision: &Decision) {
        let (router, stats, log) = (self.router.clone(), self.stats.clone(), self.decision_log);
        let (query, d, session) = (
            input.query.clone(),
            decision.clone(),
            input.session_id.clone(),
        );
        tokio::spawn(async move {
            let r = ask_second_opinion(&router, &query, &d).await;
            finish_observation(
                log,
                stats.as_deref(),
                &query,
                &d,
                Some(&r),
                session.as_deref(),
            );
        });
    }

    /// The routed request is done: its second opinion (if any) and decision-log line.
    fn observed(&self, input: &RouteInput, decision: &Decision, shadow: Option<&ShadowResult>) {
        finish_observation(
            self.decision_log,
            self.stats.as_deref(),
            &input.query,
            decision,
            shadow,
            input.session_id.as_deref(),
        );
    }
}

/// A turn's state, to be saved under its session id once the turn is routed.
struct PendingSave {
    session_id: String,
    state: crate::ports::SessionState,
}

impl Api {
    /// Routes one request's query: within its conversation when it carries a `session_id` and
    /// sessions are on (the store is read first, within its deadline), else statelessly.
    async fn route_turn(
        &self,
        input: &RouteInput,
        remaining: Option<Duration>,
        request_id: &str,
    ) -> (Decision, Option<PendingSave>) {
        let (Some(sessions), Some(session_id)) = (&self.sessions, &input.session_id) else {
            return (
                self.router.route_within(&input.query, remaining).await,
                None,
            );
        };
        let started = Instant::now();
        let loaded = sessions.load(session_id).await;
        let remaining = remaining.map(|r| r.saturating_sub(started.elapsed()));
        let mut decision = self
            .router
            .route_turn(&input.query, loaded.conversation().as_ref(), remaining)
            .await;
        match &loaded {
            // The session's agent is still in the catalogue: the policy marked the turn.
            Loaded::Found(_) if decision.session.is_some() => {}
            // No earlier turn, or one whose agent the catalogue no longer has.
            Loaded::Found(_) | Loaded::New => {
                decision.session = Some(SessionInfo {
                    state: SessionStatus::New,
                    agent: None,
                    turn: 1,
                    write_failed: false,
                })
            }
            Loaded::Unavailable(e) => {
                tracing::warn!(
                    request_id,
                    session = %session_tag(session_id),
                    error = %crate::routing::one_line(&e.to_string(), 300),
                    "session store unavailable: routed without the session"
                );
                decision.session = Some(SessionInfo {
                    state: SessionStatus::Unavailable,
                    agent: None,
                    turn: 0,
                    write_failed: false,
                });
            }
        }
        let pending = sessions
            .next_state(&loaded, &input.query, &decision)
            .map(|state| PendingSave {
                session_id: session_id.clone(),
                state,
            });
        (decision, pending)
    }

    /// Saves a turn, if there is one to save; true when the save failed (logged here).
    async fn save_turn(&self, pending: Option<&PendingSave>, request_id: &str) -> bool {
        let (Some(sessions), Some(p)) = (&self.sessions, pending) else {
            return false;
        };
        match sessions.save(&p.session_id, &p.state).await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(
                    request_id,
                    session = %session_tag(&p.session_id),
                    error = %crate::routing::one_line(&e.to_string(), 300),
                    "session write failed: the next turn will not see this one"
                );
                true
            }
        }
    }
}

fn mark_write(decision: &mut Decision, failed: bool) {
    if let Some(s) = decision.session.as_mut() {
        s.write_failed = failed;
    }
}

fn render(body: &DecisionBody<'_>) -> String {
    serde_json::to_string(body)
        .unwrap_or_else(|e| error_body("internal", &e.to_string(), body.request_id, None))
}

fn endpoint(path: &str) -> Result<Endpoint, ApiError> {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    match last {
        "route" => Ok(Endpoint::Route),
        "query" => Ok(Endpoint::Query),
        "health" => Ok(Endpoint::Health),
        "stats" => Ok(Endpoint::Stats),
        _ => Err(ApiError::NotFound(truncate_bytes(path, 200).to_owned())),
    }
}
