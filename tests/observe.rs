//! Knowing how right the router is in production: sampled second opinions from the LLM, the
//! decision log that `keywords` learns from, and the local server's `/stats`. The end-to-end test
//! drives the real binary against the Bedrock double, collects its decision log from stdout,
//! mines routes from it and checks that they take queries the old routes left to the LLM.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::bedrock_double::{BedrockDouble, Reply};
use agent_router::api::{Api, ApiRequest};
use agent_router::dispatch::Dispatcher;
use agent_router::ops::stats::Stats;
use agent_router::ports::{Invocation, LlmAnswer, StaticClassifier, StaticInvoker, Usage};
use agent_router::shadow::Shadows;
use agent_router::{Catalogue, LlmSettings, Router};
use bytes::Bytes;
use serde_json::{Value, json};

/// A model that knows a few topics the default catalogue has no keywords for.
const TOPICS: &[(&str, &str)] = &[
    ("pod", "monitoring"),
    ("kubelet", "monitoring"),
    ("invoice", "cost"),
];

fn spawn_router(bedrock: &str, extra: &[(&str, &str)]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-router"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("PORT", port.to_string())
        .env("ROUTER_LLM", "on")
        .env("ROUTER_DISPATCH", "off")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock)
        .env("AWS_LAMBDA_LOG_FORMAT", "Text");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agent-router");
    (child, format!("127.0.0.1:{port}"))
}

async fn wait_up(addr: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the router did not start");
}

async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (status, _, answer) =
        crate::support::raw_request(addr.parse().unwrap(), &head, body.as_bytes()).await;
    (
        status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

fn route(config: Option<&std::path::Path>, query: &str) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-router"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ROUTER_LLM", "off")
        .arg("route");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.arg(query).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_decision_log_grows_the_fast_path() {
    let bedrock = BedrockDouble::start(vec![Reply::Topics(TOPICS)]).await;
    let (mut child, addr) = spawn_router(
        &bedrock.url,
        &[
            ("ROUTER_DECISION_LOG", "on"),
            ("ROUTER_SHADOW_RATE", "1"),
            ("ROUTER_SHADOW_MAX_PER_SEC", "1000"),
            ("ROUTER_METRICS", "on"),
        ],
    );
    // Read stdout as it comes: a full pipe would block the router's writes.
    let mut pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        pipe.read_to_string(&mut out).unwrap();
        out
    });
    wait_up(&addr).await;
    // Production traffic: Kubernetes questions the catalogue leaves to the LLM, and invoice
    // questions its fast path takes (each gets a second opinion).
    let places = [
        "alpha", "beta", "gamma", "payments", "checkout", "search", "billing", "edge",
    ];
    let pod_forms = [
        "why do the pods in cluster {} keep bouncing",
        "pods in namespace {} keep cycling",
        "kubelet evicting pods on node pool {}",
        "pods stuck in ContainerCreating in {}",
        "pods in {} keep getting rescheduled",
    ];
    let invoice_forms = [
        "the invoice for team {} looks off",
        "is the {} invoice paid yet",
        "invoice totals for {} this quarter",
    ];
    let mut fast = 0;
    for (i, place) in places.iter().enumerate() {
        for (j, form) in pod_forms.iter().enumerate() {
            // Each its own conversation's first turn, so the LLM decides.
            let body = json!({"query": form.replace("{}", place), "session_id": format!("secret-session-{i}-{j}")});
            let (status, d) = http(&addr, "POST", "/route", &body.to_string()).await;
            assert_eq!(status, 200);
            assert_eq!(
                (d["routing_method"].as_str(), d["agent"].as_str()),
                (Some("llm"), Some("monitoring")),
                "{d}"
            );
        }
        for form in invoice_forms {
            let body = json!({"query": form.replace("{}", place)});
            let (_, d) = http(&addr, "POST", "/route", &body.to_string()).await;
            assert_eq!(
                (d["routing_method"].as_str(), d["agent"].as_str()),
                (Some("fast"), Some("cost")),
                "{d}"
            );
            fast += 1;
        }
    }
    // /route answered at once; the second opinions finish in the background.
    let mut stats = Value::Null;
    for _ in 0..200 {
        stats = http(&addr, "GET", "/stats", "").await.1;
        if stats["shadow"]["asked"] == fast {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(stats["shadow"]["asked"], fast, "{stats}");
    assert_eq!(stats["shadow"]["agreement"], 1.0, "{stats}");
    assert!(
        stats["by_routing_method"]
            .as_array()
            .unwrap()
            .contains(&json!({"routing_method": "llm", "count": 40})),
        "{stats}"
    );
    assert!(stats["latency_us"]["llm"]["p50"].is_u64(), "{stats}");
    let _ = child.kill();
    let _ = child.wait();
    let stdout = reader.join().unwrap();

    let log: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "decision")
        .collect();
    assert_eq!(log.len(), 40 + fast, "one line per decision");
    assert!(
        !stdout.contains("secret-session"),
        "session ids are tagged, never written"
    );
    for line in &log {
        match line["routing_method"].as_str().unwrap() {
            "llm" => assert_eq!(line["llm_source"], "llm", "{line}"),
            "fast" => {
                assert_eq!(line["llm_source"], "shadow", "{line}");
                assert_eq!(line["llm_agent"], line["agent"], "{line}");
            }
            other => panic!("{other}: {line}"),
        }
        assert!(line["ts"].is_u64() && line["query"].is_string() && line["confidence"].is_number());
    }
    let dir = std::env::temp_dir().join(format!("agent-router-dlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log_file = dir.join("decisions.jsonl");
    std::fs::write(&log_file, stdout).unwrap(); // metric lines and all: keywords reads what it knows
    let routes = dir.join("routes.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_agent-router"))
        .args(["keywords", "--force", "--data"])
        .arg(&log_file)
        .arg("--out")
        .arg(&routes)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} decision-log lines", 40 + fast)),
        "{stderr}"
    );
    // Queries the old routes left to the LLM now take the fast path.
    for q in [
        "pods bouncing again in cluster delta",
        "kubelet evicting pods in zeta",
    ] {
        assert_eq!(route(None, q)["routing_method"], "default", "before: {q}");
        let d = route(Some(&routes), q);
        assert_eq!(
            (d["routing_method"].as_str(), d["agent"].as_str()),
            (Some("fast"), Some("monitoring")),
            "after: {q}: {d}"
        );
    }
}

fn post(body: &str, path: &str) -> ApiRequest {
    ApiRequest {
        method: http::Method::POST,
        path: path.into(),
        query: Vec::new(),
        body: Bytes::from(body.to_owned()),
        request_id: "obs".into(),
        remaining: None,
    }
}

#[tokio::test]
async fn a_second_opinion_on_query_is_joined_before_the_answer() {
    let answer = |t: &str| {
        Ok(LlmAnswer {
            text: t.into(),
            usage: Usage::default(),
        })
    };
    // The LLM agrees once, disagrees once.
    let model = Arc::new(StaticClassifier::new([answer("cost"), answer("security")]));
    let mut catalogue = Catalogue::embedded_default().unwrap();
    catalogue.override_targets(&[("cost".to_owned(), "cost-fn".to_owned())].into());
    let router = Router::new(catalogue)
        .unwrap()
        .with_llm(model.clone(), LlmSettings::default())
        .unwrap();
    // The agent takes 20 ms: the (instant) second opinion is back before it.
    let invoker = Arc::new(StaticInvoker::new(
        Ok(Invocation {
            payload: b"{}".to_vec(),
            function_error: None,
        }),
        Duration::from_millis(20),
    ));
    let stats = Arc::new(Stats::new());
    let api = Api::new(Arc::new(router))
        .with_dispatcher(Arc::new(Dispatcher::new(
            invoker,
            Duration::from_secs(1),
            Duration::ZERO,
        )))
        .with_shadows(Shadows::new(1.0, 1000.0, false))
        .with_stats(stats.clone());
    for _ in 0..2 {
        let resp = api
            .handle(post(r#"{"query": "What are my AWS costs?"}"#, "/query"))
            .await;
        assert_eq!(resp.status(), 200, "{}", resp.body());
    }
    assert_eq!(
        model.calls(),
        2,
        "one second opinion per fast decision, joined"
    );
    let s = stats.snapshot();
    assert_eq!(s["shadow"]["asked"], 2);
    assert_eq!(s["shadow"]["agreement"], 0.5);
    assert_eq!(
        s["shadow"]["by_agent"],
        json!([{"agent": "cost", "answered": 2, "agreement": 0.5}])
    );
    // Without on_route (Lambda), /route gets none: the process may freeze after the answer.
    let resp = api
        .handle(post(r#"{"query": "What are my AWS costs?"}"#, "/route"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(model.calls(), 2);
}

#[tokio::test]
async fn stats_are_a_local_server_endpoint() {
    let router = Arc::new(Router::new(Catalogue::embedded_default().unwrap()).unwrap());
    let get = |path: &str| ApiRequest {
        method: http::Method::GET,
        path: path.into(),
        query: Vec::new(),
        body: Bytes::new(),
        request_id: "s".into(),
        remaining: None,
    };
    // Without stats (as in Lambda): not found.
    let plain = Api::new(router.clone());
    assert_eq!(plain.handle(get("/stats")).await.status(), 404);
    let api = Api::new(router).with_stats(Arc::new(Stats::new()));
    for q in ["/route?q=my+bill", "/route?q=tell+me+a+joke", "/nope"] {
        let (path, query) = q.split_once('?').unwrap_or((q, ""));
        let mut r = get(path);
        r.query = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        api.handle(r).await;
    }
    let resp = api.handle(get("/stats")).await;
    assert_eq!(resp.status(), 200);
    let s: Value = serde_json::from_str(resp.body()).unwrap();
    assert_eq!(s["requests"], 3, "{s}");
    assert_eq!(
        s["by_status"],
        json!([{"status": 200, "count": 2}, {"status": 404, "count": 1}])
    );
    assert_eq!(
        s["by_routing_method"],
        json!([{"routing_method": "default", "count": 1}, {"routing_method": "fast", "count": 1}])
    );
    assert_eq!(
        s["by_agent"],
        json!([{"agent": "cost", "count": 1}, {"agent": "general", "count": 1}])
    );
    assert_eq!(s["latency_us"]["route"]["count"], 2);
    assert!(s["cache_hit_rate"].is_null(), "no LLM call, no rate: {s}");
    assert_eq!(
        api.handle(ApiRequest {
            method: http::Method::POST,
            ..get("/stats")
        })
        .await
        .status(),
        405
    );
}

/// A model that takes ten seconds.
#[derive(Debug)]
struct Slow;

impl agent_router::ports::Classifier for Slow {
    fn classify<'a>(
        &'a self,
        _s: &'a str,
        _q: &'a str,
        _t: Duration,
    ) -> agent_router::ports::ClassifyFuture<'a> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(LlmAnswer {
                text: "cost".into(),
                usage: Usage::default(),
            })
        })
    }

    fn model_id(&self) -> &str {
        "slow"
    }
}

#[tokio::test(start_paused = true)]
async fn the_answer_never_waits_for_a_second_opinion() {
    let mut catalogue = Catalogue::embedded_default().unwrap();
    catalogue.override_targets(&[("cost".to_owned(), "cost-fn".to_owned())].into());
    let router = Router::new(catalogue)
        .unwrap()
        .with_llm(Arc::new(Slow), LlmSettings::default())
        .unwrap();
    let invoker = Arc::new(StaticInvoker::new(
        Ok(Invocation {
            payload: b"{}".to_vec(),
            function_error: None,
        }),
        Duration::from_millis(100),
    ));
    let stats = Arc::new(Stats::new());
    let api = Api::new(Arc::new(router))
        .with_dispatcher(Arc::new(Dispatcher::new(
            invoker,
            Duration::from_secs(5),
            Duration::ZERO,
        )))
        .with_shadows(Shadows::new(1.0, 1000.0, false))
        .with_stats(stats.clone());
    let started = tokio::time::Instant::now();
    let resp = api
        .handle(post(r#"{"query": "What are my AWS costs?"}"#, "/query"))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered when the agent did, not when the model would have: {:?}",
        started.elapsed()
    );
    assert_eq!(
        stats.snapshot()["shadow"]["asked"],
        0,
        "the late opinion was dropped"
    );
}
