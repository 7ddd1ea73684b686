//! The AWS adapters, together: Bedrock for the [`crate::ports::Classifier`] port, Lambda for the
//! [`crate::ports::Invoker`] port, DynamoDB for the [`crate::ports::SessionStore`] port, and the
//! SDK configuration they share.
//!
//! Each adapter loads its configuration lazily, on its first call, through [`load`]: explicit
//! connect/read/operation timeouts, a small retry budget, and the overrides tests use to reach
//! loopback doubles (endpoint, region, static credentials). A process that never needs AWS never
//! loads its configuration.

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_bedrockruntime::config::Credentials;

mod bedrock;
mod dynamodb;
mod lambda;

pub use bedrock::{BedrockClassifier, BedrockSettings, DEFAULT_MODEL_ID};
pub use dynamodb::DynamoDbSessionStore;
pub use lambda::LambdaInvoker;

/// Client settings common to every AWS adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSettings {
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Attempts in all, first call included (1 = no retries).
    pub max_attempts: u32,
    /// First retry back-off.
    pub initial_backoff: Duration,
    /// The SDK's adaptive retry mode (client-side rate limiting) instead of standard mode.
    pub adaptive_retry: bool,
    /// Endpoint override; `None` uses the SDK's resolution, which honours the service's
    /// `AWS_ENDPOINT_URL_<SERVICE>` variable.
    pub endpoint_url: Option<String>,
    /// Region override; `None` uses the SDK's chain (`AWS_REGION`, profile...).
    pub region: Option<String>,
    /// Static `(access key id, secret)` credentials for tests; `None` uses the default chain.
    pub static_credentials: Option<(String, String)>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            connect_timeout: Duration::from_millis(500),
            max_attempts: 2,
            initial_backoff: Duration::from_millis(100),
            adaptive_retry: false,
            endpoint_url: None,
            region: None,
            static_credentials: None,
        }
    }
}

/// Loads the SDK configuration; `operation_timeout` bounds one operation, retries included.
/// Logs one line (`aws config loaded`) with the time it took.
pub async fn load(
    settings: &AwsSettings,
    operation_timeout: Duration,
    purpose: &'static str,
) -> SdkConfig {
    let started = Instant::now();
    let s = settings;
    let retry = if s.adaptive_retry {
        RetryConfig::adaptive()
    } else {
        RetryConfig::standard()
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            retry
                .with_max_attempts(s.max_attempts.max(1))
                .with_initial_backoff(s.initial_backoff),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(s.connect_timeout)
                .read_timeout(operation_timeout)
                .operation_attempt_timeout(operation_timeout)
                .operation_timeout(operation_timeout)
                .build(),
        );
    if let Some(url) = &s.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(region) = &s.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some((id, secret)) = &s.static_credentials {
        loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "static"));
    }
    let config = loader.load().await;
    tracing::info!(
        purpose,
        region = config.region().map(|r| r.as_ref()).unwrap_or("none"),
        init_us = crate::routing::micros(started),
        "aws config loaded"
    );
    config
}

/// An SDK client created on first use from [`load`]ed configuration, then shared.
#[derive(Debug)]
pub struct LazyClient<C> {
    settings: AwsSettings,
    operation_timeout: Duration,
    purpose: &'static str,
    cell: tokio::sync::OnceCell<C>,
}

impl<C> LazyClient<C> {
    /// A client for `purpose` (logged) whose configuration loads on the first [`LazyClient::get`].
    pub fn new(settings: AwsSettings, operation_timeout: Duration, purpose: &'static str) -> Self {
        LazyClient {
            settings,
            operation_timeout,
            purpose,
            cell: tokio::sync::OnceCell::new(),
        }
    }

    /// The client, building it with `make` on the first call.
    pub async fn get(&self, make: fn(&SdkConfig) -> C) -> &C {
        self.cell
            .get_or_init(|| async {
                make(&load(&self.settings, self.operation_timeout, self.purpose).await)
            })
            .await
    }
}

/// An error and its sources, joined with `: `, for messages that must say what went wrong.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
