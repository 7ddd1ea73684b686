//! The Lambda adapter: turns API Gateway (REST v1, HTTP v2), Function URL and ALB events into
//! [`ApiRequest`]s and runs the Lambda runtime loop.
//!
//! How an answer goes back depends on how the function was invoked, which the function cannot
//! see: an integration that calls `Invoke` needs the buffered proxy response (a JSON object),
//! one that calls `InvokeWithResponseStream` (a function URL with `InvokeMode: RESPONSE_STREAM`,
//! an API Gateway REST method with response transfer mode `STREAM`) needs the streaming response
//! (a metadata prelude, then the body as it is written). [`LambdaStreaming`]
//! (`ROUTER_LAMBDA_STREAMING`) says which requests arrive the streaming way, and the adapter
//! answers each invocation accordingly.

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::lambda_runtime::{self, FunctionResponse, LambdaEvent};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Body, Request, RequestExt, Service, StreamAdapter, service_fn};

use super::{Api, ApiRequest, caller_request_id, wants_event_stream};

/// Which invocations answer with Lambda's streaming response (`ROUTER_LAMBDA_STREAMING`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LambdaStreaming {
    /// `off` (default): every answer is buffered, for integrations that call `Invoke`. A
    /// `POST /query` with `Accept: text/event-stream` still gets its events, all at once.
    #[default]
    Off,
    /// `query`: `POST /query` answers with the streaming response, every other request is
    /// buffered: for an API Gateway REST API whose `/query` method has response transfer mode
    /// `STREAM` while `/route` and `/health` stay buffered (and `GET /route` cacheable).
    Query,
    /// `all`: every answer is streamed, for a function URL with `InvokeMode: RESPONSE_STREAM`
    /// (which invokes every request that way). Non-streamed answers are one body.
    All,
}

impl LambdaStreaming {
    /// Parses `off`, `query` or `all` (any case); `None` for anything else.
    pub fn parse(value: &str) -> Option<LambdaStreaming> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "off" => Some(LambdaStreaming::Off),
            "query" => Some(LambdaStreaming::Query),
            "all" => Some(LambdaStreaming::All),
            _ => None,
        }
    }

    /// Whether this event arrived through a streaming integration.
    fn streams(self, event: &LambdaRequest) -> bool {
        match self {
            LambdaStreaming::Off => false,
            LambdaStreaming::All => true,
            LambdaStreaming::Query => {
                let (method, path) = match event {
                    LambdaRequest::ApiGatewayV1(r) => (&r.http_method, r.path.as_deref()),
                    LambdaRequest::ApiGatewayV2(r) => {
                        (&r.request_context.http.method, r.raw_path.as_deref())
                    }
                    LambdaRequest::Alb(r) => (&r.http_method, r.path.as_deref()),
                    _ => return false,
                };
                let last = path
                    .unwrap_or("")
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("");
                method == http::Method::POST && last == "query"
            }
        }
    }
}

/// 2001-09-09 in epoch milliseconds: invocation deadlines below this are not timestamps.
const PLAUSIBLE_EPOCH_MS: u64 = 1_000_000_000_000;

/// Runs the Lambda runtime until the process is stopped, answering as `streaming` says. Needs
/// `AWS_LAMBDA_RUNTIME_API`.
pub async fn run(api: Arc<Api>, streaming: LambdaStreaming) -> Result<(), lambda_http::Error> {
    if streaming == LambdaStreaming::Off {
        return lambda_http::run(buffered(api)).await;
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<LambdaRequest>| {
        let api = api.clone();
        async move {
            if streaming.streams(&event.payload) {
                let mut adapter = StreamAdapter::from(service_fn(move |event: Request| {
                    let api = api.clone();
                    async move {
                        let events = wants_event_stream(event.headers());
                        Ok::<_, Infallible>(api.respond(to_api_request(event), events).await)
                    }
                }));
                let response = adapter.call(event).await?;
                Ok::<_, Infallible>(FunctionResponse::StreamingResponse(response))
            } else {
                let response = Adapter::from(buffered(api)).call(event).await?;
                Ok(FunctionResponse::BufferedResponse(response))
            }
        }
    }))
    .await
}

/// The buffered handler: a streamed `POST /query` is collected whole into the body.
fn buffered(
    api: Arc<Api>,
) -> impl Service<
    Request,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Body>, Infallible>> + Send,
> + Clone {
    service_fn(move |event: Request| {
        let api = api.clone();
        async move {
            let events = wants_event_stream(event.headers());
            let (parts, body) = api
                .respond(to_api_request(event), events)
                .await
                .into_parts();
            let body = body.collect().await;
            Ok::<_, Infallible>(http::Response::from_parts(parts, Body::from(body)))
        }
    })
}

/// Converts a Lambda HTTP event (already decoded by `lambda_http`) into an [`ApiRequest`].
pub fn to_api_request(event: Request) -> ApiRequest {
    // The caller's well-formed x-request-id, else the invocation's own id.
    let request_id = caller_request_id(event.headers())
        .or_else(|| {
            event
                .lambda_context_ref()
                .map(|c| c.request_id.clone())
                .filter(|id| !id.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    // Time left in the invocation: zero once the deadline has passed. Lambda sends the deadline in
    // epoch milliseconds; a value before 2001 is not one (some emulators send the timeout as a
    // duration, e.g. 600000), so it is treated as no deadline rather than as long expired.
    let remaining = event
        .lambda_context_ref()
        .filter(|c| c.deadline >= PLAUSIBLE_EPOCH_MS)
        .map(|c| {
            c.deadline()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(std::time::Duration::ZERO)
        });
    tracing::debug!(
        request_id,
        deadline_ms = event.lambda_context_ref().map(|c| c.deadline),
        remaining_ms = remaining.map(|r| r.as_millis() as u64),
        "invocation"
    );
    let query = event
        .query_string_parameters_ref()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let (parts, body) = event.into_parts();
    let body = match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(s) => bytes::Bytes::from(s),
        Body::Binary(b) => bytes::Bytes::from(b),
        _ => bytes::Bytes::new(),
    };
    ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        body,
        request_id,
        remaining,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Context;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn event_with_deadline(deadline_ms: u64) -> Request {
        let event = r#"{"version":"2.0","routeKey":"$default","rawPath":"/route","rawQueryString":"",
            "headers":{},"requestContext":{"http":{"method":"POST","path":"/route","protocol":"HTTP/1.1",
            "sourceIp":"127.0.0.1","userAgent":"t"},"requestId":"r","routeKey":"$default","stage":"$default",
            "accountId":"1","apiId":"a","domainName":"d","domainPrefix":"d","time":"t","timeEpoch":0},
            "body":"{}","isBase64Encoded":false}"#;
        let mut ctx = Context::default();
        ctx.request_id = "req-7".into();
        ctx.deadline = deadline_ms;
        lambda_http::request::from_str(event)
            .unwrap()
            .with_lambda_context(ctx)
    }

    #[test]
    fn remaining_time_from_the_invocation_deadline() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let ahead = to_api_request(event_with_deadline(now_ms + 10_000))
            .remaining
            .unwrap();
        assert!(
            ahead > Duration::from_secs(5) && ahead <= Duration::from_secs(10),
            "{ahead:?}"
        );
        assert_eq!(
            to_api_request(event_with_deadline(now_ms - 1_000)).remaining,
            Some(Duration::ZERO)
        );
        assert_eq!(to_api_request(event_with_deadline(0)).remaining, None);
        // cargo lambda watch sends the timeout (600000 ms) instead of an epoch deadline.
        assert_eq!(to_api_request(event_with_deadline(600_000)).remaining, None);
        assert_eq!(to_api_request(event_with_deadline(0)).request_id, "req-7");
    }
}
