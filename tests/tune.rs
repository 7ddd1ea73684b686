//! The tuning tools: `eval` on tiny hand-made data with exactly known answers, labelled-data
//! parsing, and `keywords` mined from the CLINC150 data in data/clinc150/, then evaluated on its held-out
//! validation split.

use std::path::PathBuf;
use std::sync::OnceLock;

use agent_router::Catalogue;
use agent_router::routing::{CatalogueBuilder, LinearSettings};
use agent_router::routing::{DEFAULT_SYSTEM_PROMPT, render_system_prompt};
use agent_router::tune::eval::{LLM_OUTPUT_TOKENS, estimate_prompt_tokens};
use agent_router::tune::{
    EvalOptions, Example, MineOptions, Mined, TuneError, evaluate, mine, parse_examples,
};

const TINY_ROUTES: &str = r#"
default_agent = "general"

[fast_path]
margin = 1.0
min_score = 1.0

[[agents]]
name = "cost"
description = "Spend and bills."
keywords = ["bill", "invoice", { phrase = "savings plan", weight = 2.0 }]

[[agents]]
name = "security"
description = "IAM and MFA."
keywords = ["iam", "mfa"]

[[agents]]
name = "general"
description = "Anything else."
"#;

fn tiny() -> Catalogue {
    Catalogue::from_toml_str(TINY_ROUTES).expect("tiny catalogue")
}

/// `(query, label)`, `"none"` for out of scope.
fn examples(rows: &[(&str, &str)]) -> Vec<Example> {
    rows.iter()
        .map(|&(q, l)| {
            if l == "none" {
                Example::out_of_scope(q)
            } else {
                Example::new(q, l)
            }
        })
        .collect()
}

/// Equal within 1e-9, or both undefined (NaN: a ratio with nothing to divide by).
fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-9
}

struct EvalCase {
    name: &'static str,
    rows: &'static [(&'static str, &'static str)],
    coverage: f64,
    precision: f64,
    oos_fast_rate: f64,
    llm_call_rate: f64,
}

#[test]
fn eval_table() {
    let cases = [
        EvalCase {
            name: "mixed",
            rows: &[
                ("my bill please", "cost"),       // cost 1 vs 0: decided, right
                ("iam roles", "security"),        // decided, right
                ("bill for iam", "cost"),         // 1 vs 1: tie, unrouted
                ("savings plan and iam", "cost"), // 2 vs 1: decided, right
                ("invoice", "security"),          // decided cost: wrong
                ("hello", "security"),            // no keyword: unrouted
                ("mfa", "none"),                  // out of scope taken
                ("weather", "none"),              // out of scope left to the LLM
                ("bill", "billing"),              // unknown label: decided, always wrong
            ],
            coverage: 5.0 / 7.0,
            precision: 3.0 / 5.0,
            oos_fast_rate: 0.5,
            llm_call_rate: 3.0 / 9.0,
        },
        EvalCase {
            name: "all right",
            rows: &[
                ("bill", "cost"),
                ("IAM", "security"),
                ("Savings  Plan", "cost"),
            ],
            coverage: 1.0,
            precision: 1.0,
            oos_fast_rate: 0.0,
            llm_call_rate: 0.0,
        },
        EvalCase {
            name: "nothing decided",
            rows: &[("hello", "cost"), ("weather", "none"), ("billing", "cost")],
            coverage: 0.0,
            precision: f64::NAN, // no decision: undefined, not 100 %
            oos_fast_rate: 0.0,
            llm_call_rate: 1.0,
        },
        EvalCase {
            name: "only out of scope",
            rows: &[
                ("mfa reset", "none"),
                ("bill", "none"),
                ("hi", "none"),
                ("yo", "none"),
            ],
            coverage: 0.0,
            precision: f64::NAN, // nothing in scope was decided
            oos_fast_rate: 0.5,
            llm_call_rate: 0.5,
        },
    ];
    let c = tiny();
    for case in cases {
        let r = evaluate(&c, &examples(case.rows), &EvalOptions::default()).expect(case.name);
        let got = (r.coverage, r.precision, r.oos_fast_rate, r.llm_call_rate);
        let want = (
            case.coverage,
            case.precision,
            case.oos_fast_rate,
            case.llm_call_rate,
        );
        assert!(
            close(got.0, want.0)
                && close(got.1, want.1)
                && close(got.2, want.2)
                && close(got.3, want.3),
            "{}: got (coverage, precision, oos, llm) {got:?}, want {want:?}",
            case.name
        );
        assert_eq!(r.queries, case.rows.len(), "{}", case.name);
        assert_eq!(r.in_scope + r.out_of_scope, r.queries, "{}", case.name);
    }
}

#[test]
fn eval_per_agent_confusions_and_unknown_labels() {
    let rows = [
        ("my bill please", "cost"),
        ("iam roles", "security"),
        ("bill for iam", "cost"),
        ("savings plan and iam", "cost"),
        ("invoice", "security"),
        ("hello", "security"),
        ("mfa", "none"),
        ("weather", "none"),
        ("bill", "billing"),
    ];
    let r = evaluate(&tiny(), &examples(&rows), &EvalOptions::default()).unwrap();
    let cost = &r.per_agent["cost"];
    assert_eq!((cost.support, cost.decided, cost.correct), (3, 4, 2));
    assert!(close(cost.precision, 0.5) && close(cost.recall, 2.0 / 3.0));
    let security = &r.per_agent["security"];
    assert_eq!(
        (security.support, security.decided, security.correct),
        (3, 1, 1)
    );
    assert!(close(security.precision, 1.0) && close(security.recall, 1.0 / 3.0));
    let billing = &r.per_agent["billing"];
    assert_eq!((billing.support, billing.decided), (1, 0));
    assert!(close(billing.recall, 0.0));
    assert_eq!(r.unknown_labels.get("billing"), Some(&1));
    let confusions: Vec<(&str, &str, usize)> = r
        .confusions
        .iter()
        .map(|c| (c.expected.as_str(), c.got.as_str(), c.count))
        .collect();
    assert_eq!(
        confusions,
        vec![
            ("billing", "cost", 1),
            ("none", "security", 1),
            ("security", "cost", 1)
        ]
    );
    // Each confusion shows its query and the keywords that decided it.
    let examples: Vec<(&str, Vec<&str>)> = r
        .confusions
        .iter()
        .flat_map(|c| &c.examples)
        .map(|e| {
            (
                e.query.as_str(),
                e.matched.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        examples,
        vec![
            ("bill", vec!["bill"]),
            ("mfa", vec!["mfa"]),
            ("invoice", vec!["invoice"])
        ]
    );
    let text = r.to_text();
    assert!(
        text.contains("warning: labels that name no agent"),
        "{text}"
    );
    assert!(text.contains("billing (1)"), "{text}");
    assert!(
        text.contains("e.g. \"invoice\" (matched: invoice)"),
        "{text}"
    );
}

#[test]
fn confusion_examples_stop_at_the_limit() {
    let rows = [
        ("invoice one", "security"),
        ("invoice two", "security"),
        ("invoice three", "security"),
    ];
    let r = evaluate(&tiny(), &examples(&rows), &EvalOptions::default()).unwrap();
    assert_eq!(r.confusions.len(), 1);
    let c = &r.confusions[0];
    assert_eq!(c.count, 3);
    let queries: Vec<&str> = c.examples.iter().map(|e| e.query.as_str()).collect();
    assert_eq!(
        queries.len(),
        agent_router::tune::eval::EXAMPLES_PER_CONFUSION
    );
    assert_eq!(queries, ["invoice one", "invoice two"]);
}

/// `eval --json`'s documented top-level keys are all in `v`.
fn assert_documented_keys(v: &serde_json::Value) {
    for key in [
        "coverage",
        "precision",
        "oos_fast_rate",
        "llm_call_rate",
        "per_agent",
        "confusions",
        "queries",
        "in_scope",
        "out_of_scope",
        "est_cost_per_million_usd",
        "operating_points",
    ] {
        assert!(v.get(key).is_some(), "missing key {key} in {v}");
    }
}

#[test]
fn eval_json_has_the_documented_keys() {
    let rows = [("bill", "cost"), ("hello", "security"), ("mfa", "none")];
    let r = evaluate(&tiny(), &examples(&rows), &EvalOptions::default()).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_documented_keys(&v);
    for field in ["precision", "recall", "support"] {
        assert!(v["per_agent"]["cost"].get(field).is_some(), "{v}");
    }
}

#[test]
fn operating_points_trade_precision_for_coverage() {
    // Scores: "bill" 1 (right), "savings plan" 2 (right), "savings plan bill" 3 (right),
    // "invoice" 1 (wrong: labelled security), "savings plan" 2 out of scope.
    let rows = [
        ("bill", "cost"),
        ("savings plan", "cost"),
        ("savings plan bill", "cost"),
        ("invoice", "security"),
        ("savings plan please", "none"),
        ("weather", "none"),
    ];
    let r = evaluate(&tiny(), &examples(&rows), &EvalOptions::default()).unwrap();
    // The file's thresholds (1, 1) decide all four in-scope queries, one wrongly, and take half of
    // the out-of-scope ones.
    assert!(close(r.coverage, 1.0) && close(r.precision, 0.75) && close(r.oos_fast_rate, 0.5));
    // Out of scope may take at most 10 %: min_score must exceed 2, leaving only the 3 (on a tie
    // the largest thresholds are reported).
    for p in &r.operating_points {
        let b = p.best.expect("a point for every target");
        assert_eq!((b.margin, b.min_score), (Some(3.0), Some(3.0)), "{p:?}");
        assert!(close(b.coverage, 0.25) && close(b.precision, 1.0) && close(b.oos_fast_rate, 0.0));
        assert!(close(b.llm_call_rate, 5.0 / 6.0), "{p:?}");
    }
    // Without out-of-scope queries, precision 95 % still needs min_score above 1 (the wrong
    // "invoice" scores 1): the 2 and the 3 are decided.
    let in_scope = examples(&rows[..4]);
    let r = evaluate(&tiny(), &in_scope, &EvalOptions::default()).unwrap();
    let b = r.operating_points[0].best.unwrap();
    assert_eq!((b.margin, b.min_score), (Some(2.0), Some(2.0)), "{b:?}");
    assert!(close(b.coverage, 0.5) && close(b.precision, 1.0));
}

#[test]
fn cost_estimate_follows_the_formula() {
    // Two of four queries go to the LLM: "hello" (5 chars) and "weather" (7 chars).
    let rows = [
        ("bill", "cost"),
        ("hello", "security"),
        ("iam", "security"),
        ("weather", "none"),
    ];
    let c = tiny();
    let data = examples(&rows);
    let r = evaluate(&c, &data, &EvalOptions::default()).unwrap();
    assert!(close(r.llm_call_rate, 0.5));
    let tokens = estimate_prompt_tokens(DEFAULT_SYSTEM_PROMPT, &c, 6).unwrap();
    assert_eq!(r.est_input_tokens, tokens);
    // The router's own prompt, rendered with the agents, and the 6-character average query.
    let rendered = render_system_prompt(DEFAULT_SYSTEM_PROMPT, &c).unwrap();
    assert!(rendered.contains("security: IAM and MFA."), "{rendered}");
    assert_eq!(tokens, (rendered.chars().count() as u64 + 6).div_ceil(4));
    let want = 0.5 * 1e6 * (tokens as f64 * 1.0 + LLM_OUTPUT_TOKENS as f64 * 5.0) / 1e6;
    assert!(close(r.est_cost_per_million_usd, want), "{r:?}");

    let priced = EvalOptions {
        price_per_mtok_in: 3.0,
        price_per_mtok_out: 15.0,
        ..EvalOptions::default()
    };
    let r = evaluate(&c, &data, &priced).unwrap();
    assert!(close(r.est_cost_per_million_usd, 3.0 * want));
    let free = EvalOptions {
        price_per_mtok_in: 0.0,
        price_per_mtok_out: 0.0,
        ..EvalOptions::default()
    };
    assert!(close(
        evaluate(&c, &data, &free).unwrap().est_cost_per_million_usd,
        0.0
    ));
    let negative = EvalOptions {
        price_per_mtok_in: -1.0,
        ..EvalOptions::default()
    };
    assert!(matches!(
        evaluate(&c, &data, &negative),
        Err(TuneError::Option(_))
    ));
    // A custom prompt counts instead of the router's own; one that cannot render is refused.
    let longer = EvalOptions {
        prompt_template: format!("{} Be brief.", DEFAULT_SYSTEM_PROMPT.trim()),
        ..EvalOptions::default()
    };
    assert!(evaluate(&c, &data, &longer).unwrap().est_input_tokens > tokens);
    let no_agents = EvalOptions {
        prompt_template: "Pick an agent.".to_owned(),
        ..EvalOptions::default()
    };
    assert!(matches!(
        evaluate(&c, &data, &no_agents),
        Err(TuneError::Option(_))
    ));
}

#[test]
fn labelled_lines_parse_and_errors_name_the_line() {
    let text = "{\"query\": \"my bill\", \"agent\": \"cost\"}\n\n   \n{\"query\": \"hi\", \"agent\": \"None\", \"intent\": \"x\"}\n";
    let got = parse_examples(text, "d.jsonl").unwrap();
    assert_eq!(
        got,
        vec![Example::new("my bill", "cost"), Example::out_of_scope("hi")]
    );
    let cases = [
        (
            "{\"query\": \"a\", \"agent\": \"x\"}\nnot json\n",
            "d.jsonl:2:",
        ),
        ("\n\n{\"query\": \"a\"}\n", "d.jsonl:3:"),
        ("{\"query\": \"a\", \"agent\": \"  \"}\n", "d.jsonl:1:"),
        ("{\"query\": 5, \"agent\": \"x\"}\n", "d.jsonl:1:"),
        ("\n\n", "no labelled examples"),
    ];
    for (text, needle) in cases {
        let err = parse_examples(text, "d.jsonl").unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should contain {needle:?}");
    }
}

/// A small synthetic data set: two agents (one of them labelled `general`) and a few
/// out-of-scope queries.
fn synthetic() -> Vec<Example> {
    let mut out = Vec::new();
    let cities = ["paris", "rome", "tokyo", "lima", "oslo", "cairo"];
    let things = ["cats", "dogs", "rain", "tea", "jazz", "chess"];
    for (i, city) in cities.iter().enumerate() {
        out.push(Example::new(format!("book a flight to {city}"), "travel"));
        out.push(Example::new(
            format!("hotel rooms in {city} please"),
            "travel",
        ));
        out.push(Example::new(
            format!("tell me a joke about {}", things[i]),
            "general",
        ));
        out.push(Example::new(
            format!("say something funny about {}", things[i]),
            "general",
        ));
    }
    out.push(Example::out_of_scope("who won the football game"));
    out.push(Example::out_of_scope("what is the capital of peru"));
    out
}

#[test]
fn mined_file_from_small_data_is_valid_and_deterministic() {
    let data = synthetic();
    let options = MineOptions::default();
    let a = mine(&data, &options, "synthetic").expect("mine");
    let c = &a.catalogue;
    // A label called general pushes the default agent to general_default, route-only.
    assert_eq!(c.default_agent().name, "general_default");
    assert_eq!(c.default_agent().target, None);
    assert!(c.default_agent().keywords.is_empty());
    let names: Vec<&str> = c.agents().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["general", "travel", "general_default"]);
    let travel = c.agent("travel").unwrap();
    let words: Vec<&str> = travel.keywords.iter().map(|k| k.text.as_str()).collect();
    assert!(words.contains(&"flight"), "{words:?}");
    assert!(
        travel.description.starts_with("Queries about: "),
        "{}",
        travel.description
    );
    // Round trip through the router's own validation.
    let text = c.to_toml_string();
    let again = Catalogue::from_toml_str(&text).expect("mined TOML must load");
    assert_eq!(again.agents(), c.agents());
    assert_eq!(again.linear(), c.linear());
    // Same input, same bytes.
    let b = mine(&data, &options, "synthetic").unwrap();
    assert_eq!(text, b.catalogue.to_toml_string());
}

#[test]
fn phrases_of_stop_words_can_be_keywords_but_single_stop_words_never() {
    let mut data = Vec::new();
    for who in ["anna", "ben", "carl", "dora", "emil", "fay"] {
        data.push(Example::new(format!("how are you {who}"), "chat"));
        data.push(Example::new(format!("{who} what is my balance"), "bank"));
        data.push(Example::new(format!("is my balance low {who}"), "bank"));
    }
    let mined = mine(&data, &MineOptions::default(), "phrases").expect("mine");
    let words = |agent: &str| -> Vec<String> {
        let a = mined.catalogue.agent(agent).unwrap();
        a.keywords.iter().map(|k| k.text.clone()).collect()
    };
    let chat = words("chat");
    let stop = agent_router::tune::mine::stop_words();
    assert!(
        chat.iter()
            .any(|k| k.contains(' ') && k.split(' ').all(|w| stop.contains(&w))),
        "a phrase of stop words should speak for chat: {chat:?}"
    );
    for k in chat.iter().chain(&words("bank")) {
        assert!(!stop.contains(&k.as_str()), "lone stop word {k:?}");
    }
}

#[test]
fn mining_rejects_bad_input() {
    let only_oos = vec![Example::out_of_scope("a"), Example::out_of_scope("b")];
    assert!(matches!(
        mine(&only_oos, &MineOptions::default(), "d"),
        Err(TuneError::NoInScope { .. })
    ));
    let clash = vec![Example::new("a", "Cost"), Example::new("b", "cost")];
    let err = mine(&clash, &MineOptions::default(), "d")
        .unwrap_err()
        .to_string();
    assert!(err.contains("both become agent name"), "{err}");
    for bad in [
        MineOptions {
            min_precision: 1.5,
            ..MineOptions::default()
        },
        MineOptions {
            min_support: 0,
            ..MineOptions::default()
        },
        MineOptions {
            folds: 1,
            ..MineOptions::default()
        },
    ] {
        assert!(matches!(
            mine(&synthetic(), &bad, "d"),
            Err(TuneError::Option(_))
        ));
    }
}

// ---- CLINC150: mine on train, evaluate on val ----

fn clinc_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/clinc150/"));
    assert!(
        dir.join("train.jsonl").is_file() && dir.join("val.jsonl").is_file(),
        "the CLINC150 data is missing: expected train.jsonl and val.jsonl in {} \
         (data/clinc150/ in the repository)",
        dir.display()
    );
    dir
}

/// Mined once for all CLINC tests (mining runs a 10-fold cross-validation).
fn clinc_mined() -> &'static (Mined, String) {
    static MINED: OnceLock<(Mined, String)> = OnceLock::new();
    MINED.get_or_init(|| {
        let dir = clinc_dir();
        let train = agent_router::tune::load_examples(&dir.join("train.jsonl")).expect("train");
        let options = MineOptions::default();
        let mined = mine(&train, &options, "train.jsonl").expect("mine CLINC150 train");
        let text = agent_router::tune::mine::render(&mined, &train, &options);
        (mined, text)
    })
}

/// Coverage the issue asks of the method on CLINC150 val (built from train only). Measured with
/// the defaults: 86.5 % at precision 99.04 %, out of scope taken 7 % (the linear model with
/// out-of-scope keywords and unknown words, fitted with an L1 penalty then refitted without it
/// on the keywords it kept; threshold 0.875 chosen by 10-fold cross-validation on train, which
/// measured 86.8 % at 99.3 %, out of scope 10 %).
const CLINC_MIN_COVERAGE: f64 = 0.85;

/// Precision a fast-path decision must keep on CLINC150 val.
const CLINC_MIN_PRECISION: f64 = 0.985;

#[test]
fn clinc_keywords_generalise_to_val() {
    let (mined, _) = clinc_mined();
    let val = agent_router::tune::load_examples(&clinc_dir().join("val.jsonl")).expect("val");
    let r = evaluate(&mined.catalogue, &val, &EvalOptions::default()).unwrap();
    let figures = format!(
        "coverage {:.4}, precision {:.4}, oos_fast_rate {:.4}, llm_call_rate {:.4}",
        r.coverage, r.precision, r.oos_fast_rate, r.llm_call_rate
    );
    assert!(
        r.precision >= CLINC_MIN_PRECISION,
        "precision too low: {figures}"
    );
    assert!(
        r.oos_fast_rate <= 0.10,
        "too much out of scope taken: {figures}"
    );
    assert!(
        r.coverage >= CLINC_MIN_COVERAGE,
        "coverage too low: {figures}"
    );
    assert!(r.unknown_labels.is_empty(), "{:?}", r.unknown_labels);
    assert!(mined.holdout.targets_met, "{:?}", mined.holdout);
}

/// The mined file's confidence means what it says on CLINC150 val: over all fast-path decisions
/// the expected calibration error is at most 0.05, and in every bucket with at least 30 decisions
/// the accuracy is within three binomial standard errors (plus 0.01 for the rounding of the
/// weights) of the mean confidence: the gap a calibrated model leaves by chance alone.
#[test]
fn clinc_confidence_is_calibrated_on_val() {
    let (mined, _) = clinc_mined();
    let val = agent_router::tune::load_examples(&clinc_dir().join("val.jsonl")).expect("val");
    let r = evaluate(&mined.catalogue, &val, &EvalOptions::default()).unwrap();
    let c = &r.calibration;
    assert_eq!(c.decisions, r.decided + r.oos_fast);
    assert!(c.ece <= 0.05, "ECE {} ({c:?})", c.ece);
    let mut checked = 0;
    for b in c.buckets.iter().filter(|b| b.count >= 30) {
        let p = b.mean_confidence;
        let tolerance = 3.0 * (p * (1.0 - p) / b.count as f64).sqrt() + 0.01;
        assert!(
            (b.accuracy - p).abs() <= tolerance,
            "bucket {b:?}: accuracy {} vs confidence {p} (tolerance {tolerance})",
            b.accuracy
        );
        checked += 1;
    }
    assert!(checked >= 1, "{c:?}");
    // And eval reports it, in text and JSON.
    assert!(r.to_text().contains("expected calibration error"));
    let json = serde_json::to_value(&r).unwrap();
    assert_documented_keys(&json);
    assert!(
        json["calibration"]["ece"].is_number(),
        "{}",
        json["calibration"]
    );
    assert_eq!(json["calibration"]["buckets"].as_array().unwrap().len(), 10);
}

/// `catalogue` (linear form) with another probability threshold.
fn with_threshold(catalogue: &Catalogue, threshold: f32) -> Catalogue {
    let mut builder = CatalogueBuilder::new(catalogue.default_agent().name.clone());
    for a in catalogue.agents() {
        builder.agent(a.clone());
    }
    let linear = catalogue.linear().expect("mined files are linear");
    builder.linear(LinearSettings {
        threshold,
        ..linear
    });
    builder.none_keywords(catalogue.none_keywords().to_vec());
    builder.build().expect("same agents, other threshold")
}

#[test]
fn clinc_operating_points_are_what_the_fast_path_does_with_them() {
    let (mined, _) = clinc_mined();
    let val = agent_router::tune::load_examples(&clinc_dir().join("val.jsonl")).expect("val");
    let r = evaluate(&mined.catalogue, &val, &EvalOptions::default()).unwrap();
    let targets: Vec<f64> = r
        .operating_points
        .iter()
        .map(|p| p.target_precision)
        .collect();
    assert_eq!(targets, agent_router::tune::eval::OPERATING_TARGETS);
    let mut reached = 0;
    for p in &r.operating_points {
        let Some(b) = p.best else { continue };
        reached += 1;
        assert!(b.precision >= p.target_precision, "{p:?}");
        assert!(b.oos_fast_rate <= p.max_oos_rate, "{p:?}");
        // Re-running eval with those thresholds in the routes file gives the same figures.
        let again = evaluate(
            &with_threshold(&mined.catalogue, b.threshold.expect("linear form")),
            &val,
            &EvalOptions::default(),
        )
        .unwrap();
        let got = (
            again.coverage,
            again.precision,
            again.oos_fast_rate,
            again.llm_call_rate,
        );
        let want = (b.coverage, b.precision, b.oos_fast_rate, b.llm_call_rate);
        assert_eq!(got, want, "{p:?}");
        // The file's own thresholds meet the 99 % target, so that point covers at least as much.
        if p.target_precision <= r.precision && r.oos_fast_rate <= p.max_oos_rate {
            assert!(
                b.coverage >= r.coverage,
                "{p:?} vs the file's {}",
                r.coverage
            );
        }
    }
    assert!(reached >= 4, "{:?}", r.operating_points);
    let text = r.to_text();
    assert!(text.contains("operating points"), "{text}");
}

#[test]
fn clinc_mined_file_validates_and_round_trips() {
    let (mined, text) = clinc_mined();
    let loaded = Catalogue::from_toml_str(text).expect("mined routes file must validate");
    assert_eq!(loaded.agents(), mined.catalogue.agents());
    assert_eq!(loaded.linear(), mined.catalogue.linear());
    assert_eq!(loaded.default_agent().name, "general");
    assert_eq!(loaded.agents().len(), 11);
    let again = Catalogue::from_toml_str(&loaded.to_toml_string()).unwrap();
    assert_eq!(again.agents(), loaded.agents());
    // The file is sparse (most candidate n-grams get no weight at all) and no keyword is a lone
    // stop word.
    let weights: usize = loaded.agents().iter().map(|a| a.keywords.len()).sum();
    assert!(
        weights < 10 * mined.candidates,
        "{weights} weights for {} candidates",
        mined.candidates
    );
    let texts: std::collections::BTreeSet<&str> = loaded
        .agents()
        .iter()
        .flat_map(|a| a.keywords.iter().map(|k| k.text.as_str()))
        .collect();
    assert!(
        texts.len() < mined.candidates / 2,
        "{} keywords",
        texts.len()
    );
    for a in loaded.agents() {
        for k in &a.keywords {
            assert!(k.weight != 0.0 && k.weight.is_finite());
            assert!(
                agent_router::tune::mine::stop_words()
                    .binary_search(&k.text.as_str())
                    .is_err(),
                "{} has stop word {:?}",
                a.name,
                k.text
            );
        }
    }
}

#[test]
fn clinc_mined_file_loads_in_the_binary() {
    let (_, text) = clinc_mined();
    let path = std::env::temp_dir().join(format!(
        "agent-router-tune-test-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    let bin = env!("CARGO_BIN_EXE_agent-router");
    // As --config, and as ROUTER_CONFIG (how a deployment points at it), where it also routes.
    let by_flag = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run agent-router");
    let by_env = std::process::Command::new(bin)
        .args(["route", "how do i change the oil in my car"])
        .env("ROUTER_CONFIG", &path)
        .env("ROUTER_LLM", "off")
        .env("ROUTER_DISPATCH", "off")
        .output()
        .expect("run agent-router");
    let _ = std::fs::remove_file(&path);
    for (what, out, want) in [
        ("check --config", &by_flag, "routes file OK"),
        ("ROUTER_CONFIG route", &by_env, "auto_and_commute"),
    ] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what} failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(want), "{what}: {stdout}");
    }
}
