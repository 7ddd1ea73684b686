//! `openapi.yaml` is the HTTP API's contract; these tests keep it true, without network or AWS:
//!
//! - API Gateway (REST) can import it: OpenAPI 3.0.x, and only the subset API Gateway accepts.
//! - Its operations are exactly the endpoints the handler answers (every other method gets 405
//!   with an `Allow` header naming the documented ones), and, less `GET /health`, the inline
//!   definition in `infra/template.yaml`, with the same statuses and request fields.
//! - Every error code in `ApiError::CODES` (which a unit test keeps complete) is in the `Error` enum and in
//!   the README's error table; for each operation, the documented statuses are exactly those the
//!   handler (and, for 413 `body_too_large`, the local server) can answer, and each response's
//!   description names the codes it can carry.
//! - Real answers from `Api::handle` (every routing tier, every error, every dispatch outcome
//!   through the `StaticClassifier` / `StaticInvoker` doubles) and from the local server validate
//!   against the response schemas, read closed: a property the schema does not declare fails.
//! - The request schemas accept what the handler accepts over the request corpus
//!   (`tests/fixtures/requests.json`), and the query `pattern` is exactly "holds a character that
//!   is not `char::is_whitespace`", the handler's own blank test.
//!
//! The schemas are checked by `Checker` (tests/support/schema.rs), a small hand-written validator
//! for the JSON Schema subset the spec uses (`$ref`, `allOf`, `type`, `nullable`, `enum`, `properties`, `required`,
//! `items`, `minimum`, `maximum`, `minLength`, `maxLength`, and `pattern` as one character class,
//! `[^...]` or `^[...]+$`); it refuses any other keyword rather than ignore it. schemathesis, in `.ci/run`, checks
//! the same spec against the running binary with generated requests.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::support::schema::{Checker, assert_understood, negated_class};
use agent_router::api::{Api, ApiError, ApiRequest};
use agent_router::dispatch::{DispatchError, Dispatcher};
use agent_router::ports::{Invocation, InvokeError, StaticInvoker};
use agent_router::ports::{LlmAnswer, LlmError, StaticClassifier, Usage};
use agent_router::{Catalogue, LlmSettings, Router};
use bytes::Bytes;
use http::Response;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        serde_yaml_ng::from_str(&read("openapi.yaml")).expect("openapi.yaml is YAML")
    })
}

/// `"GET /route"` → the operation object.
fn operation(op: &str) -> &'static Value {
    let (method, path) = op.split_once(' ').unwrap();
    let o = &spec()["paths"][path][method.to_ascii_lowercase()];
    assert!(o.is_object(), "openapi.yaml has no {op}");
    o
}

/// Every operation, as `"METHOD /path"`.
fn operations(doc: &Value) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.insert(format!("{} {path}", method.to_ascii_uppercase()));
        }
    }
    ops
}

/// The documented statuses of an operation.
fn statuses(op: &Value) -> BTreeSet<u16> {
    op["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|k| k.parse().unwrap_or_else(|_| panic!("status {k:?}")))
        .collect()
}

const GET_ROUTE: &str = "GET /route";
const POST_ROUTE: &str = "POST /route";
const POST_QUERY: &str = "POST /query";
const GET_HEALTH: &str = "GET /health";
const GET_STATS: &str = "GET /stats";

// ------------------------------------------------------------------------------------------------
// The schema checker (tests/support/schema.rs) understands every schema
// ------------------------------------------------------------------------------------------------

#[test]
fn the_checker_understands_every_schema() {
    for (name, schema) in spec()["components"]["schemas"].as_object().unwrap() {
        assert_understood(schema, name);
    }
    for op in operations(spec()) {
        let o = operation(&op);
        for p in o["parameters"].as_array().into_iter().flatten() {
            assert_understood(&p["schema"], &format!("{op} {}", p["name"]));
        }
        for (status, r) in o["responses"].as_object().unwrap() {
            for (name, h) in r["headers"].as_object().into_iter().flatten() {
                assert_understood(&h["schema"], &format!("{op} {status} {name}"));
            }
            for (ct, c) in r["content"].as_object().unwrap() {
                assert_understood(&c["schema"], &format!("{op} {status} {ct}"));
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// API Gateway can import it
// ------------------------------------------------------------------------------------------------

/// Keywords API Gateway's REST import refuses or drops (models are JSON Schema draft 4), and
/// OpenAPI 3.1 / later JSON Schema keywords a 3.0 document cannot hold.
const NOT_FOR_API_GATEWAY: &[&str] = &[
    "oneOf",
    "anyOf",
    "not",
    "discriminator",
    "additionalProperties",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "readOnly",
    "writeOnly",
    "example",
    "examples",
    "const",
    "$schema",
    "$id",
    "$defs",
    "patternProperties",
    "prefixItems",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "dependentRequired",
    "dependentSchemas",
    "contentMediaType",
    "contentEncoding",
    "webhooks",
    "jsonSchemaDialect",
];

fn lint(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                let here = format!("{at}/{k}");
                if NOT_FOR_API_GATEWAY.contains(&k.as_str()) {
                    out.push(format!("{here}: not importable"));
                }
                match (k.as_str(), child) {
                    ("type", t) if !t.is_string() => {
                        out.push(format!("{here}: type must be one name"))
                    }
                    ("format", f) if f == "int32" || f == "int64" => {
                        out.push(format!("{here}: {f} is not supported"))
                    }
                    ("$ref", r) => {
                        let ok = r
                            .as_str()
                            .and_then(|r| r.strip_prefix("#/components/schemas/"))
                            .is_some_and(|name| spec()["components"]["schemas"][name].is_object());
                        if !ok {
                            out.push(format!("{here}: $ref {r} is not a schema in components"));
                        }
                    }
                    ("nullable", _) if !o.contains_key("type") => {
                        out.push(format!("{here}: nullable without type"))
                    }
                    _ => {}
                }
                if k == "properties" {
                    // Property names are data, not keywords: lint only their schemas.
                    for (name, sub) in child.as_object().into_iter().flatten() {
                        lint(sub, &format!("{here}/{name}"), out);
                    }
                } else {
                    lint(child, &here, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                lint(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn api_gateway_can_import_it() {
    let doc = spec();
    let version = doc["openapi"].as_str().expect("openapi version string");
    assert!(
        version.starts_with("3.0."),
        "OpenAPI {version}: API Gateway imports 3.0.x"
    );
    assert!(doc["info"]["title"].is_string());
    assert_eq!(
        doc["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "info.version"
    );
    let mut problems = Vec::new();
    lint(doc, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
    // Components: schemas only (responses are inline: API Gateway does not take $ref responses),
    // named with letters and digits only (API Gateway model names).
    let components = doc["components"].as_object().unwrap();
    assert_eq!(components.keys().collect::<Vec<_>>(), ["schemas"]);
    for name in components["schemas"].as_object().unwrap().keys() {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric()),
            "model name {name}"
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(
            path.starts_with('/')
                && path[1..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c)),
            "path {path}"
        );
        for (method, op) in item.as_object().unwrap() {
            assert!(
                ["get", "post"].contains(&method.as_str()),
                "{method} {path}: only GET and POST are served"
            );
            assert!(
                op["operationId"].is_string(),
                "{method} {path}: operationId"
            );
            for (status, resp) in op["responses"].as_object().unwrap() {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "{method} {path}: response {status:?} (no default, no ranges)"
                );
                assert!(resp["description"].is_string(), "{method} {path} {status}");
                let content = resp["content"].as_object().expect("content");
                // Every answer is JSON; POST /query's 200 can also be a stream of events.
                let expected: &[&str] = if method == "post" && path == "/query" && status == "200" {
                    &["application/json", "text/event-stream"]
                } else {
                    &["application/json"]
                };
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    expected,
                    "{method} {path} {status}"
                );
                assert!(
                    resp["headers"]["x-request-id"].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
    }
    // Every schema is used.
    let text = serde_json::to_string(&doc["paths"]).unwrap()
        + &serde_json::to_string(&doc["components"]).unwrap();
    for name in components["schemas"].as_object().unwrap().keys() {
        assert!(
            text.contains(&format!("#/components/schemas/{name}\"")),
            "{name} is unused"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Operations: the handler's endpoints and the template's API
// ------------------------------------------------------------------------------------------------

/// The API as the local server runs it (with `/stats`), LLM and dispatch off.
fn plain_api() -> Api {
    Api::new(Arc::new(
        Router::new(Catalogue::embedded_default().unwrap()).unwrap(),
    ))
    .with_stats(Arc::new(agent_router::ops::stats::Stats::new()))
}

fn request(method: &str, path: &str, body: &[u8]) -> ApiRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    ApiRequest {
        method: method.parse().unwrap(),
        path: path.to_owned(),
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        body: Bytes::copy_from_slice(body),
        request_id: "openapi-test".to_owned(),
        remaining: None,
    }
}

/// A well-formed request for an operation.
fn valid_request(op: &str) -> ApiRequest {
    match op {
        GET_ROUTE => request("GET", "/route?q=What+are+my+AWS+costs%3F", b""),
        POST_ROUTE => request("POST", "/route", br#"{"query": "What are my AWS costs?"}"#),
        POST_QUERY => request("POST", "/query", br#"{"query": "What are my AWS costs?"}"#),
        GET_HEALTH => request("GET", "/health", b""),
        GET_STATS => request("GET", "/stats", b""),
        other => panic!("no request for {other}"),
    }
}

#[tokio::test]
async fn operations_are_the_handlers_endpoints() {
    let api = plain_api();
    let ops = operations(spec());
    assert_eq!(
        ops,
        BTreeSet::from(
            [GET_ROUTE, POST_ROUTE, POST_QUERY, GET_HEALTH, GET_STATS].map(str::to_owned)
        )
    );
    for op in &ops {
        let resp = api.handle(valid_request(op)).await;
        assert_eq!(resp.status(), 200, "{op}: {}", resp.body());
    }
    // Every other method on a documented path is 405, and Allow names the documented ones.
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "CONNECT",
    ];
    for (path, item) in spec()["paths"].as_object().unwrap() {
        let mut allowed: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        // HEAD comes with every GET (HTTP semantics), answered without a body.
        if allowed.iter().any(|m| m == "GET") {
            allowed.push("HEAD".to_owned());
        }
        allowed.sort();
        for method in methods {
            if allowed.iter().any(|m| m == method) {
                continue;
            }
            let resp = api.handle(request(method, path, b"")).await;
            assert_eq!(resp.status(), 405, "{method} {path}: {}", resp.body());
            assert_eq!(
                resp.headers()["allow"],
                allowed.join(", "),
                "{method} {path}"
            );
        }
    }
    // Any other path is 404.
    for path in ["/", "/routes", "/route/x", "/healthz", "/Query"] {
        for method in ["GET", "POST"] {
            let resp = api.handle(request(method, path, b"{}")).await;
            assert_eq!(resp.status(), 404, "{method} {path}");
        }
    }
}

fn template_api() -> Value {
    let template: Value =
        serde_yaml_ng::from_str(&read("infra/template.yaml")).expect("template is plain YAML");
    template["Resources"]["RouterApi"]["Properties"]["DefinitionBody"].clone()
}

#[test]
fn template_definition_matches_the_spec() {
    let deployed = template_api();
    let ops = operations(spec());
    let deployed_ops = operations(&deployed);
    // The deployed stage serves every operation but the health check (tests/deploy.rs pins its
    // three operations); openapi.yaml says so.
    let missing: Vec<&String> = ops.difference(&deployed_ops).collect();
    assert_eq!(
        missing,
        [GET_HEALTH, GET_STATS],
        "operations only in openapi.yaml"
    );
    assert!(
        operation(GET_STATS)["description"]
            .as_str()
            .unwrap()
            .contains("Not exposed by the deployed API Gateway stage")
    );
    assert!(
        deployed_ops.is_subset(&ops),
        "operations only in the template: {:?}",
        deployed_ops.difference(&ops).collect::<Vec<_>>()
    );
    assert!(
        operation(GET_HEALTH)["description"]
            .as_str()
            .unwrap()
            .contains("Not exposed by the deployed API Gateway stage")
    );
    for op in &deployed_ops {
        let (method, path) = op.split_once(' ').unwrap();
        let d = &deployed["paths"][path][method.to_ascii_lowercase()];
        assert_eq!(statuses(d), statuses(operation(op)), "{op}: statuses");
        let names = |o: &Value| -> BTreeSet<String> {
            o["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{} in {}",
                        p["name"].as_str().unwrap(),
                        p["in"].as_str().unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(names(d), names(operation(op)), "{op}: parameters");
        let body_schema =
            |o: &Value| o["requestBody"]["content"]["application/json"]["schema"].clone();
        let (d_body, s_body) = (body_schema(d), body_schema(operation(op)));
        assert_eq!(d_body.is_null(), s_body.is_null(), "{op}: request body");
        if d_body.is_null() {
            continue;
        }
        assert_eq!(d_body, s_body, "{op}: same model name");
        let name = d_body["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let (d_model, s_model) = (
            &deployed["components"]["schemas"][name],
            &spec()["components"]["schemas"][name],
        );
        assert_eq!(d_model["type"], s_model["type"], "{name}");
        assert_eq!(d_model["required"], s_model["required"], "{name}: required");
        for (prop, d_prop) in d_model["properties"].as_object().unwrap() {
            let s_prop = &s_model["properties"][prop];
            assert!(s_prop.is_object(), "{name}.{prop} is not in openapi.yaml");
            for k in ["type", "maxLength", "default"] {
                assert_eq!(d_prop[k], s_prop[k], "{name}.{prop}: {k}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Error codes and statuses
// ------------------------------------------------------------------------------------------------

/// Every error the API answers with, and the operations that can answer it. `body_too_large`
/// comes from the handler for POSTs and from the local server for any request with a body over
/// 16 KiB; `not_found` and `method_not_allowed` belong to no documented operation.
fn producible() -> Vec<(ApiError, &'static [&'static str])> {
    const POSTS: &[&str] = &[POST_ROUTE, POST_QUERY];
    const ROUTING: &[&str] = &[GET_ROUTE, POST_ROUTE, POST_QUERY];
    const ALL: &[&str] = &[GET_ROUTE, POST_ROUTE, POST_QUERY, GET_HEALTH, GET_STATS];
    const QUERY: &[&str] = &[POST_QUERY];
    let agent = || "cost".to_owned();
    vec![
        (ApiError::InvalidJson("EOF".into()), POSTS),
        (ApiError::InvalidBody("an array"), POSTS),
        (ApiError::MissingQuery("no query"), ROUTING),
        (ApiError::InvalidQuery("not a string".into()), ROUTING),
        (ApiError::EmptyQuery, ROUTING),
        (ApiError::InvalidSessionId, ROUTING),
        (ApiError::InvalidDispatch, POSTS),
        (ApiError::InvalidExplain, ROUTING),
        (ApiError::QueryTooLarge(5000), ROUTING),
        (ApiError::BodyTooLarge(20_000), ALL),
        // On a documented path only where the process keeps no stats (Lambda).
        (ApiError::NotFound("/stats".into()), &[GET_STATS]),
        (
            ApiError::MethodNotAllowed {
                method: "PUT".into(),
                endpoint: "route",
                allow: "GET, HEAD, POST",
            },
            &[],
        ),
        (
            ApiError::Dispatch(DispatchError::AgentError {
                agent: agent(),
                message: "boom".into(),
            }),
            QUERY,
        ),
        (
            ApiError::Dispatch(DispatchError::Unavailable {
                agent: agent(),
                target: "cost-agent".into(),
                reason: "no such function".into(),
            }),
            QUERY,
        ),
        (
            ApiError::Dispatch(DispatchError::Throttled {
                agent: agent(),
                retry_after: 3,
            }),
            QUERY,
        ),
        (
            ApiError::Dispatch(DispatchError::Timeout {
                agent: agent(),
                timeout_ms: 25_000,
            }),
            QUERY,
        ),
    ]
}

fn error_enum() -> BTreeSet<String> {
    spec()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .expect("Error.error.code enum")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_error_code_and_status_is_documented() {
    let codes: BTreeSet<String> = ApiError::CODES.iter().map(|c| c.to_string()).collect();
    assert_eq!(error_enum(), codes, "Error.code enum vs ApiError::CODES");
    let readme = read("README.md");
    for code in &codes {
        assert!(
            readme.contains(&format!("| `{code}` |")),
            "README error table lacks {code}"
        );
    }
    let table = producible();
    let table_codes: BTreeSet<String> = table.iter().map(|(e, _)| e.code().to_owned()).collect();
    assert_eq!(
        table_codes, codes,
        "producible() must list every ApiError variant"
    );
    for op in operations(spec()) {
        let mut expected = BTreeSet::from([200]);
        for (err, ops) in &table {
            if !ops.contains(&op.as_str()) {
                continue;
            }
            let status = err.status().as_u16();
            expected.insert(status);
            let description = operation(&op)["responses"][status.to_string()]["description"]
                .as_str()
                .unwrap_or_else(|| panic!("{op}: {status} ({}) is not documented", err.code()));
            assert!(
                description.contains(&format!("`{}`", err.code())),
                "{op} {status}: the description does not name `{}`",
                err.code()
            );
        }
        assert_eq!(
            statuses(operation(&op)),
            expected,
            "{op}: documented statuses"
        );
    }
    // 503 tells when to retry.
    let retry = &operation(POST_QUERY)["responses"]["503"]["headers"]["Retry-After"];
    assert_eq!(retry["required"], true);
    assert_eq!(retry["schema"]["type"], "integer");
}

// ------------------------------------------------------------------------------------------------
// Real answers against the response schemas
// ------------------------------------------------------------------------------------------------

/// Checks one answer to `op` against the spec; returns its error code, if any.
fn check_answer(op: &str, what: &str, resp: &Response<String>) -> Option<String> {
    let checker = Checker::new(spec());
    let status = resp.status().as_u16();
    let documented = &operation(op)["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{what}: {op} answered {status}, which is not documented: {}",
        resp.body()
    );
    let content = documented["content"].as_object().unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap());
    assert!(
        content.contains_key(ct.unwrap_or("")),
        "{what}: content-type {ct:?}"
    );
    for (name, header) in documented["headers"].as_object().into_iter().flatten() {
        let value = resp
            .headers()
            .get(name.as_str())
            .map(|v| v.to_str().unwrap());
        if header["required"] == true {
            assert!(value.is_some(), "{what}: no {name} header");
        }
        if let Some(v) = value {
            let v = match header["schema"]["type"].as_str() {
                Some("integer") => json!(
                    v.parse::<u64>()
                        .unwrap_or_else(|_| panic!("{what}: {name}: {v}"))
                ),
                _ => json!(v),
            };
            let errors = checker.errors(&header["schema"], &v);
            assert!(errors.is_empty(), "{what}: header {name}: {errors:?}");
        }
    }
    assert_eq!(resp.headers()["x-request-id"], "openapi-test", "{what}");
    let body: Value = serde_json::from_str(resp.body())
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {}", resp.body()));
    let schema = &content[ct.unwrap()]["schema"];
    let mut errors = checker.errors(schema, &body);
    checker.undeclared(schema, &body, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{what}: {op} {status} {body}:\n{errors:#?}"
    );
    body["error"]["code"].as_str().map(str::to_owned)
}

fn llm_api(answers: Vec<Result<LlmAnswer, LlmError>>) -> Api {
    let router = Router::new(Catalogue::embedded_default().unwrap())
        .unwrap()
        .with_llm(
            Arc::new(StaticClassifier::new(answers)),
            LlmSettings::default(),
        )
        .unwrap();
    Api::new(Arc::new(router))
}

fn dispatch_api(outcome: Result<Invocation, InvokeError>, delay: Duration) -> Api {
    let invoker = Arc::new(StaticInvoker::new(outcome, delay));
    let dispatcher = Dispatcher::new(invoker, Duration::from_millis(50), Duration::ZERO);
    plain_api().with_dispatcher(Arc::new(dispatcher))
}

fn answer(text: &str) -> Result<LlmAnswer, LlmError> {
    Ok(LlmAnswer {
        text: text.to_owned(),
        usage: Usage {
            input_tokens: 142,
            output_tokens: 2,
        },
    })
}

fn ok_payload(payload: &[u8]) -> Result<Invocation, InvokeError> {
    Ok(Invocation {
        payload: payload.to_vec(),
        function_error: None,
    })
}

/// Requests through the plain API (no LLM, no dispatcher): (operation, what, path, body, code).
const PLAIN_EXCHANGES: &[(&str, &str, &str, &str, Option<&str>)] = &[
    (
        GET_ROUTE,
        "fast",
        "/route?q=show+cloudwatch+alarms&session_id=s-1",
        "",
        None,
    ),
    (GET_ROUTE, "default", "/route?q=tell+me+a+joke", "", None),
    (GET_ROUTE, "no q", "/route", "", Some("missing_query")),
    (
        GET_ROUTE,
        "q twice",
        "/route?q=a&q=b",
        "",
        Some("invalid_query"),
    ),
    (
        GET_ROUTE,
        "blank q",
        "/route?q=+%E3%80%80",
        "",
        Some("empty_query"),
    ),
    (
        GET_ROUTE,
        "explained",
        "/route?q=how+much+for+cloudwatch+metrics&explain=true",
        "",
        None,
    ),
    (
        GET_ROUTE,
        "explain not a boolean",
        "/route?q=bill&explain=1",
        "",
        Some("invalid_explain"),
    ),
    (GET_HEALTH, "health", "/health", "", None),
    (GET_STATS, "stats", "/stats", "", None),
];

/// Bodies for both POST operations: (what, body, code).
const POST_BODIES: &[(&str, &str, Option<&str>)] = &[
    (
        "fast",
        r#"{"query": "What are my AWS costs?", "session_id": "s-1"}"#,
        None,
    ),
    ("default, llm off", r#"{"query": "tell me a joke"}"#, None),
    ("not JSON", r#"{"query": "#, Some("invalid_json")),
    ("not an object", r#"["my bill"]"#, Some("invalid_body")),
    ("no query", "{}", Some("missing_query")),
    (
        "query not a string",
        r#"{"query": 42}"#,
        Some("invalid_query"),
    ),
    (
        "blank query",
        r#"{"query": " \u3000 "}"#,
        Some("empty_query"),
    ),
    (
        "session_id not a string",
        r#"{"query": "bill", "session_id": 7}"#,
        Some("invalid_session_id"),
    ),
    (
        "dispatch not a boolean",
        r#"{"query": "bill", "dispatch": "no"}"#,
        Some("invalid_dispatch"),
    ),
    (
        "explained",
        r#"{"query": "how much are we paying for CloudWatch custom metrics?", "explain": true}"#,
        None,
    ),
    (
        "explain not a boolean",
        r#"{"query": "bill", "explain": "yes"}"#,
        Some("invalid_explain"),
    ),
];

/// LLM tier outcomes for both POST operations, on a query the fast path leaves: (what, answer).
fn llm_outcomes() -> Vec<(&'static str, Result<LlmAnswer, LlmError>)> {
    vec![
        ("llm", answer("general")),
        ("llm, unrecognised answer", answer("I think cost")),
        ("llm timeout", Err(LlmError::Timeout)),
        (
            "llm throttled",
            Err(LlmError::Throttled("slow down".into())),
        ),
        (
            "llm error",
            Err(LlmError::Service("ValidationException".into())),
        ),
    ]
}

/// An agent outcome for POST /query: (what, invocation, delay in ms, code).
type AgentOutcome = (
    &'static str,
    Result<Invocation, InvokeError>,
    u64,
    Option<&'static str>,
);

/// Streamed POST /query answers (`Accept: text/event-stream`) for every agent outcome: each
/// event's data against the schema the spec's `x-events` gives for its name.
#[tokio::test]
async fn streamed_answers_match_the_spec() {
    let checker = Checker::new(spec());
    let media = &operation(POST_QUERY)["responses"]["200"]["content"]["text/event-stream"];
    let schemas = media["x-events"].as_object().unwrap();
    let mut outcomes: Vec<_> = dispatch_outcomes()
        .into_iter()
        .map(|(what, outcome, delay, code)| (what, outcome, delay, code, true))
        .collect();
    outcomes.push(("dispatch false", ok_payload(b"{}"), 0, None, false));
    for (what, outcome, delay_ms, code, dispatch) in outcomes {
        let api = dispatch_api(outcome, Duration::from_millis(delay_ms));
        let body = json!({"query": "What are my AWS costs?", "dispatch": dispatch});
        let resp = api
            .respond(request("POST", "/query", body.to_string().as_bytes()), true)
            .await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(
            resp.headers()["content-type"],
            "text/event-stream",
            "{what}"
        );
        assert_eq!(resp.headers()["x-request-id"], "openapi-test", "{what}");
        let text = resp.into_body().collect().await;
        let mut names = Vec::new();
        for event in text.split("\n\n").filter(|e| !e.is_empty()) {
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap();
            let data = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n");
            let schema = &schemas[name];
            let value = if name == "chunk" {
                json!(data)
            } else {
                serde_json::from_str(&data).unwrap()
            };
            let mut errors = checker.errors(schema, &value);
            checker.undeclared(schema, &value, "$", &mut errors);
            assert!(errors.is_empty(), "{what}: {name} {data}:\n{errors:#?}");
            if name == "error" {
                assert_eq!(value["error"]["code"].as_str(), code, "{what}");
            }
            names.push(name.to_owned());
        }
        let last = if code.is_some() { "error" } else { "done" };
        assert_eq!(
            names.first().map(String::as_str),
            Some("decision"),
            "{what}"
        );
        assert_eq!(
            names.last().map(String::as_str),
            Some(last),
            "{what}: {names:?}"
        );
    }
}

/// Agent outcomes for POST /query.
fn dispatch_outcomes() -> Vec<AgentOutcome> {
    let failed = Ok(Invocation {
        payload: br#"{"errorMessage": "boom", "errorType": "Error"}"#.to_vec(),
        function_error: Some("Unhandled".into()),
    });
    // An agent's errorMessage is cut to 1000 bytes; multi-byte text must be cut between
    // characters (it once panicked mid-character).
    let long_failure = Ok(Invocation {
        payload: json!({"errorMessage": "é".repeat(600)})
            .to_string()
            .into_bytes(),
        function_error: Some("Unhandled".into()),
    });
    let throttled = Err(InvokeError::Throttled {
        message: "Rate exceeded".into(),
        retry_after: Some(7),
    });
    vec![
        (
            "dispatched, JSON",
            ok_payload(br#"{"answer": [1, null]}"#),
            0,
            None,
        ),
        ("dispatched, text", ok_payload(b"plain text"), 0, None),
        ("dispatched, null", ok_payload(b"null"), 0, None),
        ("agent error", failed, 0, Some("agent_error")),
        (
            "agent error, long message",
            long_failure,
            0,
            Some("agent_error"),
        ),
        (
            "no such function",
            Err(InvokeError::NotFound("cost-agent".into())),
            0,
            Some("agent_unavailable"),
        ),
        (
            "access denied",
            Err(InvokeError::AccessDenied("no".into())),
            0,
            Some("agent_unavailable"),
        ),
        ("throttled", throttled, 0, Some("agent_throttled")),
        (
            "slow agent",
            ok_payload(b"{}"),
            5_000,
            Some("agent_timeout"),
        ),
    ]
}

#[tokio::test]
async fn handler_answers_match_the_response_schemas() {
    // (operation, what, api, request, expected code)
    let mut exchanges: Vec<(&str, String, Api, ApiRequest, Option<&str>)> = Vec::new();
    for &(op, what, path, body, code) in PLAIN_EXCHANGES {
        let method = op.split_once(' ').unwrap().0;
        exchanges.push((
            op,
            what.into(),
            plain_api(),
            request(method, path, body.as_bytes()),
            code,
        ));
    }
    // As in Lambda: no counters kept, so /stats is not found.
    exchanges.push((
        GET_STATS,
        "no stats kept".into(),
        Api::new(Arc::new(
            Router::new(Catalogue::embedded_default().unwrap()).unwrap(),
        )),
        request("GET", "/stats", b""),
        Some("not_found"),
    ));
    let long_q = format!("/route?q={}", "a".repeat(4097));
    exchanges.push((
        GET_ROUTE,
        "long q".into(),
        plain_api(),
        request("GET", &long_q, b""),
        Some("query_too_large"),
    ));
    let long_sid = format!("/route?q=bill&session_id={}", "s".repeat(257));
    exchanges.push((
        GET_ROUTE,
        "long session_id".into(),
        plain_api(),
        request("GET", &long_sid, b""),
        Some("invalid_session_id"),
    ));
    let long_query = format!(r#"{{"query": "{}"}}"#, "cost ".repeat(1000));
    let long_body = format!(r#"{{"query": "bill", "pad": "{}"}}"#, "x".repeat(17_000));
    for (op, path) in [(POST_ROUTE, "/route"), (POST_QUERY, "/query")] {
        for &(what, body, code) in POST_BODIES {
            exchanges.push((
                op,
                what.into(),
                plain_api(),
                request("POST", path, body.as_bytes()),
                code,
            ));
        }
        for (what, body, code) in [
            ("long query", &long_query, "query_too_large"),
            ("long body", &long_body, "body_too_large"),
        ] {
            exchanges.push((
                op,
                what.into(),
                plain_api(),
                request("POST", path, body.as_bytes()),
                Some(code),
            ));
        }
        for (what, outcome) in llm_outcomes() {
            let req = request("POST", path, br#"{"query": "tell me a joke"}"#);
            exchanges.push((op, what.into(), llm_api(vec![outcome]), req, None));
        }
    }
    // The decision cache: the same query twice through one API.
    let cached = llm_api(vec![answer("monitoring")]);
    for what in ["llm, then cached", "cache"] {
        let req = request("POST", "/route", br#"{"query": "is everything fine?"}"#);
        exchanges.push((POST_ROUTE, what.into(), cached.clone(), req, None));
    }
    let costs = br#"{"query": "What are my AWS costs?"}"#;
    for (what, outcome, delay_ms, code) in dispatch_outcomes() {
        let api = dispatch_api(outcome, Duration::from_millis(delay_ms));
        exchanges.push((
            POST_QUERY,
            what.into(),
            api,
            request("POST", "/query", costs),
            code,
        ));
    }
    let no_dispatch = request(
        "POST",
        "/query",
        br#"{"query": "my costs", "dispatch": false}"#,
    );
    exchanges.push((
        POST_QUERY,
        "dispatch false".into(),
        dispatch_api(ok_payload(b"{}"), Duration::ZERO),
        no_dispatch,
        None,
    ));

    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut methods = BTreeSet::new();
    let mut fallbacks = BTreeSet::new();
    for (op, what, api, req, code) in exchanges {
        let resp = api.handle(req).await;
        let got = check_answer(op, &format!("{op} {what}"), &resp);
        assert_eq!(got.as_deref(), code, "{op} {what}: {}", resp.body());
        if what == "throttled" {
            assert_eq!(resp.headers()["retry-after"], "7");
        }
        if let Some(code) = got {
            covered.insert((op.to_owned(), code));
            continue;
        }
        let body: Value = serde_json::from_str(resp.body()).unwrap();
        if op != GET_HEALTH && op != GET_STATS {
            methods.insert(body["routing_method"].as_str().unwrap().to_owned());
        }
        if op == POST_QUERY {
            let dispatched = what.starts_with("dispatched,");
            assert_eq!(body["dispatched"], dispatched, "{what}: {body}");
            assert_eq!(body.get("result").is_some(), dispatched, "{what}: {body}");
            assert_eq!(body["timings_us"]["agent"].is_u64(), dispatched, "{what}");
        }
        if let Some(r) = body["fallback_reason"].as_str() {
            fallbacks.insert(r.to_owned());
        }
    }
    assert_eq!(
        methods,
        BTreeSet::from(["cache", "default", "fast", "llm"].map(str::to_owned))
    );
    assert_eq!(fallbacks.len(), 5, "{fallbacks:?}");

    // 413 body_too_large from the local server, for the GET operations too.
    let listener = agent_router::api::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(agent_router::api::serve(
        Arc::new(plain_api()),
        listener,
        async {
            let _ = stop_rx.await;
        },
    ));
    for (op, path) in [
        (GET_ROUTE, "/route?q=my+bill"),
        (GET_HEALTH, "/health"),
        (GET_STATS, "/stats"),
    ] {
        let head = format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 20000\r\nconnection: close\r\n\r\n"
        );
        let (status, ct, body) = crate::support::raw_request(addr, &head, b"{}").await;
        let mut resp = Response::new(String::from_utf8(body).unwrap());
        *resp.status_mut() = status.try_into().unwrap();
        resp.headers_mut()
            .insert("content-type", ct.unwrap().parse().unwrap());
        // The server numbers its own requests; the body's request_id is checked by the schema.
        resp.headers_mut()
            .insert("x-request-id", "openapi-test".parse().unwrap());
        let code = check_answer(op, &format!("{op} over the local server"), &resp);
        assert_eq!(code.as_deref(), Some("body_too_large"));
        covered.insert((op.to_owned(), "body_too_large".to_owned()));
    }
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();

    // Every (operation, code) pair producible() claims was produced for real above.
    let claimed: BTreeSet<(String, String)> = producible()
        .iter()
        .flat_map(|(e, ops)| ops.iter().map(|op| (op.to_string(), e.code().to_owned())))
        .collect();
    assert_eq!(covered, claimed, "answers produced vs producible()");
}

// ------------------------------------------------------------------------------------------------
// Request schemas against what the handler accepts
// ------------------------------------------------------------------------------------------------

/// Whether a GET /route query string conforms to the operation's parameters, or `None` when a
/// parameter other than q is repeated (outside the schema: the handler uses the first).
fn params_conform(pairs: &[(String, String)]) -> Option<bool> {
    let checker = Checker::new(spec());
    let mut conform = true;
    for p in operation(GET_ROUTE)["parameters"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let values: Vec<&String> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        match values.as_slice() {
            [] => conform &= p["required"] != true,
            [v] => conform &= checker.errors(&p["schema"], &json!(v)).is_empty(),
            _ if name == "q" => conform = false,
            _ => return None,
        }
    }
    Some(conform)
}

#[tokio::test]
async fn request_schemas_accept_what_the_handler_accepts() {
    let checker = Checker::new(spec());
    let corpus: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/requests.json")).expect("fixture is JSON");
    let api = plain_api();
    let mut checked = 0;
    let mut byte_limited = 0;
    for case in &corpus {
        let name = case["name"].as_str().unwrap();
        let method = case["method"].as_str().unwrap();
        let full_path = case["path"].as_str().unwrap();
        let (path, query) = full_path.split_once('?').unwrap_or((full_path, ""));
        let last = path.trim_end_matches('/').rsplit('/').next().unwrap();
        let op = format!("{method} /{last}");
        if !operations(spec()).contains(&op) || op == GET_HEALTH || op == GET_STATS {
            continue;
        }
        let mut body: Vec<u8> = match (&case["body"], &case["body_bytes"]) {
            (Value::String(b), _) => b.clone().into_bytes(),
            (_, Value::Array(a)) => a.iter().map(|b| b.as_u64().unwrap() as u8).collect(),
            _ => Vec::new(),
        };
        for part in case["body_repeat"].as_array().into_iter().flatten() {
            body.extend(
                part[0]
                    .as_str()
                    .unwrap()
                    .repeat(part[1].as_u64().unwrap() as usize)
                    .into_bytes(),
            );
        }
        // The handler's answer, not the fixture's, so this test stands on its own.
        let resp = api.handle(request(method, full_path, &body)).await;
        let status = resp.status().as_u16();
        let answer: Value = serde_json::from_str(resp.body()).unwrap();
        let code = answer["error"]["code"].as_str().unwrap_or("");
        let conforms = if method == "GET" {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            match params_conform(&pairs) {
                Some(c) => c,
                None => continue,
            }
        } else if body.len() > agent_router::api::MAX_BODY_BYTES {
            // The body's size is not a schema matter: 413 body_too_large.
            assert_eq!(code, "body_too_large", "{name}");
            continue;
        } else {
            let schema = &operation(&op)["requestBody"]["content"]["application/json"]["schema"];
            match serde_json::from_slice::<Value>(&body) {
                Ok(v) => checker.errors(schema, &v).is_empty(),
                Err(_) => {
                    assert!(
                        ["invalid_json", "missing_query"].contains(&code),
                        "{name}: {code}"
                    );
                    false
                }
            }
        };
        checked += 1;
        match (conforms, status) {
            (true, 200) | (false, 400 | 413) => {}
            // Limits in bytes that maxLength, counting characters, cannot state: a query or
            // session_id of multi-byte characters within the character limit.
            (true, 400 | 413) if ["query_too_large", "invalid_session_id"].contains(&code) => {
                byte_limited += 1;
            }
            (true, _) => {
                panic!("{name}: the schema accepts it, the handler answered {status} {code}")
            }
            (false, _) => {
                panic!("{name}: the handler accepts it ({status}), the schema refuses it")
            }
        }
    }
    assert!(checked >= 100, "only {checked} corpus cases checked");
    assert!(
        byte_limited >= 2,
        "the corpus should show the byte limits ({byte_limited})"
    );

    // The blank test, character by character, through the handler.
    for (text, routed) in [
        ("\u{3000}", false),
        ("\u{85}\u{a0}\t", false),
        ("\u{200b}", true),
        ("\u{feff}", true),
        ("\u{1c}", true),
        ("\0", true),
        (" x ", true),
    ] {
        let body = json!({"query": text}).to_string();
        for op in [POST_ROUTE, POST_QUERY] {
            let path = op.split_once(' ').unwrap().1;
            let resp = api.handle(request("POST", path, body.as_bytes())).await;
            let schema = &operation(op)["requestBody"]["content"]["application/json"]["schema"];
            let conforms = checker.errors(schema, &json!({"query": text})).is_empty();
            assert_eq!(
                (resp.status() == 200, conforms),
                (routed, routed),
                "{op} {text:?}"
            );
        }
    }
}

#[test]
fn query_pattern_is_rusts_whitespace_test() {
    let query = &spec()["components"]["schemas"]["RouteRequest"]["properties"]["query"];
    let excluded = negated_class(query["pattern"].as_str().unwrap());
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let in_class = excluded.iter().any(|&(lo, hi)| (lo..=hi).contains(&c));
        assert_eq!(in_class, c.is_whitespace(), "U+{:04X}", c as u32);
    }
    // The same query schema everywhere, and the same session_id bounds.
    let strip = |v: &Value, drop: &[&str]| {
        let mut v = v.as_object().unwrap().clone();
        for k in drop {
            v.remove(*k);
        }
        Value::Object(v)
    };
    let q_param = &operation(GET_ROUTE)["parameters"][0];
    let s_param = &operation(GET_ROUTE)["parameters"][1];
    assert_eq!(
        (q_param["name"].as_str(), s_param["name"].as_str()),
        (Some("q"), Some("session_id"))
    );
    assert_eq!(q_param["required"], true);
    for model in ["RouteRequest", "QueryRequest"] {
        let props = &spec()["components"]["schemas"][model]["properties"];
        assert_eq!(
            strip(&props["query"], &["description"]),
            strip(&q_param["schema"], &["description"]),
            "{model}.query"
        );
        assert_eq!(
            strip(&props["session_id"], &["description", "nullable"]),
            strip(&s_param["schema"], &["description"]),
            "{model}.session_id"
        );
        assert_eq!(
            props["query"]["maxLength"],
            agent_router::api::MAX_QUERY_BYTES
        );
        assert_eq!(
            props["session_id"]["maxLength"],
            agent_router::api::MAX_SESSION_ID_BYTES
        );
    }
}
