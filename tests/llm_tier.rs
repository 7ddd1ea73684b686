//! The LLM tier's timing and caching under paused time, and the real binary against the Bedrock
//! double through the SDK's `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` override.

use std::sync::Arc;
use std::time::Duration;

use crate::support::bedrock_double::{BedrockDouble, Reply};
use agent_router::ports::{Classifier, ClassifyFuture, LlmAnswer, StaticClassifier, Usage};
use agent_router::{Catalogue, FallbackReason, LlmSettings, Router, RoutingMethod};
use tokio::time::Instant;

/// A model that takes `delay` to answer `cost`.
#[derive(Debug)]
struct Slow(Duration);

impl Classifier for Slow {
    fn classify<'a>(&'a self, _s: &'a str, _q: &'a str, timeout: Duration) -> ClassifyFuture<'a> {
        Box::pin(async move {
            let answer = async {
                tokio::time::sleep(self.0).await;
                Ok(LlmAnswer {
                    text: "cost".into(),
                    usage: Usage::default(),
                })
            };
            tokio::time::timeout(timeout, answer)
                .await
                .unwrap_or(Err(agent_router::ports::LlmError::Timeout))
        })
    }
    fn model_id(&self) -> &str {
        "slow-double"
    }
}

fn router(classifier: Arc<dyn Classifier>, tier: LlmSettings) -> Router {
    Router::new(Catalogue::embedded_default().unwrap())
        .unwrap()
        .with_llm(classifier, tier)
        .unwrap()
}

const UNROUTED: &str = "which team owns the checkout service?";

#[tokio::test(start_paused = true)]
async fn deadline_bounds_a_stalled_model() {
    let r = router(
        Arc::new(Slow(Duration::from_secs(60))),
        LlmSettings::default(),
    );
    let started = Instant::now();
    let d = r.route(UNROUTED).await;
    assert_eq!(d.fallback_reason, Some(FallbackReason::LlmTimeout), "{d:?}");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "exactly the default 2 s deadline"
    );

    // The caller's remaining time (Lambda) minus the 250 ms margin caps it further.
    let started = Instant::now();
    let d = r
        .route_within("another question", Some(Duration::from_secs(1)))
        .await;
    assert_eq!(d.fallback_reason, Some(FallbackReason::LlmTimeout));
    assert_eq!(started.elapsed(), Duration::from_millis(750));

    // A model faster than the deadline is waited for.
    let r = router(
        Arc::new(Slow(Duration::from_millis(1500))),
        LlmSettings::default(),
    );
    let d = r.route(UNROUTED).await;
    assert_eq!(
        (d.agent.as_str(), d.routing_method),
        ("cost", RoutingMethod::Llm)
    );
}

#[tokio::test(start_paused = true)]
async fn cache_ttl_expiry() {
    let answer = || {
        Ok(LlmAnswer {
            text: "monitoring".into(),
            usage: Usage {
                input_tokens: 150,
                output_tokens: 2,
            },
        })
    };
    let model = Arc::new(StaticClassifier::new([answer(), answer()]));
    let tier = LlmSettings {
        cache_ttl: Duration::from_secs(300),
        ..LlmSettings::default()
    };
    let r = router(model.clone(), tier);
    assert_eq!(r.route(UNROUTED).await.routing_method, RoutingMethod::Llm);
    tokio::time::advance(Duration::from_secs(299)).await;
    let d = r.route(UNROUTED).await;
    assert_eq!(d.routing_method, RoutingMethod::Cache);
    assert!(d.reason.contains("299s ago"), "{}", d.reason);
    assert_eq!(model.calls(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        r.route(UNROUTED).await.routing_method,
        RoutingMethod::Llm,
        "expired after the TTL"
    );
    assert_eq!(model.calls(), 2);
}

#[tokio::test]
async fn cache_can_be_disabled() {
    let answer = || {
        Ok(LlmAnswer {
            text: "cost".into(),
            usage: Usage::default(),
        })
    };
    let model = Arc::new(StaticClassifier::new([answer(), answer()]));
    let r = router(
        model.clone(),
        LlmSettings {
            cache_capacity: 0,
            ..LlmSettings::default()
        },
    );
    for _ in 0..2 {
        assert_eq!(r.route(UNROUTED).await.routing_method, RoutingMethod::Llm);
    }
    assert_eq!(model.calls(), 2);
}

/// Runs the release-or-dev binary with a clean AWS environment pointing at the double.
fn run_binary(query: &str, endpoint: &str) -> (serde_json::Value, String) {
    let home = std::env::temp_dir().join("agent-router-test-home");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agent-router"))
        .args(["route", query])
        .env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", endpoint)
        .env("AWS_LAMBDA_LOG_FORMAT", "Text")
        // One-shot commands log at WARN by default; this test reads the INFO lines.
        .env("RUST_LOG", "info")
        .output()
        .expect("run agent-router");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    (
        serde_json::from_slice(&out.stdout).expect("decision JSON on stdout"),
        stderr,
    )
}

#[tokio::test]
async fn the_binary_uses_the_sdk_endpoint_override_and_loads_aws_config_only_when_needed() {
    let double = BedrockDouble::start(vec![Reply::Answer("security")]).await;
    let url = double.url.clone();
    let (d, stderr) = tokio::task::spawn_blocking(move || run_binary(UNROUTED, &url))
        .await
        .unwrap();
    assert_eq!(d["routing_method"], "llm", "{d}\n{stderr}");
    assert_eq!(d["agent"], "security");
    assert_eq!(d["model_id"], "us.anthropic.claude-haiku-4-5-20251001-v1:0");
    assert_eq!(d["usage"]["input_tokens"], 187);
    assert!(d["timings_us"]["llm"].is_u64());
    assert!(stderr.contains("aws config loaded"), "{stderr}");
    assert!(
        !stderr.contains("checkout"),
        "query text must not be logged at INFO: {stderr}"
    );
    assert_eq!(double.received().len(), 1);

    // A fast-path query in a fresh process never loads AWS config or calls Bedrock.
    let url = double.url.clone();
    let (d, stderr) =
        tokio::task::spawn_blocking(move || run_binary("What are my AWS costs?", &url))
            .await
            .unwrap();
    assert_eq!(d["routing_method"], "fast");
    assert!(stderr.contains("LLM tier on"), "{stderr}");
    assert!(!stderr.contains("aws config loaded"), "{stderr}");
    assert_eq!(double.received().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_cache_key_folds_case_spacing_and_punctuation() {
    let answer = || {
        Ok(LlmAnswer {
            text: "general".into(),
            usage: Usage::default(),
        })
    };
    let model = Arc::new(StaticClassifier::new([answer(), answer()]));
    let r = router(model.clone(), LlmSettings::default());
    // The same words whatever the case, spacing and punctuation: one LLM call.
    let same = [
        "tell me a joke?",
        "tell me a joke ?",
        "  TELL me a JOKE!! ",
        "tell, me: a joke",
    ];
    assert_eq!(r.route(same[0]).await.routing_method, RoutingMethod::Llm);
    for q in &same[1..] {
        let d = r.route(q).await;
        assert_eq!(d.routing_method, RoutingMethod::Cache, "{q:?}");
        assert_eq!(d.agent, "general");
    }
    assert_eq!(model.calls(), 1);
    // Other words are another query.
    assert_eq!(
        r.route("tell me a story?").await.routing_method,
        RoutingMethod::Llm
    );
    assert_eq!(model.calls(), 2);
}
