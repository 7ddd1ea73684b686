//! The port to the agents ([`Invoker`]) and its test double ([`StaticInvoker`]).
//!
//! [`crate::dispatch::Dispatcher`] invokes the chosen agent through an [`Invoker`];
//! [`crate::aws::LambdaInvoker`] is the real adapter (Lambda `Invoke`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A future returned by an [`Invoker`].
pub type InvokeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Invocation, InvokeError>> + Send + 'a>>;

/// The port to the agents: call a target synchronously with a JSON payload.
pub trait Invoker: Send + Sync + std::fmt::Debug {
    /// Invokes `target` (function name, ARN or alias) with `payload`, within `timeout`.
    fn invoke<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> InvokeFuture<'a>;
}

/// What the agent's function returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The response payload.
    pub payload: Vec<u8>,
    /// Set when the function raised an error (`Handled` / `Unhandled`); the payload then holds
    /// `{"errorMessage", "errorType"}`.
    pub function_error: Option<String>,
}

/// Why an invocation produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No answer within the timeout.
    #[error("the agent did not answer in time")]
    Timeout,
    /// The Lambda service throttled the call; retry after this many seconds if known.
    #[error("throttled: {message}")]
    Throttled {
        /// The service's message.
        message: String,
        /// Seconds to wait before retrying, when the service said.
        retry_after: Option<u64>,
    },
    /// The target function does not exist.
    #[error("function not found: {0}")]
    NotFound(String),
    /// The router may not invoke the target.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The service could not be reached or answered with another error.
    #[error("{0}")]
    Failed(String),
}

/// An [`Invoker`] double that answers every call with the same outcome and records payloads.
#[derive(Debug)]
pub struct StaticInvoker {
    outcome: Result<Invocation, InvokeError>,
    delay: Duration,
    calls: std::sync::Mutex<Vec<(String, Vec<u8>)>>,
}

impl StaticInvoker {
    /// A double that waits `delay` (tokio time) and then returns `outcome`.
    pub fn new(outcome: Result<Invocation, InvokeError>, delay: Duration) -> Self {
        StaticInvoker {
            outcome,
            delay,
            calls: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The `(target, payload)` of every call so far.
    pub fn calls(&self) -> Vec<(String, Vec<u8>)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Invoker for StaticInvoker {
    fn invoke<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        _timeout: Duration,
    ) -> InvokeFuture<'a> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((target.to_owned(), payload));
        }
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.outcome.clone()
        })
    }
}
