//! A double that speaks Lambda's `InvokeWithResponseStream` wire format: `POST
//! /2021-11-15/functions/{FunctionName}/response-streaming-invocations`, answered with `200`,
//! the function's stream content type as `Content-Type`, and a body of
//! `application/vnd.amazon.eventstream` frames (prelude
//! with total and headers lengths and CRC32, headers `:event-type`, `:message-type`,
//! `:content-type`, payload, message CRC32), written by the same framing code the SDK reads
//! with: `PayloadChunk` events, then one `InvokeComplete` (with `ErrorCode` / `ErrorDetails` /
//! `LogResult` when the function failed). Service errors before the stream are the usual
//! JSON error responses. Its behaviour is chosen by the function name.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use agent_router::api::ReplyBody;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// Size of each chunk of `big-agent`'s answer.
pub const BIG_CHUNK: usize = 64 * 1024;
/// Size of `big-agent`'s whole answer.
pub const BIG_TOTAL: u64 = 50 * 1024 * 1024;

/// What the double's streams have done, shared with the test.
#[derive(Debug, Default)]
pub struct Progress {
    /// Payload bytes handed to the connection (written or waiting to be written).
    pub written: AtomicU64,
    /// Set when the router stopped reading and the double could not write any more.
    pub abandoned: AtomicBool,
}

/// The running double. Function names it knows:
/// `words-agent` streams "Hello", ", streamed", " world" 20 ms apart and completes;
/// `midway-agent` streams "partial answer" then completes with `ErrorCode: Unhandled`;
/// `split-utf8-agent` streams "é" and "😀" cut between their bytes, across chunks;
/// `big-agent` streams [`BIG_TOTAL`] bytes in [`BIG_CHUNK`] chunks, as fast as it is read;
/// `endless-agent` writes a chunk every 10 ms until the reader goes away;
/// `prelude-agent` answers like a function using an HTTP-style streaming runtime (content type
/// `application/vnd.awslambda.http-integration-response`, a JSON metadata prelude and 8 NUL
/// bytes, split across chunks, before "after the prelude");
/// `throttled-agent` gets 429 with `Retry-After: 7`; anything else 404.
pub struct LambdaStreamDouble {
    /// `http://127.0.0.1:port`, for `endpoint_url`.
    pub url: String,
    /// Progress of the streams (all functions share it; tests use one streamed call each).
    pub progress: Arc<Progress>,
}

impl LambdaStreamDouble {
    /// Starts the double.
    pub async fn start() -> LambdaStreamDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let p = p.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let p = p.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let _ = req.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(answer(&path, p))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        LambdaStreamDouble { url, progress }
    }
}

/// One eventstream message, framed.
pub fn frame(event_type: &'static str, content_type: &'static str, payload: Bytes) -> Bytes {
    let message = Message::new(payload)
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(StrBytes::from(event_type)),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(StrBytes::from("event")),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String(StrBytes::from(content_type)),
        ));
    let mut buf = BytesMut::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut buf).unwrap();
    buf.freeze()
}

/// A `PayloadChunk` event.
pub fn payload_chunk(bytes: impl Into<Bytes>) -> Bytes {
    frame("PayloadChunk", "application/octet-stream", bytes.into())
}

/// An `InvokeComplete` event, with the function's error when it failed.
pub fn invoke_complete(error: Option<(&str, &str)>) -> Bytes {
    let body = match error {
        None => serde_json::json!({"LogResult": ""}),
        Some((code, details)) => {
            serde_json::json!({"ErrorCode": code, "ErrorDetails": details, "LogResult": ""})
        }
    };
    frame(
        "InvokeComplete",
        "application/json",
        Bytes::from(body.to_string()),
    )
}

fn answer(path: &str, progress: Arc<Progress>) -> hyper::Response<ReplyBody> {
    let Some(name) = path
        .strip_prefix("/2021-11-15/functions/")
        .and_then(|p| p.strip_suffix("/response-streaming-invocations"))
    else {
        return error(404, "UnknownOperationException", &[]);
    };
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let send =
        move |tx: mpsc::Sender<Bytes>, progress: Arc<Progress>, frames: Vec<(u64, Bytes)>| {
            tokio::spawn(async move {
                for (len, f) in frames {
                    if tx.send(f).await.is_err() {
                        progress.abandoned.store(true, Ordering::SeqCst);
                        return;
                    }
                    progress.written.fetch_add(len, Ordering::SeqCst);
                }
            });
        };
    match name {
        "words-agent" => {
            tokio::spawn(async move {
                for w in ["Hello", ", streamed", " world"] {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if tx.send(payload_chunk(w)).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(invoke_complete(None)).await;
            });
        }
        "midway-agent" => send(
            tx,
            progress,
            vec![
                (14, payload_chunk("partial answer")),
                (
                    0,
                    invoke_complete(Some((
                        "Unhandled",
                        r#"{"errorMessage":"agent crashed midway","errorType":"PanicError"}"#,
                    ))),
                ),
            ],
        ),
        "split-utf8-agent" => {
            let bytes = "é😀".as_bytes();
            send(
                tx,
                progress,
                vec![
                    (1, payload_chunk(Bytes::copy_from_slice(&bytes[..1]))),
                    (3, payload_chunk(Bytes::copy_from_slice(&bytes[1..4]))),
                    (2, payload_chunk(Bytes::copy_from_slice(&bytes[4..]))),
                    (0, invoke_complete(None)),
                ],
            )
        }
        "big-agent" => {
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; BIG_CHUNK]);
                let mut sent = 0u64;
                while sent < BIG_TOTAL {
                    if tx.send(payload_chunk(chunk.clone())).await.is_err() {
                        progress.abandoned.store(true, Ordering::SeqCst);
                        return;
                    }
                    sent += BIG_CHUNK as u64;
                    progress
                        .written
                        .fetch_add(BIG_CHUNK as u64, Ordering::SeqCst);
                }
                let _ = tx.send(invoke_complete(None)).await;
            });
        }
        "endless-agent" => {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if tx.send(payload_chunk("more ")).await.is_err() {
                        progress.abandoned.store(true, Ordering::SeqCst);
                        return;
                    }
                    progress.written.fetch_add(5, Ordering::SeqCst);
                }
            });
        }
        "prelude-agent" => {
            send(
                tx,
                progress,
                vec![
                    (0, payload_chunk(r#"{"statusCode":200,"headers":{}"#)),
                    (
                        0,
                        payload_chunk(Bytes::from_static(b",\"cookies\":[]}\0\0\0\0")),
                    ),
                    (0, payload_chunk(Bytes::from_static(b"\0\0\0\0after "))),
                    (0, payload_chunk("the prelude")),
                    (0, invoke_complete(None)),
                ],
            );
            return hyper::Response::builder()
                .status(200)
                .header(
                    "content-type",
                    "application/vnd.awslambda.http-integration-response",
                )
                .body(ReplyBody::Events(rx))
                .unwrap();
        }
        "throttled-agent" => {
            return error(429, "TooManyRequestsException", &[("retry-after", "7")]);
        }
        _ => return error(404, "ResourceNotFoundException", &[]),
    }
    // Lambda's Content-Type header is the function's stream content type (the SDK's
    // ResponseStreamContentType); the body is eventstream frames whatever it says.
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream")
        .header("x-amz-executed-version", "$LATEST")
        .body(ReplyBody::Events(rx))
        .unwrap()
}

fn error(status: u16, kind: &str, headers: &[(&str, &str)]) -> hyper::Response<ReplyBody> {
    let mut b = hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", kind);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = serde_json::json!({"Type": "User", "message": format!("{kind} from the double")});
    b.body(ReplyBody::full(body.to_string())).unwrap()
}
