//! Streamed `POST /query` (Server-Sent Events) through the local server: the order of events, how
//! fast chunks are passed on, agent failures before and during the stream, a caller hanging up,
//! and bounded memory for a large answer. First with the [`ChannelInvoker`] double (the test
//! writes each chunk itself, so ordering is checked by explicit synchronisation), then through
//! the real Lambda adapter (`InvokeWithResponseStream`) against a wire-level double.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::lambda_double::LambdaDouble;
use crate::support::lambda_stream_double::{BIG_TOTAL, LambdaStreamDouble};
use crate::support::raw_request;
use crate::support::sse::{Event, SseClient};
use agent_router::api::Api;
use agent_router::aws::{AwsSettings, LambdaInvoker};
use agent_router::dispatch::Dispatcher;
use agent_router::ports::{ChannelInvoker, Completion, Invoker, StreamCall};
use agent_router::routing::DEFAULT_ROUTES_TOML;
use agent_router::{Catalogue, Router};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

const COST_QUERY: &str = r#"{"query": "What are my AWS costs?", "session_id": "s-1"}"#;
/// Generous: these bound a hang, they do not measure speed.
const SOON: Duration = Duration::from_secs(5);

/// The default catalogue with the cost agent marked `stream = true` and the given targets.
fn catalogue(targets: &[(&str, &str)]) -> Catalogue {
    let text = DEFAULT_ROUTES_TOML.replacen(
        "target = \"cost-agent\"",
        "target = \"cost-agent\"\nstream = true",
        1,
    );
    let mut c = Catalogue::from_toml_str(&text).unwrap();
    let map: HashMap<String, String> = targets
        .iter()
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect();
    c.override_targets(&map);
    assert!(c.streams("cost"));
    c
}

async fn serve(invoker: Arc<dyn Invoker>, catalogue: Catalogue) -> SocketAddr {
    let dispatcher = Dispatcher::new(invoker, Duration::from_secs(25), Duration::ZERO);
    let api =
        Api::new(Arc::new(Router::new(catalogue).unwrap())).with_dispatcher(Arc::new(dispatcher));
    let listener = agent_router::api::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(agent_router::api::serve(
        Arc::new(api),
        listener,
        std::future::pending(),
    ));
    addr
}

async fn channel_server(capacity: usize) -> (SocketAddr, UnboundedReceiver<StreamCall>) {
    let (invoker, calls) = ChannelInvoker::new(capacity);
    (serve(Arc::new(invoker), catalogue(&[])).await, calls)
}

async fn open(addr: SocketAddr) -> SseClient {
    let client = SseClient::post(addr, "/query", COST_QUERY, "text/event-stream").await;
    assert_eq!(client.status, 200);
    assert_eq!(client.header("content-type"), Some("text/event-stream"));
    assert_eq!(client.header("transfer-encoding"), Some("chunked"));
    client
}

fn assert_decision(e: &Event) {
    assert_eq!(e.name, "decision");
    let d = e.json();
    assert_eq!(d["agent"], "cost");
    assert_eq!(d["routing_method"], "fast");
    assert!(
        d["request_id"].is_string() && d.get("result").is_none(),
        "{d}"
    );
}

#[tokio::test]
async fn decision_first_then_each_chunk_as_the_agent_writes_it_then_done() {
    let (addr, mut calls) = channel_server(1).await;
    let mut client = open(addr).await;
    // The decision arrives while the agent has written nothing (and never will, unless told).
    assert_decision(&client.next_event_within(SOON).await.unwrap());
    let call = tokio::time::timeout(SOON, calls.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.target, "cost-agent");
    let payload: serde_json::Value = serde_json::from_slice(&call.payload).unwrap();
    assert_eq!(payload["query"], "What are my AWS costs?");
    assert_eq!(payload["session_id"], "s-1");
    let mut latencies = Vec::new();
    for text in ["Hello", ", multi\nline", " world\n"] {
        let written = Instant::now();
        call.sender.chunk(text).await.unwrap();
        let e = client.next_event_within(SOON).await.unwrap();
        latencies.push(written.elapsed());
        assert_eq!((e.name.as_str(), e.data.as_str()), ("chunk", text));
    }
    call.sender.complete(Completion::default()).await.unwrap();
    let done = client.next_event_within(SOON).await.unwrap();
    assert_eq!(done.name, "done");
    let d = done.json();
    assert_eq!(d["dispatched"], true);
    assert_eq!(d["bytes"], 5 + 12 + 7);
    let agent_us = d["timings_us"]["agent"].as_u64().unwrap();
    let first_us = d["timings_us"]["agent_first_byte"].as_u64().unwrap();
    assert!(first_us <= agent_us, "{d}");
    assert!(d["timings_us"]["route"].is_u64());
    assert_eq!(client.next_event_within(SOON).await, None, "the body ends");
    // A generous upper bound (the project measures speed in bench/, not here).
    assert!(
        latencies.iter().all(|l| *l < Duration::from_secs(1)),
        "{latencies:?}"
    );
}

#[tokio::test]
async fn a_mid_stream_failure_ends_with_an_error_event() {
    let (addr, mut calls) = channel_server(1).await;
    let mut client = open(addr).await;
    assert_decision(&client.next_event_within(SOON).await.unwrap());
    let call = calls.recv().await.unwrap();
    call.sender.chunk("partial").await.unwrap();
    call.sender
        .complete(Completion {
            error_code: Some("Unhandled".into()),
            error_details: Some(r#"{"errorMessage":"model overloaded"}"#.into()),
        })
        .await
        .unwrap();
    let rest = client.rest().await;
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert_eq!(
        (rest[0].name.as_str(), rest[0].data.as_str()),
        ("chunk", "partial")
    );
    assert_eq!(rest[1].name, "error");
    let e = rest[1].json();
    assert_eq!(e["error"]["code"], "agent_error");
    assert_eq!(e["error"]["agent"], "cost");
    assert_eq!(
        e["error"]["message"],
        "agent \"cost\" failed: Unhandled: model overloaded"
    );
}

#[tokio::test]
async fn a_caller_hanging_up_abandons_the_agents_stream() {
    let (addr, mut calls) = channel_server(1).await;
    let mut client = open(addr).await;
    assert_decision(&client.next_event_within(SOON).await.unwrap());
    let call = calls.recv().await.unwrap();
    call.sender.chunk("first").await.unwrap();
    assert_eq!(client.next_event_within(SOON).await.unwrap().data, "first");
    drop(client);
    // The router drops the agent's stream while waiting for its next chunk, not at the next one.
    tokio::time::timeout(SOON, call.sender.abandoned())
        .await
        .expect("the router kept the agent's stream after the caller left");
}

#[tokio::test]
async fn a_slow_reader_holds_the_agent_back_instead_of_buffering_its_answer() {
    const CHUNK: usize = 64 * 1024;
    let (addr, mut calls) = channel_server(1).await;
    let mut client = open(addr).await;
    assert_decision(&client.next_event_within(SOON).await.unwrap());
    let call = calls.recv().await.unwrap();
    let sender = call.sender.clone();
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let taken = progress.clone();
    let writer = tokio::spawn(async move {
        let chunk = bytes::Bytes::from(vec![b'y'; CHUNK]);
        let mut written = 0u64;
        let mut max_queued = 0;
        while written < BIG_TOTAL {
            sender.chunk(chunk.clone()).await.unwrap();
            max_queued = max_queued.max(sender.queued());
            written += CHUNK as u64;
            taken.store(written, Ordering::SeqCst);
        }
        sender.complete(Completion::default()).await.unwrap();
        max_queued
    });
    // The caller reads nothing for a while: the agent must stall long before 50 MB.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !writer.is_finished(),
        "the whole answer was taken in without a reader"
    );
    // How far ahead of the reader it got: the queues (the router's event queue, one chunk in
    // hand, the double's one) plus the sockets' buffers; far from the whole answer.
    let ahead = progress.load(Ordering::SeqCst);
    assert!(
        ahead < 24 * 1024 * 1024,
        "{ahead} bytes taken in with nobody reading"
    );
    let mut seen = 0;
    let mut read = 0u64;
    while let Some(e) = client.next_event_within(Duration::from_secs(60)).await {
        if e.name == "chunk" {
            seen += 1;
            read += e.data.len() as u64;
        } else {
            assert_eq!(e.name, "done");
            assert_eq!(e.json()["bytes"], BIG_TOTAL);
        }
    }
    assert_eq!(read, BIG_TOTAL);
    assert_eq!(seen, BIG_TOTAL as usize / CHUNK);
    let max_queued = writer.await.unwrap();
    assert!(
        max_queued <= 1,
        "the agent's queue held {max_queued} chunks"
    );
}

/// An API whose agents' targets are functions of the wire doubles.
async fn wire_server(url: &str, targets: &[(&str, &str)]) -> SocketAddr {
    let aws = AwsSettings {
        endpoint_url: Some(url.to_owned()),
        region: Some("eu-west-1".into()),
        static_credentials: Some(("AKIDEXAMPLE".into(), "secret".into())),
        ..LambdaInvoker::default_settings()
    };
    let invoker = Arc::new(LambdaInvoker::new(aws, Duration::from_secs(25)));
    serve(invoker, catalogue(targets)).await
}

async fn streamed(url: &str, cost_target: &str) -> Vec<Event> {
    let addr = wire_server(url, &[("cost", cost_target)]).await;
    let mut client = open(addr).await;
    assert_decision(&client.next_event_within(SOON).await.unwrap());
    client.rest().await
}

#[tokio::test]
async fn wire_chunks_are_forwarded_in_order_then_done() {
    let double = LambdaStreamDouble::start().await;
    let events = streamed(&double.url, "words-agent").await;
    let names: Vec<_> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["chunk", "chunk", "chunk", "done"]);
    let text: Vec<_> = events[..3].iter().map(|e| e.data.as_str()).collect();
    assert_eq!(text, ["Hello", ", streamed", " world"]);
    assert_eq!(events[3].json()["bytes"], 21);
}

#[tokio::test]
async fn wire_invoke_complete_errors_become_an_error_event() {
    let double = LambdaStreamDouble::start().await;
    let events = streamed(&double.url, "midway-agent").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].data, "partial answer");
    let e = events[1].json();
    assert_eq!(events[1].name, "error");
    assert_eq!(e["error"]["code"], "agent_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unhandled: agent crashed midway"),
        "{e}"
    );
}

#[tokio::test]
async fn wire_characters_split_across_chunks_arrive_whole() {
    let double = LambdaStreamDouble::start().await;
    let events = streamed(&double.url, "split-utf8-agent").await;
    let text: String = events
        .iter()
        .filter(|e| e.name == "chunk")
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(text, "é😀");
    assert_eq!(events.last().unwrap().json()["bytes"], 6);
}

#[tokio::test]
async fn wire_http_metadata_preludes_are_not_passed_on() {
    let double = LambdaStreamDouble::start().await;
    let events = streamed(&double.url, "prelude-agent").await;
    let text: String = events
        .iter()
        .filter(|e| e.name == "chunk")
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(text, "after the prelude");
}

#[tokio::test]
async fn wire_errors_before_the_stream_keep_todays_codes() {
    let double = LambdaStreamDouble::start().await;
    for (target, code) in [
        ("throttled-agent", "agent_throttled"),
        ("missing-agent", "agent_unavailable"),
    ] {
        let events = streamed(&double.url, target).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].name, "error");
        let e = events[0].json();
        assert_eq!(e["error"]["code"], code, "{e}");
        if code == "agent_throttled" {
            assert_eq!(e["error"]["retry_after"], 7);
        }
    }
}

#[tokio::test]
async fn wire_caller_hanging_up_closes_the_agents_stream() {
    let double = LambdaStreamDouble::start().await;
    let addr = wire_server(&double.url, &[("cost", "endless-agent")]).await;
    let mut client = open(addr).await;
    assert_decision(&client.next_event_within(SOON).await.unwrap());
    assert_eq!(client.next_event_within(SOON).await.unwrap().data, "more ");
    drop(client);
    let deadline = Instant::now() + SOON;
    while !double.progress.abandoned.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the double kept being read");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn wire_fifty_megabytes_stream_through_with_the_agent_held_back() {
    let double = LambdaStreamDouble::start().await;
    let addr = wire_server(&double.url, &[("cost", "big-agent")]).await;
    let mut client = open(addr).await;
    assert_decision(&client.next_event_within(SOON).await.unwrap());
    // Not reading: the double can only get as far as the queues and socket buffers allow.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ahead = double.progress.written.load(Ordering::SeqCst);
    assert!(
        ahead < 24 * 1024 * 1024,
        "{ahead} bytes of the answer were taken in with nobody reading"
    );
    let mut read = 0u64;
    let mut last = None;
    while let Some(e) = client.next_event_within(Duration::from_secs(120)).await {
        match e.name.as_str() {
            "chunk" => read += e.data.len() as u64,
            _ => last = Some(e),
        }
    }
    assert_eq!(read, BIG_TOTAL);
    let last = last.unwrap();
    assert_eq!(last.name, "done");
    assert_eq!(last.json()["bytes"], BIG_TOTAL);
}

#[tokio::test]
async fn agents_that_do_not_stream_come_as_one_chunk_and_no_opt_in_is_todays_json() {
    let double = LambdaDouble::start().await;
    let addr = wire_server(&double.url, &[("security", "echo-security")]).await;
    let body = r#"{"query": "check my IAM permissions"}"#;
    let mut client = SseClient::post(addr, "/query", body, "text/event-stream").await;
    let events = client.rest().await;
    let names: Vec<_> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["decision", "chunk", "done"]);
    let answer: serde_json::Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(answer["echo"]["routing"]["agent"], "security");
    // The same request without the opt-in: one JSON answer, as before.
    let head = format!(
        "POST /query HTTP/1.1\r\nhost: t\r\naccept: application/json\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (status, content_type, answer) = raw_request(addr, &head, body.as_bytes()).await;
    assert_eq!(
        (status, content_type.as_deref()),
        (200, Some("application/json"))
    );
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["dispatched"], true);
    assert_eq!(answer["result"]["echo"]["routing"]["agent"], "security");
}

#[tokio::test]
async fn streamed_turns_are_saved_in_their_conversation() {
    use agent_router::ports::MemorySessionStore;
    use agent_router::sessions::Sessions;
    let (invoker, mut calls) = ChannelInvoker::new(1);
    let dispatcher = Dispatcher::new(Arc::new(invoker), Duration::from_secs(25), Duration::ZERO);
    let api = Api::new(Arc::new(Router::new(catalogue(&[])).unwrap()))
        .with_dispatcher(Arc::new(dispatcher))
        .with_sessions(Sessions::new(
            Arc::new(MemorySessionStore::new(10)),
            Duration::from_millis(50),
            Duration::from_secs(1800),
            false,
        ));
    let listener = agent_router::api::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(agent_router::api::serve(
        Arc::new(api),
        listener,
        std::future::pending(),
    ));
    for (query, method, state) in [
        ("What is my bill?", "fast", "new"),
        ("and last month?", "session", "continued"),
    ] {
        let body = json!({"query": query, "session_id": "s-stream"}).to_string();
        let mut client = SseClient::post(addr, "/query", &body, "text/event-stream").await;
        let d = client.next_event_within(SOON).await.unwrap().json();
        assert_eq!(
            (d["agent"].as_str(), d["routing_method"].as_str()),
            (Some("cost"), Some(method))
        );
        assert_eq!(d["session"]["state"], state, "{d}");
        let call = calls.recv().await.unwrap();
        call.sender.chunk("ok").await.unwrap();
        call.sender.complete(Completion::default()).await.unwrap();
        let names: Vec<_> = client.rest().await.into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["chunk", "done"]);
    }
}
