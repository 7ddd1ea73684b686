//! A small generated catalogue and a query through `CatalogueBuilder`, `FastPath::new`, `scan`
//! and `decide`, checking the scoring invariants (see `agent_router_fuzz::fastpath`).
//!
//! The input is structured with `arbitrary`. Its `Debug` output is the resolved case as JSON, so
//! `cargo fuzz fmt fastpath <input>` prints a file for `tests/fixtures/fuzz/fastpath/`.
#![no_main]

use std::fmt;

use agent_router_fuzz::{FastAgent, FastCase, FastKeyword};
use libfuzzer_sys::arbitrary::{self, Arbitrary};

const MAX_AGENTS: usize = 6;
const MAX_KEYWORDS: usize = 20;
const MAX_QUERY_PARTS: usize = 32;

#[derive(Arbitrary)]
struct Input {
    agents: Vec<AgentIn>,
    /// Index of the default agent (modulo the agent count), or a free-form name.
    default: Name,
    margin: Number,
    min_score: Number,
    query: Vec<Part>,
}

#[derive(Arbitrary)]
struct AgentIn {
    name: Name,
    keywords: Vec<(String, Number)>,
}

/// Mostly valid agent names (`a0`, `a1`...), sometimes anything.
#[derive(Arbitrary)]
enum Name {
    Index(u8),
    Raw(String),
}

/// Small weights and thresholds that let agents win and tie, any magnitude, or any `f32`.
#[derive(Arbitrary)]
enum Number {
    Quarters(u8),
    /// `m * 2^e`: from subnormal to infinite.
    Scaled(u8, i8),
    Raw(f32),
}

/// The query is built from pieces, so that it often contains the catalogue's keywords.
#[derive(Arbitrary)]
enum Part {
    /// A keyword's text, by agent and keyword index (modulo the counts).
    Keyword(u8, u8),
    /// A keyword's text in upper case.
    Shouted(u8, u8),
    Text(String),
    Space,
    Char(char),
}

impl Name {
    fn resolve(&self, agents: usize) -> String {
        match self {
            Name::Index(i) => format!("a{}", usize::from(*i) % agents.max(1)),
            Name::Raw(s) => s.clone(),
        }
    }
}

impl Number {
    fn resolve(&self) -> f32 {
        match self {
            Number::Quarters(q) => f32::from(*q) / 4.0,
            Number::Scaled(m, e) => f32::from(*m) * 2f32.powi(i32::from(*e)),
            Number::Raw(f) => *f,
        }
    }
}

impl Input {
    fn case(&self) -> FastCase {
        let agents: Vec<FastAgent> = self
            .agents
            .iter()
            .take(MAX_AGENTS)
            .enumerate()
            .map(|(i, a)| FastAgent {
                name: match &a.name {
                    Name::Index(_) => format!("a{i}"),
                    raw => raw.resolve(MAX_AGENTS),
                },
                keywords: a
                    .keywords
                    .iter()
                    .take(MAX_KEYWORDS)
                    .map(|(text, w)| FastKeyword {
                        text: text.clone(),
                        weight: w.resolve(),
                    })
                    .collect(),
            })
            .collect();
        let keyword = |a: u8, k: u8| -> Option<&str> {
            let agent = agents.get(usize::from(a) % agents.len().max(1))?;
            let kw = agent
                .keywords
                .get(usize::from(k) % agent.keywords.len().max(1))?;
            Some(&kw.text)
        };
        let mut query = String::new();
        for part in self.query.iter().take(MAX_QUERY_PARTS) {
            match part {
                Part::Keyword(a, k) => query.push_str(keyword(*a, *k).unwrap_or("")),
                Part::Shouted(a, k) => {
                    query.push_str(&keyword(*a, *k).unwrap_or("").to_uppercase())
                }
                Part::Text(s) => query.push_str(s),
                Part::Space => query.push(' '),
                Part::Char(c) => query.push(*c),
            }
        }
        FastCase {
            default_agent: self.default.resolve(agents.len()),
            margin: self.margin.resolve(),
            min_score: self.min_score.resolve(),
            agents,
            query,
        }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string_pretty(&self.case()).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

libfuzzer_sys::fuzz_target!(|input: Input| agent_router_fuzz::fastpath(&input.case()));
