//! Arbitrary bytes as a URL query string, decoded with `form_urlencoded`, through
//! `parse_query_string` and `GET /route` (see `agent_router_fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_router_fuzz::query_string(data));
