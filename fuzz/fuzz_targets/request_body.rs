//! Arbitrary bytes as a `POST /route` and `POST /query` body: `parse_body` and `Api::handle`
//! never panic and always answer JSON with a 2xx or 4xx status (see `agent_router_fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_router_fuzz::request_body(data));
