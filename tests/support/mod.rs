//! Shared loopback test doubles for AWS services, reached through the SDK's endpoint override.

#![allow(dead_code)] // each test binary uses part of this module

pub mod bedrock_double;
pub mod dynalite;
pub mod lambda_double;
pub mod lambda_stream_double;
pub mod schema;
pub mod sse;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// The prompt-injection corpus (`tests/fixtures/prompt_injection.json`) and the names of the
/// embedded catalogue's agents, the only answers a router may ever give.
pub fn injection_corpus_and_agents() -> (Vec<String>, Vec<String>) {
    let corpus: Vec<String> =
        serde_json::from_str(include_str!("../fixtures/prompt_injection.json"))
            .expect("injection corpus");
    assert!(corpus.len() >= 20, "the corpus keeps at least 20 queries");
    let names = agent_router::Catalogue::embedded_default()
        .expect("embedded catalogue")
        .agents()
        .iter()
        .map(|a| a.name.clone())
        .collect();
    (corpus, names)
}

/// A request a double received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The URL path (path parameters percent-encoded).
    pub path: String,
    /// The raw body.
    pub body: Bytes,
    /// Whether it carried a SigV4 `authorization` header.
    pub signed: bool,
}

/// What a double's handler returns: a response, or `None` to drop the connection unanswered.
pub type Answer = Option<hyper::Response<Full<Bytes>>>;

/// Serves `handler` on a fresh loopback port until the test's runtime ends; returns the base URL.
pub async fn serve<F, Fut>(handler: F) -> String
where
    F: Fn(Received) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let signed = req.headers().contains_key("authorization");
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map_err(std::io::Error::other)?
                            .to_bytes();
                        handler(Received { path, body, signed })
                            .await
                            .ok_or_else(|| {
                                std::io::Error::other("connection dropped by the double")
                            })
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

/// A JSON response with extra headers.
pub fn json(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).unwrap()
}

/// An AWS JSON error: status, `x-amzn-ErrorType` and a message body.
pub fn aws_error(
    status: u16,
    kind: &str,
    extra_headers: &[(&str, &str)],
) -> hyper::Response<Full<Bytes>> {
    let kind_header = format!("{kind}:http://internal.amazon.com/coral/com.amazonaws/");
    let mut headers = vec![("x-amzn-errortype", kind_header.as_str())];
    headers.extend_from_slice(extra_headers);
    let body =
        serde_json::json!({"message": format!("{kind} from the test double"), "Type": "User"});
    json(status, &headers, body.to_string())
}

/// Sends one raw HTTP/1.1 request and returns (status, content-type, body).
pub async fn raw_request(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
) -> (u16, Option<String>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let (status, head, body) = split_response(&buf);
    let ct = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: ").map(str::to_owned));
    (status, ct, body)
}

/// A raw HTTP/1.1 response as (status, lower-cased head, body).
pub fn split_response(buf: &[u8]) -> (u16, String, Vec<u8>) {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, buf[split + 4..].to_vec())
}
