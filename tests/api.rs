//! The request corpus in `tests/fixtures/requests.json`, driven through the handler directly and
//! through the local HTTP server: every case gets its documented status and error code, and the
//! server keeps answering afterwards.
//!
//! A case is `{"name", "method", "path" (with its query string), "status"}`, plus `"code"` for an
//! error or `"agent"` for a decision, and a body: `"body"` (text), `"body_bytes"` (bytes, for
//! invalid UTF-8 and NULs) and/or `"body_repeat"` (`[[text, times], ...]` appended, for bodies
//! too large to commit). `"headers"` replaces the headers the local server run sends
//! (`content-type: application/json` by default); the handler never sees headers, and the
//! content type is not checked, so both runs expect the same answer. A `HEAD` answer has no
//! body through the server: only its status, headers and emptiness are checked there.

use std::sync::Arc;

use agent_router::api::{Api, ApiRequest};
use agent_router::{Catalogue, Router};
use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct Case {
    name: String,
    method: String,
    path: String,
    body: Vec<u8>,
    /// Request headers for the local server run, besides host, content-length and connection.
    headers: Vec<(String, String)>,
    status: u16,
    code: Option<String>,
    agent: Option<String>,
}

fn corpus() -> Vec<Case> {
    let text = include_str!("fixtures/requests.json");
    let cases: Vec<Value> = serde_json::from_str(text).expect("fixture is JSON");
    assert!(cases.len() >= 150, "corpus shrank to {}", cases.len());
    cases
        .into_iter()
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
            let mut body = match (c.get("body"), c.get("body_bytes")) {
                (Some(Value::String(b)), _) => b.clone().into_bytes(),
                (_, Some(Value::Array(a))) => a.iter().map(|b| b.as_u64().unwrap() as u8).collect(),
                _ => Vec::new(),
            };
            for part in c["body_repeat"].as_array().into_iter().flatten() {
                let text = part[0].as_str().expect("body_repeat: [text, times]");
                let times = part[1].as_u64().expect("body_repeat: [text, times]") as usize;
                body.extend(text.repeat(times).into_bytes());
            }
            let headers = match c.get("headers") {
                Some(Value::Object(h)) => h
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect(),
                _ => vec![("content-type".to_owned(), "application/json".to_owned())],
            };
            Case {
                name: s("name").unwrap(),
                method: s("method").unwrap(),
                path: s("path").unwrap(),
                body,
                headers,
                status: c["status"].as_u64().unwrap() as u16,
                code: s("code"),
                agent: s("agent"),
            }
        })
        .collect()
}

fn api() -> Arc<Api> {
    let router = Router::new(Catalogue::embedded_default().unwrap()).unwrap();
    Arc::new(Api::new(Arc::new(router)))
}

/// Checks one response against its case; `body` is the raw response body.
fn check(case: &Case, status: u16, content_type: Option<&str>, body: &[u8]) {
    let what = format!("case {:?}", case.name);
    assert_eq!(
        status,
        case.status,
        "{what}: body {}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(content_type, Some("application/json"), "{what}");
    if case.method == "HEAD" {
        // HEAD answers like GET, without the body.
        assert!(body.is_empty(), "{what}: HEAD answered a body");
        return;
    }
    let json: Value =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
    match (&case.code, &case.agent) {
        (Some(code), _) => {
            assert_eq!(json["error"]["code"], code.as_str(), "{what}: {json}");
            let msg = json["error"]["message"].as_str().unwrap_or("");
            assert!(
                msg.len() > 10,
                "{what}: message must help a person: {msg:?}"
            );
            assert_eq!(
                json.as_object().unwrap().len(),
                1,
                "{what}: only the error object: {json}"
            );
        }
        (None, Some(agent)) => {
            assert_eq!(json["agent"], agent.as_str(), "{what}: {json}");
            assert!(json["routing_method"].is_string(), "{what}");
            assert!(json["matched"].is_array(), "{what}");
            assert!(json["confidence"].is_number(), "{what}");
            assert!(json["timings_us"]["route"].is_u64(), "{what}");
            assert!(
                json["request_id"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}"
            );
            assert!(
                json["reason"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}"
            );
        }
        (None, None) => assert_eq!(json, serde_json::json!({"status": "ok"}), "{what}"),
    }
}

#[tokio::test]
async fn corpus_through_the_handler() {
    let api = api();
    for case in corpus() {
        let (path, query) = case.path.split_once('?').unwrap_or((&case.path, ""));
        let req = ApiRequest {
            method: case.method.parse().unwrap(),
            path: path.to_owned(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            body: Bytes::from(case.body.clone()),
            request_id: "req-1".to_owned(),
            remaining: None,
        };
        let resp = api.handle(req).await;
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(resp.headers()["x-request-id"], "req-1");
        if case.status == 405 {
            assert!(
                resp.headers().contains_key("allow"),
                "case {:?}: 405 needs Allow",
                case.name
            );
        }
        check(
            &case,
            resp.status().as_u16(),
            ct.as_deref(),
            resp.body().as_bytes(),
        );
    }
}

/// Sends one raw HTTP/1.1 request and returns (status, lower-cased head, body).
///
/// The body is written while the answer is read: the server may answer 413 and close without
/// reading a large body, so a failed write, or a reset once the answer has arrived, is not an
/// error.
/// Sends `head` and `body`, then closes the sending side, and reads the answer.
async fn half_closed_exchange(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(&[head.as_bytes(), body].concat())
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    crate::support::split_response(&buf)
}

async fn raw_exchange(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let request = [head.as_bytes(), body].concat();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        wr
    });
    let mut buf = Vec::new();
    if let Err(e) = rd.read_to_end(&mut buf).await {
        assert!(!buf.is_empty(), "no answer: {e}");
    }
    drop(writer.await.expect("writer task"));
    crate::support::split_response(&buf)
}

/// The value of header `name` (lower case) in a lower-cased response head.
fn header_in(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
            .map(str::to_owned)
    })
}

type Server = tokio::task::JoinHandle<std::io::Result<()>>;

/// The local server over [`api`] on a free port: its address, a stop switch and its task.
async fn local_server() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    Server,
) {
    let listener = agent_router::api::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(agent_router::api::serve(api(), listener, async {
        let _ = stop_rx.await;
    }));
    (addr, stop_tx, server)
}

#[tokio::test]
async fn corpus_through_the_local_server() {
    let (addr, stop_tx, server) = local_server().await;
    for case in corpus() {
        let headers: String = case
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let head = format!(
            "{} {} HTTP/1.1\r\nhost: localhost\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
            case.method,
            case.path,
            case.body.len()
        );
        let (status, head, body) = raw_exchange(addr, &head, &case.body).await;
        let ct = header_in(&head, "content-type");
        if case.method == "HEAD" {
            // hyper sends a HEAD answer's headers (content-length included) but never its body.
            let what = format!("case {:?}", case.name);
            assert_eq!(status, case.status, "{what}");
            assert_eq!(ct.as_deref(), Some("application/json"), "{what}");
            assert!(body.is_empty(), "{what}: HEAD answer with a body");
            if status == 405 {
                assert!(
                    header_in(&head, "allow").is_some(),
                    "{what}: 405 needs Allow"
                );
            }
            continue;
        }
        check(&case, status, ct.as_deref(), &body);
    }
    // A 1 MiB upload is refused from its Content-Length, without reading it all.
    let head =
        "POST /route HTTP/1.1\r\nhost: x\r\ncontent-length: 1048576\r\nconnection: close\r\n\r\n";
    let (status, _, body) = crate::support::raw_request(addr, head, b"{\"query\": \"").await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // A chunked body over the limit is cut off at the limit.
    let chunk = format!("{:x}\r\n{}\r\n", 20_000, "x".repeat(20_000));
    let head = "POST /route HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    let (status, _, _) =
        crate::support::raw_request(addr, head, format!("{chunk}0\r\n\r\n").as_bytes()).await;
    assert_eq!(status, 413);
    // Broken framing is a bad request, not an oversized one: a chunk size that is not hex, and a
    // body shorter than its Content-Length (the client stops sending).
    let chunked = "POST /route HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    let short =
        "POST /route HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\nconnection: close\r\n\r\n";
    for (head, body) in [
        (chunked, b"zz\r\nabc\r\n0\r\n\r\n".as_slice()),
        (short, br#"{"query":"cost"}"#.as_slice()),
    ] {
        let (status, _, body) = half_closed_exchange(addr, head, body).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{head:?}: {text}");
        assert!(text.contains("\"invalid_json\""), "{text}");
        assert!(text.contains("cannot read the request body"), "{text}");
    }
    // What hyper refuses itself, before the handler, with an empty body: a request line it
    // cannot parse, and headers over its buffer.
    let (status, _, body) = raw_exchange(addr, "GARBAGE\r\n\r\n", b"").await;
    assert_eq!((status, body.len()), (400, 0));
    let head = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(500_000)
    );
    let (status, _, body) = raw_exchange(addr, &head, b"").await;
    assert_eq!((status, body.len()), (431, 0));
    // Still alive.
    let (status, _, body) = crate::support::raw_request(
        addr,
        "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(
        (status, body.as_slice()),
        (200, br#"{"status":"ok"}"#.as_slice())
    );
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

fn post(path: &str, body: &str) -> ApiRequest {
    ApiRequest {
        method: http::Method::POST,
        path: path.to_owned(),
        query: Vec::new(),
        body: Bytes::from(body.to_owned()),
        request_id: "req-2".to_owned(),
        remaining: None,
    }
}

async fn json_of(api: &Api, req: ApiRequest) -> Value {
    let resp = api.handle(req).await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    serde_json::from_str(resp.body()).unwrap()
}

#[tokio::test]
async fn query_says_why_it_did_not_dispatch() {
    use agent_router::dispatch::Dispatcher;
    use agent_router::ports::{Invocation, StaticInvoker};
    use std::time::Duration;
    let q = r#"{"query": "What are my AWS costs?"}"#;
    let not_asked = r#"{"query": "What are my AWS costs?", "dispatch": false}"#;
    // No dispatcher in this process: dispatch is off.
    let off = api();
    let d = json_of(&off, post("/query", q)).await;
    assert_eq!(
        (&d["dispatched"], &d["not_dispatched"]),
        (&Value::Bool(false), &Value::from("dispatch_off"))
    );
    let d = json_of(&off, post("/query", not_asked)).await;
    assert_eq!(d["not_dispatched"], "not_requested");
    // With a dispatcher, and the cost agent made route-only (a blank target).
    let mut route_only = Catalogue::embedded_default().unwrap();
    route_only.override_targets(&[("cost".to_owned(), " ".to_owned())].into());
    let invoker = Arc::new(StaticInvoker::new(
        Ok(Invocation {
            payload: b"{}".to_vec(),
            function_error: None,
        }),
        Duration::ZERO,
    ));
    let router = Arc::new(Router::new(route_only).unwrap());
    let on = Api::new(router).with_dispatcher(Arc::new(Dispatcher::new(
        invoker.clone(),
        Duration::from_secs(1),
        Duration::ZERO,
    )));
    let d = json_of(&on, post("/query", q)).await;
    assert_eq!(d["not_dispatched"], "route_only_agent");
    let d = json_of(&on, post("/query", not_asked)).await;
    assert_eq!(d["not_dispatched"], "not_requested");
    assert!(invoker.calls().is_empty());
    // Dispatched answers carry no not_dispatched.
    let mut catalogue = Catalogue::embedded_default().unwrap();
    catalogue.override_targets(&[("cost".to_owned(), "cost-fn".to_owned())].into());
    let on = Api::new(Arc::new(Router::new(catalogue).unwrap())).with_dispatcher(Arc::new(
        Dispatcher::new(invoker.clone(), Duration::from_secs(1), Duration::ZERO),
    ));
    let d = json_of(&on, post("/query", q)).await;
    assert_eq!(d["dispatched"], true);
    assert!(d.get("not_dispatched").is_none(), "{d}");
}

#[tokio::test]
async fn the_local_server_reuses_a_well_formed_caller_request_id() {
    let (addr, stop_tx, server) = local_server().await;
    let long = "x".repeat(agent_router::api::MAX_REQUEST_ID_BYTES + 1);
    // (x-request-id sent, whether it is reused)
    let cases = [
        ("trace-7f3a:b/c_d.e", true),
        ("with space", false),
        (long.as_str(), false),
        ("", false),
    ];
    for (id, reused) in cases {
        let head = format!(
            "GET /route?q=my+bill HTTP/1.1\r\nhost: localhost\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n"
        );
        let (status, head, body) = raw_exchange(addr, &head, b"").await;
        assert_eq!(status, 200, "{id:?}");
        let answered = header_in(&head, "x-request-id").unwrap();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["request_id"], answered.as_str(), "{id:?}");
        if reused {
            assert_eq!(answered, id);
        } else {
            assert!(answered.starts_with("local-"), "{id:?} -> {answered}");
        }
    }
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn explain_shows_every_agents_evidence_and_the_thresholds() {
    let api = api();
    let q = "how much are CloudWatch alarms and dashboards costing?";
    let plain = json_of(
        &api,
        post("/route", &serde_json::json!({ "query": q }).to_string()),
    )
    .await;
    assert!(
        plain.get("explain").is_none(),
        "no explain unless asked: {plain}"
    );
    let body = serde_json::json!({ "query": q, "explain": true }).to_string();
    let d = json_of(&api, post("/route", &body)).await;
    let e = &d["explain"];
    assert_eq!(e["fast_path"], "ambiguous", "{e}");
    assert_eq!(e["thresholds"]["form"], "additive");
    assert!(e["thresholds"]["min_score"].is_number() && e["thresholds"]["margin"].is_number());
    let agents: Vec<&str> = e["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert!(
        agents.contains(&"cost") && agents.contains(&"monitoring"),
        "{e}"
    );
    for a in e["agents"].as_array().unwrap() {
        let sum: f64 = a["keywords"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["weight"].as_f64().unwrap())
            .sum();
        assert!((sum - a["score"].as_f64().unwrap()).abs() < 1e-3, "{a}");
        assert!(!a["keywords"].as_array().unwrap().is_empty(), "{a}");
    }
    // Everything else is the plain answer.
    let strip = |mut v: Value| {
        let o = v.as_object_mut().unwrap();
        for k in ["explain", "timings_us", "request_id"] {
            o.remove(k);
        }
        v
    };
    assert_eq!(strip(d.clone()), strip(plain));
    // A query nothing matches: no agent, and it says so.
    let body = serde_json::json!({ "query": "tell me a joke", "explain": true }).to_string();
    let d = json_of(&api, post("/route", &body)).await;
    assert_eq!(d["explain"]["fast_path"], "no_keyword_match");
    assert_eq!(d["explain"]["agents"], serde_json::json!([]));
}

#[tokio::test]
async fn explain_on_get_through_the_local_server() {
    let (addr, stop_tx, server) = local_server().await;
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    let (status, _, body) = raw_exchange(
        addr,
        &get("/route?q=any+guardduty+findings&explain=true"),
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let d: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(d["agent"], "security");
    assert_eq!(d["explain"]["fast_path"], "decided");
    assert_eq!(d["explain"]["agents"][0]["agent"], "security");
    let (_, _, body) = raw_exchange(addr, &get("/route?q=any+guardduty+findings"), b"").await;
    let d: Value = serde_json::from_slice(&body).unwrap();
    assert!(d.get("explain").is_none());
    let (status, _, body) = raw_exchange(addr, &get("/route?q=bill&explain=yes"), b"").await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"],
        "invalid_explain"
    );
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[test]
fn explain_in_the_linear_form_gives_probabilities() {
    // The worked example of the linear form (tests/linear_form.rs).
    let routes = crate::linear_form::LOGS_AND_COSTING;
    let router = Router::new(Catalogue::from_toml_str(routes).unwrap()).unwrap();
    let e = router.explain("how much are the logs costing us");
    // As the API writes it (f32 printed shortest, not widened to f64).
    let v: Value = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
    assert_eq!(
        v["thresholds"],
        serde_json::json!({"form": "linear", "threshold": 0.8, "none_bias": 0.0})
    );
    let cost = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "cost")
        .unwrap();
    assert_eq!(
        cost["keywords"],
        serde_json::json!([{"keyword": "logs", "weight": -2.0}, {"keyword": "costing", "weight": 5.0}])
    );
    assert_eq!(cost["score"], 2.0, "bias -1 - 2 + 5");
    // Scores: cost 2, monitoring -1 + 4 = 3, out of scope 0: softmax probabilities.
    let p = |agent: &str| {
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == agent)
            .unwrap()["probability"]
            .as_f64()
            .unwrap()
    };
    let z = 2f64.exp() + 3f64.exp() + 1.0;
    assert!((p("cost") - 2f64.exp() / z).abs() < 1e-5, "{}", p("cost"));
    assert!(
        (p("monitoring") - 3f64.exp() / z).abs() < 1e-5,
        "{}",
        p("monitoring")
    );
    assert_eq!(v["agents"][0]["agent"], "monitoring", "best first");
    assert_eq!(
        v["fast_path"], "low_confidence",
        "0.73 is under the 0.8 threshold"
    );
    assert!(e.to_text().contains("p=0."), "{}", e.to_text());
}
