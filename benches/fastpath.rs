//! In-process benchmarks (divan): the fast path alone, and the whole handler from a Lambda event
//! to a response body. Run with `cargo bench --bench fastpath`.
//!
//! Queries: the product's seed queries, and the CLINC150 validation queries
//! (`data/clinc150/val.jsonl`).

use std::sync::{Arc, LazyLock};

use agent_router::api::Api;
use agent_router::{Catalogue, Router};
use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

const SEED_QUERIES: &[&str] = &[
    "What are my AWS costs?",
    "How much did we spend on EC2 last month?",
    "Are there any security findings in GuardDuty?",
    "list all my ec2 instances in us-east-1 please",
    "why is the p99 latency of my checkout API so high today",
    "show cloudwatch alarms in ALARM state for prod",
    "tell me a joke about serverless computing, please",
    "is our customer data encrypted at rest with KMS keys",
];

static ROUTER: LazyLock<Arc<Router>> =
    LazyLock::new(|| Arc::new(Router::new(Catalogue::embedded_default().unwrap()).unwrap()));

static CLINC: LazyLock<Vec<String>> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/clinc150/val.jsonl");
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["query"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
});

/// One query of about 60 bytes, per iteration.
#[divan::bench(args = SEED_QUERIES)]
fn fast_path_seed(query: &str) -> agent_router::routing::FastOutcome {
    ROUTER.fast_path().decide(black_box(query))
}

/// The linear model `keywords` mines from CLINC150 train (a few seconds, once).
static MINED: LazyLock<Arc<Router>> = LazyLock::new(|| {
    let train = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/clinc150/train.jsonl"
    ));
    let (toml, _) =
        agent_router::tune::keywords_command(train, &agent_router::tune::MineOptions::default())
            .expect("mine CLINC150 train");
    Arc::new(Router::new(Catalogue::from_toml_str(&toml).unwrap()).unwrap())
});

/// Cycles through every CLINC150 validation query; the figure is per query. `default`: the
/// embedded catalogue; `mined`: the linear model mined from CLINC150 train.
#[divan::bench(args = ["default", "mined"])]
fn fast_path_clinc_val(bencher: Bencher, catalogue: &str) {
    let queries = &*CLINC;
    assert!(!queries.is_empty(), "data/clinc150/val.jsonl is missing");
    let router = if catalogue == "mined" {
        &*MINED
    } else {
        &*ROUTER
    };
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % queries.len();
        router.fast_path().decide(black_box(&queries[i]))
    });
}

const EVENT_V2: &str = r#"{
  "version": "2.0", "routeKey": "POST /route", "rawPath": "/route", "rawQueryString": "",
  "headers": {"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
  "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
    "domainPrefix": "abc123", "http": {"method": "POST", "path": "/route", "protocol": "HTTP/1.1",
    "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"}, "requestId": "JKJaXmPLvHcESHA=",
    "routeKey": "POST /route", "stage": "$default", "time": "22/Nov/2026:14:15:00 +0000", "timeEpoch": 1795364100000},
  "body": "{\"query\": \"How much did we spend on EC2 last month?\"}", "isBase64Encoded": false
}"#;

/// Event JSON -> lambda_http request -> decision -> response body, as one Lambda invocation.
#[divan::bench]
fn handler_from_event(bencher: Bencher) {
    let api = Api::new(ROUTER.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    bencher.bench_local(|| {
        let req = lambda_http::request::from_str(black_box(EVENT_V2)).unwrap();
        let resp = rt.block_on(api.handle(agent_router::api::to_api_request(req)));
        black_box(resp.into_body())
    });
}

/// Start-up cost: parse and validate the embedded routes file.
#[divan::bench]
fn init_parse_catalogue() -> Catalogue {
    Catalogue::embedded_default().unwrap()
}

/// Start-up cost: compile the keyword automaton for the embedded catalogue.
#[divan::bench]
fn init_compile_fast_path(bencher: Bencher) {
    let catalogue = Catalogue::embedded_default().unwrap();
    bencher.bench_local(|| agent_router::routing::FastPath::new(black_box(&catalogue)).unwrap());
}

/// The handler's cost with and without a conversation (in-process session store, 1,000
/// sessions in rotation, so each turn reads and writes a warm entry): the difference is what
/// sessions add to a request.
#[divan::bench(args = [false, true])]
fn handler_session(bencher: Bencher, with_session: bool) {
    use agent_router::api::ApiRequest;
    use agent_router::ports::MemorySessionStore;
    use agent_router::sessions::Sessions;
    use std::time::Duration;
    let api = Api::new(ROUTER.clone()).with_sessions(Sessions::new(
        Arc::new(MemorySessionStore::new(100_000)),
        Duration::from_millis(50),
        Duration::from_secs(1800),
        false,
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let bodies: Vec<bytes::Bytes> = (0..1000)
        .map(|i| {
            let body = if with_session {
                format!(r#"{{"query": "and last month?", "session_id": "s-{i}"}}"#)
            } else {
                r#"{"query": "and last month?"}"#.to_owned()
            };
            bytes::Bytes::from(body)
        })
        .collect();
    // Each session's first turn, so the timed turns are follow-ups.
    rt.block_on(async {
        for i in 0..1000 {
            let body = format!(r#"{{"query": "What are my AWS costs?", "session_id": "s-{i}"}}"#);
            api.handle(request(bytes::Bytes::from(body))).await;
        }
    });
    fn request(body: bytes::Bytes) -> ApiRequest {
        ApiRequest {
            method: http::Method::POST,
            path: "/route".into(),
            query: Vec::new(),
            body,
            request_id: "bench".into(),
            remaining: None,
        }
    }
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % bodies.len();
        let resp = rt.block_on(api.handle(request(bodies[i].clone())));
        black_box(resp.into_body())
    });
}
