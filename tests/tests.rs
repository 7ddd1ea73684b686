//! The integration tests: one binary, one module per area (linking the crate once instead of once
//! per file). Run one area with `cargo test --test tests api::`.

mod support;

mod api;
mod catalogue_validation;
mod cli;
mod default_catalogue;
mod deploy;
mod dispatch_wire;
mod fault_injection;
mod fuzz_regressions;
mod lambda_events;
mod linear_form;
mod llm_tier;
mod llm_wire;
mod observe;
mod openapi;
mod privacy;
mod routing;
mod sessions;
mod streaming;
mod tune;
