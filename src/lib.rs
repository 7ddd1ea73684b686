//! agent-router: routes natural-language queries to the right AI agent, fast and cheaply.
//!
//! Deciding is a cascade, cheapest first (see [`Router::route`]): a keyword fast path (one
//! Aho-Corasick automaton), a decision cache, one short LLM call, and the default agent, so the
//! router fails open instead of erroring.
//!
//! The tree shows the layers, each depending only on those above it:
//!
//! | module | layer |
//! |---|---|
//! | [`ports`] | interfaces to the outside world (chat model, agents), each with its test double |
//! | [`routing`] | the routing core: catalogue, fast path, cache, cascade; no HTTP or AWS types |
//! | [`dispatch`] | invoking the chosen agent through the [`ports::Invoker`] port |
//! | [`sessions`] | conversations: a session store behind [`ports::SessionStore`], with a deadline |
//! | [`shadow`] | sampled second opinions from the LLM on decisions the fast path made |
//! | [`aws`] | the AWS adapters (Bedrock, Lambda, DynamoDB) and their shared SDK configuration |
//! | [`api`] | the HTTP API (buffered or streamed), the local server and the Lambda adapter |
//! | [`ops`] | metrics, logging, the decision log, `/stats` |
//! | [`app`] | the binary's wiring: command line, settings, start-up |
//! | [`tune`] | offline tuning: `eval` and `keywords` over labelled queries |
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod aws;
pub mod dispatch;
pub mod ops;
pub mod ports;
pub mod routing;
pub mod sessions;
pub mod shadow;
pub mod tune;

pub use routing::{
    Agent, Catalogue, CatalogueBuilder, CatalogueError, Decision, FallbackReason, Keyword,
    LlmSettings, Router, RoutingMethod,
};
