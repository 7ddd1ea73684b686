//! An example agent for agent-router: a Lambda function that answers with what it received.
//!
//! It implements the agent contract (see the router's README): it receives
//! `{"query", "session_id", "routing": {...}, "request_id"}` and answers with JSON. For demos and
//! tests, a query containing `[fail]` makes it raise an error (the router answers 502
//! `agent_error`) and one containing `[sleep]` makes it wait `ECHO_SLOW_MS` (default 5000) ms first
//! (the router answers 504 `agent_timeout` when that is over its agent timeout).

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
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
        let ms = std::env::var("ECHO_SLOW_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
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
