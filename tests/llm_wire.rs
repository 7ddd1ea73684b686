//! The LLM tier at the wire level: the real Bedrock adapter (AWS SDK, SigV4, retries, timeouts)
//! against a loopback double reached through the SDK's endpoint override.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::bedrock_double::{BedrockDouble, Reply};
use agent_router::aws::AwsSettings;
use agent_router::aws::{BedrockClassifier, BedrockSettings};
use agent_router::routing::MAX_PROMPT_WORDS;
use agent_router::{Catalogue, Decision, FallbackReason, LlmSettings, Router, RoutingMethod};

const MODEL: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

fn settings(url: &str) -> BedrockSettings {
    BedrockSettings {
        aws: aws(url),
        ..BedrockSettings::default()
    }
}

fn aws(url: &str) -> AwsSettings {
    AwsSettings {
        endpoint_url: Some(url.to_owned()),
        region: Some("us-east-1".into()),
        static_credentials: Some((
            "AKIDEXAMPLE".into(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        )),
        initial_backoff: Duration::from_millis(5),
        ..AwsSettings::default()
    }
}

fn router_with(bedrock: BedrockSettings, tier: LlmSettings) -> Router {
    let classifier = Arc::new(BedrockClassifier::new(bedrock, tier.deadline));
    Router::new(Catalogue::embedded_default().unwrap())
        .unwrap()
        .with_llm(classifier, tier)
        .unwrap()
}

async fn setup(script: Vec<Reply>) -> (BedrockDouble, Router) {
    let double = BedrockDouble::start(script).await;
    let router = router_with(settings(&double.url), LlmSettings::default());
    (double, router)
}

/// A query the fast path leaves unrouted, so it reaches the LLM.
const UNROUTED: &str = "which team owns the checkout service?";

fn assert_fallback(d: &Decision, reason: FallbackReason) {
    assert_eq!(d.routing_method, RoutingMethod::Default, "{d:?}");
    assert_eq!(d.agent, "general");
    assert_eq!(d.fallback_reason, Some(reason), "{d:?}");
}

#[tokio::test]
async fn correct_answer_and_the_request_on_the_wire() {
    let (double, router) = setup(vec![Reply::Answer("resources")]).await;
    let d = router.route(UNROUTED).await;
    assert_eq!(
        (d.agent.as_str(), d.routing_method),
        ("resources", RoutingMethod::Llm),
        "{d:?}"
    );
    assert_eq!(d.model_id.as_deref(), Some(MODEL));
    let usage = d.usage.expect("usage");
    assert_eq!((usage.input_tokens, usage.output_tokens), (187, 2));
    assert!(d.timings_us.llm.is_some());
    assert!(d.confidence > 0.0 && d.confidence < 1.0);

    let got = double.received();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(
        req.path,
        format!("/model/{}/converse", MODEL.replace(':', "%3A"))
    );
    assert!(req.signed, "requests must be SigV4-signed");
    let body = &req.body;
    // The query is the user message, and only there.
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["messages"][0]["content"][0]["text"], UNROUTED);
    let system = body["system"][0]["text"].as_str().expect("system prompt");
    assert!(
        !system.contains("checkout"),
        "the query leaked into the system prompt"
    );
    // Tiny prompt: the template's words plus one line per agent.
    let catalogue = Catalogue::embedded_default().unwrap();
    let agent_words: usize = catalogue
        .agents()
        .iter()
        .map(|a| {
            format!("{}: {}", a.name, a.description)
                .split_whitespace()
                .count()
        })
        .sum();
    let words = system.split_whitespace().count();
    assert!(
        words <= MAX_PROMPT_WORDS + agent_words,
        "{words} words in the system prompt"
    );
    for a in catalogue.agents() {
        assert!(system.contains(&format!("{}: {}", a.name, a.description)));
    }
    // A handful of output tokens, temperature only (Haiku 4.5 rejects temperature with top_p).
    let inference = &body["inferenceConfig"];
    assert!(
        inference["maxTokens"].as_u64().unwrap() <= 16,
        "{inference}"
    );
    assert_eq!(inference["temperature"], 0.0);
    assert!(inference.get("topP").is_none(), "{inference}");
}

#[tokio::test]
async fn no_sampling_parameters_when_temperature_is_none() {
    let double = BedrockDouble::start(vec![Reply::Answer("cost")]).await;
    let bedrock = BedrockSettings {
        temperature: None,
        model_id: "global.anthropic.claude-haiku-4-5-20251001-v1:0".into(),
        ..settings(&double.url)
    };
    let router = router_with(bedrock, LlmSettings::default());
    let d = router.route(UNROUTED).await;
    assert_eq!(d.routing_method, RoutingMethod::Llm);
    let got = double.received();
    assert!(
        got[0]
            .path
            .starts_with("/model/global.anthropic.claude-haiku-4-5"),
        "{}",
        got[0].path
    );
    let inference = &got[0].body["inferenceConfig"];
    assert!(
        inference.get("temperature").is_none() && inference.get("topP").is_none(),
        "{inference}"
    );
}

#[tokio::test]
async fn answers_table() {
    let cases: Vec<(Reply, Option<&str>, Option<FallbackReason>)> = vec![
        (Reply::Answer("cost"), Some("cost"), None),
        (Reply::Answer("  Security\n"), Some("security"), None),
        (Reply::Answer("MONITORING"), Some("monitoring"), None),
        (
            Reply::Answer("admin"),
            None,
            Some(FallbackReason::LlmUnrecognisedAnswer),
        ),
        (
            Reply::Answer("I think this is a question for the cost agent."),
            None,
            Some(FallbackReason::LlmUnrecognisedAnswer),
        ),
        (
            Reply::Answer("cost, security"),
            None,
            Some(FallbackReason::LlmUnrecognisedAnswer),
        ),
        (
            Reply::Answer(""),
            None,
            Some(FallbackReason::LlmUnrecognisedAnswer),
        ),
        (Reply::Garbage, None, Some(FallbackReason::LlmError)),
        (
            Reply::Error(400, "ValidationException"),
            None,
            Some(FallbackReason::LlmError),
        ),
        (
            Reply::Error(403, "AccessDeniedException"),
            None,
            Some(FallbackReason::LlmError),
        ),
        (
            Reply::Error(500, "InternalServerException"),
            None,
            Some(FallbackReason::LlmError),
        ),
        (
            Reply::Error(503, "ServiceUnavailableException"),
            None,
            Some(FallbackReason::LlmError),
        ),
        (
            Reply::Error(429, "ThrottlingException"),
            None,
            Some(FallbackReason::LlmThrottled),
        ),
    ];
    for (reply, agent, reason) in cases {
        let label = format!("{reply:?}");
        let (_double, router) = setup(vec![reply]).await;
        let d = router.route(UNROUTED).await;
        match (agent, reason) {
            (Some(a), None) => assert_eq!(
                (d.agent.as_str(), d.routing_method),
                (a, RoutingMethod::Llm),
                "{label}: {d:?}"
            ),
            (None, Some(r)) => {
                assert_fallback(&d, r);
                assert_eq!(d.model_id.as_deref(), Some(MODEL), "{label}");
            }
            _ => unreachable!(),
        }
    }
}

#[tokio::test]
async fn throttled_once_then_success_is_retried() {
    let (double, router) = setup(vec![
        Reply::Error(429, "ThrottlingException"),
        Reply::Answer("security"),
    ])
    .await;
    let d = router.route(UNROUTED).await;
    assert_eq!(
        (d.agent.as_str(), d.routing_method),
        ("security", RoutingMethod::Llm),
        "{d:?}"
    );
    assert_eq!(double.received().len(), 2, "one retry");
}

#[tokio::test]
async fn persistent_errors_stop_after_two_attempts() {
    for (reply, reason) in [
        (
            Reply::Error(429, "ThrottlingException"),
            FallbackReason::LlmThrottled,
        ),
        (
            Reply::Error(500, "InternalServerException"),
            FallbackReason::LlmError,
        ),
    ] {
        let (double, router) = setup(vec![reply]).await;
        let d = router.route(UNROUTED).await;
        assert_fallback(&d, reason);
        assert_eq!(double.received().len(), 2, "at most 2 attempts");
    }
}

#[tokio::test]
async fn connection_reset_and_refused_fail_open() {
    let (_double, router) = setup(vec![Reply::Reset]).await;
    let d = router.route(UNROUTED).await;
    assert_eq!(d.routing_method, RoutingMethod::Default, "{d:?}");
    assert!(
        matches!(
            d.fallback_reason,
            Some(FallbackReason::LlmUnavailable | FallbackReason::LlmError)
        ),
        "{d:?}"
    );
    // Nothing listens on the port of a listener that was just closed.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let router = router_with(settings(&url), LlmSettings::default());
    assert_fallback(
        &router.route(UNROUTED).await,
        FallbackReason::LlmUnavailable,
    );
}

#[tokio::test]
async fn a_stall_is_cut_at_the_deadline() {
    let (double, _) = setup(vec![Reply::Stall(Duration::from_secs(30))]).await;
    let tier = LlmSettings {
        deadline: Duration::from_millis(300),
        ..LlmSettings::default()
    };
    let router = router_with(settings(&double.url), tier);
    let started = Instant::now();
    let d = router.route(UNROUTED).await;
    assert_fallback(&d, FallbackReason::LlmTimeout);
    // Functional bound, not a benchmark: the router did not wait for the 30 s stall.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The Lambda deadline caps the tier too: with 100 ms left and a 250 ms margin, no call is made.
    let before = double.received().len();
    let d = router
        .route_within(
            "another unrouted question",
            Some(Duration::from_millis(100)),
        )
        .await;
    assert_fallback(&d, FallbackReason::LlmTimeout);
    assert_eq!(double.received().len(), before, "no call without time left");
}

#[tokio::test]
async fn cache_hit_makes_no_second_call_and_errors_are_not_cached() {
    let (double, router) = setup(vec![Reply::Answer("monitoring")]).await;
    let first = router.route("Is the checkout service OK?").await;
    assert_eq!(first.routing_method, RoutingMethod::Llm);
    let second = router.route("  is the CHECKOUT service   ok?").await;
    assert_eq!(
        (second.agent.as_str(), second.routing_method),
        ("monitoring", RoutingMethod::Cache),
        "{second:?}"
    );
    assert!(second.timings_us.llm.is_none() && second.usage.is_none());
    assert_eq!(double.received().len(), 1, "a cache hit asks nothing");

    double.set_script(vec![Reply::Error(500, "InternalServerException")]);
    assert_fallback(
        &router.route("who is on call").await,
        FallbackReason::LlmError,
    );
    double.set_script(vec![Reply::Answer("general")]);
    assert_eq!(
        router.route("who is on call").await.routing_method,
        RoutingMethod::Llm,
        "fallbacks are not cached"
    );
}

#[tokio::test]
async fn prompt_injection_never_leaves_the_catalogue() {
    let (queries, names) = crate::support::injection_corpus_and_agents();
    // An obedient model that answers with whatever the user wrote, then a hostile one.
    for reply in [
        Reply::Echo,
        Reply::Answer("admin"),
        Reply::Answer("cost\nadmin"),
    ] {
        let (_double, router) = setup(vec![reply.clone()]).await;
        for q in &queries {
            let q = q.as_str();
            let d = router.route(q).await;
            assert!(names.contains(&d.agent), "{reply:?} {q:?} -> {d:?}");
            if d.routing_method == RoutingMethod::Llm {
                assert_eq!(
                    q.trim().to_lowercase(),
                    d.agent,
                    "LLM decisions only on exact names"
                );
            }
        }
    }
}

#[tokio::test]
async fn adaptive_retry_mode_holds_the_retry_but_still_fails_open() {
    // Why standard mode is the default: after a cold client's first throttle, adaptive mode's
    // rate limiter delays the retry past a short deadline. The router still answers in time.
    let double = BedrockDouble::start(vec![
        Reply::Error(429, "ThrottlingException"),
        Reply::Answer("security"),
    ])
    .await;
    let bedrock = BedrockSettings {
        aws: AwsSettings {
            adaptive_retry: true,
            ..aws(&double.url)
        },
        ..settings(&double.url)
    };
    let tier = LlmSettings {
        deadline: Duration::from_millis(400),
        ..LlmSettings::default()
    };
    let d = router_with(bedrock, tier).route(UNROUTED).await;
    assert_fallback(&d, FallbackReason::LlmTimeout);
    assert_eq!(
        double.received().len(),
        1,
        "the retry was held back by the client-side limiter"
    );
}
