//! The HTTP API, independent of how requests arrive (Lambda event or local socket).
//!
//! Adapters turn their request into an [`ApiRequest`] and send the [`http::Response`] back.
//! Endpoints: `POST /route`, `GET /route?q=`, `POST /query`, `GET /health`. Paths are matched on
//! their last segment, so API Gateway stage prefixes and custom-domain base paths need no setup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

use crate::dispatch::{DispatchError, Dispatcher, agent_payload};
use crate::normalize::truncate_bytes;
use crate::router::{Decision, Router};

/// Largest accepted request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest accepted query, in bytes of UTF-8.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Largest accepted `session_id`, in bytes.
pub const MAX_SESSION_ID_BYTES: usize = 256;

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

/// Why a request was refused; each maps to an HTTP status and a stable `code`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not valid JSON (or not UTF-8).
    #[error("request body is not valid JSON ({0}); send {{\"query\": \"...\"}}")]
    InvalidJson(String),
    /// The body is JSON but not an object.
    #[error("request body must be a JSON object like {{\"query\": \"...\"}}, got {0}")]
    InvalidBody(&'static str),
    /// No query was given.
    #[error("{0}")]
    MissingQuery(&'static str),
    /// `query` is not a string, or `q` was repeated.
    #[error("{0}")]
    InvalidQuery(String),
    /// The query is empty or only whitespace.
    #[error("query is empty; send the question to route")]
    EmptyQuery,
    /// The query is over [`MAX_QUERY_BYTES`].
    #[error("query is {0} bytes; the limit is {MAX_QUERY_BYTES}")]
    QueryTooLarge(usize),
    /// The body is over [`MAX_BODY_BYTES`].
    #[error("request body is {0} bytes; the limit is {MAX_BODY_BYTES}")]
    BodyTooLarge(usize),
    /// `dispatch` is not a boolean.
    #[error("dispatch must be true or false")]
    InvalidDispatch,
    /// The agent could not answer (`POST /query`).
    #[error(transparent)]
    Dispatch(DispatchError),
    /// `session_id` is not a string or is too long.
    #[error("session_id must be a string of at most {MAX_SESSION_ID_BYTES} bytes")]
    InvalidSessionId,
    /// No endpoint at this path.
    #[error("no endpoint at {0}; try POST /route, GET /route?q=..., POST /query or GET /health")]
    NotFound(String),
    /// The endpoint exists but not for this method.
    #[error("{method} is not allowed on /{endpoint}; use {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The endpoint's last path segment.
        endpoint: &'static str,
        /// The methods it accepts, for the `Allow` header.
        allow: &'static str,
    },
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::QueryTooLarge(_) | ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Dispatch(DispatchError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Dispatch(DispatchError::Throttled { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Dispatch(_) => StatusCode::BAD_GATEWAY,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The stable machine-readable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::MissingQuery(_) => "missing_query",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::EmptyQuery => "empty_query",
            ApiError::QueryTooLarge(_) => "query_too_large",
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::InvalidSessionId => "invalid_session_id",
            ApiError::InvalidDispatch => "invalid_dispatch",
            ApiError::Dispatch(DispatchError::AgentError { .. }) => "agent_error",
            ApiError::Dispatch(DispatchError::Timeout { .. }) => "agent_timeout",
            ApiError::Dispatch(DispatchError::Throttled { .. }) => "agent_throttled",
            ApiError::Dispatch(DispatchError::Unavailable { .. }) => "agent_unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }
}

/// A validated routing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInput {
    /// The query text, within limits and not blank.
    pub query: String,
    /// The caller's session, passed through to the agent.
    pub session_id: Option<String>,
    /// `POST /query` only: whether to invoke the agent (`"dispatch": false` asks for the
    /// decision alone). Default true.
    pub dispatch: bool,
}

/// The endpoints, by the last segment of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Route,
    Query,
    Health,
}

/// The HTTP API over a [`Router`] (and, for `/query`, a [`Dispatcher`]).
#[derive(Debug, Clone)]
pub struct Api {
    router: Arc<Router>,
    dispatcher: Option<Arc<Dispatcher>>,
}

#[derive(Serialize)]
struct DecisionBody<'a> {
    #[serde(flatten)]
    decision: &'a Decision,
    request_id: &'a str,
    /// `/query` only: whether the agent was invoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatched: Option<bool>,
    /// `/query` only: the agent's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
}

/// What one request produced: the response, and the decision when routing happened.
type Outcome = (Result<(StatusCode, String), ApiError>, Option<Decision>);

impl Api {
    /// Wraps a router; `/query` answers with the decision only until a dispatcher is added.
    pub fn new(router: Arc<Router>) -> Api {
        Api {
            router,
            dispatcher: None,
        }
    }

    /// Lets `POST /query` invoke the chosen agent through `dispatcher`.
    pub fn with_dispatcher(mut self, dispatcher: Arc<Dispatcher>) -> Api {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// The router behind the API.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Answers one request. Never fails: every problem becomes a JSON error response.
    pub async fn handle(&self, req: ApiRequest) -> Response<String> {
        let started = Instant::now();
        let (result, decision) = self.answer(&req).await;
        let response = match result {
            Ok((status, body)) => json_response(status, body, &req.request_id),
            Err(err) => error_response(&err, &req.request_id),
        };
        let total_us = crate::router::micros(started);
        match &decision {
            Some(d) => tracing::info!(
                request_id = %req.request_id,
                method = %req.method,
                status = response.status().as_u16(),
                agent = %d.agent,
                routing_method = d.routing_method.as_str(),
                fallback_reason = d.fallback_reason.map(|r| r.as_str()),
                route_us = d.timings_us.route,
                llm_us = d.timings_us.llm,
                agent_us = d.timings_us.agent,
                total_us,
                "routed"
            ),
            None => tracing::info!(
                request_id = %req.request_id,
                method = %req.method,
                path = %req.path,
                status = response.status().as_u16(),
                total_us,
                "answered"
            ),
        }
        let status = response.status().as_u16();
        crate::metrics::record(decision.as_ref(), status, total_us, &req.request_id);
        response
    }

    async fn answer(&self, req: &ApiRequest) -> Outcome {
        let endpoint = match endpoint(&req.path) {
            Ok(e) => e,
            Err(e) => return (Err(e), None),
        };
        let input = match (endpoint, &req.method) {
            (Endpoint::Health, &Method::GET) => {
                return (Ok((StatusCode::OK, r#"{"status":"ok"}"#.to_owned())), None);
            }
            (Endpoint::Route, &Method::GET) => parse_query_string(&req.query),
            (Endpoint::Route | Endpoint::Query, &Method::POST) => parse_body(&req.body),
            (ep, m) => {
                let (endpoint, allow) = match ep {
                    Endpoint::Route => ("route", "GET, POST"),
                    Endpoint::Query => ("query", "POST"),
                    Endpoint::Health => ("health", "GET"),
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
            Err(e) => return (Err(e), None),
        };
        let request_id = req.request_id.as_str();
        tracing::debug!(request_id, query = %input.query, "query");
        let mut decision = self.router.route_within(&input.query, req.remaining).await;
        let mut body = DecisionBody {
            decision: &decision,
            request_id,
            dispatched: None,
            result: None,
        };
        if endpoint != Endpoint::Query {
            return (Ok((StatusCode::OK, render(&body))), Some(decision));
        }
        let target = self
            .router
            .catalogue()
            .agent(&decision.agent)
            .and_then(|a| a.target.clone());
        let (Some(dispatcher), Some(target), true) = (&self.dispatcher, target, input.dispatch)
        else {
            body.dispatched = Some(false);
            return (Ok((StatusCode::OK, render(&body))), Some(decision));
        };
        let payload = agent_payload(
            &input.query,
            input.session_id.as_deref(),
            &decision,
            request_id,
        );
        let remaining = req
            .remaining
            .map(|r| r.saturating_sub(Duration::from_micros(decision.timings_us.route)));
        match dispatcher
            .dispatch(&decision.agent, &target, payload, remaining)
            .await
        {
            Ok(done) => {
                decision.timings_us.agent = Some(done.agent_us);
                let body = DecisionBody {
                    decision: &decision,
                    request_id,
                    dispatched: Some(true),
                    result: Some(done.result),
                };
                (Ok((StatusCode::OK, render(&body))), Some(decision))
            }
            Err(e) => {
                tracing::warn!(request_id, agent = %decision.agent, error = %e, "dispatch failed");
                (Err(ApiError::Dispatch(e)), Some(decision))
            }
        }
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
        _ => Err(ApiError::NotFound(truncate_bytes(path, 200).to_owned())),
    }
}

/// Validates a `POST` body: a JSON object with a string `query` and an optional `session_id`.
pub fn parse_body(body: &[u8]) -> Result<RouteInput, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::BodyTooLarge(body.len()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MissingQuery(
            "request body is empty; send {\"query\": \"...\"}",
        ));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(ApiError::InvalidBody(json_kind(&value)));
    };
    let query = match map.remove("query") {
        None | Some(Value::Null) => {
            return Err(ApiError::MissingQuery(
                "body has no \"query\" field; send {\"query\": \"...\"}",
            ));
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(ApiError::InvalidQuery(format!(
                "query must be a string, got {}",
                json_kind(&other)
            )));
        }
    };
    let session_id = match map.remove("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_SESSION_ID_BYTES => Some(s),
        Some(_) => return Err(ApiError::InvalidSessionId),
    };
    let dispatch = match map.remove("dispatch") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ApiError::InvalidDispatch),
    };
    check_query(query, session_id, dispatch)
}

/// Validates `GET /route` parameters: exactly one non-blank `q`.
pub fn parse_query_string(pairs: &[(String, String)]) -> Result<RouteInput, ApiError> {
    let mut values = pairs.iter().filter(|(k, _)| k == "q").map(|(_, v)| v);
    let Some(q) = values.next() else {
        return Err(ApiError::MissingQuery(
            "missing q parameter; call GET /route?q=your+question",
        ));
    };
    let extra = values.count();
    if extra > 0 {
        return Err(ApiError::InvalidQuery(format!(
            "q is given {} times; give it once",
            extra + 1
        )));
    }
    let session_id = pairs
        .iter()
        .find(|(k, _)| k == "session_id")
        .map(|(_, v)| v.clone());
    if session_id
        .as_ref()
        .is_some_and(|s| s.len() > MAX_SESSION_ID_BYTES)
    {
        return Err(ApiError::InvalidSessionId);
    }
    check_query(q.clone(), session_id, false)
}

fn check_query(
    query: String,
    session_id: Option<String>,
    dispatch: bool,
) -> Result<RouteInput, ApiError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::QueryTooLarge(query.len()));
    }
    if query.trim().is_empty() {
        return Err(ApiError::EmptyQuery);
    }
    Ok(RouteInput {
        query,
        session_id,
        dispatch,
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn error_body(code: &str, message: &str, request_id: &str, agent: Option<&str>) -> String {
    let mut error = serde_json::json!({"code": code, "message": message, "request_id": request_id});
    if let Some(agent) = agent {
        error["agent"] = serde_json::Value::from(agent);
    }
    serde_json::json!({ "error": error }).to_string()
}

/// Renders an [`ApiError`] as its status and `{"error": {"code", "message", "request_id"}}`
/// (plus `agent` for dispatch errors), with `Allow` on 405 and `Retry-After` on 503.
pub fn error_response(err: &ApiError, request_id: &str) -> Response<String> {
    let agent = match err {
        ApiError::Dispatch(
            DispatchError::AgentError { agent, .. }
            | DispatchError::Timeout { agent, .. }
            | DispatchError::Throttled { agent, .. }
            | DispatchError::Unavailable { agent, .. },
        ) => Some(agent.as_str()),
        _ => None,
    };
    let body = error_body(err.code(), &err.to_string(), request_id, agent);
    let mut resp = json_response(err.status(), body, request_id);
    match err {
        ApiError::MethodNotAllowed { allow, .. } => {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::Dispatch(DispatchError::Throttled { retry_after, .. }) => {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        _ => {}
    }
    resp
}

fn json_response(status: StatusCode, body: String, request_id: &str) -> Response<String> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    resp
}
