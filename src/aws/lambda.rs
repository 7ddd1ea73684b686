//! The Lambda adapter for the [`Invoker`] port: a synchronous (`RequestResponse`) `Invoke`.
//!
//! The SDK client is created on the first dispatch ([`crate::aws::LazyClient`]) and reused. Retries are
//! off by default (one attempt): an agent is not assumed to be idempotent, and a throttle is
//! passed back to the caller as 503 with `Retry-After` rather than retried blindly. The endpoint
//! can be overridden with `AWS_ENDPOINT_URL_LAMBDA` (e.g. `cargo lambda watch`'s invoke endpoint)
//! or [`AwsSettings::endpoint_url`].

use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::invoke::InvokeError as SdkInvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use super::{AwsSettings, LazyClient, error_chain};
use crate::ports::{Invocation, InvokeError, InvokeFuture, Invoker};

/// An [`Invoker`] that calls AWS Lambda.
#[derive(Debug)]
pub struct LambdaInvoker {
    client: LazyClient<Client>,
}

impl LambdaInvoker {
    /// An adapter whose client is built on first use; `operation_timeout` is the longest any agent
    /// may take (the per-agent timeout).
    pub fn new(settings: AwsSettings, operation_timeout: Duration) -> Self {
        LambdaInvoker {
            client: LazyClient::new(settings, operation_timeout, "dispatch"),
        }
    }

    /// Settings for agents: no retries, since agents may not be idempotent.
    pub fn default_settings() -> AwsSettings {
        AwsSettings {
            max_attempts: 1,
            ..AwsSettings::default()
        }
    }
}

impl Invoker for LambdaInvoker {
    fn invoke<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> InvokeFuture<'a> {
        Box::pin(async move {
            // This call's own deadline (the agent's timeout, capped by the caller's time left),
            // not only the client-wide maximum the client was built with.
            let timeouts = TimeoutConfig::builder()
                .read_timeout(timeout)
                .operation_attempt_timeout(timeout)
                .operation_timeout(timeout)
                .build();
            let output = self
                .client
                .get(Client::new)
                .await
                .invoke()
                .function_name(target)
                .invocation_type(InvocationType::RequestResponse)
                .payload(Blob::new(payload))
                .customize()
                .config_override(
                    aws_sdk_lambda::config::Builder::default().timeout_config(timeouts),
                )
                .send()
                .await;
            let output = match output {
                Ok(o) => o,
                // Real Lambda reports a function error as 200 + X-Amz-Function-Error; some
                // emulators (cargo lambda watch) answer 500 with the same error body instead.
                Err(err) => match function_error_body(&err) {
                    Some(payload) => {
                        return Ok(Invocation {
                            payload,
                            function_error: Some("Unhandled".into()),
                        });
                    }
                    None => return Err(map_error(err)),
                },
            };
            Ok(Invocation {
                payload: output
                    .payload()
                    .map(|b| b.as_ref().to_vec())
                    .unwrap_or_default(),
                function_error: output.function_error().map(str::to_owned),
            })
        })
    }
}

/// The body of an error response shaped like a function error (`{"errorMessage": ...}`).
fn function_error_body(err: &SdkError<SdkInvokeError, HttpResponse>) -> Option<Vec<u8>> {
    let SdkError::ServiceError(se) = err else {
        return None;
    };
    if se.err().code().is_some_and(|c| c != "Unknown") {
        return None;
    }
    let bytes = se.raw().body().bytes()?;
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value.get("errorMessage")?.as_str()?;
    Some(bytes.to_vec())
}

fn map_error<R: std::fmt::Debug>(err: SdkError<SdkInvokeError, R>) -> InvokeError {
    match &err {
        SdkError::TimeoutError(_) => InvokeError::Timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => InvokeError::Timeout,
        SdkError::ServiceError(se) => {
            let e = se.err();
            let detail = format!(
                "{}: {}",
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or("")
            );
            match e {
                SdkInvokeError::TooManyRequestsException(t) => InvokeError::Throttled {
                    message: detail,
                    retry_after: t.retry_after_seconds().and_then(|s| s.trim().parse().ok()),
                },
                SdkInvokeError::ResourceNotFoundException(_) => InvokeError::NotFound(detail),
                _ if e.code() == Some("AccessDeniedException") => InvokeError::AccessDenied(detail),
                _ => InvokeError::Failed(detail),
            }
        }
        // Connection and other client-side failures: the detail (which can name hosts) goes to the
        // log on one bounded line; the caller gets what to check.
        _ => {
            tracing::warn!(
                error = %crate::routing::one_line(&error_chain(&err), 300),
                "Lambda invoke failed before an answer"
            );
            InvokeError::Failed("the Lambda service could not be reached".into())
        }
    }
}
