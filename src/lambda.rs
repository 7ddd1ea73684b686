//! The Lambda adapter: turns API Gateway (REST v1, HTTP v2), Function URL and ALB events into
//! [`ApiRequest`]s and runs the Lambda runtime loop.

use std::sync::Arc;

use lambda_http::{Body, Request, RequestExt, service_fn};

use crate::api::{Api, ApiRequest};

/// Runs the Lambda runtime until the process is stopped. Needs `AWS_LAMBDA_RUNTIME_API`.
pub async fn run(api: Arc<Api>) -> Result<(), lambda_http::Error> {
    lambda_http::run(service_fn(move |event: Request| {
        let api = api.clone();
        async move {
            let response = api.handle(to_api_request(event)).await;
            Ok::<_, std::convert::Infallible>(response.map(Body::from))
        }
    }))
    .await
}

/// Converts a Lambda HTTP event (already decoded by `lambda_http`) into an [`ApiRequest`].
pub fn to_api_request(event: Request) -> ApiRequest {
    let request_id = event
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
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
    }
}
