//! Streamed `POST /query` answers: Server-Sent Events written as they are produced.
//!
//! A caller opts in with `Accept: text/event-stream` ([`wants_event_stream`]). The answer is then
//! `200 text/event-stream` and a sequence of events, each `event: <name>` then one or more
//! `data:` lines and a blank line:
//!
//! | event | when | data |
//! |---|---|---|
//! | `decision` | first, before the agent is invoked | the decision, as `POST /route` answers it |
//! | `chunk` | each time the agent writes | the agent's bytes as UTF-8 text, one `data:` line per line |
//! | `done` | last, when the agent finished | `{"request_id", "dispatched", "timings_us": {..., "agent", "agent_first_byte"}, "bytes"}` |
//! | `error` | last, when the agent failed before or while answering | today's error body (`agent_error`, `agent_timeout`, `agent_throttled` with `retry_after`, `agent_unavailable`) |
//!
//! Chunk text: SSE data cannot hold a line break, so a chunk with line breaks is sent as several
//! `data:` lines, which an SSE client joins back with `\n` (`\r\n` and `\r` arrive as `\n`). A
//! UTF-8 character split between two of the agent's chunks is held back until it is whole;
//! bytes that are not UTF-8 arrive as U+FFFD. `done.bytes` counts the agent's bytes as written.
//!
//! Memory: the events wait in a queue of [`EVENT_QUEUE`]; while it is full the agent's stream is
//! not read, so the router holds a few chunks at most, never a whole answer. When the caller goes
//! away (the body is dropped), the agent's stream is dropped at once, even mid-wait.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response, header};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use super::error::{ApiError, error_body};
use super::{DecisionBody, NotDispatched, render};
use crate::dispatch::{DispatchError, Dispatcher};
use crate::ops::metrics::MetricsConfig;
use crate::routing::{Decision, micros};

/// Events queued between the agent and the caller; while the queue is full the agent waits.
pub const EVENT_QUEUE: usize = 4;

/// The media type of a streamed answer.
pub const EVENT_STREAM: &str = "text/event-stream";

/// Whether the request's `Accept` header lists `text/event-stream` (with a non-zero `q`).
pub fn wants_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case(EVENT_STREAM) && !refused
        })
}

/// A response body: whole, or events sent as they are produced. Implements [`hyper::body::Body`]
/// so that the local server and the Lambda adapter send each event as soon as it exists.
#[derive(Debug)]
pub enum ReplyBody {
    /// The whole body at once.
    Full(Option<Bytes>),
    /// Server-sent events, in order; the body ends when the producer finishes.
    Events(mpsc::Receiver<Bytes>),
}

impl ReplyBody {
    /// A whole body.
    pub fn full(body: impl Into<Bytes>) -> ReplyBody {
        ReplyBody::Full(Some(body.into()))
    }

    /// Waits for the whole body (all events, for a stream) and returns it as text.
    pub async fn collect(self) -> String {
        match self {
            ReplyBody::Full(b) => String::from_utf8_lossy(&b.unwrap_or_default()).into_owned(),
            ReplyBody::Events(mut rx) => {
                let mut out = Vec::new();
                while let Some(event) = rx.recv().await {
                    out.extend_from_slice(&event);
                }
                // Events are built from strings, so this never replaces anything.
                String::from_utf8_lossy(&out).into_owned()
            }
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ReplyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReplyBody::Events(rx) => rx.poll_recv(cx).map(|e| e.map(|e| Ok(Frame::data(e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ReplyBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReplyBody::Full(None) => SizeHint::with_exact(0),
            ReplyBody::Events(_) => SizeHint::default(),
        }
    }
}

/// What a streamed `POST /query` does after routing.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub decision: Decision,
    /// The fast path's evidence, when the request asked for it (in the decision event).
    pub explain: Option<crate::routing::Explanation>,
    pub request_id: String,
    pub dispatch: Result<AgentCall, NotDispatched>,
    pub metrics: MetricsConfig,
    /// The local server's counters, when it keeps them.
    pub stats: Option<Arc<crate::ops::stats::Stats>>,
    pub started: Instant,
}

/// The agent to invoke.
#[derive(Debug)]
pub(crate) struct AgentCall {
    pub dispatcher: Arc<Dispatcher>,
    pub target: String,
    pub payload: Vec<u8>,
    pub remaining: Option<Duration>,
    pub streams: bool,
}

/// Starts the stream: the decision event is queued before this returns (so it is the first
/// thing the caller receives, before the agent is invoked), and a task produces the rest.
pub(crate) fn start(plan: StreamPlan) -> Response<ReplyBody> {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let decision = render(&DecisionBody {
        decision: &plan.decision,
        request_id: &plan.request_id,
        dispatched: None,
        not_dispatched: None,
        result: None,
        explain: plan.explain.clone(),
    });
    // The queue is empty, so this cannot fail for lack of room.
    let _ = tx.try_send(event("decision", &decision));
    let mut response = Response::new(ReplyBody::Events(rx));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&plan.request_id) {
        headers.insert("x-request-id", v);
    }
    tokio::spawn(produce(plan, tx));
    response
}

/// How the agent part of a stream ended.
enum End {
    Finished,
    Failed(DispatchError),
    CallerGone,
}

async fn produce(plan: StreamPlan, tx: mpsc::Sender<Bytes>) {
    let StreamPlan {
        mut decision,
        request_id,
        dispatch,
        metrics,
        stats,
        started,
        ..
    } = plan;
    let end = Ending {
        metrics: &metrics,
        stats: stats.as_deref(),
        request_id: &request_id,
        started,
    };
    let call = match dispatch {
        Ok(call) => call,
        Err(reason) => {
            let done = serde_json::json!({
                "request_id": request_id,
                "dispatched": false,
                "not_dispatched": reason,
                "timings_us": decision.timings_us,
            });
            let _ = tx.send(event("done", &done.to_string())).await;
            end.finish(&decision, 200, "done");
            return;
        }
    };
    let agent_started = Instant::now();
    let mut first_byte_us = None;
    let mut bytes = 0u64;
    let mut text = Utf8Stream::default();
    let outcome = async {
        let opened = tokio::select! {
            opened = call.dispatcher.open_stream(
                &decision.agent,
                &call.target,
                call.payload,
                call.remaining,
                call.streams,
            ) => opened,
            () = tx.closed() => return End::CallerGone,
        };
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => return End::Failed(e),
        };
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = tx.closed() => return End::CallerGone,
            };
            let chunk = match next {
                None => return End::Finished,
                Some(Err(e)) => return End::Failed(e),
                Some(Ok(chunk)) => chunk,
            };
            first_byte_us.get_or_insert_with(|| micros(agent_started));
            bytes += chunk.len() as u64;
            let decoded = text.push(&chunk);
            if !decoded.is_empty() && tx.send(chunk_event(&decoded)).await.is_err() {
                return End::CallerGone;
            }
        }
    }
    .await;
    decision.timings_us.agent = Some(micros(agent_started));
    let rest = text.finish();
    if !rest.is_empty() && !matches!(outcome, End::CallerGone) {
        let _ = tx.send(chunk_event(&rest)).await;
    }
    match outcome {
        End::Finished => {
            let mut timings = serde_json::to_value(decision.timings_us).unwrap_or_default();
            if let (Some(t), Some(first)) = (timings.as_object_mut(), first_byte_us) {
                t.insert("agent_first_byte".into(), first.into());
            }
            let done = serde_json::json!({
                "request_id": request_id,
                "dispatched": true,
                "timings_us": timings,
                "bytes": bytes,
            });
            let _ = tx.send(event("done", &done.to_string())).await;
            end.finish(&decision, 200, "done");
        }
        End::Failed(e) => {
            tracing::warn!(request_id, agent = %decision.agent, error = %e, "dispatch failed");
            let err = ApiError::Dispatch(e);
            let _ = tx
                .send(event("error", &error_event(&err, &request_id)))
                .await;
            // Counted with the status the buffered answer would have had, so the 5xx alarms
            // see agent failures whether or not the answer was streamed.
            let status = err.status().as_u16();
            end.finish(&decision, status, "error");
        }
        End::CallerGone => {
            tracing::info!(request_id, agent = %decision.agent, bytes, "caller went away; agent stream dropped");
            // 499: the caller closed the request (nginx's convention), never sent to anyone.
            end.finish(&decision, 499, "caller_gone");
        }
    }
}

/// What every end of a stream records: the `routed` log line, the stats and the metrics.
struct Ending<'a> {
    metrics: &'a MetricsConfig,
    stats: Option<&'a crate::ops::stats::Stats>,
    request_id: &'a str,
    started: Instant,
}

impl Ending<'_> {
    fn finish(&self, decision: &Decision, status: u16, ended: &'static str) {
        super::record_request(
            self.metrics,
            self.stats,
            &super::Answered {
                request_id: self.request_id,
                method: "POST",
                path: "/query",
                status,
                total_us: micros(self.started),
                decision: Some(decision),
                shadow: None,
                ended: Some(ended),
            },
        );
    }
}

/// The `error` event's data: the buffered error body, with `retry_after` for a throttle (the
/// `Retry-After` header cannot be sent once the stream has started).
fn error_event(err: &ApiError, request_id: &str) -> String {
    let body = error_body(err.code(), &err.to_string(), request_id, err.agent());
    match err {
        ApiError::Dispatch(DispatchError::Throttled { retry_after, .. }) => {
            let mut v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["error"]["retry_after"] = (*retry_after).into();
            v.to_string()
        }
        _ => body,
    }
}

/// One event whose data has no line break (JSON rendered on one line).
fn event(name: &str, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(name.len() + data.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// A `chunk` event: one `data:` line per line of `text` (split at `\r\n`, `\r` and `\n`, the
/// SSE line ends), which an SSE client joins back with `\n`.
pub fn chunk_event(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 32);
    out.extend_from_slice(b"event: chunk\n");
    let mut rest = text;
    loop {
        let cut = rest.find(['\r', '\n']);
        let line = &rest[..cut.unwrap_or(rest.len())];
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\n");
        match cut {
            None => break,
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
        }
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

/// Turns a byte stream into text, holding back a UTF-8 character split between two chunks.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `chunk` (after what was held back), less an incomplete character (or a lone
    /// `\r`, which may begin a `\r\n`) at its end.
    pub fn push(&mut self, chunk: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(chunk);
        // A trailing `\r` waits for the next chunk: with a `\n` there it is one line break.
        let keep = match incomplete_tail(&buf) {
            0 if buf.last() == Some(&b'\r') => 1,
            n => n,
        };
        self.pending = buf.split_off(buf.len() - keep);
        match String::from_utf8(buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// What is still held back, at the end of the stream (an incomplete character: U+FFFD).
    pub fn finish(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned()
    }
}

/// Length of an incomplete UTF-8 sequence at the end of `b` (0 if none).
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let byte = b[b.len() - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let needs = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        return if needs > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SSE client's reading of one event's data lines.
    fn data_of(event: &[u8]) -> String {
        let text = std::str::from_utf8(event).unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn chunk_lines_round_trip_through_an_sse_client() {
        for (text, back) in [
            ("hello", "hello"),
            ("two\nlines", "two\nlines"),
            ("ends with a break\n", "ends with a break\n"),
            ("\n\nblank lines\n\n", "\n\nblank lines\n\n"),
            ("crlf\r\nand cr\rend", "crlf\nand cr\nend"),
            ("  leading spaces", "  leading spaces"),
            (
                "data: not an event\nevent: nope",
                "data: not an event\nevent: nope",
            ),
        ] {
            let ev = chunk_event(text);
            assert!(ev.starts_with(b"event: chunk\n") && ev.ends_with(b"\n\n"));
            // No line of the event may be empty before the final blank line (it would end it).
            let body = &ev[..ev.len() - 1];
            assert!(!body.windows(2).any(|w| w == b"\n\n"), "{text:?}");
            assert_eq!(data_of(&ev), back, "{text:?}");
        }
    }

    #[test]
    fn split_characters_are_held_back_and_bad_bytes_replaced() {
        let mut s = Utf8Stream::default();
        let word = "héllo 😀".as_bytes();
        let mut out = String::new();
        for b in word {
            out.push_str(&s.push(&[*b]));
        }
        out.push_str(&s.finish());
        assert_eq!(out, "héllo 😀");
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(s.push(b"c\xe2\x82"), "c");
        assert_eq!(s.finish(), "\u{fffd}");
    }

    #[test]
    fn a_crlf_split_across_chunks_stays_one_line_break() {
        let mut s = Utf8Stream::default();
        let (first, second) = (s.push(b"one\r"), s.push(b"\ntwo"));
        assert_eq!((first.as_str(), second.as_str()), ("one", "\r\ntwo"));
        let data: Vec<String> = [chunk_event(&first), chunk_event(&second)]
            .iter()
            .map(|ev| data_of(ev))
            .collect();
        assert_eq!(data.concat(), "one\ntwo", "{data:?}");
        // A lone trailing \r is a line break of its own at the end.
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"end\r"), "end");
        assert_eq!(s.finish(), "\r");
    }

    #[test]
    fn accept_header_opt_in() {
        let wants = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            wants_event_stream(&h)
        };
        assert!(wants("text/event-stream"));
        assert!(wants("application/json, Text/Event-Stream;q=0.5"));
        assert!(!wants("text/event-stream;q=0"));
        assert!(!wants("*/*"));
        assert!(!wants("application/json"));
        assert!(!wants_event_stream(&http::HeaderMap::new()));
    }
}
