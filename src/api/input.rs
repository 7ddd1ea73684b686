//! Request validation: bodies and query strings into a [`RouteInput`], or an [`ApiError`].

use serde_json::Value;

use super::error::ApiError;

/// Largest accepted request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest accepted query, in bytes of UTF-8.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Largest accepted `session_id`, in bytes.
pub const MAX_SESSION_ID_BYTES: usize = 256;

/// Whether `id` is an acceptable `session_id`: 1 to [`MAX_SESSION_ID_BYTES`] printable ASCII
/// characters, no spaces (UUIDs, ULIDs, `user-42:conv-7`...). It becomes a DynamoDB key and a
/// log tag, so nothing else is taken from the caller.
pub fn valid_session_id(id: &str) -> bool {
    (1..=MAX_SESSION_ID_BYTES).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Longest caller-supplied `x-request-id` reused, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The caller's `x-request-id`, when well-formed: 1 to [`MAX_REQUEST_ID_BYTES`] bytes of printable
/// ASCII without spaces. The router then answers and logs under the caller's id, so a caller can
/// follow its own id through the logs; anything else is ignored and the router makes its own.
pub fn caller_request_id(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("x-request-id")?.to_str().ok()?;
    let ok = (1..=MAX_REQUEST_ID_BYTES).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| value.to_owned())
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
        Some(Value::String(s)) if valid_session_id(&s) => Some(s),
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
    if session_id.as_ref().is_some_and(|s| !valid_session_id(s)) {
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
