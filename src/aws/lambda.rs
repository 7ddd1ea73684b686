//! The Lambda adapter for the [`Invoker`] port: a synchronous (`RequestResponse`) `Invoke`, and
//! `InvokeWithResponseStream` for agents that stream (each `PayloadChunk` event passed on as it
//! is read, the `InvokeComplete` event's error fields reported as the agent's failure).
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
use aws_sdk_lambda::operation::invoke_with_response_stream::InvokeWithResponseStreamError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::primitives::event_stream::EventReceiver;
use aws_sdk_lambda::types::error::InvokeWithResponseStreamResponseEventError;
use aws_sdk_lambda::types::{InvocationType, InvokeWithResponseStreamResponseEvent};

use super::{AwsSettings, LazyClient, error_chain};
use crate::ports::Invocation;
use crate::ports::{
    Completion, InvocationStream, InvokeError, InvokeFuture, InvokeStreamFuture, Invoker,
    NextItemFuture, StreamItem, StreamReader,
};

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

/// This call's own deadline (the agent's timeout, capped by the caller's time left), not only the
/// client-wide maximum the client was built with.
fn call_timeouts(timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .read_timeout(timeout)
        .operation_attempt_timeout(timeout)
        .operation_timeout(timeout)
        .build()
}

impl Invoker for LambdaInvoker {
    fn invoke_stream<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> InvokeStreamFuture<'a> {
        Box::pin(async move {
            let output = self
                .client
                .get(Client::new)
                .await
                .invoke_with_response_stream()
                .function_name(target)
                .payload(Blob::new(payload))
                .customize()
                .config_override(
                    aws_sdk_lambda::config::Builder::default()
                        .timeout_config(call_timeouts(timeout)),
                )
                .send()
                .await
                .map_err(map_stream_error)?;
            // A function written with an HTTP-style streaming runtime (the Rust runtime's
            // StreamResponse, Node's HttpResponseStream) starts its stream with a JSON metadata
            // prelude and 8 NUL bytes, and says so with this content type: not the agent's words.
            let prelude = output.response_stream_content_type() == Some(HTTP_INTEGRATION_RESPONSE);
            Ok(InvocationStream::from_reader(Box::new(EventStream {
                events: output.event_stream,
                prelude: prelude.then(Vec::new),
            })))
        })
    }

    fn invoke<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> InvokeFuture<'a> {
        Box::pin(async move {
            let timeouts = call_timeouts(timeout);
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

/// The content type of a stream that starts with an HTTP metadata prelude.
const HTTP_INTEGRATION_RESPONSE: &str = "application/vnd.awslambda.http-integration-response";
/// What ends the metadata prelude.
const PRELUDE_END: [u8; 8] = [0; 8];
/// Longest prelude looked for; past it the bytes are passed on as they are.
const MAX_PRELUDE: usize = 64 * 1024;

/// The SDK's event receiver, read one event at a time (nothing is read ahead of the caller).
struct EventStream {
    events: EventReceiver<
        InvokeWithResponseStreamResponseEvent,
        InvokeWithResponseStreamResponseEventError,
    >,
    /// While a metadata prelude is being skipped: what has been read of it.
    prelude: Option<Vec<u8>>,
}

impl EventStream {
    /// Drops the metadata prelude from the first chunks; `None` while it is still being read.
    fn skip_prelude(&mut self, chunk: bytes::Bytes) -> Option<bytes::Bytes> {
        let Some(buf) = &mut self.prelude else {
            return Some(chunk);
        };
        buf.extend_from_slice(&chunk);
        if let Some(i) = buf
            .windows(PRELUDE_END.len())
            .position(|w| w == PRELUDE_END)
        {
            let rest = buf.split_off(i + PRELUDE_END.len());
            self.prelude = None;
            return (!rest.is_empty()).then(|| rest.into());
        }
        if buf.len() > MAX_PRELUDE {
            return self.prelude.take().map(Into::into);
        }
        None
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStream")
    }
}

impl StreamReader for EventStream {
    fn next_item(&mut self) -> NextItemFuture<'_> {
        Box::pin(async move {
            loop {
                let event = match self.events.recv().await {
                    Ok(Some(event)) => event,
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::warn!(
                            error = %crate::routing::one_line(&error_chain(&e), 300),
                            "Lambda response stream failed"
                        );
                        return Some(Err(InvokeError::Failed(
                            "the agent's response stream broke off".into(),
                        )));
                    }
                };
                return Some(Ok(match event {
                    InvokeWithResponseStreamResponseEvent::PayloadChunk(update) => {
                        let Some(blob) = update.payload else { continue };
                        match self.skip_prelude(blob.into_inner().into()) {
                            Some(chunk) => StreamItem::Chunk(chunk),
                            None => continue,
                        }
                    }
                    InvokeWithResponseStreamResponseEvent::InvokeComplete(done) => {
                        StreamItem::Complete(Completion {
                            error_code: done.error_code.filter(|c| !c.is_empty()),
                            error_details: done.error_details,
                        })
                    }
                    // An event type newer than this SDK: skipped, as the SDK advises.
                    _ => continue,
                }));
            }
        })
    }
}

fn map_stream_error<R: std::fmt::Debug>(
    err: SdkError<InvokeWithResponseStreamError, R>,
) -> InvokeError {
    map_sdk_error(
        err,
        "Lambda streamed invoke failed before an answer",
        |e, detail| match e {
            InvokeWithResponseStreamError::TooManyRequestsException(t) => {
                Some(InvokeError::Throttled {
                    message: detail,
                    retry_after: t.retry_after_seconds().and_then(|s| s.trim().parse().ok()),
                })
            }
            InvokeWithResponseStreamError::ResourceNotFoundException(_) => {
                Some(InvokeError::NotFound(detail))
            }
            _ => None,
        },
    )
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
    map_sdk_error(
        err,
        "Lambda invoke failed before an answer",
        |e, detail| match e {
            SdkInvokeError::TooManyRequestsException(t) => Some(InvokeError::Throttled {
                message: detail,
                retry_after: t.retry_after_seconds().and_then(|s| s.trim().parse().ok()),
            }),
            SdkInvokeError::ResourceNotFoundException(_) => Some(InvokeError::NotFound(detail)),
            _ => None,
        },
    )
}

/// Sorts an SDK failure of either invoke operation into the port's kinds: `specific` names the
/// operation's own throttle and not-found errors (given the `code: message` detail); the rest
/// is shared. Connection and other client-side failures log their detail (which can name hosts)
/// on one bounded line as `what`, and the caller gets what to check.
fn map_sdk_error<E, R>(
    err: SdkError<E, R>,
    what: &'static str,
    specific: impl FnOnce(&E, String) -> Option<InvokeError>,
) -> InvokeError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
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
            let access_denied = e.code() == Some("AccessDeniedException");
            match specific(e, detail.clone()) {
                Some(mapped) => mapped,
                None if access_denied => InvokeError::AccessDenied(detail),
                None => InvokeError::Failed(detail),
            }
        }
        _ => {
            tracing::warn!(
                error = %crate::routing::one_line(&error_chain(&err), 300),
                "{what}"
            );
            InvokeError::Failed("the Lambda service could not be reached".into())
        }
    }
}
