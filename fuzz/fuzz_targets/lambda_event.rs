//! Arbitrary bytes (lossy UTF-8) as a Lambda HTTP event for `lambda_http::request::from_str`;
//! an event it accepts goes through `to_api_request` and `Api::handle` (see `agent_router_fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_router_fuzz::lambda_event(data));
