//! Fault injection under concurrency: Bedrock stalls, throttles, 500s, garbage and resets; agents
//! that fail, stall, are throttled, missing, or unreachable. Every request is answered with its
//! documented status, and none waits past the deadlines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::bedrock_double::{BedrockDouble, Reply};
use crate::support::lambda_double::LambdaDouble;
use agent_router::api::{Api, ApiRequest};
use agent_router::aws::AwsSettings;
use agent_router::aws::LambdaInvoker;
use agent_router::aws::{BedrockClassifier, BedrockSettings};
use agent_router::dispatch::Dispatcher;
use agent_router::{Catalogue, LlmSettings, Router};
use serde_json::{Value, json};

const LLM_DEADLINE: Duration = Duration::from_millis(1500);
const AGENT_TIMEOUT: Duration = Duration::from_millis(2000);

fn aws(url: &str) -> AwsSettings {
    AwsSettings {
        endpoint_url: Some(url.to_owned()),
        region: Some("us-east-1".into()),
        static_credentials: Some(("AKIDEXAMPLE".into(), "secret".into())),
        initial_backoff: Duration::from_millis(5),
        ..AwsSettings::default()
    }
}

/// The default catalogue, agents pointed at the Lambda double's behaviours by name.
fn api(bedrock_url: &str, lambda_url: &str) -> Api {
    let mut catalogue = Catalogue::embedded_default().unwrap();
    let targets = [
        ("cost", "echo-cost"),
        ("security", "failing-agent"),
        ("resources", "slow-agent"),
        ("monitoring", "throttled-agent"),
        ("general", "missing-agent"),
    ];
    catalogue.override_targets(
        &targets
            .iter()
            .map(|(a, t)| (a.to_string(), t.to_string()))
            .collect(),
    );
    let tier = LlmSettings {
        deadline: LLM_DEADLINE,
        cache_capacity: 0,
        ..LlmSettings::default()
    };
    let classifier = Arc::new(BedrockClassifier::new(
        BedrockSettings {
            aws: aws(bedrock_url),
            ..BedrockSettings::default()
        },
        LLM_DEADLINE,
    ));
    let router = Router::new(catalogue)
        .unwrap()
        .with_llm(classifier, tier)
        .unwrap();
    let invoker = Arc::new(LambdaInvoker::new(
        AwsSettings {
            max_attempts: 1,
            ..aws(lambda_url)
        },
        AGENT_TIMEOUT,
    ));
    Api::new(Arc::new(router)).with_dispatcher(Arc::new(Dispatcher::new(
        invoker,
        AGENT_TIMEOUT,
        Duration::from_millis(100),
    )))
}

/// (path, body, expected status, expected agent or error code, expected routing_method/fallback)
type Case = (&'static str, &'static str, u16, &'static str, &'static str);

const CASES: &[Case] = &[
    // Fast path, agents misbehaving.
    ("/query", "What are my AWS costs?", 200, "cost", "fast"),
    ("/query", "any guardduty findings?", 502, "agent_error", ""),
    ("/query", "list my ec2 instances", 504, "agent_timeout", ""),
    (
        "/query",
        "show cloudwatch alarms",
        503,
        "agent_throttled",
        "",
    ),
    // LLM tier misbehaving: the router fails open to the default agent (decision only).
    (
        "/route",
        "which team owns checkout? [stall]",
        200,
        "general",
        "llm_timeout",
    ),
    (
        "/route",
        "which team owns checkout? [429]",
        200,
        "general",
        "llm_throttled",
    ),
    (
        "/route",
        "which team owns checkout? [500]",
        200,
        "general",
        "llm_error",
    ),
    (
        "/route",
        "which team owns checkout? [garbage]",
        200,
        "general",
        "llm_error",
    ),
    (
        "/route",
        "which team owns checkout? [reset]",
        200,
        "general",
        "llm_unavailable|llm_error",
    ),
    (
        "/route",
        "which team owns checkout? [nonsense]",
        200,
        "general",
        "llm_unrecognised_answer",
    ),
    (
        "/route",
        "which team owns checkout?",
        200,
        "monitoring",
        "llm",
    ),
    // The default agent's target does not exist.
    (
        "/query",
        "which team owns checkout? [500]",
        502,
        "agent_unavailable",
        "",
    ),
    // Bad input stays 4xx under load.
    ("/route", "", 400, "empty_query", ""),
];

async fn call(api: &Api, path: &str, query: &str, n: usize) -> (u16, Value, Duration) {
    let req = ApiRequest {
        method: http::Method::POST,
        path: path.into(),
        query: Vec::new(),
        body: json!({ "query": query }).to_string().into(),
        request_id: format!("fault-{n}"),
        remaining: None,
    };
    let started = Instant::now();
    let resp = api.handle(req).await;
    let elapsed = started.elapsed();
    (
        resp.status().as_u16(),
        serde_json::from_str(resp.body()).expect("JSON body"),
        elapsed,
    )
}

fn check(case: &Case, status: u16, body: &Value) {
    let (path, query, want_status, what, how) = *case;
    let label = format!("{path} {query:?}");
    assert_eq!(status, want_status, "{label}: {body}");
    if status == 200 {
        assert_eq!(body["agent"], what, "{label}: {body}");
        let method = body["routing_method"].as_str().unwrap();
        let reason = body["fallback_reason"].as_str().unwrap_or(method);
        assert!(
            how.split('|').any(|h| h == reason),
            "{label}: {reason} not in {how}: {body}"
        );
    } else {
        assert_eq!(body["error"]["code"], what, "{label}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_answered_under_concurrent_faults() {
    let bedrock = BedrockDouble::start(vec![Reply::ByQuery]).await;
    let lambda = LambdaDouble::start().await;
    let api = Arc::new(api(&bedrock.url, &lambda.url));
    let rounds = 8;
    let mut tasks = Vec::new();
    for n in 0..rounds * CASES.len() {
        let api = api.clone();
        let case = &CASES[n % CASES.len()];
        tasks.push(tokio::spawn(async move {
            let (status, body, elapsed) = call(&api, case.0, case.1, n).await;
            (case, status, body, elapsed)
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (case, status, body, elapsed) = t.await.expect("no request may panic");
        check(case, status, &body);
        slowest = slowest.max(elapsed);
    }
    // Functional bound, not a benchmark: nothing waited for a 30 s stall.
    assert!(
        slowest < Duration::from_secs(10),
        "slowest request took {slowest:?}"
    );
    assert!(
        bedrock.received().len() >= rounds * 7,
        "the LLM was really asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_services_fail_open_or_fail_clearly() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let api = api(&url, &url);
    let (status, body, _) = call(&api, "/route", "which team owns checkout?", 0).await;
    assert_eq!(
        (status, &body["fallback_reason"]),
        (200, &json!("llm_unavailable")),
        "{body}"
    );
    let (status, body, _) = call(&api, "/query", "What are my AWS costs?", 1).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (502, &json!("agent_unavailable")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("echo-cost"),
        "{body}"
    );
}

/// The prompt-injection corpus through the whole handler, `/route` and `/query`, with a model that
/// obeys the user (answers with the query's own text) and with hostile answers: the decision is
/// always an agent of the catalogue, and dispatch only ever reaches configured targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_injection_through_the_handler_never_leaves_the_catalogue() {
    let (corpus, names) = crate::support::injection_corpus_and_agents();
    let lambda = LambdaDouble::start().await;
    for reply in [
        Reply::Echo,
        Reply::Answer("admin"),
        Reply::Answer("security\nadmin"),
        Reply::Answer("general"),
    ] {
        let bedrock = BedrockDouble::start(vec![reply.clone()]).await;
        let api = api(&bedrock.url, &lambda.url);
        for (n, q) in corpus.iter().enumerate() {
            for path in ["/route", "/query"] {
                let (status, body, _) = call(&api, path, q, n).await;
                let agent = body["agent"].as_str().or(body["error"]["agent"].as_str());
                assert!(
                    agent.is_some_and(|a| names.iter().any(|n| n == a)),
                    "{reply:?} {path} {q:?} -> {status} {body}"
                );
            }
        }
    }
    let configured = [
        "echo-cost",
        "failing-agent",
        "slow-agent",
        "throttled-agent",
        "missing-agent",
    ];
    for r in lambda.received() {
        let name = r
            .path
            .trim_start_matches("/2015-03-31/functions/")
            .trim_end_matches("/invocations");
        assert!(configured.contains(&name), "dispatched to {name}");
    }
}
