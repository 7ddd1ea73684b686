//! `POST /query` end to end through the real Lambda adapter (AWS SDK `Invoke`) against a loopback
//! double reached through the SDK's endpoint override.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::lambda_double::LambdaDouble;
use agent_router::api::{Api, ApiRequest};
use agent_router::aws::AwsSettings;
use agent_router::aws::LambdaInvoker;
use agent_router::dispatch::Dispatcher;
use agent_router::{Catalogue, Router};
use serde_json::{Value, json};

/// An API whose agents' targets are the given double functions.
fn api(url: &str, targets: &[(&str, &str)], agent_timeout: Duration) -> Api {
    let mut catalogue = Catalogue::embedded_default().unwrap();
    let map: HashMap<String, String> = targets
        .iter()
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect();
    catalogue.override_targets(&map);
    let aws = AwsSettings {
        endpoint_url: Some(url.to_owned()),
        region: Some("eu-west-1".into()),
        static_credentials: Some(("AKIDEXAMPLE".into(), "secret".into())),
        ..LambdaInvoker::default_settings()
    };
    let invoker = Arc::new(LambdaInvoker::new(aws, agent_timeout));
    let dispatcher = Dispatcher::new(invoker, agent_timeout, Duration::from_millis(200));
    Api::new(Arc::new(Router::new(catalogue).unwrap())).with_dispatcher(Arc::new(dispatcher))
}

async fn query(api: &Api, body: Value) -> (u16, HashMap<String, String>, Value) {
    let req = ApiRequest {
        method: http::Method::POST,
        path: "/query".into(),
        query: Vec::new(),
        body: body.to_string().into(),
        request_id: "req-42".into(),
        remaining: None,
    };
    let resp = api.handle(req).await;
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    (
        resp.status().as_u16(),
        headers,
        serde_json::from_str(resp.body()).unwrap(),
    )
}

#[tokio::test]
async fn dispatches_and_returns_the_agents_answer() {
    let double = LambdaDouble::start().await;
    let api = api(
        &double.url,
        &[("cost", "echo-cost")],
        Duration::from_secs(5),
    );
    let (status, _, body) = query(
        &api,
        json!({"query": "What are my AWS costs?", "session_id": "s-9"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"], "cost");
    assert_eq!(body["routing_method"], "fast");
    assert_eq!(body["dispatched"], true);
    assert!(body["timings_us"]["agent"].is_u64(), "{body}");
    // The agent contract: what the agent received comes back in the echo.
    let sent = &body["result"]["echo"];
    assert_eq!(
        sent,
        &json!({
            "query": "What are my AWS costs?",
            "session_id": "s-9",
            "routing": {"agent": "cost", "routing_method": "fast", "matched": ["costs"], "confidence": body["confidence"]},
            "request_id": "req-42"
        })
    );
    let got = double.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/2015-03-31/functions/echo-cost/invocations");
    assert!(got[0].signed);
}

#[tokio::test]
async fn targets_can_be_names_arns_and_aliases() {
    let double = LambdaDouble::start().await;
    let arn = "arn:aws:lambda:eu-west-1:123456789012:function:echo-cost:live";
    let api = api(&double.url, &[("cost", arn)], Duration::from_secs(5));
    let (status, _, body) = query(&api, json!({"query": "my bill"})).await;
    assert_eq!(
        (status, &body["result"]["echo"]["routing"]["agent"]),
        (200, &json!("cost")),
        "{body}"
    );
    let path = &double.received()[0].path;
    assert_eq!(
        path,
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Aecho-cost%3Alive/invocations"
    );
}

#[tokio::test]
async fn errors_table() {
    let double = LambdaDouble::start().await;
    // (target, status, code, words the message must contain, extra header)
    type Case<'a> = (
        &'a str,
        u16,
        &'a str,
        &'a [&'a str],
        Option<(&'a str, &'a str)>,
    );
    let cases: &[Case] = &[
        (
            "failing-agent",
            502,
            "agent_error",
            &["agent crashed: index out of range", "cost"],
            None,
        ),
        (
            "handled-agent",
            502,
            "agent_error",
            &["ValidationError"],
            None,
        ),
        ("slow-agent", 504, "agent_timeout", &["2000 ms"], None),
        (
            "throttled-agent",
            503,
            "agent_throttled",
            &["retry after 7"],
            Some(("retry-after", "7")),
        ),
        (
            "forbidden-agent",
            502,
            "agent_unavailable",
            &["forbidden-agent", "lambda:InvokeFunction"],
            None,
        ),
        (
            "missing-agent",
            502,
            "agent_unavailable",
            &["missing-agent", "ROUTER_TARGET_"],
            None,
        ),
    ];
    for &(target, want_status, code, words, header) in cases {
        let api = api(
            &double.url,
            &[("cost", target)],
            Duration::from_millis(2000),
        );
        let (status, headers, body) = query(&api, json!({"query": "What are my AWS costs?"})).await;
        assert_eq!(status, want_status, "{target}: {body}");
        assert_eq!(body["error"]["code"], code, "{target}: {body}");
        assert_eq!(body["error"]["agent"], "cost");
        assert_eq!(body["error"]["request_id"], "req-42");
        let message = body["error"]["message"].as_str().unwrap();
        for w in words {
            assert!(message.contains(w), "{target}: {message:?} lacks {w:?}");
        }
        if let Some((k, v)) = header {
            assert_eq!(headers.get(k).map(String::as_str), Some(v), "{target}");
        }
    }
}

#[tokio::test]
async fn text_answers_route_only_agents_and_dispatch_false() {
    let double = LambdaDouble::start().await;
    let api = api(
        &double.url,
        &[("cost", "text-agent"), ("security", "")],
        Duration::from_secs(5),
    );
    let (status, _, body) = query(&api, json!({"query": "my bill"})).await;
    assert_eq!((status, &body["result"]), (200, &json!("just some text")));

    let (status, _, body) = query(&api, json!({"query": "any guardduty findings?"})).await;
    assert_eq!(
        (status, &body["agent"], &body["dispatched"]),
        (200, &json!("security"), &json!(false)),
        "route-only"
    );
    assert!(body.get("result").is_none());

    let (status, _, body) = query(&api, json!({"query": "my bill", "dispatch": false})).await;
    assert_eq!((status, &body["dispatched"]), (200, &json!(false)));
    assert_eq!(
        double.received().len(),
        1,
        "only the first query invoked an agent"
    );

    let (status, _, body) = query(&api, json!({"query": "my bill", "dispatch": "yes"})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_dispatch"))
    );
}
