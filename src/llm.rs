//! Tier 3, the LLM fallback: one short classification call for queries the fast path leaves.
//!
//! The model sees a tiny system prompt (`prompts/system.txt`, at most 60 words) plus the agent
//! list generated from the catalogue; the user's query goes only in the user message. The answer
//! is accepted only if, trimmed and case-folded, it is exactly one agent name. The model call
//! itself sits behind the [`Classifier`] port: [`crate::bedrock`] is the real adapter (Bedrock
//! Converse) and [`StaticClassifier`] a test double.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::catalogue::Catalogue;
use crate::router::FallbackReason;

/// The compiled-in system prompt template. `{agents}` becomes one `name: description` line per
/// agent and `{default}` the default agent's name.
pub const DEFAULT_SYSTEM_PROMPT: &str = include_str!("../prompts/system.txt");

/// Most words the prompt template may have (placeholders excluded), keeping every call cheap.
pub const MAX_PROMPT_WORDS: usize = 60;

/// Confidence reported for LLM decisions. Converse exposes no token probabilities, so this is a
/// fixed prior, below any clear fast-path win and above the default agent's 0.
pub const LLM_CONFIDENCE: f32 = 0.7;

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

/// Why a model call produced no answer. Each maps to a [`FallbackReason`].
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

impl LlmError {
    /// The `fallback_reason` this error reports.
    pub fn fallback_reason(&self) -> FallbackReason {
        match self {
            LlmError::Timeout => FallbackReason::LlmTimeout,
            LlmError::Throttled(_) => FallbackReason::LlmThrottled,
            LlmError::Service(_) => FallbackReason::LlmError,
            LlmError::Unavailable(_) => FallbackReason::LlmUnavailable,
        }
    }
}

/// Problems with a system prompt template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The template has no `{agents}` placeholder, so the model would not see the agents.
    #[error("system prompt template has no {{agents}} placeholder")]
    NoAgentList,
    /// The template is over [`MAX_PROMPT_WORDS`] words.
    #[error("system prompt template has {0} words; the limit is {MAX_PROMPT_WORDS}")]
    TooLong(usize),
}

/// Renders the system prompt: the template with the catalogue's agent list filled in.
pub fn render_system_prompt(template: &str, catalogue: &Catalogue) -> Result<String, PromptError> {
    if !template.contains("{agents}") {
        return Err(PromptError::NoAgentList);
    }
    let words = template
        .replace("{agents}", " ")
        .replace("{default}", " ")
        .split_whitespace()
        .count();
    if words > MAX_PROMPT_WORDS {
        return Err(PromptError::TooLong(words));
    }
    let agents: Vec<String> = catalogue
        .agents()
        .iter()
        .map(|a| format!("{}: {}", a.name, a.description))
        .collect();
    Ok(template
        .trim()
        .replace("{default}", &catalogue.default_agent().name)
        .replace("{agents}", &agents.join("\n")))
}

/// The allow-list check: the index of the agent the answer names, if it names exactly one.
/// The answer is trimmed and case-folded; anything else (a sentence, two names, quotes) is refused.
pub fn parse_answer(answer: &str, catalogue: &Catalogue) -> Option<usize> {
    let folded = answer.trim().to_lowercase();
    catalogue.index_of(&folded)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_prompt_is_short_and_lists_agents() {
        let c = Catalogue::embedded_default().unwrap();
        let p = render_system_prompt(DEFAULT_SYSTEM_PROMPT, &c).unwrap();
        for a in c.agents() {
            assert!(p.contains(&format!("{}: {}", a.name, a.description)), "{p}");
        }
        assert!(!p.contains('{'), "placeholders left in {p}");
        let too_long = format!("{} {{agents}}", "word ".repeat(61));
        assert_eq!(
            render_system_prompt(&too_long, &c),
            Err(PromptError::TooLong(61))
        );
        assert_eq!(
            render_system_prompt("no list", &c),
            Err(PromptError::NoAgentList)
        );
    }

    #[test]
    fn answers_table() {
        let c = Catalogue::embedded_default().unwrap();
        let cases = [
            ("cost", Some("cost")),
            ("  Security\n", Some("security")),
            ("MONITORING", Some("monitoring")),
            ("general", Some("general")),
            ("cost.", None),
            ("\"cost\"", None),
            ("The answer is cost", None),
            ("cost security", None),
            ("admin", None),
            ("", None),
        ];
        for (answer, want) in cases {
            let got = parse_answer(answer, &c).map(|i| c.agents()[i].name.as_str());
            assert_eq!(got, want, "answer {answer:?}");
        }
    }
}
