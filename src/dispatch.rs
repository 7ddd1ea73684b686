//! Dispatch: invoke the chosen agent and bring back its answer.
//!
//! The agent contract (README, "Agent contract"): the agent receives
//! `{"query", "session_id", "routing": {"agent", "routing_method", "matched", "confidence"},
//! "request_id"}` and answers with any JSON, which the caller gets back as `result` (a non-JSON
//! answer comes back as a string). The invocation sits behind the [`Invoker`] port:
//! [`crate::aws::LambdaInvoker`] is the real adapter (Lambda `Invoke`),
//! [`crate::ports::StaticInvoker`] a double.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::ports::{Completion, Invocation, InvocationStream, InvokeError, Invoker, StreamItem};
use crate::routing::{Decision, RoutingMethod, micros, truncate_bytes};

/// Default time an agent gets to answer.
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(25);

/// A dispatch failure, ready for the HTTP layer: each maps to a status and code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The agent ran and failed (502 `agent_error`).
    #[error("agent {agent:?} failed: {message}")]
    AgentError {
        /// The agent's name.
        agent: String,
        /// The agent's `errorMessage` (or `errorType`).
        message: String,
    },
    /// The agent did not answer within its timeout (504 `agent_timeout`).
    #[error("agent {agent:?} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The agent's name.
        agent: String,
        /// The timeout that expired.
        timeout_ms: u64,
    },
    /// Lambda throttled the invocation (503 `agent_throttled`, with `Retry-After`).
    #[error("agent {agent:?} is throttled; retry after {retry_after} s")]
    Throttled {
        /// The agent's name.
        agent: String,
        /// Seconds the caller should wait.
        retry_after: u64,
    },
    /// The target cannot be invoked: missing, forbidden or unreachable (502 `agent_unavailable`).
    #[error("agent {agent:?} cannot be invoked at target {target:?}: {reason}")]
    Unavailable {
        /// The agent's name.
        agent: String,
        /// The target that failed.
        target: String,
        /// What went wrong, with what to check.
        reason: String,
    },
}

/// The agent's answer and the time the invocation took.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    /// The agent's JSON answer, or its text as a JSON string.
    pub result: Value,
    /// Microseconds spent in the invocation.
    pub agent_us: u64,
}

#[derive(Serialize)]
struct Payload<'a> {
    query: &'a str,
    session_id: Option<&'a str>,
    routing: Routing<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct Routing<'a> {
    agent: &'a str,
    routing_method: RoutingMethod,
    matched: &'a [String],
    confidence: f32,
}

/// Builds the payload an agent receives (the agent contract).
pub fn agent_payload(
    query: &str,
    session_id: Option<&str>,
    decision: &Decision,
    request_id: &str,
) -> Vec<u8> {
    let payload = Payload {
        query,
        session_id,
        routing: Routing {
            agent: &decision.agent,
            routing_method: decision.routing_method,
            matched: &decision.matched,
            confidence: decision.confidence,
        },
        request_id,
    };
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// Invokes agents through an [`Invoker`] with a per-agent timeout.
#[derive(Debug)]
pub struct Dispatcher {
    invoker: std::sync::Arc<dyn Invoker>,
    timeout: Duration,
    safety_margin: Duration,
}

impl Dispatcher {
    /// A dispatcher giving each agent `timeout`, further capped by the caller's remaining time
    /// minus `safety_margin` (time kept to answer the caller).
    pub fn new(
        invoker: std::sync::Arc<dyn Invoker>,
        timeout: Duration,
        safety_margin: Duration,
    ) -> Self {
        Dispatcher {
            invoker,
            timeout,
            safety_margin,
        }
    }

    /// Invokes `target` for `agent` with `payload`, mapping every failure to a [`DispatchError`].
    pub async fn dispatch(
        &self,
        agent: &str,
        target: &str,
        payload: Vec<u8>,
        remaining: Option<Duration>,
    ) -> Result<Dispatched, DispatchError> {
        let timeout = self.timeout_for(remaining);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(timeout, self.invoker.invoke(target, payload, timeout)).await;
        let agent_us = micros(started);
        let invocation = answered(agent, target, timeout_ms, outcome)?;
        let result = match serde_json::from_slice::<Value>(&invocation.payload) {
            Ok(v) => v,
            Err(_) => Value::String(String::from_utf8_lossy(&invocation.payload).into_owned()),
        };
        Ok(Dispatched { result, agent_us })
    }
}

impl Dispatcher {
    /// How long an agent gets on this call: the dispatcher's timeout, capped by the caller's
    /// remaining time less the safety margin.
    fn timeout_for(&self, remaining: Option<Duration>) -> Duration {
        match remaining {
            Some(r) => self.timeout.min(r.saturating_sub(self.safety_margin)),
            None => self.timeout,
        }
    }

    /// Invokes `target` for `agent` and hands back its answer as it comes, for a streamed
    /// `POST /query`. An agent marked `stream` in the catalogue (`streams`) is invoked with
    /// [`Invoker::invoke_stream`] and each chunk it writes is passed on as it arrives; any other
    /// agent is invoked as usual and its whole answer is one chunk. The agent's timeout covers
    /// the whole answer: past it, [`AgentStream::next`] reports [`DispatchError::Timeout`].
    pub async fn open_stream(
        &self,
        agent: &str,
        target: &str,
        payload: Vec<u8>,
        remaining: Option<Duration>,
        streams: bool,
    ) -> Result<AgentStream, DispatchError> {
        let timeout = self.timeout_for(remaining);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let deadline = tokio::time::Instant::now() + timeout;
        let source = if streams {
            let opened = tokio::time::timeout_at(
                deadline,
                self.invoker.invoke_stream(target, payload, timeout),
            )
            .await;
            match opened {
                Err(_) => return Err(timeout_error(agent, timeout_ms)),
                Ok(Err(e)) => return Err(map_invoke_error(agent, target, timeout_ms, e)),
                Ok(Ok(stream)) => Source::Streamed(stream),
            }
        } else {
            let outcome =
                tokio::time::timeout_at(deadline, self.invoker.invoke(target, payload, timeout))
                    .await;
            let invocation = answered(agent, target, timeout_ms, outcome)?;
            Source::Whole(Some(Bytes::from(invocation.payload)))
        };
        Ok(AgentStream {
            agent: agent.to_owned(),
            target: target.to_owned(),
            timeout_ms,
            deadline,
            source,
            done: false,
        })
    }
}

/// An agent's answer as it comes ([`Dispatcher::open_stream`]). Nothing is read ahead: the next
/// chunk is asked of the agent only when [`AgentStream::next`] is called, and dropping the
/// stream abandons the invocation.
#[derive(Debug)]
pub struct AgentStream {
    agent: String,
    target: String,
    timeout_ms: u64,
    deadline: tokio::time::Instant,
    source: Source,
    done: bool,
}

#[derive(Debug)]
enum Source {
    Whole(Option<Bytes>),
    Streamed(InvocationStream),
}

impl AgentStream {
    /// The next chunk of the answer; `None` once the agent has finished. After an error, the
    /// stream is over.
    pub async fn next(&mut self) -> Option<Result<Bytes, DispatchError>> {
        if self.done {
            return None;
        }
        let item = match &mut self.source {
            Source::Whole(whole) => return whole.take().map(Ok),
            Source::Streamed(stream) => tokio::time::timeout_at(self.deadline, stream.next()).await,
        };
        let outcome = match item {
            Err(_) => Some(Err(timeout_error(&self.agent, self.timeout_ms))),
            Ok(Some(Ok(StreamItem::Chunk(bytes)))) => return Some(Ok(bytes)),
            Ok(Some(Ok(StreamItem::Complete(Completion {
                error_code: None, ..
            })))) => None,
            Ok(Some(Ok(StreamItem::Complete(Completion {
                error_code: Some(code),
                error_details,
            })))) => Some(Err(DispatchError::AgentError {
                agent: self.agent.clone(),
                message: error_message(&Invocation {
                    payload: error_details.unwrap_or_default().into_bytes(),
                    function_error: Some(code),
                }),
            })),
            Ok(Some(Err(e))) => Some(Err(map_invoke_error(
                &self.agent,
                &self.target,
                self.timeout_ms,
                e,
            ))),
            Ok(None) => Some(Err(DispatchError::Unavailable {
                agent: self.agent.clone(),
                target: self.target.clone(),
                reason: "the agent's answer stream ended without its completion event".into(),
            })),
        };
        self.done = true;
        outcome
    }
}

fn timeout_error(agent: &str, timeout_ms: u64) -> DispatchError {
    DispatchError::Timeout {
        agent: agent.to_owned(),
        timeout_ms,
    }
}

/// Maps an [`InvokeError`] to the caller's [`DispatchError`], with what to check.
fn map_invoke_error(agent: &str, target: &str, timeout_ms: u64, err: InvokeError) -> DispatchError {
    let unavailable = |reason: String| DispatchError::Unavailable {
        agent: agent.to_owned(),
        target: target.to_owned(),
        reason,
    };
    match err {
        InvokeError::Timeout => timeout_error(agent, timeout_ms),
        InvokeError::Throttled { retry_after, .. } => DispatchError::Throttled {
            agent: agent.to_owned(),
            retry_after: retry_after.unwrap_or(1),
        },
        InvokeError::NotFound(m) => unavailable(format!(
            "no such function ({m}); check the agent's target or ROUTER_TARGET_ variable"
        )),
        InvokeError::AccessDenied(m) => unavailable(format!(
            "access denied ({m}); grant lambda:InvokeFunction on it to the router's role"
        )),
        InvokeError::Failed(m) => unavailable(m),
    }
}

/// A buffered invocation's outcome (`Err(_)`: its deadline passed) as the agent's answer, or the
/// dispatch error it is: timeout, invoke failure, or the agent's own function error.
fn answered(
    agent: &str,
    target: &str,
    timeout_ms: u64,
    outcome: Result<Result<Invocation, InvokeError>, tokio::time::error::Elapsed>,
) -> Result<Invocation, DispatchError> {
    let invocation = match outcome {
        Err(_) => return Err(timeout_error(agent, timeout_ms)),
        Ok(Err(e)) => return Err(map_invoke_error(agent, target, timeout_ms, e)),
        Ok(Ok(invocation)) => invocation,
    };
    if invocation.function_error.is_some() {
        return Err(DispatchError::AgentError {
            agent: agent.to_owned(),
            message: error_message(&invocation),
        });
    }
    Ok(invocation)
}

/// The `errorMessage` of a failed invocation, else its `errorType`, else its raw text.
fn error_message(inv: &Invocation) -> String {
    let parsed: Option<Value> = serde_json::from_slice(&inv.payload).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let message = field("errorMessage")
        .or_else(|| field("errorType"))
        .unwrap_or_else(|| String::from_utf8_lossy(&inv.payload).into_owned());
    let kind = inv.function_error.as_deref().unwrap_or("Unhandled");
    let text = format!("{kind}: {message}");
    truncate_bytes(&text, MAX_ERROR_MESSAGE_BYTES).to_owned()
}

/// Longest agent error message passed on to the caller, in bytes.
const MAX_ERROR_MESSAGE_BYTES: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::StaticInvoker;
    use std::sync::Arc;

    fn ok(payload: &str) -> Result<Invocation, InvokeError> {
        Ok(Invocation {
            payload: payload.as_bytes().to_vec(),
            function_error: None,
        })
    }

    async fn run(
        outcome: Result<Invocation, InvokeError>,
        delay: Duration,
    ) -> Result<Dispatched, DispatchError> {
        let d = Dispatcher::new(
            Arc::new(StaticInvoker::new(outcome, delay)),
            Duration::from_secs(25),
            Duration::from_millis(250),
        );
        d.dispatch("cost", "cost-agent", b"{}".to_vec(), None).await
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_table() {
        assert_eq!(
            run(ok(r#"{"answer": 42}"#), Duration::ZERO)
                .await
                .unwrap()
                .result,
            serde_json::json!({"answer": 42})
        );
        assert_eq!(
            run(ok("plain text"), Duration::ZERO).await.unwrap().result,
            Value::String("plain text".into())
        );
        let failed = Ok(Invocation {
            payload: br#"{"errorMessage": "boom", "errorType": "RuntimeError"}"#.to_vec(),
            function_error: Some("Unhandled".into()),
        });
        assert_eq!(
            run(failed, Duration::ZERO).await,
            Err(DispatchError::AgentError {
                agent: "cost".into(),
                message: "Unhandled: boom".into()
            })
        );
        assert_eq!(
            run(ok("{}"), Duration::from_secs(30)).await,
            Err(DispatchError::Timeout {
                agent: "cost".into(),
                timeout_ms: 25_000
            })
        );
        let throttled = Err(InvokeError::Throttled {
            message: "Rate exceeded".into(),
            retry_after: Some(3),
        });
        assert_eq!(
            run(throttled, Duration::ZERO).await,
            Err(DispatchError::Throttled {
                agent: "cost".into(),
                retry_after: 3
            })
        );
        let missing = run(
            Err(InvokeError::NotFound("Function not found".into())),
            Duration::ZERO,
        )
        .await
        .unwrap_err();
        assert!(
            missing.to_string().contains("cost-agent")
                && missing.to_string().contains("ROUTER_TARGET_"),
            "{missing}"
        );
        let denied = run(Err(InvokeError::AccessDenied("no".into())), Duration::ZERO)
            .await
            .unwrap_err();
        assert!(
            denied.to_string().contains("lambda:InvokeFunction"),
            "{denied}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn long_error_messages_are_cut_between_characters() {
        for filler in ["é", "€", "😀", "a"] {
            let message = filler.repeat(2000);
            let failed = Ok(Invocation {
                payload: serde_json::json!({ "errorMessage": message })
                    .to_string()
                    .into_bytes(),
                function_error: Some("Unhandled".into()),
            });
            let Err(DispatchError::AgentError { message: got, .. }) =
                run(failed, Duration::ZERO).await
            else {
                panic!("expected an agent error");
            };
            assert!(
                got.len() <= MAX_ERROR_MESSAGE_BYTES && got.len() > 990,
                "{filler}"
            );
            assert!(
                format!("Unhandled: {message}").starts_with(&got),
                "{filler}"
            );
        }
    }

    async fn drain(stream: &mut AgentStream) -> (Vec<Bytes>, Option<DispatchError>) {
        let mut chunks = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => chunks.push(b),
                Err(e) => {
                    assert_eq!(stream.next().await, None, "nothing after an error");
                    return (chunks, Some(e));
                }
            }
        }
        (chunks, None)
    }

    #[tokio::test(start_paused = true)]
    async fn streams_are_forwarded_and_their_failures_mapped() {
        let (invoker, mut calls) = crate::ports::ChannelInvoker::new(4);
        let d = Dispatcher::new(Arc::new(invoker), Duration::from_secs(25), Duration::ZERO);
        // Chunks, then a failed completion: the chunks, then agent_error with the details.
        let writer = tokio::spawn(async move {
            let call = calls.recv().await.unwrap();
            assert_eq!(call.target, "cost-agent");
            call.sender.chunk("Hello, ").await.unwrap();
            call.sender.chunk("world").await.unwrap();
            call.sender
                .complete(Completion {
                    error_code: Some("Unhandled".into()),
                    error_details: Some(r#"{"errorMessage":"out of tokens"}"#.into()),
                })
                .await
                .unwrap();
            calls
        });
        let mut stream = d
            .open_stream("cost", "cost-agent", b"{}".to_vec(), None, true)
            .await
            .unwrap();
        let (chunks, err) = drain(&mut stream).await;
        assert_eq!(chunks, vec![Bytes::from("Hello, "), Bytes::from("world")]);
        assert_eq!(
            err,
            Some(DispatchError::AgentError {
                agent: "cost".into(),
                message: "Unhandled: out of tokens".into()
            })
        );
        // A stream that goes quiet past the agent's timeout.
        let mut calls = writer.await.unwrap();
        let mut stream = d
            .open_stream("cost", "cost-agent", b"{}".to_vec(), None, true)
            .await
            .unwrap();
        let call = calls.recv().await.unwrap();
        call.sender.chunk("partial").await.unwrap();
        let (chunks, err) = drain(&mut stream).await;
        assert_eq!(chunks, vec![Bytes::from("partial")]);
        assert_eq!(
            err,
            Some(DispatchError::Timeout {
                agent: "cost".into(),
                timeout_ms: 25_000
            })
        );
        // A writer that goes away without the completion event.
        let mut stream = d
            .open_stream("cost", "cost-agent", b"{}".to_vec(), None, true)
            .await
            .unwrap();
        drop(calls.recv().await.unwrap());
        let (_, err) = drain(&mut stream).await;
        assert!(
            matches!(err, Some(DispatchError::Unavailable { .. })),
            "{err:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn buffered_agents_come_back_as_one_chunk_or_an_error() {
        let d = |outcome| {
            Dispatcher::new(
                Arc::new(StaticInvoker::new(outcome, Duration::ZERO)),
                Duration::from_secs(25),
                Duration::ZERO,
            )
        };
        let mut stream = d(ok("whole"))
            .open_stream("cost", "t", Vec::new(), None, false)
            .await
            .unwrap();
        assert_eq!(drain(&mut stream).await, (vec![Bytes::from("whole")], None));
        let failed = Ok(Invocation {
            payload: br#"{"errorMessage": "boom"}"#.to_vec(),
            function_error: Some("Handled".into()),
        });
        assert_eq!(
            d(failed)
                .open_stream("cost", "t", Vec::new(), None, false)
                .await
                .unwrap_err(),
            DispatchError::AgentError {
                agent: "cost".into(),
                message: "Handled: boom".into()
            }
        );
        let throttled = Err(InvokeError::Throttled {
            message: "slow down".into(),
            retry_after: None,
        });
        // A streaming agent behind an invoker that cannot stream: the default one-chunk stream.
        assert_eq!(
            d(throttled)
                .open_stream("cost", "t", Vec::new(), None, true)
                .await
                .unwrap_err(),
            DispatchError::Throttled {
                agent: "cost".into(),
                retry_after: 1
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_time_caps_the_timeout() {
        let d = Dispatcher::new(
            Arc::new(StaticInvoker::new(ok("{}"), Duration::from_secs(10))),
            Duration::from_secs(25),
            Duration::from_millis(500),
        );
        let started = tokio::time::Instant::now();
        let err = d
            .dispatch("cost", "t", Vec::new(), Some(Duration::from_secs(3)))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            DispatchError::Timeout {
                agent: "cost".into(),
                timeout_ms: 2500
            }
        );
        assert_eq!(started.elapsed(), Duration::from_millis(2500));
    }
}
