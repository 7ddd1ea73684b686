//! CloudWatch metrics: one Embedded Metric Format (EMF) line per request, on stdout.
//!
//! Lambda copies stdout into CloudWatch Logs, and CloudWatch turns every log line that carries an
//! `_aws` object into metrics: no API call from the function and no agent. [`record`] is
//! called once per request by the API (whole answers, and streamed ones when they end); [`render`]
//! is the pure part.
//!
//! Metrics (namespace `ROUTER_METRICS_NAMESPACE`, default [`DEFAULT_NAMESPACE`]):
//!
//! | metric | unit | dimensions | value |
//! |---|---|---|---|
//! | `Requests` | Count | none | 1 per request |
//! | `ServerErrors`, `ClientErrors` | Count | none | 1 for a 5xx / 4xx answer, else 0 |
//! | `ColdStart` | Count | none | 1 for the process's first request, else 0 |
//! | `TotalLatency` | Milliseconds | none | the whole handler |
//! | `RouterLatency` | Milliseconds | none | the handler less the agent's time: what the router costs |
//! | `RouteLatency` | Milliseconds | none | the routing cascade (routed requests) |
//! | `LlmLatency` | Milliseconds | none | the LLM call, when one was made |
//! | `AgentLatency` | Milliseconds | none | the agent's invocation, when one was made |
//! | `CacheHits`, `LlmCalls`, `Fallbacks` | Count | none | 1 or 0 per routed request |
//! | `SessionUnavailable`, `SessionWriteErrors` | Count | none | requests with a session: 1 when the store could not be read in time / the turn could not be saved, else 0 |
//! | `ShadowAgreement` | Count | none; `Agent` | a sampled second opinion: 1 when the LLM named the decision's agent, 0 when another (the average is the agreement rate) |
//! | `ShadowErrors` | Count | none | a sampled second opinion that failed: 1 |
//! | `Routed` | Count | `RoutingMethod`; `Agent` | 1 per routed request |
//! | `Fallbacks` | Count | `FallbackReason` | 1 per default-agent decision |
//! | `Requests`, `ServerErrors`, `LlmCalls` | Count | `FunctionVersion` | as above, per Lambda version |
//! | `Fallbacks` | Count | `FallbackReason`, `FunctionVersion` | as above, per Lambda version |
//!
//! The `FunctionVersion` sets (from `AWS_LAMBDA_FUNCTION_VERSION`) let a canary's alarms watch
//! the version being deployed alone.
//!
//! Dimension values come from the catalogue and fixed enums, never from request text, so their
//! number stays bounded. Lines are written only in Lambda (`AWS_LAMBDA_RUNTIME_API` set) unless
//! `ROUTER_METRICS=on`; `ROUTER_METRICS=off` turns them off everywhere.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::routing::{Decision, RoutingMethod};
use crate::shadow::ShadowResult;

/// Environment variable turning metrics `on`, `off` or `auto` (default: on in Lambda only; read
/// by `crate::app::settings` like every other switch).
pub const SWITCH_ENV: &str = "ROUTER_METRICS";
/// Environment variable naming the CloudWatch namespace.
pub const NAMESPACE_ENV: &str = "ROUTER_METRICS_NAMESPACE";
/// The namespace when [`NAMESPACE_ENV`] is unset or invalid.
pub const DEFAULT_NAMESPACE: &str = "AgentRouter";

/// Every metric name a line can carry (the template's alarms and dashboard use only these).
pub const METRIC_NAMES: &[&str] = &[
    "Requests",
    "ServerErrors",
    "ClientErrors",
    "ColdStart",
    "TotalLatency",
    "RouterLatency",
    "RouteLatency",
    "LlmLatency",
    "AgentLatency",
    "CacheHits",
    "LlmCalls",
    "Fallbacks",
    "SessionUnavailable",
    "SessionWriteErrors",
    "ShadowAgreement",
    "ShadowErrors",
    "Routed",
];

/// What one request contributes to the metrics.
#[derive(Debug, Clone, Copy)]
pub struct RequestMetrics<'a> {
    /// The routing decision, when the request was routed (`/route`, `/query`).
    pub decision: Option<&'a Decision>,
    /// The HTTP status answered.
    pub status: u16,
    /// Time spent in the handler, in microseconds.
    pub total_us: u64,
    /// Whether this is the process's first request.
    pub cold_start: bool,
    /// The request id, kept as a log property for correlation (not a dimension).
    pub request_id: &'a str,
    /// The Lambda function version that answered (`AWS_LAMBDA_FUNCTION_VERSION`), when known.
    pub function_version: Option<&'a str>,
    /// The sampled second opinion on the decision, when one was asked.
    pub shadow: Option<&'a ShadowResult>,
}

/// Where metric lines go: on with a namespace, or off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsConfig {
    /// Write one line per request under this namespace.
    On {
        /// The CloudWatch namespace.
        namespace: String,
        /// The Lambda function version serving (`AWS_LAMBDA_FUNCTION_VERSION`), which adds the
        /// per-version dimension sets the canary's alarms watch; `None` outside Lambda.
        function_version: Option<String>,
    },
    /// Write nothing.
    Off,
}

/// Whether `ns` is a valid CloudWatch namespace: 1 to 255 characters from `A-Za-z0-9.-_/#:`,
/// not starting with `AWS/` (reserved for AWS services).
pub fn valid_namespace(ns: &str) -> bool {
    (1..=255).contains(&ns.len())
        && !ns.starts_with("AWS/")
        && ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#:".contains(c))
}

static COLD: AtomicBool = AtomicBool::new(true);

/// True exactly once per process: for its first request.
pub fn take_cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

/// Records one request: writes its EMF line to stdout when metrics are on (see the module doc).
/// Never fails; a write error is ignored, since metrics must not fail a request.
pub fn record(
    config: &MetricsConfig,
    decision: Option<&Decision>,
    shadow: Option<&ShadowResult>,
    status: u16,
    total_us: u64,
    request_id: &str,
) {
    let cold_start = take_cold_start();
    let MetricsConfig::On {
        namespace,
        function_version,
    } = config
    else {
        return;
    };
    let sample = RequestMetrics {
        decision,
        status,
        total_us,
        cold_start,
        request_id,
        function_version: function_version.as_deref(),
        shadow,
    };
    let mut line = render(namespace, now_ms(), &sample);
    line.push('\n');
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(us: u64) -> Value {
    // Microseconds to milliseconds, three decimals: exact for every u64 below 2^53.
    json!(us as f64 / 1000.0)
}

/// Renders one EMF line (without the trailing newline) for `sample` at `timestamp_ms`.
pub fn render(namespace: &str, timestamp_ms: u64, sample: &RequestMetrics<'_>) -> String {
    let mut root = Map::new();
    let mut plain = Vec::new();
    let mut put = |root: &mut Map<String, Value>, name: &'static str, unit: &str, value: Value| {
        root.insert(name.to_owned(), value);
        plain.push(json!({"Name": name, "Unit": unit}));
    };
    let flag = |b: bool| json!(u8::from(b));
    put(&mut root, "Requests", "Count", json!(1));
    put(
        &mut root,
        "ServerErrors",
        "Count",
        flag(sample.status >= 500),
    );
    put(
        &mut root,
        "ClientErrors",
        "Count",
        flag((400..500).contains(&sample.status)),
    );
    put(&mut root, "ColdStart", "Count", flag(sample.cold_start));
    put(
        &mut root,
        "TotalLatency",
        "Milliseconds",
        ms(sample.total_us),
    );
    let agent_us = sample
        .decision
        .and_then(|d| d.timings_us.agent)
        .unwrap_or(0);
    put(
        &mut root,
        "RouterLatency",
        "Milliseconds",
        ms(sample.total_us.saturating_sub(agent_us)),
    );
    let mut directives = Vec::new();
    if let Some(d) = sample.decision {
        let t = d.timings_us;
        put(&mut root, "RouteLatency", "Milliseconds", ms(t.route));
        if let Some(llm) = t.llm {
            put(&mut root, "LlmLatency", "Milliseconds", ms(llm));
        }
        if let Some(agent) = t.agent {
            put(&mut root, "AgentLatency", "Milliseconds", ms(agent));
        }
        put(
            &mut root,
            "CacheHits",
            "Count",
            flag(d.routing_method == RoutingMethod::Cache),
        );
        put(&mut root, "LlmCalls", "Count", flag(t.llm.is_some()));
        put(
            &mut root,
            "Fallbacks",
            "Count",
            flag(d.routing_method == RoutingMethod::Default),
        );
        if let Some(session) = &d.session {
            put(
                &mut root,
                "SessionUnavailable",
                "Count",
                flag(session.state == crate::routing::SessionStatus::Unavailable),
            );
            put(
                &mut root,
                "SessionWriteErrors",
                "Count",
                flag(session.write_failed),
            );
        }
        if let Some(r) = sample.shadow {
            if let Some(agrees) = r.agrees() {
                root.insert("ShadowAgreement".into(), flag(agrees));
                directives.push(json!({
                    "Namespace": namespace,
                    "Dimensions": [[], ["Agent"]],
                    "Metrics": [{"Name": "ShadowAgreement", "Unit": "Count"}],
                }));
            }
            if r.failed() {
                put(&mut root, "ShadowErrors", "Count", json!(1));
            }
        }
        root.insert("Routed".into(), json!(1));
        root.insert("RoutingMethod".into(), json!(d.routing_method.as_str()));
        root.insert("Agent".into(), json!(d.agent));
        directives.push(json!({
            "Namespace": namespace,
            "Dimensions": [["RoutingMethod"], ["Agent"]],
            "Metrics": [{"Name": "Routed", "Unit": "Count"}],
        }));
        if let Some(reason) = d.fallback_reason {
            root.insert("FallbackReason".into(), json!(reason.as_str()));
            let mut dimensions = vec![json!(["FallbackReason"])];
            if sample.function_version.is_some() {
                dimensions.push(json!(["FallbackReason", "FunctionVersion"]));
            }
            directives.push(json!({
                "Namespace": namespace,
                "Dimensions": dimensions,
                "Metrics": [{"Name": "Fallbacks", "Unit": "Count"}],
            }));
        }
    }
    if let Some(version) = sample.function_version {
        root.insert("FunctionVersion".into(), json!(version));
        let mut metrics = vec![
            json!({"Name": "Requests", "Unit": "Count"}),
            json!({"Name": "ServerErrors", "Unit": "Count"}),
        ];
        if sample.decision.is_some() {
            metrics.push(json!({"Name": "LlmCalls", "Unit": "Count"}));
        }
        directives.push(json!({
            "Namespace": namespace,
            "Dimensions": [["FunctionVersion"]],
            "Metrics": metrics,
        }));
    }
    directives.insert(
        0,
        json!({"Namespace": namespace, "Dimensions": [[]], "Metrics": plain}),
    );
    root.insert("status".into(), json!(sample.status));
    root.insert("request_id".into(), json!(sample.request_id));
    root.insert(
        "_aws".into(),
        json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
    );
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{FallbackReason, Timings};
    use std::collections::HashMap;

    fn decision(
        method: RoutingMethod,
        timings: Timings,
        fallback: Option<FallbackReason>,
    ) -> Decision {
        Decision {
            agent: "cost".into(),
            routing_method: method,
            reason: "test".into(),
            fallback_reason: fallback,
            matched: Vec::new(),
            confidence: 0.5,
            timings_us: timings,
            model_id: None,
            usage: None,
            session: None,
        }
    }

    /// Checks the EMF envelope and returns metric name -> (unit, dimension sets) over all
    /// directives.
    fn directives(line: &Value, namespace: &str) -> HashMap<String, (String, Vec<Vec<String>>)> {
        let aws = &line["_aws"];
        assert_eq!(aws["Timestamp"], json!(1_700_000_000_123_u64));
        let list = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert!(!list.is_empty());
        let mut out: HashMap<String, (String, Vec<Vec<String>>)> = HashMap::new();
        for d in list {
            assert_eq!(d["Namespace"], json!(namespace));
            let dims: Vec<Vec<String>> = serde_json::from_value(d["Dimensions"].clone()).unwrap();
            for set in &dims {
                for key in set {
                    assert!(line[key].is_string(), "dimension {key} has no string value");
                }
            }
            for m in d["Metrics"].as_array().expect("metrics") {
                let name = m["Name"].as_str().unwrap().to_owned();
                assert!(METRIC_NAMES.contains(&name.as_str()), "{name} undeclared");
                assert!(line[&name].is_number(), "metric {name} has no value");
                let entry = out
                    .entry(name)
                    .or_insert_with(|| (m["Unit"].as_str().unwrap().to_owned(), Vec::new()));
                entry.1.extend(dims.iter().cloned());
            }
        }
        out
    }

    #[test]
    fn renders_valid_emf_for_each_kind_of_request() {
        let fast = decision(
            RoutingMethod::Fast,
            Timings {
                route: 3,
                llm: None,
                agent: None,
            },
            None,
        );
        let llm = decision(
            RoutingMethod::Llm,
            Timings {
                route: 412_345,
                llm: Some(412_000),
                agent: Some(1_500_000),
            },
            None,
        );
        let cache = decision(RoutingMethod::Cache, Timings::default(), None);
        let fallback = decision(
            RoutingMethod::Default,
            Timings {
                route: 2_000_100,
                llm: Some(2_000_000),
                agent: None,
            },
            Some(FallbackReason::LlmTimeout),
        );
        // (case, decision, status, total_us, cold, expected values, expected absent)
        type Case<'a> = (
            &'a str,
            Option<&'a Decision>,
            u16,
            u64,
            bool,
            Vec<(&'a str, Value)>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "fast path, cold",
                Some(&fast),
                200,
                9,
                true,
                vec![
                    ("Requests", json!(1)),
                    ("ColdStart", json!(1)),
                    ("RouteLatency", json!(0.003)),
                    ("TotalLatency", json!(0.009)),
                    ("RouterLatency", json!(0.009)),
                    ("LlmCalls", json!(0)),
                    ("CacheHits", json!(0)),
                    ("Fallbacks", json!(0)),
                    ("Routed", json!(1)),
                    ("RoutingMethod", json!("fast")),
                    ("Agent", json!("cost")),
                    ("ServerErrors", json!(0)),
                    ("status", json!(200)),
                ],
                vec!["LlmLatency", "AgentLatency", "FallbackReason"],
            ),
            (
                "llm then agent",
                Some(&llm),
                200,
                1_913_000,
                false,
                vec![
                    ("ColdStart", json!(0)),
                    ("LlmLatency", json!(412.0)),
                    ("AgentLatency", json!(1500.0)),
                    ("RouterLatency", json!(413.0)),
                    ("LlmCalls", json!(1)),
                    ("RoutingMethod", json!("llm")),
                ],
                vec!["FallbackReason"],
            ),
            (
                "cache hit",
                Some(&cache),
                200,
                20,
                false,
                vec![("CacheHits", json!(1)), ("LlmCalls", json!(0))],
                vec!["LlmLatency"],
            ),
            (
                "fallback after timeout, agent failed",
                Some(&fallback),
                504,
                2_000_200,
                false,
                vec![
                    ("Fallbacks", json!(1)),
                    ("FallbackReason", json!("llm_timeout")),
                    ("ServerErrors", json!(1)),
                    ("ClientErrors", json!(0)),
                    ("RoutingMethod", json!("default")),
                ],
                vec!["AgentLatency"],
            ),
            (
                "bad request, not routed",
                None,
                400,
                7,
                false,
                vec![
                    ("ClientErrors", json!(1)),
                    ("ServerErrors", json!(0)),
                    ("TotalLatency", json!(0.007)),
                    ("status", json!(400)),
                ],
                vec![
                    "Routed",
                    "RoutingMethod",
                    "Agent",
                    "RouteLatency",
                    "LlmCalls",
                ],
            ),
        ];
        for (name, decision, status, total_us, cold_start, want, absent) in cases {
            let sample = RequestMetrics {
                decision,
                status,
                total_us,
                cold_start,
                request_id: "req-1",
                function_version: None,
                shadow: None,
            };
            let text = render("Test/Router", 1_700_000_000_123, &sample);
            assert!(!text.contains('\n'), "{name}: one line");
            let line: Value = serde_json::from_str(&text).expect("valid JSON");
            let metrics = directives(&line, "Test/Router");
            assert_eq!(line["request_id"], json!("req-1"), "{name}");
            for (key, value) in want {
                assert_eq!(line[key], value, "{name}: {key}");
            }
            for key in absent {
                assert!(line.get(key).is_none(), "{name}: {key} should be absent");
            }
            assert_eq!(metrics["Requests"].0, "Count", "{name}");
            assert_eq!(metrics["TotalLatency"].0, "Milliseconds", "{name}");
            assert!(metrics["Requests"].1.contains(&vec![]), "{name}");
            if decision.is_some() {
                let routed = &metrics["Routed"].1;
                assert!(routed.contains(&vec!["RoutingMethod".to_owned()]), "{name}");
                assert!(routed.contains(&vec!["Agent".to_owned()]), "{name}");
            } else {
                assert!(!metrics.contains_key("Routed"), "{name}");
            }
            let by_reason = metrics
                .get("Fallbacks")
                .is_some_and(|m| m.1.contains(&vec!["FallbackReason".to_owned()]));
            assert_eq!(by_reason, line.get("FallbackReason").is_some(), "{name}");
        }
    }

    #[test]
    fn function_version_adds_per_version_dimension_sets() {
        let fallback = decision(
            RoutingMethod::Default,
            Timings {
                route: 5,
                llm: Some(4),
                agent: None,
            },
            Some(FallbackReason::LlmError),
        );
        let sample = |decision, function_version| RequestMetrics {
            decision,
            status: 502,
            total_us: 9,
            cold_start: false,
            request_id: "req-1",
            function_version,
            shadow: None,
        };
        let line: Value = serde_json::from_str(&render(
            "Test/Router",
            1_700_000_000_123,
            &sample(Some(&fallback), Some("7")),
        ))
        .unwrap();
        assert_eq!(line["FunctionVersion"], json!("7"));
        let metrics = directives(&line, "Test/Router");
        let version = vec!["FunctionVersion".to_owned()];
        for name in ["Requests", "ServerErrors", "LlmCalls"] {
            assert!(metrics[name].1.contains(&version), "{name}");
        }
        assert!(metrics["Fallbacks"].1.contains(&vec![
            "FallbackReason".to_owned(),
            "FunctionVersion".to_owned()
        ]));
        // Unrouted: no LlmCalls value, so the version set must not name it.
        let line: Value = serde_json::from_str(&render(
            "Test/Router",
            1_700_000_000_123,
            &sample(None, Some("7")),
        ))
        .unwrap();
        let metrics = directives(&line, "Test/Router");
        assert!(metrics["ServerErrors"].1.contains(&version));
        assert!(!metrics.contains_key("LlmCalls"));
        // Without a version (outside Lambda) no line carries the dimension.
        let line: Value = serde_json::from_str(&render(
            "Test/Router",
            1_700_000_000_123,
            &sample(Some(&fallback), None),
        ))
        .unwrap();
        assert!(line.get("FunctionVersion").is_none());
        assert!(directives(&line, "Test/Router").values().all(|(_, sets)| {
            sets.iter()
                .all(|s| !s.contains(&"FunctionVersion".to_owned()))
        }));
    }

    #[test]
    fn namespace_rules() {
        for ok in [
            "AgentRouter",
            "a",
            "Prod/agent-router_1.2#x:y",
            &"n".repeat(255),
        ] {
            assert!(valid_namespace(ok), "{ok}");
        }
        for bad in ["", "has space", "AWS/Lambda", "é", &"n".repeat(256)] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }

    #[test]
    fn cold_start_is_true_once() {
        // Other tests in this process may have taken it already; after one call it is false.
        let _ = take_cold_start();
        assert!(!take_cold_start());
        assert!(!take_cold_start());
    }
}
