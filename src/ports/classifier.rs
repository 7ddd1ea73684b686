//! The port to a chat model ([`Classifier`]) and its test double ([`StaticClassifier`]).
//!
//! The routing core asks a [`Classifier`] to pick an agent for the queries the fast path leaves;
//! [`crate::aws::BedrockClassifier`] is the real adapter (Bedrock Converse).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

/// A future returned by a [`Classifier`].
pub type ClassifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<LlmAnswer, LlmError>> + Send + 'a>>;

/// The port to a chat model: send a system prompt and one user message, get text back.
pub trait Classifier: Send + Sync + std::fmt::Debug {
    /// Asks the model. `timeout` is the time left for the whole call, retries included.
    fn classify<'a>(
        &'a self,
        system_prompt: &'a str,
        query: &'a str,
        timeout: Duration,
    ) -> ClassifyFuture<'a>;

    /// The model or inference-profile id, reported in responses.
    fn model_id(&self) -> &str;
}

/// What the model said, with its token usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmAnswer {
    /// The model's text, untrimmed.
    pub text: String,
    /// Token usage reported by the service.
    pub usage: Usage,
}

/// Token usage of one call, so callers can see what routing costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Completion tokens.
    pub output_tokens: u32,
}

/// Why a model call produced no answer. The router maps each to a `fallback_reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The deadline passed.
    #[error("the model did not answer in time")]
    Timeout,
    /// The service throttled the call (after retries).
    #[error("throttled: {0}")]
    Throttled(String),
    /// The service answered with an error, or an unreadable response.
    #[error("service error: {0}")]
    Service(String),
    /// The service could not be reached, or no credentials or region were available.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A [`Classifier`] double that answers from a fixed script, for tests and offline demos.
#[derive(Debug, Default)]
pub struct StaticClassifier {
    answers: std::sync::Mutex<std::collections::VecDeque<Result<LlmAnswer, LlmError>>>,
    calls: std::sync::atomic::AtomicUsize,
}

impl StaticClassifier {
    /// A double that returns `answers` in order, then [`LlmError::Unavailable`].
    pub fn new(answers: impl IntoIterator<Item = Result<LlmAnswer, LlmError>>) -> Self {
        StaticClassifier {
            answers: std::sync::Mutex::new(answers.into_iter().collect()),
            ..Default::default()
        }
    }

    /// How many times it was asked.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Classifier for StaticClassifier {
    fn classify<'a>(
        &'a self,
        _system: &'a str,
        _query: &'a str,
        _timeout: Duration,
    ) -> ClassifyFuture<'a> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let next = self.answers.lock().ok().and_then(|mut q| q.pop_front());
        Box::pin(async move {
            next.unwrap_or_else(|| Err(LlmError::Unavailable("script exhausted".into())))
        })
    }

    fn model_id(&self) -> &str {
        "static-double"
    }
}
