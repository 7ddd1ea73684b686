//! The Bedrock adapter for the [`Classifier`] port: one `Converse` call per classification.
//!
//! The AWS configuration and client are created on the first call ([`crate::aws::LazyClient`]) and reused
//! by every later call, so a process that only serves fast-path queries never loads AWS config.
//! Retries: at most 2 attempts with a short back-off, in the SDK's standard mode by default.
//! The SDK's adaptive mode is available (`ROUTER_LLM_RETRY_MODE=adaptive`) but not the default:
//! after the first throttle of a cold client its rate limiter holds the retry for about 2 s, so
//! under a 2 s deadline the retry never goes out (see `tests/llm_wire.rs`). Connect, read and
//! operation timeouts are explicit. The endpoint can be overridden (tests point it at a loopback double) by
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` or [`crate::aws::AwsSettings::endpoint_url`].

use std::time::Duration;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message, SystemContentBlock,
};

use super::{AwsSettings, LazyClient, error_chain};
use crate::ports::{Classifier, ClassifyFuture, LlmAnswer, LlmError, Usage};

/// Default model: Claude Haiku 4.5 through its US cross-region inference profile.
pub const DEFAULT_MODEL_ID: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

/// Settings of the Bedrock adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockSettings {
    /// Model or inference-profile id (`us.`, `eu.`, `global.` prefixes all work).
    pub model_id: String,
    /// Sampling temperature; `None` sends no sampling parameter at all. Never sends `top_p`
    /// (Haiku 4.5 rejects requests with both).
    pub temperature: Option<f32>,
    /// Cap on the answer's tokens (an agent name needs a handful).
    pub max_tokens: u16,
    /// Client settings: timeouts, retries, endpoint and credential overrides.
    pub aws: AwsSettings,
}

impl Default for BedrockSettings {
    fn default() -> Self {
        BedrockSettings {
            model_id: DEFAULT_MODEL_ID.to_owned(),
            temperature: Some(0.0),
            max_tokens: 10,
            aws: AwsSettings::default(),
        }
    }
}

/// A [`Classifier`] that calls Amazon Bedrock's `Converse` API.
#[derive(Debug)]
pub struct BedrockClassifier {
    settings: BedrockSettings,
    client: LazyClient<Client>,
}

impl BedrockClassifier {
    /// An adapter whose SDK client will be built on first use; `operation_timeout` bounds one
    /// classification, retries included.
    pub fn new(settings: BedrockSettings, operation_timeout: Duration) -> Self {
        let client = LazyClient::new(settings.aws.clone(), operation_timeout, "llm");
        BedrockClassifier { settings, client }
    }

    async fn converse(&self, system_prompt: &str, query: &str) -> Result<LlmAnswer, LlmError> {
        let s = &self.settings;
        let mut inference = InferenceConfiguration::builder().max_tokens(i32::from(s.max_tokens));
        if let Some(t) = s.temperature {
            inference = inference.temperature(t);
        }
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(query.to_owned()))
            .build()
            .map_err(|e| LlmError::Service(format!("cannot build the request: {e}")))?;
        let output = self
            .client
            .get(Client::new)
            .await
            .converse()
            .model_id(&s.model_id)
            .system(SystemContentBlock::Text(system_prompt.to_owned()))
            .messages(message)
            .inference_config(inference.build())
            .send()
            .await
            .map_err(map_sdk_error)?;
        let text = output
            .output()
            .and_then(|o| o.as_message().ok())
            .map(|m| {
                m.content()
                    .iter()
                    .filter_map(|c| c.as_text().ok())
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("")
            })
            .unwrap_or_default();
        let usage = output
            .usage()
            .map(|u| Usage {
                input_tokens: u32::try_from(u.input_tokens()).unwrap_or(0),
                output_tokens: u32::try_from(u.output_tokens()).unwrap_or(0),
            })
            .unwrap_or_default();
        Ok(LlmAnswer { text, usage })
    }
}

impl Classifier for BedrockClassifier {
    fn classify<'a>(
        &'a self,
        system_prompt: &'a str,
        query: &'a str,
        timeout: Duration,
    ) -> ClassifyFuture<'a> {
        Box::pin(async move {
            match tokio::time::timeout(timeout, self.converse(system_prompt, query)).await {
                Ok(result) => result,
                Err(_) => Err(LlmError::Timeout),
            }
        })
    }

    fn model_id(&self) -> &str {
        &self.settings.model_id
    }
}

/// Sorts an SDK failure into the tier's error kinds.
fn map_sdk_error<E, R>(err: SdkError<E, R>) -> LlmError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) => LlmError::Timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => LlmError::Timeout,
        SdkError::DispatchFailure(_) => LlmError::Unavailable(error_chain(&err)),
        SdkError::ConstructionFailure(_) => LlmError::Unavailable(error_chain(&err)),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            let message = se.err().message().unwrap_or("");
            let detail = format!("{code}: {message}");
            if matches!(
                code,
                "ThrottlingException"
                    | "TooManyRequestsException"
                    | "ServiceQuotaExceededException"
            ) {
                LlmError::Throttled(detail)
            } else {
                LlmError::Service(detail)
            }
        }
        _ => LlmError::Service(error_chain(&err)),
    }
}
