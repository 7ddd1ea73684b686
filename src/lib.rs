//! agent-router: routes natural-language queries to the right AI agent, fast and cheaply.
//!
//! Deciding is a cascade, cheapest first (see [`router::Router::route`]):
//! 1. [`fastpath`]: one Aho-Corasick automaton over every agent's keywords;
//! 2. [`cache`]: LLM decisions reused for a TTL;
//! 3. [`llm`]: one short model call ([`bedrock`] adapter), answer checked against the agents;
//! 4. the default agent, so the router fails open instead of erroring.
//!
//! The routing core ([`catalogue`], [`normalize`], [`fastpath`], [`router`]) has no Lambda or AWS
//! types in it. [`api`] is the transport-independent HTTP API; [`server`] (local HTTP) and
//! [`lambda`] (Lambda events) are thin adapters around it; [`app`] wires the binary.
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod aws;
pub mod bedrock;
pub mod cache;
pub mod catalogue;
pub mod cli;
pub mod dispatch;
pub mod fastpath;
pub mod lambda;
pub mod lambda_invoker;
pub mod llm;
pub mod metrics;
pub mod normalize;
pub mod router;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod tune;

pub use catalogue::{Agent, Catalogue, CatalogueBuilder, CatalogueError, Keyword};
pub use router::{Decision, FallbackReason, LlmSettings, Router, RoutingMethod};
