//! The local HTTP server: the same [`Api`] served over plain HTTP/1.1 for development and tests.
//!
//! Bodies are read only up to [`MAX_BODY_BYTES`] + 1 bytes, so an oversized upload is refused
//! with 413 without being buffered. A streamed `POST /query` (`Accept: text/event-stream`) is sent
//! with chunked transfer encoding, each event written and flushed as it is produced; when the
//! client disconnects, the response body is dropped and with it the agent's stream.

use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{
    Api, ApiError, ApiRequest, MAX_BODY_BYTES, ReplyBody, caller_request_id, error_response,
    wants_event_stream,
};

/// Serves `api` on `listener` until `shutdown` resolves; in-flight connections finish on their own.
pub async fn serve(
    api: Arc<Api>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let ids = Arc::new(RequestIds::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let api = api.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let api = api.clone();
                let id = ids.next();
                async move { Ok::<_, Infallible>(handle(&api, req, id).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Binds `addr`, for callers that want the bound port (e.g. port 0 in tests) before serving.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn handle(api: &Api, req: Request<Incoming>, own_id: String) -> Response<ReplyBody> {
    let (parts, body) = req.into_parts();
    let request_id = caller_request_id(&parts.headers).unwrap_or(own_id);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = match declared {
        Some(n) if n > MAX_BODY_BYTES => Err(ApiError::BodyTooLarge(n)),
        _ => match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => Err(ApiError::BodyTooLarge(MAX_BODY_BYTES + 1)),
            // Broken framing: bad chunked encoding, or the client stopped before Content-Length.
            Err(e) => Err(ApiError::InvalidJson(format!(
                "cannot read the request body: {e}"
            ))),
        },
    };
    let events = wants_event_stream(&parts.headers);
    match body {
        Ok(body) => {
            let query = parts
                .uri
                .query()
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default();
            let api_req = ApiRequest {
                method: parts.method,
                path: parts.uri.path().to_owned(),
                query,
                body,
                request_id,
                remaining: None,
            };
            api.respond(api_req, events).await
        }
        Err(error) => {
            // The rest of the body is left unread (or its framing is broken), so this connection
            // cannot carry another request: say so, and keep-alive clients reconnect instead of
            // writing into it.
            let mut resp = error_response(&error, &request_id);
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            resp.map(ReplyBody::full)
        }
    }
}

/// Request ids for the local server: a random per-process prefix and a counter.
#[derive(Debug)]
struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        // RandomState is seeded from the OS; hashing a constant yields a random-looking prefix.
        let prefix = RandomState::new().hash_one(0x5eed_u64) as u32;
        RequestIds {
            prefix,
            counter: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!(
            "local-{:08x}-{:06}",
            self.prefix,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }
}
