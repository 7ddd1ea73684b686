//! An example agent for agent-router: a Lambda function that answers with what it received.
//!
//! It implements the agent contract (see the router's README): it receives
//! `{"query", "session_id", "routing": {...}, "request_id"}` and answers with JSON. For demos and
//! tests, a query containing `[fail]` makes it raise an error (the router answers 502
//! `agent_error`) and one containing `[sleep]` makes it wait `ECHO_SLOW_MS` (default 5000) ms first
//! (the router answers 504 `agent_timeout` when that is over its agent timeout).
//!
//! Streaming mode (the agent contract's streamed variant): with `ECHO_STREAM=on`, or a query
//! containing `[stream]`, it writes its answer as a response stream, one word every
//! `ECHO_WORD_MS` (default 100) ms, for a router whose routes file marks the agent
//! `stream = true`. With `[fail]` as well, it fails after its first words (a mid-stream error).

use std::time::Duration;

use lambda_runtime::streaming::{Body, channel};
use lambda_runtime::{Error, FunctionResponse, LambdaEvent, StreamResponse, service_fn};
use serde_json::{Value, json};

fn env_ms(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn handle(event: LambdaEvent<Value>) -> Result<FunctionResponse<Value, Body>, Error> {
    let query = event
        .payload
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let streams = query.contains("[stream]")
        || std::env::var("ECHO_STREAM").is_ok_and(|v| v == "on" || v == "1");
    if streams {
        return Ok(FunctionResponse::StreamingResponse(stream(event)));
    }
    answer(event).await.map(FunctionResponse::BufferedResponse)
}

/// Writes the answer word by word; with `[fail]`, stops with an error after three words.
fn stream(event: LambdaEvent<Value>) -> StreamResponse<Body> {
    let (payload, context) = event.into_parts();
    let query = payload
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fail = query.contains("[fail]");
    let delay = Duration::from_millis(env_ms("ECHO_WORD_MS", 100));
    let text = format!("echo-agent streams your question back: {query}\n");
    let (mut tx, rx) = channel();
    tokio::spawn(async move {
        for (i, word) in text.split_inclusive(' ').enumerate() {
            if fail && i == 3 {
                // Ends the stream with an error, which Lambda reports in InvokeComplete.
                eprintln!(
                    "echo-agent was asked to fail mid-stream (request {})",
                    context.request_id
                );
                tx.abort();
                return;
            }
            if tx.send_data(word.to_owned().into()).await.is_err() {
                return; // the caller went away
            }
            tokio::time::sleep(delay).await;
        }
    });
    StreamResponse::from(rx)
}

async fn answer(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let query = payload
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if query.contains("[fail]") {
        return Err(format!(
            "echo-agent was asked to fail (request {})",
            context.request_id
        )
        .into());
    }
    if query.contains("[sleep]") {
        tokio::time::sleep(Duration::from_millis(env_ms("ECHO_SLOW_MS", 5000))).await;
    }
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "echo-agent".into());
    Ok(json!({
        "answer": format!("{function} received your question"),
        "agent": payload.pointer("/routing/agent"),
        "received": payload,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
