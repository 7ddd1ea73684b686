//! Every way a routes file can be wrong gives a specific error whose message says what to fix.

use agent_router::{Catalogue, CatalogueError};

const GOOD_AGENTS: &str = r#"
[[agents]]
name = "cost"
description = "Spend and bills."
keywords = ["cost", { phrase = "savings plan", weight = 2.0 }]

[[agents]]
name = "general"
description = "Anything else."
"#;

fn with_default(default: &str, agents: &str) -> String {
    format!("default_agent = {default:?}\n{agents}")
}

#[test]
fn a_good_file_loads() {
    let c = Catalogue::from_toml_str(&with_default("general", GOOD_AGENTS)).expect("valid");
    assert_eq!(c.agents().len(), 2);
    assert_eq!(c.agent("cost").unwrap().keywords[1].weight, 2.0);
    assert_eq!(
        c.agent("cost").unwrap().target,
        None,
        "no target means route-only"
    );
}

#[test]
fn validation_errors_table() {
    let agent = |name: &str, keywords: &str| {
        format!("[[agents]]\nname = {name:?}\ndescription = \"d\"\nkeywords = {keywords}\n")
    };
    let general = agent("general", "[]");
    // (file text, predicate on the error, words the message must contain)
    type Check = fn(&CatalogueError) -> bool;
    let cases: Vec<(String, Check, &[&str])> = vec![
        (
            with_default("nobody", GOOD_AGENTS),
            |e| matches!(e, CatalogueError::UnknownDefaultAgent { .. }),
            &["nobody", "cost, general"],
        ),
        (
            with_default(
                "general",
                &format!(
                    "{}{}{general}",
                    agent("cost", r#"["a"]"#),
                    agent("cost", r#"["b"]"#)
                ),
            ),
            |e| matches!(e, CatalogueError::DuplicateAgent { .. }),
            &["\"cost\"", "defined twice"],
        ),
        (
            with_default(
                "general",
                &format!(
                    "{}{}{general}",
                    agent("cost", r#"["Bill"]"#),
                    agent("ops", r#"["bill"]"#)
                ),
            ),
            |e| matches!(e, CatalogueError::DuplicateKeyword { .. }),
            &["\"bill\"", "\"cost\"", "\"ops\""],
        ),
        (
            with_default(
                "general",
                &format!(
                    "{}{general}",
                    agent("cost", r#"["savings  plan", "Savings Plan"]"#)
                ),
            ),
            |e| matches!(e, CatalogueError::DuplicateKeyword { .. }),
            &["savings plan"],
        ),
        (
            with_default(
                "general",
                &format!("{}{general}", agent("cost", r#"["cost", ""]"#)),
            ),
            |e| matches!(e, CatalogueError::EmptyKeyword { index: 2, .. }),
            &["keyword #2", "empty"],
        ),
        (
            with_default(
                "general",
                &format!("{}{general}", agent("cost", r#"["  \t "]"#)),
            ),
            |e| matches!(e, CatalogueError::EmptyKeyword { .. }),
            &["empty"],
        ),
        (
            with_default(
                "general",
                &format!("{}{general}", agent("cost", r#"["?!", "cost"]"#)),
            ),
            |e| matches!(e, CatalogueError::PunctuationKeyword { .. }),
            &["\"?!\"", "no letter or digit"],
        ),
        (
            with_default(
                "general",
                &format!(
                    "{}{general}",
                    agent("cost", r#"[{ phrase = "x", weight = 0 }]"#)
                ),
            ),
            |e| matches!(e, CatalogueError::InvalidWeight { .. }),
            &["weight", "positive"],
        ),
        (
            with_default(
                "general",
                &format!(
                    "{}{general}",
                    agent("cost", r#"[{ phrase = "x", weight = -2.5 }]"#)
                ),
            ),
            |e| matches!(e, CatalogueError::InvalidWeight { .. }),
            &["-2.5"],
        ),
        (
            with_default(
                "general",
                &format!("{}{general}", agent("Cost Agent", r#"["x"]"#)),
            ),
            |e| matches!(e, CatalogueError::InvalidAgentName { .. }),
            &["Cost Agent", "lower-case"],
        ),
        (
            with_default("general", &format!("{}{general}", agent("", r#"["x"]"#))),
            |e| matches!(e, CatalogueError::InvalidAgentName { .. }),
            &["not valid"],
        ),
        (
            with_default("general", ""),
            |e| matches!(e, CatalogueError::NoAgents),
            &["no agents"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"on-call\"\ndescription = \"a\"\n[[agents]]\nname = \"on_call\"\ndescription = \"b\"\n[[agents]]\nname = \"general\"\ndescription = \"c\"\n",
            ),
            |e| matches!(e, CatalogueError::AgentNamesClash { first, second } if first == "on-call" && second == "on_call"),
            &["on-call", "on_call", "ROUTER_TARGET_"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"  \"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["description"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\\nb\"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["one non-empty line"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\\u2028b\"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["one non-empty line"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\\u2029b\"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["one non-empty line"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\\u0085b\"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["one non-empty line"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\\u000Bb\"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["one non-empty line"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\\fb\"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["one non-empty line"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\\tb\"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["one non-empty line"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\\u0000b\"\n",
            ),
            |e| matches!(e, CatalogueError::InvalidDescription { .. }),
            &["one non-empty line"],
        ),
        (
            with_default(
                "general",
                "[[agents]]\nname = \"general\"\ndescription = \"a\"\ntarget = \"\"\n",
            ),
            |e| matches!(e, CatalogueError::EmptyTarget { .. }),
            &["target is empty"],
        ),
        (
            format!("default_agent = \"general\"\n[fast_path]\nmargin = -1.0\n{GOOD_AGENTS}"),
            |e| {
                matches!(
                    e,
                    CatalogueError::InvalidThreshold {
                        field: "margin",
                        ..
                    }
                )
            },
            &["fast_path.margin"],
        ),
        (
            format!("default_agent = \"general\"\n[fast_path]\nmin_score = nan\n{GOOD_AGENTS}"),
            |e| {
                matches!(
                    e,
                    CatalogueError::InvalidThreshold {
                        field: "min_score",
                        ..
                    }
                )
            },
            &["min_score"],
        ),
        // Shape errors from the TOML layer carry the line and the offending key.
        (
            with_default("general", &GOOD_AGENTS.replace("keywords", "keyword")),
            |e| matches!(e, CatalogueError::Parse(_)),
            &["keyword", "line"],
        ),
        (
            with_default(
                "general",
                &format!(
                    "{}{general}",
                    agent("cost", r#"[{ phrase = "x", wieght = 2 }]"#)
                ),
            ),
            |e| matches!(e, CatalogueError::Parse(_)),
            &["wieght"],
        ),
        (
            with_default("general", &format!("{}{general}", agent("cost", "[42]"))),
            |e| matches!(e, CatalogueError::Parse(_)),
            &["keyword string"],
        ),
        (
            "default_agent = \"general\"\n[[agents]\n".to_owned(),
            |e| matches!(e, CatalogueError::Parse(_)),
            &["line 2"],
        ),
        (
            "".to_owned(),
            |e| matches!(e, CatalogueError::Parse(_)),
            &["default_agent"],
        ),
    ];
    for (text, check, words) in cases {
        let err =
            Catalogue::from_toml_str(&text).expect_err(&format!("should be rejected:\n{text}"));
        assert!(check(err.kind()), "wrong error {err:?} for:\n{text}");
        let msg = err.to_string();
        for w in words {
            assert!(msg.contains(w), "message {msg:?} should mention {w:?}");
        }
    }
}

#[test]
fn an_agent_without_keywords_is_allowed() {
    let text = "default_agent = \"general\"\n[[agents]]\nname = \"llm-only\"\ndescription = \"x\"\n[[agents]]\nname = \"general\"\ndescription = \"y\"\n";
    let c = Catalogue::from_toml_str(text).expect("LLM-only agents are valid");
    assert!(c.agent("llm-only").unwrap().keywords.is_empty());
}

#[test]
fn errors_name_their_line_and_come_in_file_order() {
    // (file text, line of the first problem, words the message must contain)
    let cases: &[(&str, usize, &[&str])] = &[
        (
            "default_agent = \"general\"\n\n[[agents]]\nname = \"cost\"\ndescription = \"d\"\nkeywords = [\n  \"bill\",\n  \"Bill\",\n]\n\n[[agents]]\nname = \"general\"\ndescription = \"d\"\n",
            8,
            &["line 8:", "agent \"cost\" lists keyword \"bill\" twice"],
        ),
        (
            "default_agent = \"general\"\n[[agents]]\nname = \"cost\"\ndescription = \"d\"\nkeywords = [\"bill\"]\n[[agents]]\nname = \"general\"\ndescription = \"d\"\nkeywords = [\"bill\"]\n",
            9,
            &["line 9:", "listed for both \"cost\" and \"general\""],
        ),
        (
            "default_agent = \"general\"\n[[agents]]\nname = \"Cost\"\ndescription = \"d\"\n[[agents]]\nname = \"general\"\ndescription = \"d\"\n",
            3,
            &["line 3:", "\"Cost\" is not valid"],
        ),
        // Two mistakes: the unknown default agent (line 1) is reported before the bad weight
        // further down.
        (
            "default_agent = \"nobody\"\n[[agents]]\nname = \"cost\"\ndescription = \"d\"\nkeywords = [{ phrase = \"bill\", weight = -1.0 }]\n",
            1,
            &["line 1:", "default_agent \"nobody\""],
        ),
        (
            "default_agent = \"general\"\n[[agents]]\nname = \"cost\"\ndescription = \"d\"\nkeywords = [\"ok\", { phrase = \"bill\", weight = 0.0 }]\n[[agents]]\nname = \"general\"\ndescription = \"\"\n",
            5,
            &["line 5:", "weight 0"],
        ),
        (
            "default_agent = \"general\"\n[[agents]]\nname = \"general\"\ndescription = \"d\"\n[fast_path]\nmargin = -2.0\n",
            5,
            &["line 5:", "fast_path.margin"],
        ),
    ];
    for (text, line, words) in cases {
        let err = Catalogue::from_toml_str(text).expect_err(text);
        let CatalogueError::AtLine { line: got, .. } = &err else {
            panic!("no line in {err:?} for:\n{text}");
        };
        assert_eq!(got, line, "{err} for:\n{text}");
        let message = err.to_string();
        for w in *words {
            assert!(message.contains(w), "{message:?} lacks {w:?}");
        }
    }
}
