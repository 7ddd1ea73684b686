//! Refusals: [`ApiError`], its status and stable code, and the JSON error body.

use http::{HeaderValue, Response, StatusCode, header};

use super::input::{MAX_BODY_BYTES, MAX_QUERY_BYTES, MAX_SESSION_ID_BYTES};
use crate::dispatch::DispatchError;

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
    /// `explain` is not a boolean (`true` or `false` in a query string).
    #[error("explain must be true or false")]
    InvalidExplain,
    /// The agent could not answer (`POST /query`).
    #[error(transparent)]
    Dispatch(DispatchError),
    /// `session_id` is not a string, or not 1 to 256 printable ASCII characters.
    #[error(
        "session_id must be a string of 1 to {MAX_SESSION_ID_BYTES} printable ASCII characters without spaces"
    )]
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

    /// Every code [`ApiError::code`] can return, in the README's order.
    pub const CODES: &'static [&'static str] = &[
        "invalid_json",
        "invalid_body",
        "missing_query",
        "invalid_query",
        "empty_query",
        "invalid_session_id",
        "query_too_large",
        "body_too_large",
        "not_found",
        "method_not_allowed",
        "invalid_dispatch",
        "invalid_explain",
        "agent_error",
        "agent_unavailable",
        "agent_throttled",
        "agent_timeout",
    ];

    /// The agent a dispatch error is about (the error body's `agent`), if it is one.
    pub(crate) fn agent(&self) -> Option<&str> {
        match self {
            ApiError::Dispatch(
                DispatchError::AgentError { agent, .. }
                | DispatchError::Timeout { agent, .. }
                | DispatchError::Throttled { agent, .. }
                | DispatchError::Unavailable { agent, .. },
            ) => Some(agent.as_str()),
            _ => None,
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
            ApiError::InvalidExplain => "invalid_explain",
            ApiError::Dispatch(DispatchError::AgentError { .. }) => "agent_error",
            ApiError::Dispatch(DispatchError::Timeout { .. }) => "agent_timeout",
            ApiError::Dispatch(DispatchError::Throttled { .. }) => "agent_throttled",
            ApiError::Dispatch(DispatchError::Unavailable { .. }) => "agent_unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }
}

pub(crate) fn error_body(
    code: &str,
    message: &str,
    request_id: &str,
    agent: Option<&str>,
) -> String {
    let mut error = serde_json::json!({"code": code, "message": message, "request_id": request_id});
    if let Some(agent) = agent {
        error["agent"] = serde_json::Value::from(agent);
    }
    serde_json::json!({ "error": error }).to_string()
}

/// Renders an [`ApiError`] as its status and `{"error": {"code", "message", "request_id"}}`
/// (plus `agent` for dispatch errors), with `Allow` on 405 and `Retry-After` on 503.
pub fn error_response(err: &ApiError, request_id: &str) -> Response<String> {
    let body = error_body(err.code(), &err.to_string(), request_id, err.agent());
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

pub(crate) fn json_response(
    status: StatusCode,
    body: String,
    request_id: &str,
) -> Response<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// One error of each kind. The match below has no wildcard, so a new variant does not
    /// compile until it is listed here, and then the test below makes it list its code.
    fn one_of_each() -> Vec<ApiError> {
        let agent = || "cost".to_owned();
        let all = vec![
            ApiError::InvalidJson("EOF".into()),
            ApiError::InvalidBody("an array"),
            ApiError::MissingQuery("no query"),
            ApiError::InvalidQuery("not a string".into()),
            ApiError::EmptyQuery,
            ApiError::QueryTooLarge(5000),
            ApiError::BodyTooLarge(20_000),
            ApiError::InvalidDispatch,
            ApiError::InvalidExplain,
            ApiError::InvalidSessionId,
            ApiError::NotFound("/nope".into()),
            ApiError::MethodNotAllowed {
                method: "PUT".into(),
                endpoint: "route",
                allow: "GET, HEAD, POST",
            },
            ApiError::Dispatch(DispatchError::AgentError {
                agent: agent(),
                message: "boom".into(),
            }),
            ApiError::Dispatch(DispatchError::Timeout {
                agent: agent(),
                timeout_ms: 1,
            }),
            ApiError::Dispatch(DispatchError::Throttled {
                agent: agent(),
                retry_after: 1,
            }),
            ApiError::Dispatch(DispatchError::Unavailable {
                agent: agent(),
                target: "t".into(),
                reason: "r".into(),
            }),
        ];
        for e in &all {
            match e {
                ApiError::InvalidJson(_)
                | ApiError::InvalidBody(_)
                | ApiError::MissingQuery(_)
                | ApiError::InvalidQuery(_)
                | ApiError::EmptyQuery
                | ApiError::QueryTooLarge(_)
                | ApiError::BodyTooLarge(_)
                | ApiError::InvalidDispatch
                | ApiError::InvalidExplain
                | ApiError::InvalidSessionId
                | ApiError::NotFound(_)
                | ApiError::MethodNotAllowed { .. }
                | ApiError::Dispatch(
                    DispatchError::AgentError { .. }
                    | DispatchError::Timeout { .. }
                    | DispatchError::Throttled { .. }
                    | DispatchError::Unavailable { .. },
                ) => {}
            }
        }
        all
    }

    #[test]
    fn codes_lists_every_variants_code() {
        let produced: BTreeSet<&str> = one_of_each().iter().map(ApiError::code).collect();
        let listed: BTreeSet<&str> = ApiError::CODES.iter().copied().collect();
        assert_eq!(produced, listed);
        assert_eq!(
            listed.len(),
            ApiError::CODES.len(),
            "a code is listed twice"
        );
    }
}
