//! The checks behind every fuzz target, shared with the stable regression test.
//!
//! Each `fuzz_targets/*.rs` hands its input to one function here, and
//! `tests/fuzz_regressions.rs` includes this file (`#[path]`) and replays the kept inputs in
//! `tests/fixtures/fuzz/<target>/` through the same functions, so a crash found by the fuzzer
//! stays fixed under a plain `cargo test`. Every function panics when an invariant breaks.
//!
//! This file uses only crates the router itself depends on, so both builds can compile it.

use std::sync::{Arc, OnceLock};

use agent_router::api::{Api, ApiRequest, parse_body, parse_query_string};
use agent_router::routing::{FastOutcome, FastPath, FastPathSettings, Unrouted, normalize_query};
use agent_router::{Agent, Catalogue, CatalogueBuilder, Keyword, Router};
use bytes::Bytes;
use http::{Method, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API over the embedded catalogue (no LLM, no dispatcher) and a current-thread runtime,
/// built once per process.
struct Harness {
    runtime: tokio::runtime::Runtime,
    api: Api,
    router: Arc<Router>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let catalogue = Catalogue::embedded_default().expect("embedded catalogue is valid");
        let router = Arc::new(Router::new(catalogue).expect("embedded catalogue compiles"));
        Harness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            api: Api::new(router.clone()),
            router,
        }
    })
}

fn handle(req: ApiRequest) -> Response<String> {
    let h = harness();
    h.runtime.block_on(h.api.handle(req))
}

fn request(method: Method, path: &str, query: Vec<(String, String)>, body: Bytes) -> ApiRequest {
    ApiRequest {
        method,
        path: path.to_owned(),
        query,
        body,
        request_id: "fuzz".to_owned(),
        remaining: None,
    }
}

/// What a response turned out to be, once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 2xx with a routing decision for this agent.
    Routed {
        /// The chosen agent.
        agent: String,
    },
    /// 2xx without a decision (`/health`).
    Ok,
    /// 4xx with this error code.
    Refused {
        /// The `error.code` field.
        code: String,
    },
}

/// Checks the API's contract on any response: a 2xx or 4xx status (there is no dispatcher,
/// so no 5xx), a JSON content type, a JSON object body; a decision names a catalogue agent and
/// has a confidence in [0, 1]; both carry `request_id`.
pub fn check_response(resp: &Response<String>, request_id: &str) -> Answer {
    let status = resp.status();
    assert!(
        status.is_success() || status.is_client_error(),
        "status {status} for body {:?}",
        resp.body()
    );
    assert_eq!(
        resp.headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "content type"
    );
    let body: Value = serde_json::from_str(resp.body())
        .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", resp.body()));
    let obj = body.as_object().expect("response body is a JSON object");
    if status.is_client_error() {
        let error = obj["error"].as_object().expect("error object");
        assert!(error["message"].is_string(), "error.message: {body}");
        assert_eq!(error["request_id"], request_id, "error.request_id: {body}");
        let code = error["code"].as_str().expect("error.code");
        return Answer::Refused {
            code: code.to_owned(),
        };
    }
    if obj.get("status").is_some() && obj.get("agent").is_none() {
        return Answer::Ok;
    }
    let agent = obj["agent"].as_str().expect("decision has an agent");
    let catalogue = harness().router.catalogue();
    assert!(
        catalogue.agent(agent).is_some(),
        "agent {agent:?} is not in the catalogue"
    );
    let confidence = obj["confidence"].as_f64().expect("confidence is a number");
    assert!(
        (0.0..=1.0).contains(&confidence),
        "confidence {confidence} out of [0, 1]"
    );
    assert!(obj["routing_method"].is_string(), "routing_method: {body}");
    assert!(obj["matched"].is_array(), "matched: {body}");
    assert_eq!(obj["request_id"], request_id, "request_id: {body}");
    Answer::Routed {
        agent: agent.to_owned(),
    }
}

/// `request_body`: the bytes as a `POST /route` and a `POST /query` body. The handler must agree
/// with `parse_body`: its error's status and code, or a decision; both endpoints pick the same
/// agent for the same query.
pub fn request_body(data: &[u8]) {
    let parsed = parse_body(data);
    let body = Bytes::copy_from_slice(data);
    let mut agents = Vec::new();
    for path in ["/route", "/prod/query"] {
        let resp = handle(request(Method::POST, path, Vec::new(), body.clone()));
        let answer = check_response(&resp, "fuzz");
        match (&parsed, answer) {
            (Ok(_), Answer::Routed { agent }) => agents.push(agent),
            (Err(e), Answer::Refused { code }) => {
                assert_eq!(code, e.code(), "{path}: code for {e:?}");
                assert_eq!(resp.status(), e.status(), "{path}: status for {e:?}");
            }
            (p, a) => panic!("{path}: parse_body gave {p:?} but the handler {a:?}"),
        }
    }
    if let [route, query] = agents.as_slice() {
        assert_eq!(route, query, "/route and /query disagree");
    }
}

/// `query_string`: the bytes as a URL query string, decoded with `form_urlencoded`, then
/// `parse_query_string` and `GET /route`, which must agree.
pub fn query_string(data: &[u8]) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let parsed = parse_query_string(&pairs);
    let resp = handle(request(Method::GET, "/route", pairs, Bytes::new()));
    match (&parsed, check_response(&resp, "fuzz")) {
        (Ok(_), Answer::Routed { .. }) => {}
        (Err(e), Answer::Refused { code }) => {
            assert_eq!(code, e.code(), "code for {e:?}");
            assert_eq!(resp.status(), e.status(), "status for {e:?}");
        }
        (p, a) => panic!("parse_query_string gave {p:?} but the handler {a:?}"),
    }
}

/// `lambda_event`: the bytes (lossy UTF-8) as a Lambda HTTP event. Whatever `lambda_http`
/// accepts must convert and be answered with the API's JSON.
pub fn lambda_event(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Some(Ok(event)) = decode_event(&text) else {
        return;
    };
    let req = agent_router::api::to_api_request(event);
    let request_id = req.request_id.clone();
    check_response(&handle(req), &request_id);
}

thread_local! {
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `lambda_http::request::from_str`, or `None` when it panics. lambda_http 1.3 builds the
/// request URI with `Url::parse(..).unwrap()` on the `host` header (or domain name), the
/// `x-forwarded-proto` header and the path, so an event whose host is not a valid URL authority
/// (`"host": "a.example@"`) panics inside lambda_http, before the router sees the event; in
/// Lambda the runtime catches it and the invocation fails (a 502 from API Gateway). That is not
/// this crate's code, so the panic is contained here (silently, on this thread only; any other
/// panic still reaches the fuzzer's hook) and the event counts as one lambda_http rejects.
pub fn decode_event(text: &str) -> Option<Result<lambda_http::Request, serde_json::Error>> {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    QUIET_PANICS.with(|q| q.set(true));
    let decoded = std::panic::catch_unwind(|| lambda_http::request::from_str(text));
    QUIET_PANICS.with(|q| q.set(false));
    decoded.ok()
}

/// A catalogue and a query for the `fastpath` target, in a form that serialises to the JSON
/// files kept in `tests/fixtures/fuzz/fastpath/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FastCase {
    /// Name of the default agent.
    pub default_agent: String,
    /// `[fast_path] margin`.
    #[serde(with = "f32_text")]
    pub margin: f32,
    /// `[fast_path] min_score`.
    #[serde(with = "f32_text")]
    pub min_score: f32,
    /// The agents, in file order.
    pub agents: Vec<FastAgent>,
    /// The query to route.
    pub query: String,
}

/// One agent of a [`FastCase`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FastAgent {
    /// The agent's name.
    pub name: String,
    /// Its keywords and their weights.
    pub keywords: Vec<FastKeyword>,
}

/// One keyword of a [`FastAgent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FastKeyword {
    /// The keyword as written.
    pub text: String,
    /// Its weight (any `f32`, written as text so NaN and infinities survive JSON).
    #[serde(with = "f32_text")]
    pub weight: f32,
}

/// `f32` as its shortest exact decimal text (`"1.5"`, `"NaN"`, `"-inf"`).
mod f32_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `fastpath`: builds the case's catalogue (a rejected one ends the check), compiles the fast
/// path, scans and decides the query, and checks the scoring invariants.
pub fn fastpath(case: &FastCase) {
    let mut builder = CatalogueBuilder::new(case.default_agent.clone());
    builder.fast_path(FastPathSettings {
        margin: case.margin,
        min_score: case.min_score,
    });
    for a in &case.agents {
        builder.agent(Agent {
            name: a.name.clone(),
            description: format!("{} things", a.name),
            keywords: a
                .keywords
                .iter()
                .map(|k| Keyword {
                    text: k.text.clone(),
                    weight: k.weight,
                })
                .collect(),
            bias: 0.0,
            target: None,
        });
    }
    let Ok(catalogue) = builder.build() else {
        return;
    };
    let Ok(fast) = FastPath::new(&catalogue) else {
        return;
    };
    let agents = catalogue.agents();
    let settings = catalogue.fast_path();
    let query = &case.query;
    let norm_query = normalize_query(query);

    let scan = fast.scan(query);
    assert_eq!(scan, fast.scan(query), "scan is not deterministic");
    assert_eq!(scan.scores.len(), agents.len(), "one score per agent");
    let mut sums = vec![0.0f32; agents.len()];
    for (i, h) in scan.hits.iter().enumerate() {
        let keyword = agents
            .get(h.agent)
            .and_then(|a| a.keywords.get(h.keyword))
            .unwrap_or_else(|| panic!("hit {h:?} is not a catalogue keyword"));
        assert_eq!(h.weight, keyword.weight, "hit {h:?} has the wrong weight");
        assert!(
            norm_query.contains(&normalize_query(&keyword.text)),
            "hit {:?} is not in the query {norm_query:?}",
            keyword.text
        );
        assert!(
            !scan.hits[..i]
                .iter()
                .any(|o| o.agent == h.agent && o.keyword == h.keyword),
            "keyword {:?} counted twice",
            keyword.text
        );
        sums[h.agent] += h.weight;
    }
    for (i, &s) in scan.scores.iter().enumerate() {
        assert!(s.is_finite() && s >= 0.0, "agent {i} scores {s}");
        assert_eq!(s, sums[i], "agent {i}'s score is not the sum of its hits");
    }

    let outcome = fast.decide(query);
    assert_eq!(
        outcome,
        fast.judge(&scan),
        "decide differs from judge(scan)"
    );
    assert_eq!(outcome, fast.decide(query), "decide is not deterministic");
    let top = scan.scores.iter().copied().fold(0.0f32, f32::max);
    match outcome {
        FastOutcome::Decided {
            agent,
            keywords,
            score,
            runner_up,
            confidence,
        } => {
            assert!(agent < agents.len(), "decided agent {agent} out of range");
            assert_eq!(score, scan.scores[agent], "decided score");
            assert_eq!(score, top, "decided agent has not the top score");
            for (i, &s) in scan.scores.iter().enumerate() {
                if i != agent {
                    assert!(
                        s <= runner_up,
                        "agent {i} scores {s} over runner-up {runner_up}"
                    );
                    assert!(s < score, "agent {i} ties the winner at {s}");
                }
            }
            assert!(score >= settings.min_score, "{score} below min_score");
            assert!(
                score - runner_up >= settings.margin,
                "{score} beats {runner_up} by less than the margin {}",
                settings.margin
            );
            assert!(
                (0.0..=1.0).contains(&confidence),
                "confidence {confidence} out of [0, 1]"
            );
            let expected: Vec<usize> = scan
                .hits
                .iter()
                .filter(|h| h.agent == agent)
                .map(|h| h.keyword)
                .collect();
            assert!(!keywords.is_empty(), "decided without a keyword");
            assert_eq!(keywords, expected, "decided keywords");
        }
        FastOutcome::Unrouted {
            why,
            best,
            runner_up,
        } => {
            assert_eq!(best, top, "unrouted best score");
            assert!(runner_up <= best, "runner-up {runner_up} over best {best}");
            assert_eq!(
                why == Unrouted::NoKeywordMatch,
                scan.hits.is_empty(),
                "{why}"
            );
        }
    }
}
