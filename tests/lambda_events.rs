//! Realistic Lambda HTTP events (`tests/fixtures/events/*.json`) driven through the real adapter:
//! `lambda_http::request::from_str` (the same event decoding the Lambda runtime uses), then
//! `agent_router::api::to_api_request`, then `Api::handle` over the embedded catalogue.
//!
//! Each fixture's expected outcome is in `CASES` below and in `tests/fixtures/events/README.md`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use agent_router::api::Api;
use agent_router::api::to_api_request;
use agent_router::{Catalogue, Router};
use lambda_http::request::RequestContext;
use lambda_http::{Context, Request, RequestExt};
use serde_json::Value;

/// Which AWS service sent the event, checked against what lambda_http decoded it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// API Gateway REST API, proxy integration (payload 1.0), stage "prod".
    RestV1,
    /// API Gateway HTTP API, payload format 2.0, stage "$default".
    HttpV2,
    /// Lambda Function URL (payload 2.0 on a `*.lambda-url.*.on.aws` domain).
    FunctionUrl,
    /// Application Load Balancer target group, multi-value headers off.
    Alb,
}

/// The response a fixture must produce.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200 with a fast-path decision for `agent`, decided by exactly these keywords.
    Fast {
        agent: &'static str,
        matched: &'static [&'static str],
    },
    /// 200 `{"status":"ok"}`.
    Health,
    /// An error response with this status and code (and `Allow` header for 405).
    Error {
        status: u16,
        code: &'static str,
        allow: Option<&'static str>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Case {
    file: &'static str,
    shape: Shape,
    method: &'static str,
    /// The URL path the API sees: lambda_http prefixes REST API (v1) paths with the stage.
    path: &'static str,
    /// The decoded `q` query-string value the API must receive, if any.
    q: Option<&'static str>,
    expect: Expect,
}

const CASES: &[Case] = &[
    // ---------------------------------------------------------- API Gateway REST API (v1)
    Case {
        file: "apigw-v1-post-route.json",
        shape: Shape::RestV1,
        method: "POST",
        path: "/prod/route",
        q: None,
        expect: Expect::Fast {
            agent: "cost",
            matched: &["costs"],
        },
    },
    Case {
        file: "apigw-v1-get-route.json",
        shape: Shape::RestV1,
        method: "GET",
        path: "/prod/route",
        q: Some("show my cloudwatch alarms"),
        expect: Expect::Fast {
            agent: "monitoring",
            matched: &["cloudwatch alarms"],
        },
    },
    Case {
        file: "apigw-v1-post-query-base64.json",
        shape: Shape::RestV1,
        method: "POST",
        path: "/prod/query",
        q: None,
        expect: Expect::Fast {
            agent: "security",
            matched: &["unencrypted", "kms"],
        },
    },
    Case {
        file: "apigw-v1-base64-invalid-utf8.json",
        shape: Shape::RestV1,
        method: "POST",
        path: "/prod/route",
        q: None,
        expect: Expect::Error {
            status: 400,
            code: "invalid_json",
            allow: None,
        },
    },
    Case {
        file: "apigw-v1-bad-json.json",
        shape: Shape::RestV1,
        method: "POST",
        path: "/prod/route",
        q: None,
        expect: Expect::Error {
            status: 400,
            code: "invalid_json",
            allow: None,
        },
    },
    // ---------------------------------------------------------- API Gateway HTTP API (v2)
    Case {
        file: "apigw-v2-post-route.json",
        shape: Shape::HttpV2,
        method: "POST",
        path: "/route",
        q: None,
        expect: Expect::Fast {
            agent: "resources",
            matched: &["lambda functions", "untagged"],
        },
    },
    Case {
        file: "apigw-v2-post-route-base64.json",
        shape: Shape::HttpV2,
        method: "POST",
        path: "/route",
        q: None,
        expect: Expect::Fast {
            agent: "monitoring",
            matched: &["cloudwatch alarms"],
        },
    },
    Case {
        file: "apigw-v2-get-route.json",
        shape: Shape::HttpV2,
        method: "GET",
        path: "/route",
        q: Some("cpu utilization spike"),
        expect: Expect::Fast {
            agent: "monitoring",
            matched: &["cpu utilization", "spike"],
        },
    },
    Case {
        file: "apigw-v2-health.json",
        shape: Shape::HttpV2,
        method: "GET",
        path: "/health",
        q: None,
        expect: Expect::Health,
    },
    Case {
        file: "apigw-v2-wrong-method.json",
        shape: Shape::HttpV2,
        method: "DELETE",
        path: "/route",
        q: None,
        expect: Expect::Error {
            status: 405,
            code: "method_not_allowed",
            allow: Some("GET, HEAD, POST"),
        },
    },
    // ---------------------------------------------------------- Lambda Function URL
    Case {
        file: "function-url-post-route.json",
        shape: Shape::FunctionUrl,
        method: "POST",
        path: "/route",
        q: None,
        expect: Expect::Fast {
            agent: "security",
            matched: &["guardduty findings"],
        },
    },
    Case {
        file: "function-url-empty-query.json",
        shape: Shape::FunctionUrl,
        method: "POST",
        path: "/route",
        q: None,
        expect: Expect::Error {
            status: 400,
            code: "empty_query",
            allow: None,
        },
    },
    Case {
        file: "function-url-base64-truncated.json",
        shape: Shape::FunctionUrl,
        method: "POST",
        path: "/route",
        q: None,
        expect: Expect::Error {
            status: 400,
            code: "invalid_json",
            allow: None,
        },
    },
    Case {
        file: "function-url-unknown-path.json",
        shape: Shape::FunctionUrl,
        method: "GET",
        path: "/nope",
        q: None,
        expect: Expect::Error {
            status: 404,
            code: "not_found",
            allow: None,
        },
    },
    // ---------------------------------------------------------- Application Load Balancer
    Case {
        file: "alb-post-route.json",
        shape: Shape::Alb,
        method: "POST",
        path: "/route",
        q: None,
        expect: Expect::Fast {
            agent: "cost",
            matched: &["budget", "forecast"],
        },
    },
    Case {
        file: "alb-get-route.json",
        shape: Shape::Alb,
        method: "GET",
        path: "/route",
        q: Some("how many ec2 instances?"),
        expect: Expect::Fast {
            agent: "resources",
            matched: &["how many", "ec2 instances"],
        },
    },
    Case {
        file: "alb-too-large.json",
        shape: Shape::Alb,
        method: "POST",
        path: "/route",
        q: None,
        expect: Expect::Error {
            status: 413,
            code: "query_too_large",
            allow: None,
        },
    },
];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events")
}

fn read_fixture(file: &str) -> String {
    let path = fixtures_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn parse_event(file: &str, json: &str) -> Request {
    lambda_http::request::from_str(json)
        .unwrap_or_else(|e| panic!("{file}: lambda_http could not decode the event: {e}"))
}

fn api() -> Api {
    let catalogue = Catalogue::embedded_default().expect("embedded catalogue is valid");
    Api::new(Arc::new(
        Router::new(catalogue).expect("embedded catalogue compiles"),
    ))
}

/// A Lambda context as the runtime builds it: request id, and a deadline (epoch milliseconds,
/// from the `Lambda-Runtime-Deadline-Ms` header) 30 seconds from now.
fn lambda_context(request_id: &str) -> Context {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    let mut ctx = Context::default();
    ctx.request_id = request_id.to_owned();
    ctx.deadline = u64::try_from(now_ms).expect("epoch ms fit in u64") + 30_000;
    ctx.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:agent-router".into();
    ctx
}

/// lambda_http puts the REST API stage in front of the path unless this variable is set.
fn stage_in_path() -> bool {
    std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_none()
}

fn expected_path(case: &Case) -> String {
    match case.shape {
        Shape::RestV1 if !stage_in_path() => case.path.trim_start_matches("/prod").to_owned(),
        _ => case.path.to_owned(),
    }
}

/// Asserts lambda_http decoded the event as the service the fixture claims to come from.
fn assert_shape(file: &str, shape: Shape, req: &Request) {
    let ctx = req
        .request_context_ref()
        .unwrap_or_else(|| panic!("{file}: no request context extension"));
    match (shape, ctx) {
        (Shape::RestV1, RequestContext::ApiGatewayV1(c)) => {
            assert_eq!(c.stage.as_deref(), Some("prod"), "{file}: stage");
            assert!(c.request_id.is_some(), "{file}: API Gateway request id");
        }
        (Shape::HttpV2, RequestContext::ApiGatewayV2(c)) => {
            assert_eq!(c.stage.as_deref(), Some("$default"), "{file}: stage");
            let domain = c.domain_name.as_deref().unwrap_or_default();
            assert!(
                domain.contains(".execute-api."),
                "{file}: HTTP API domain {domain:?}"
            );
        }
        (Shape::FunctionUrl, RequestContext::ApiGatewayV2(c)) => {
            assert_eq!(c.stage.as_deref(), Some("$default"), "{file}: stage");
            assert_eq!(c.route_key.as_deref(), Some("$default"), "{file}: routeKey");
            let domain = c.domain_name.as_deref().unwrap_or_default();
            assert!(
                domain.ends_with(".lambda-url.us-east-1.on.aws"),
                "{file}: Function URL domain {domain:?}"
            );
        }
        (Shape::Alb, RequestContext::Alb(c)) => {
            let arn = c.elb.target_group_arn.as_deref().unwrap_or_default();
            assert!(
                arn.starts_with("arn:aws:elasticloadbalancing:"),
                "{file}: target group ARN {arn:?}"
            );
        }
        (shape, other) => {
            panic!("{file}: expected a {shape:?} event, lambda_http decoded {other:?}")
        }
    }
}

fn header<'a>(resp: &'a http::Response<String>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| {
        v.to_str()
            .unwrap_or_else(|e| panic!("header {name} is not text: {e}"))
    })
}

fn body_json(file: &str, resp: &http::Response<String>) -> Value {
    serde_json::from_str(resp.body())
        .unwrap_or_else(|e| panic!("{file}: body is not JSON ({e}): {}", resp.body()))
}

/// Asserts a 200 fast-path decision.
fn assert_fast(file: &str, body: &Value, agent: &str, matched: &[&str], request_id: &str) {
    assert_eq!(body["agent"], agent, "{file}: agent in {body}");
    assert_eq!(
        body["routing_method"], "fast",
        "{file}: routing_method in {body}"
    );
    let got: Vec<&str> = body["matched"]
        .as_array()
        .unwrap_or_else(|| panic!("{file}: matched is not an array in {body}"))
        .iter()
        .map(|v| v.as_str().expect("matched keywords are strings"))
        .collect();
    assert!(
        !got.is_empty(),
        "{file}: fast decision with no matched keywords"
    );
    assert_eq!(got, matched, "{file}: matched keywords");
    assert!(
        body.get("fallback_reason").is_none(),
        "{file}: a fast decision has no fallback_reason: {body}"
    );
    let confidence = body["confidence"]
        .as_f64()
        .unwrap_or_else(|| panic!("{file}: confidence is not a number in {body}"));
    assert!(
        confidence > 0.0 && confidence <= 1.0,
        "{file}: confidence {confidence}"
    );
    assert!(
        body["timings_us"]["route"].is_u64(),
        "{file}: timings_us.route missing or not an integer in {body}"
    );
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{file}: reason in {body}"
    );
    assert_eq!(body["request_id"], request_id, "{file}: request_id in body");
}

/// Asserts `{"error": {"code", "message", "request_id"}}` with exactly these keys.
fn assert_error(file: &str, body: &Value, code: &str, request_id: &str) {
    let top = body
        .as_object()
        .unwrap_or_else(|| panic!("{file}: error body is not an object: {body}"));
    assert_eq!(
        top.keys().collect::<Vec<_>>(),
        ["error"],
        "{file}: error body keys"
    );
    let err = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{file}: error is not an object: {body}"));
    let keys: BTreeSet<&str> = err.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["code", "message", "request_id"]),
        "{file}: error keys"
    );
    assert_eq!(err["code"], code, "{file}: error code in {body}");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "{file}: error message in {body}"
    );
    assert_eq!(err["request_id"], request_id, "{file}: request_id in error");
}

#[tokio::test]
async fn fixtures_route_through_the_lambda_adapter() {
    let api = api();
    for (i, case) in CASES.iter().enumerate() {
        let file = case.file;
        let json = read_fixture(file);
        let request_id = format!("4f7e2c1a-9b3d-4e6f-8a2b-{i:012x}");
        let event = parse_event(file, &json).with_lambda_context(lambda_context(&request_id));

        // What lambda_http made of the event.
        assert_shape(file, case.shape, &event);
        assert_eq!(event.method().as_str(), case.method, "{file}: method");

        // What the adapter hands the API.
        let req = to_api_request(event);
        assert_eq!(req.method.as_str(), case.method, "{file}: adapted method");
        assert_eq!(req.path, expected_path(case), "{file}: adapted path");
        assert_eq!(req.request_id, request_id, "{file}: adapted request id");
        let qs: Vec<&str> = req
            .query
            .iter()
            .filter(|(k, _)| k == "q")
            .map(|(_, v)| v.as_str())
            .collect();
        match case.q {
            Some(q) => assert_eq!(qs, [q], "{file}: decoded q"),
            None => assert!(qs.is_empty(), "{file}: unexpected q {qs:?}"),
        }
        if case.method == "POST" {
            assert!(
                req.body.starts_with(b"{"),
                "{file}: body not decoded to JSON text: {:?}",
                req.body
            );
        }

        // What the API answers.
        let resp = api.handle(req).await;
        assert_eq!(
            header(&resp, "content-type"),
            Some("application/json"),
            "{file}: content-type"
        );
        assert_eq!(
            header(&resp, "x-request-id"),
            Some(request_id.as_str()),
            "{file}: x-request-id"
        );
        let body = body_json(file, &resp);
        match case.expect {
            Expect::Fast { agent, matched } => {
                assert_eq!(resp.status(), 200, "{file}: status, body {body}");
                assert_eq!(header(&resp, "allow"), None, "{file}: allow");
                assert_fast(file, &body, agent, matched, &request_id);
            }
            Expect::Health => {
                assert_eq!(resp.status(), 200, "{file}: status, body {body}");
                assert_eq!(body, serde_json::json!({"status": "ok"}), "{file}: body");
            }
            Expect::Error {
                status,
                code,
                allow,
            } => {
                assert_eq!(resp.status(), status, "{file}: status, body {body}");
                assert_eq!(header(&resp, "allow"), allow, "{file}: allow");
                assert_error(file, &body, code, &request_id);
            }
        }
    }
}

/// Every fixture on disk is exercised above and documented in the README, and vice versa.
#[test]
fn every_fixture_is_tested_and_documented() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .into_string()
                .unwrap()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    let in_table: BTreeSet<String> = CASES.iter().map(|c| c.file.to_owned()).collect();
    assert_eq!(on_disk, in_table, "fixtures on disk vs CASES");
    let readme = read_fixture("README.md");
    for name in &on_disk {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not list {name}"
        );
    }
}

/// A REST API event whose `path` already carries the stage (as with some custom-domain and
/// proxy setups) is not prefixed twice and still reaches `/route`: the API matches on the last
/// path segment.
#[tokio::test]
async fn rest_v1_path_with_stage_prefix_still_hits_route() {
    let api = api();
    for path in ["/prod/route", "/prod/route/"] {
        let mut event: Value =
            serde_json::from_str(&read_fixture("apigw-v1-get-route.json")).unwrap();
        event["path"] = Value::from(path);
        let req = parse_event(path, &event.to_string())
            .with_lambda_context(lambda_context("0b9a8c7d-stage-prefix"));
        assert_eq!(req.uri().path(), path, "stage must not be added twice");
        let req = to_api_request(req);
        assert_eq!(req.path, path);
        let resp = api.handle(req).await;
        let body = body_json(path, &resp);
        assert_eq!(resp.status(), 200, "{path}: {body}");
        assert_fast(
            path,
            &body,
            "monitoring",
            &["cloudwatch alarms"],
            "0b9a8c7d-stage-prefix",
        );
    }
}

/// The REST API fixture's own `path` is "/route"; lambda_http turns it into "/prod/route"
/// (stage from `requestContext.stage`), which the API still serves as `/route`.
#[test]
fn rest_v1_stage_is_prefixed_by_lambda_http() {
    if !stage_in_path() {
        return;
    }
    let json = read_fixture("apigw-v1-post-route.json");
    let raw: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(raw["path"], "/route");
    assert_eq!(raw["requestContext"]["path"], "/prod/route");
    let req = parse_event("apigw-v1-post-route.json", &json);
    assert_eq!(req.uri().path(), "/prod/route");
    assert_eq!(req.raw_http_path(), "/route");
}

/// Repeated `q` in a REST API multi-value query string reaches the API as two values and is
/// refused, rather than one of them being silently picked.
#[tokio::test]
async fn rest_v1_repeated_q_is_rejected() {
    let mut event: Value = serde_json::from_str(&read_fixture("apigw-v1-get-route.json")).unwrap();
    event["queryStringParameters"] = serde_json::json!({"q": "show my costs"});
    event["multiValueQueryStringParameters"] =
        serde_json::json!({"q": ["show my cloudwatch alarms", "show my costs"]});
    let req = to_api_request(
        parse_event("repeated q", &event.to_string())
            .with_lambda_context(lambda_context("repeated-q")),
    );
    assert_eq!(
        req.query.iter().filter(|(k, _)| k == "q").count(),
        2,
        "both values kept: {:?}",
        req.query
    );
    let resp = api().handle(req).await;
    assert_eq!(resp.status(), 400);
    assert_error(
        "repeated q",
        &body_json("repeated q", &resp),
        "invalid_query",
        "repeated-q",
    );
}

/// Without a Lambda context (e.g. a bare event in a unit test) the request id is "unknown".
#[tokio::test]
async fn missing_lambda_context_gives_unknown_request_id() {
    let req = to_api_request(parse_event(
        "apigw-v2-health.json",
        &read_fixture("apigw-v2-health.json"),
    ));
    assert_eq!(req.request_id, "unknown");
    let resp = api().handle(req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-request-id"), Some("unknown"));
}

#[tokio::test]
async fn a_well_formed_caller_request_id_is_reused_in_lambda() {
    let json = read_fixture("apigw-v2-health.json");
    let mut event: Value = serde_json::from_str(&json).unwrap();
    // (x-request-id sent, the id answered)
    let cases = [
        (Some("caller-42"), "caller-42"),
        (Some("has space"), "lambda-id"),
        (None, "lambda-id"),
    ];
    for (sent, want) in cases {
        let headers = event["headers"].as_object_mut().unwrap();
        match sent {
            Some(id) => headers.insert("x-request-id".into(), Value::from(id)),
            None => headers.remove("x-request-id"),
        };
        let req = parse_event("apigw-v2-health.json", &event.to_string())
            .with_lambda_context(lambda_context("lambda-id"));
        let req = to_api_request(req);
        assert_eq!(req.request_id, want, "{sent:?}");
        let resp = api().handle(req).await;
        assert_eq!(header(&resp, "x-request-id"), Some(want), "{sent:?}");
    }
}
