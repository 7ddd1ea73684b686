//! The linear form of the routes file (`model = "linear"`): what it allows, what it still
//! refuses, and how the fast path decides with it.

use agent_router::routing::{FastOutcome, FastPath, Unrouted};
use agent_router::{Catalogue, CatalogueError};

/// "logs" is evidence for monitoring and against cost, unless "costing" is there too.
pub(crate) const LOGS_AND_COSTING: &str = r#"
model = "linear"
default_agent = "general"

[fast_path]
threshold = 0.8
none_bias = 0.0

[[agents]]
name = "cost"
description = "Spend, bills and budgets."
bias = -1.0
keywords = ["cost", { phrase = "costing", weight = 5.0 }, { phrase = "logs", weight = -2.0 }]

[[agents]]
name = "monitoring"
description = "Logs, metrics and alarms."
bias = -1.0
keywords = [{ phrase = "logs", weight = 4.0 }, "alarm"]

[[agents]]
name = "general"
description = "Anything else."
"#;

fn fast() -> (Catalogue, FastPath) {
    let c = Catalogue::from_toml_str(LOGS_AND_COSTING).expect("linear file loads");
    let f = FastPath::new(&c).expect("automaton");
    (c, f)
}

#[test]
fn a_keyword_can_weigh_on_several_agents_and_negatively() {
    let (c, fast) = fast();
    let cost = c.index_of("cost").unwrap();
    let monitoring = c.index_of("monitoring").unwrap();
    // "logs" counts for both agents: -2 for cost, +4 for monitoring, on top of the biases.
    let scan = fast.scan("show me the logs");
    assert_eq!(scan.scores[cost], -3.0);
    assert_eq!(scan.scores[monitoring], 3.0);
    match fast.judge(&scan) {
        FastOutcome::Decided {
            agent,
            keywords,
            confidence,
            ..
        } => {
            assert_eq!(agent, monitoring);
            assert_eq!(keywords, vec![0]);
            // softmax over (cost -3, monitoring 3, none 0)
            let want = 3f64.exp() / (3f64.exp() + (-3f64).exp() + 1.0);
            assert!((f64::from(confidence) - want).abs() < 1e-6, "{confidence}");
        }
        other => panic!("{other:?}"),
    }
    // "costing logs": cost -1 + 5 - 2 = 2 against monitoring 3: not sure enough either way.
    let scan = fast.scan("costing logs");
    assert_eq!(scan.scores[cost], 2.0);
    assert!(matches!(
        fast.judge(&scan),
        FastOutcome::Unrouted {
            why: Unrouted::LowConfidence,
            ..
        }
    ));
    // "costing" alone: cost 4 against none 0 and monitoring -1.
    assert!(matches!(
        fast.decide("the costing of my account"),
        FastOutcome::Decided { agent, .. } if agent == cost
    ));
    // No keyword: never decided on biases alone.
    assert!(matches!(
        fast.decide("hello there"),
        FastOutcome::Unrouted {
            why: Unrouted::NoKeywordMatch,
            ..
        }
    ));
}

#[test]
fn overlapping_keywords_all_count_in_the_linear_form() {
    let text = r#"
model = "linear"
default_agent = "general"
[[agents]]
name = "cards"
description = "Cards."
keywords = [{ phrase = "credit card", weight = 1.5 }, { phrase = "card", weight = 1.0 }]
[[agents]]
name = "general"
description = "Anything else."
"#;
    let c = Catalogue::from_toml_str(text).unwrap();
    let scan = FastPath::new(&c).unwrap().scan("my credit card card");
    assert_eq!(scan.scores[0], 2.5, "each keyword once, overlaps included");
    assert_eq!(scan.hits.len(), 2);
}

#[test]
fn linear_files_round_trip() {
    let (c, _) = fast();
    let again = Catalogue::from_toml_str(&c.to_toml_string()).expect("rendered file loads");
    assert_eq!(again.agents(), c.agents());
    assert_eq!(again.linear(), c.linear());
    assert!(c.to_toml_string().starts_with("model = \"linear\"\n"));
}

#[test]
fn linear_form_errors_table() {
    let file = |model: &str, fast_path: &str, cost: &str| {
        format!(
            "{model}default_agent = \"general\"\n[fast_path]\n{fast_path}\n\
             [[agents]]\nname = \"cost\"\ndescription = \"d\"\n{cost}\n\
             [[agents]]\nname = \"monitoring\"\ndescription = \"d\"\nkeywords = [\"logs\"]\n\
             [[agents]]\nname = \"general\"\ndescription = \"d\"\n"
        )
    };
    let linear = "model = \"linear\"\n";
    type Check = fn(&CatalogueError) -> bool;
    let cases: Vec<(String, Check, &str)> = vec![
        // Without the switch, today's rules hold.
        (
            file("", "", "keywords = [\"logs\"]"),
            |e| matches!(e, CatalogueError::DuplicateKeyword { .. }),
            "one agent only",
        ),
        (
            file("", "", "keywords = [{ phrase = \"x\", weight = -1.0 }]"),
            |e| matches!(e, CatalogueError::InvalidWeight { .. }),
            "must be positive",
        ),
        (
            file("", "", "bias = 1.0\nkeywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::WrongForm { .. }),
            "model = \"linear\"",
        ),
        (
            file("", "threshold = 0.9", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::WrongForm { .. }),
            "fast_path.threshold",
        ),
        // With it, the additive thresholds are refused and the new numbers checked.
        (
            file(linear, "margin = 1.0", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::WrongForm { .. }),
            "fast_path.margin",
        ),
        (
            file("model = \"quadratic\"\n", "", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::UnknownModel(_)),
            "quadratic",
        ),
        (
            file(linear, "threshold = 0.0", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::InvalidProbability(_)),
            "(0, 1]",
        ),
        (
            file(linear, "threshold = 1.5", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::InvalidProbability(_)),
            "(0, 1]",
        ),
        (
            file(linear, "none_bias = nan", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::InvalidBias { .. }),
            "none_bias",
        ),
        (
            file(linear, "", "bias = inf\nkeywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::InvalidBias { .. }),
            "bias",
        ),
        (
            file(linear, "", "keywords = [{ phrase = \"x\", weight = -inf }]"),
            |e| matches!(e, CatalogueError::InvalidWeight { .. }),
            "\"x\"",
        ),
        (
            file(linear, "", "keywords = [\"x\", \"X\"]"),
            |e| matches!(e, CatalogueError::DuplicateKeyword { .. }),
            "twice",
        ),
        // The out-of-scope class's keywords and unknown-word weight: linear form only, checked
        // like an agent's.
        (
            file("", "none_keywords = [\"x\"]", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::WrongForm { .. }),
            "fast_path.none_keywords",
        ),
        (
            file("", "unknown_word_weight = 1.0", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::WrongForm { .. }),
            "fast_path.unknown_word_weight",
        ),
        (
            file(
                linear,
                "none_keywords = [\"x\", \" X \"]",
                "keywords = [\"x\"]",
            ),
            |e| matches!(e, CatalogueError::InvalidNoneKeyword { .. }),
            "twice",
        ),
        (
            file(linear, "none_keywords = [\"?!\"]", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::InvalidNoneKeyword { .. }),
            "never match",
        ),
        (
            file(
                linear,
                "none_keywords = [{ phrase = \"x\", weight = nan }]",
                "keywords = [\"x\"]",
            ),
            |e| matches!(e, CatalogueError::InvalidNoneKeyword { .. }),
            "finite",
        ),
        (
            file(linear, "unknown_word_weight = 1e36", "keywords = [\"x\"]"),
            |e| matches!(e, CatalogueError::InvalidBias { .. }),
            "unknown_word_weight",
        ),
        // Finite weights that add up past the limit, negative ones included.
        (
            file(
                linear,
                "",
                "keywords = [{ phrase = \"x\", weight = -3e38 }, { phrase = \"y\", weight = 3e38 }]",
            ),
            |e| matches!(e, CatalogueError::WeightsTooLarge { .. }),
            "add up",
        ),
    ];
    for (text, check, needle) in cases {
        let err = Catalogue::from_toml_str(&text).expect_err(&text);
        assert!(check(err.kind()), "{text}\nunexpected error {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }
    // The same keyword on two agents, with the switch, is fine.
    Catalogue::from_toml_str(&file(linear, "", "keywords = [\"logs\"]")).expect("linear");
}

/// The out-of-scope class's own evidence: its keywords and the words no keyword knows.
const WITH_NONE_EVIDENCE: &str = r#"
model = "linear"
default_agent = "general"

[fast_path]
threshold = 0.8
none_bias = -1.0
unknown_word_weight = 1.5
none_keywords = [{ phrase = "stock price", weight = 4.0 }, "movie"]

[[agents]]
name = "cost"
description = "Spend, bills and budgets."
keywords = [{ phrase = "cost", weight = 3.0 }, { phrase = "my bill", weight = 3.0 }]

[[agents]]
name = "general"
description = "Anything else."
"#;

#[test]
fn out_of_scope_keywords_and_unknown_words_raise_the_none_score() {
    let c = Catalogue::from_toml_str(WITH_NONE_EVIDENCE).expect("loads");
    assert_eq!(c.none_keywords().len(), 2);
    assert_eq!(c.linear().unwrap().unknown_word_weight, 1.5);
    let fast = FastPath::new(&c).unwrap();
    // Every word known ("my" and "bill" are words of "my bill"): none_bias alone.
    let scan = fast.scan("my bill cost");
    assert_eq!(scan.none, -1.0);
    assert_eq!(scan.scores[0], 6.0);
    let want = 6f64.exp() / (6f64.exp() + (-1f64).exp());
    match fast.judge(&scan) {
        FastOutcome::Decided { confidence, .. } => {
            assert!((f64::from(confidence) - want).abs() < 1e-6, "{confidence}")
        }
        other => panic!("{other:?}"),
    }
    // "what", "is" and "the" are unknown (each counted once, however often repeated); "stock
    // price" is a none keyword and its words are known: -1 + 3 x 1.5 + 4 = 7.5 against cost's 3.
    let scan = fast.scan("what is the cost what is stock price");
    assert_eq!(scan.none, -1.0 + 3.0 * 1.5 + 4.0);
    assert!(scan.hits.iter().all(|h| h.agent == 0), "{:?}", scan.hits);
    match fast.judge(&scan) {
        FastOutcome::Unrouted { why, .. } => assert_eq!(why, Unrouted::LowConfidence),
        other => panic!("{other:?}"),
    }
    // Distinct unknown words are counted the same way in a long query (each of 40 words twice,
    // in two orders): -1 + 40 x 1.5 + cost's own word known.
    let many: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let long = format!(
        "cost {} {}",
        many.join(" "),
        many.iter().rev().cloned().collect::<Vec<_>>().join(" ")
    );
    assert_eq!(fast.scan(&long).none, -1.0 + 40.0 * 1.5);
    // A none keyword alone is no evidence for any agent.
    let scan = fast.scan("movie");
    assert_eq!(scan.none, 0.0);
    assert!(scan.hits.is_empty());
    assert!(matches!(
        fast.judge(&scan),
        FastOutcome::Unrouted {
            why: Unrouted::NoKeywordMatch,
            ..
        }
    ));
    // The file round-trips, none keywords and unknown-word weight included.
    let again = Catalogue::from_toml_str(&c.to_toml_string()).expect("rendered file loads");
    assert_eq!(again.none_keywords(), c.none_keywords());
    assert_eq!(again.linear(), c.linear());
}

#[test]
fn probabilities_stay_finite_at_the_weight_limit() {
    let text = r#"
model = "linear"
default_agent = "general"
[fast_path]
none_bias = -8e37
[[agents]]
name = "a"
description = "d"
bias = 4e37
keywords = [{ phrase = "x", weight = 4e37 }]
[[agents]]
name = "b"
description = "d"
bias = -4e37
keywords = [{ phrase = "x", weight = -4e37 }]
[[agents]]
name = "general"
description = "d"
"#;
    let c = Catalogue::from_toml_str(text).expect("at the limit");
    let fast = FastPath::new(&c).unwrap();
    for q in ["x", "y x"] {
        match fast.decide(q) {
            FastOutcome::Decided {
                confidence, score, ..
            } => {
                assert!(score.is_finite() && (0.0..=1.0).contains(&confidence));
            }
            other => panic!("{other:?}"),
        }
    }
}
