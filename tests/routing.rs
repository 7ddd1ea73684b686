//! Table-driven routing tests: the default catalogue on realistic queries, and small catalogues
//! that pin down word boundaries, phrases, overlaps, ties, margins and Unicode.

use agent_router::routing::FastPathSettings;
use agent_router::{Agent, Catalogue, CatalogueBuilder, Keyword, Router, RoutingMethod};

fn default_router() -> Router {
    Router::new(Catalogue::embedded_default().expect("embedded catalogue")).expect("router")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// (query, expected agent, expected routing method)
const DEFAULT_CASES: &[(&str, &str, RoutingMethod)] = &[
    // The seed queries of the product.
    ("What are my AWS costs?", "cost", RoutingMethod::Fast),
    (
        "How much did we spend on EC2 last month?",
        "cost",
        RoutingMethod::Fast,
    ),
    // A budget alert is a cost feature, not a monitoring alarm (the phrase outweighs "alerts").
    ("Show me my budget alerts", "cost", RoutingMethod::Fast),
    (
        "Are there any security findings in GuardDuty?",
        "security",
        RoutingMethod::Fast,
    ),
    (
        "Which IAM users have no MFA?",
        "security",
        RoutingMethod::Fast,
    ),
    (
        "list all my ec2 instances",
        "resources",
        RoutingMethod::Fast,
    ),
    (
        "how many lambda functions do we have in us-east-1",
        "resources",
        RoutingMethod::Fast,
    ),
    (
        "show cloudwatch alarms in ALARM state",
        "monitoring",
        RoutingMethod::Fast,
    ),
    (
        "why is the p99 latency of my API so high",
        "monitoring",
        RoutingMethod::Fast,
    ),
    (
        "lambda errors since yesterday",
        "monitoring",
        RoutingMethod::Fast,
    ),
    ("ec2 costs by team", "cost", RoutingMethod::Fast),
    (
        "is our data encrypted at rest with KMS?",
        "security",
        RoutingMethod::Fast,
    ),
    ("hello", "general", RoutingMethod::Fast),
    // Case, whitespace and punctuation.
    ("WHAT ARE MY   COSTS???", "cost", RoutingMethod::Fast),
    ("cost.", "cost", RoutingMethod::Fast),
    ("\tsavings\n\n  plan options", "cost", RoutingMethod::Fast),
    // Word boundaries: no match inside a longer word.
    (
        "costume ideas for the office party",
        "general",
        RoutingMethod::Default,
    ),
    ("billionaire news", "general", RoutingMethod::Default),
    ("the logistics team", "general", RoutingMethod::Default),
    // Nothing matches.
    (
        "what is the capital of France",
        "general",
        RoutingMethod::Default,
    ),
    // Encryption is security even when a resource is named.
    ("s3 bucket encryption", "security", RoutingMethod::Fast),
    // Ambiguous: two agents with equal evidence (failures of a cost tool vs money).
    (
        "errors in the lambda that sends budget alerts",
        "general",
        RoutingMethod::Default,
    ),
];

#[test]
fn default_catalogue_table() {
    let router = default_router();
    let rt = rt();
    for &(query, agent, method) in DEFAULT_CASES {
        let d = rt.block_on(router.route(query));
        let want_agent = if method == RoutingMethod::Default {
            "general"
        } else {
            agent
        };
        assert_eq!(
            (d.agent.as_str(), d.routing_method),
            (want_agent, method),
            "query {query:?}: {d:?}"
        );
        match method {
            RoutingMethod::Fast => {
                assert!(
                    !d.matched.is_empty(),
                    "fast decision without matched keywords: {query:?}"
                );
                assert!(
                    d.confidence > 0.0 && d.confidence <= 1.0,
                    "{query:?}: {}",
                    d.confidence
                );
                assert!(d.fallback_reason.is_none());
            }
            _ => {
                assert!(d.matched.is_empty());
                assert_eq!(d.confidence, 0.0);
                assert!(
                    d.fallback_reason.is_some(),
                    "default decision must say why: {query:?}"
                );
            }
        }
    }
}

fn kw(text: &str, weight: f32) -> Keyword {
    Keyword {
        text: text.into(),
        weight,
    }
}

fn agent(name: &str, keywords: Vec<Keyword>) -> Agent {
    Agent {
        name: name.into(),
        description: format!("{name} queries"),
        keywords,
        bias: 0.0,
        target: None,
    }
}

/// A small catalogue built for edge cases.
fn edge_router(margin: f32, min_score: f32) -> Router {
    let mut b = CatalogueBuilder::new("other");
    b.agent(agent(
        "cost",
        vec![kw("cost", 1.0), kw("savings plan", 2.0), kw("c++", 1.0)],
    ))
    .agent(agent("plans", vec![kw("plan", 1.0), kw("savings", 1.0)]))
    .agent(agent(
        "travel",
        vec![
            kw("café", 1.0),
            kw("straße", 1.0),
            kw("東京", 1.0),
            kw("reise", 1.0),
        ],
    ))
    .agent(agent("weak", vec![kw("maybe", 0.5)]))
    .agent(agent("other", vec![]))
    .fast_path(FastPathSettings { margin, min_score });
    Router::new(b.build().expect("edge catalogue")).expect("router")
}

#[test]
fn edge_cases_table() {
    let router = edge_router(1.0, 1.0);
    let rt = rt();
    // (query, agent or "" for unrouted, matched keywords)
    let cases: &[(&str, &str, &[&str])] = &[
        ("cost", "cost", &["cost"]),
        ("Cost?", "cost", &["cost"]),
        ("(cost)", "cost", &["cost"]),
        ("costs", "", &[]),                            // not listed, so no match
        ("costume", "", &[]),                          // inside a word
        ("precost", "", &[]),                          // inside a word
        ("cost_centre", "", &[]),                      // '_' is a word character
        ("cost cost cost", "cost", &["cost"]),         // a keyword counts once
        ("savings   plan", "cost", &["savings plan"]), // phrase across whitespace, longest wins
        ("savings\nplan", "cost", &["savings plan"]),
        ("a savings-plan", "plans", &["savings", "plan"]), // '-' is not whitespace: no phrase match
        ("savings or plan", "plans", &["savings", "plan"]), // query order
        ("I write c++ code", "cost", &["c++"]),            // keyword ending in punctuation
        ("CAFÉ au lait", "travel", &["café"]),             // Unicode lower-casing
        ("STRASSE", "", &[]),                              // no full case folding: ß is not ss
        ("Straße", "travel", &["straße"]),
        ("東京へ行く", "travel", &["東京"]), // CJK: no spaces around the word
        ("ich bin im 東京hotel", "travel", &["東京"]), // script change is a boundary
        ("reisebüro", "", &[]),              // Unicode letters are word characters
        ("maybe", "", &[]),                  // below min_score
        ("cost plan", "", &[]),              // tie 1 vs 1
    ];
    for &(query, want, matched) in cases {
        let d = rt.block_on(router.route(query));
        if want.is_empty() {
            assert_eq!(
                d.routing_method,
                RoutingMethod::Default,
                "query {query:?}: {d:?}"
            );
            assert_eq!(d.agent, "other");
        } else {
            assert_eq!(
                (d.agent.as_str(), d.routing_method),
                (want, RoutingMethod::Fast),
                "query {query:?}: {d:?}"
            );
            assert_eq!(d.matched, matched, "query {query:?}");
        }
    }
}

#[test]
fn margin_and_min_score_are_configurable() {
    let rt = rt();
    // With margin 0.5 and min_score 0.5, a single weak keyword decides.
    let loose = edge_router(0.5, 0.5);
    assert_eq!(rt.block_on(loose.route("maybe")).agent, "weak");
    // A tie never decides, even with margin 0.
    let zero = edge_router(0.0, 0.0);
    let d = rt.block_on(zero.route("cost plan"));
    assert_eq!(d.routing_method, RoutingMethod::Default, "{d:?}");
    // A large margin turns a clear-but-small win into "unrouted".
    let strict = edge_router(3.0, 1.0);
    assert_eq!(
        rt.block_on(strict.route("savings plan")).routing_method,
        RoutingMethod::Default
    );
}

#[test]
fn overlap_resolution_is_leftmost_longest_and_deterministic() {
    let router = edge_router(1.0, 1.0);
    let scan = router.fast_path().scan("savings plan");
    // "savings plan" (cost) covers both "savings" and "plan" (plans): only the phrase counts.
    assert_eq!(scan.hits.len(), 1);
    assert_eq!(scan.scores, vec![2.0, 0.0, 0.0, 0.0, 0.0]);
    for _ in 0..3 {
        assert_eq!(router.fast_path().scan("savings plan"), scan);
    }
}

#[test]
fn confidence_grows_with_evidence_and_drops_with_competition() {
    let router = default_router();
    let rt = rt();
    let one = rt.block_on(router.route("costs")).confidence;
    let three = rt.block_on(router.route("costs budget invoice")).confidence;
    let contested = rt
        .block_on(router.route("costs budget invoice and the alarms"))
        .confidence;
    assert!(three > one, "{three} vs {one}");
    assert!(contested < three, "{contested} vs {three}");
}
