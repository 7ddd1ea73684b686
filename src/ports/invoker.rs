//! The port to the agents ([`Invoker`]) and its test double ([`StaticInvoker`]).
//!
//! [`crate::dispatch::Dispatcher`] invokes the chosen agent through an [`Invoker`];
//! [`crate::aws::LambdaInvoker`] is the real adapter (Lambda `Invoke`, and
//! `InvokeWithResponseStream` for agents that stream). [`ChannelInvoker`] is a double whose
//! streamed answers a test writes chunk by chunk.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

/// A future returned by an [`Invoker`].
pub type InvokeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Invocation, InvokeError>> + Send + 'a>>;

/// A future returned by [`Invoker::invoke_stream`].
pub type InvokeStreamFuture<'a> =
    Pin<Box<dyn Future<Output = Result<InvocationStream, InvokeError>> + Send + 'a>>;

/// The port to the agents: call a target synchronously with a JSON payload.
pub trait Invoker: Send + Sync + std::fmt::Debug {
    /// Invokes `target` (function name, ARN or alias) with `payload`, within `timeout`.
    fn invoke<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> InvokeFuture<'a>;

    /// Invokes `target` and hands back its answer as it is written, chunk by chunk (Lambda's
    /// `InvokeWithResponseStream`). The stream is read on demand: a reader that stops reading
    /// holds the agent back, and dropping the stream abandons the invocation.
    ///
    /// The default calls [`Invoker::invoke`] and yields the whole answer as one chunk, for
    /// invokers that cannot stream.
    fn invoke_stream<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> InvokeStreamFuture<'a> {
        Box::pin(async move {
            let invocation = self.invoke(target, payload, timeout).await?;
            let (tx, stream) = InvocationStream::channel(2);
            // Capacity 2 holds both items, so these sends cannot wait.
            let _ = tx.chunk(Bytes::from(invocation.payload)).await;
            let _ = tx
                .complete(Completion {
                    error_code: invocation.function_error,
                    error_details: None,
                })
                .await;
            Ok(stream)
        })
    }
}

/// One item of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// Bytes the function wrote (Lambda's `PayloadChunk`).
    Chunk(Bytes),
    /// The end of the invocation (Lambda's `InvokeComplete`), successful or not.
    Complete(Completion),
}

/// How a streamed invocation ended (Lambda's `InvokeComplete` event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// Set when the function failed, before or while writing (e.g. `Unhandled`).
    pub error_code: Option<String>,
    /// The function's error details, when it failed.
    pub error_details: Option<String>,
}

/// A streamed answer, read with [`InvocationStream::next`]. Dropping it abandons the invocation.
#[derive(Debug)]
pub struct InvocationStream {
    source: Source,
}

#[derive(Debug)]
enum Source {
    Channel(mpsc::Receiver<Result<StreamItem, InvokeError>>),
    Reader(Box<dyn StreamReader>),
}

/// A source of [`StreamItem`]s read one at a time, for adapters that wrap a client's own stream
/// (such as the AWS SDK's event receiver) without a task or a buffer in between.
pub trait StreamReader: Send + std::fmt::Debug {
    /// The next item; `None` once the stream has ended.
    fn next_item(&mut self) -> NextItemFuture<'_>;
}

/// A future returned by [`StreamReader::next_item`].
pub type NextItemFuture<'a> =
    Pin<Box<dyn Future<Output = Option<Result<StreamItem, InvokeError>>> + Send + 'a>>;

impl InvocationStream {
    /// A stream fed through a bounded channel of `capacity` items (at least 1): the writer waits
    /// while the reader is behind.
    pub fn channel(capacity: usize) -> (StreamSender, InvocationStream) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            StreamSender { tx },
            InvocationStream {
                source: Source::Channel(rx),
            },
        )
    }

    /// A stream read from `reader`.
    pub fn from_reader(reader: Box<dyn StreamReader>) -> InvocationStream {
        InvocationStream {
            source: Source::Reader(reader),
        }
    }

    /// The next item; `None` once the stream has ended (with or without a
    /// [`StreamItem::Complete`]).
    pub async fn next(&mut self) -> Option<Result<StreamItem, InvokeError>> {
        match &mut self.source {
            Source::Channel(rx) => rx.recv().await,
            Source::Reader(reader) => reader.next_item().await,
        }
    }
}

/// The writing end of [`InvocationStream::channel`].
#[derive(Debug, Clone)]
pub struct StreamSender {
    tx: mpsc::Sender<Result<StreamItem, InvokeError>>,
}

/// The reader of a stream has gone: the invocation was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the reader abandoned the stream")]
pub struct Abandoned;

impl StreamSender {
    /// Sends a chunk, waiting while the channel is full.
    pub async fn chunk(&self, bytes: impl Into<Bytes>) -> Result<(), Abandoned> {
        self.send(Ok(StreamItem::Chunk(bytes.into()))).await
    }

    /// Ends the stream with `completion`.
    pub async fn complete(&self, completion: Completion) -> Result<(), Abandoned> {
        self.send(Ok(StreamItem::Complete(completion))).await
    }

    /// Sends an item or a failure as is.
    pub async fn send(&self, item: Result<StreamItem, InvokeError>) -> Result<(), Abandoned> {
        self.tx.send(item).await.map_err(|_| Abandoned)
    }

    /// Resolves when the reader has dropped the stream.
    pub async fn abandoned(&self) {
        self.tx.closed().await
    }

    /// Whether the reader has dropped the stream.
    pub fn is_abandoned(&self) -> bool {
        self.tx.is_closed()
    }

    /// Items sent and not yet read.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// What the agent's function returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The response payload.
    pub payload: Vec<u8>,
    /// Set when the function raised an error (`Handled` / `Unhandled`); the payload then holds
    /// `{"errorMessage", "errorType"}`.
    pub function_error: Option<String>,
}

/// Why an invocation produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No answer within the timeout.
    #[error("the agent did not answer in time")]
    Timeout,
    /// The Lambda service throttled the call; retry after this many seconds if known.
    #[error("throttled: {message}")]
    Throttled {
        /// The service's message.
        message: String,
        /// Seconds to wait before retrying, when the service said.
        retry_after: Option<u64>,
    },
    /// The target function does not exist.
    #[error("function not found: {0}")]
    NotFound(String),
    /// The router may not invoke the target.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The service could not be reached or answered with another error.
    #[error("{0}")]
    Failed(String),
}

/// An [`Invoker`] double that answers every call with the same outcome and records payloads.
#[derive(Debug)]
pub struct StaticInvoker {
    outcome: Result<Invocation, InvokeError>,
    delay: Duration,
    calls: std::sync::Mutex<Vec<(String, Vec<u8>)>>,
}

impl StaticInvoker {
    /// A double that waits `delay` (tokio time) and then returns `outcome`.
    pub fn new(outcome: Result<Invocation, InvokeError>, delay: Duration) -> Self {
        StaticInvoker {
            outcome,
            delay,
            calls: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The `(target, payload)` of every call so far.
    pub fn calls(&self) -> Vec<(String, Vec<u8>)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Invoker for StaticInvoker {
    fn invoke<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        _timeout: Duration,
    ) -> InvokeFuture<'a> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((target.to_owned(), payload));
        }
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.outcome.clone()
        })
    }
}

/// An [`Invoker`] double for streamed answers: every [`Invoker::invoke_stream`] call hands the
/// test a [`StreamCall`] (target, payload and the [`StreamSender`] to write the answer with),
/// so a test decides when each chunk is produced. Buffered [`Invoker::invoke`] calls are refused.
#[derive(Debug)]
pub struct ChannelInvoker {
    calls: mpsc::UnboundedSender<StreamCall>,
    capacity: usize,
}

/// One streamed invocation received by a [`ChannelInvoker`].
#[derive(Debug)]
pub struct StreamCall {
    /// The target invoked.
    pub target: String,
    /// The payload sent.
    pub payload: Vec<u8>,
    /// Writes the answer.
    pub sender: StreamSender,
}

impl ChannelInvoker {
    /// A double whose streams buffer at most `capacity` items, and the receiver of its calls.
    pub fn new(capacity: usize) -> (ChannelInvoker, mpsc::UnboundedReceiver<StreamCall>) {
        let (calls, rx) = mpsc::unbounded_channel();
        (ChannelInvoker { calls, capacity }, rx)
    }
}

impl Invoker for ChannelInvoker {
    fn invoke<'a>(
        &'a self,
        target: &'a str,
        _payload: Vec<u8>,
        _timeout: Duration,
    ) -> InvokeFuture<'a> {
        Box::pin(async move {
            Err(InvokeError::Failed(format!(
                "ChannelInvoker only streams (called for {target})"
            )))
        })
    }

    fn invoke_stream<'a>(
        &'a self,
        target: &'a str,
        payload: Vec<u8>,
        _timeout: Duration,
    ) -> InvokeStreamFuture<'a> {
        Box::pin(async move {
            let (sender, stream) = InvocationStream::channel(self.capacity);
            let call = StreamCall {
                target: target.to_owned(),
                payload,
                sender,
            };
            self.calls
                .send(call)
                .map_err(|_| InvokeError::Failed("the test stopped listening".into()))?;
            Ok(stream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffered_invokers_stream_their_whole_answer_as_one_chunk() {
        let invoker = StaticInvoker::new(
            Ok(Invocation {
                payload: b"whole answer".to_vec(),
                function_error: None,
            }),
            Duration::ZERO,
        );
        let mut stream = invoker
            .invoke_stream("t", b"{}".to_vec(), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            stream.next().await,
            Some(Ok(StreamItem::Chunk(Bytes::from_static(b"whole answer"))))
        );
        assert_eq!(
            stream.next().await,
            Some(Ok(StreamItem::Complete(Completion::default())))
        );
        assert_eq!(stream.next().await, None);
    }

    #[tokio::test]
    async fn a_dropped_stream_is_seen_as_abandoned() {
        let (tx, stream) = InvocationStream::channel(1);
        tx.chunk("a").await.unwrap();
        assert_eq!(tx.queued(), 1);
        assert!(!tx.is_abandoned());
        drop(stream);
        tx.abandoned().await;
        assert_eq!(tx.chunk("b").await, Err(Abandoned));
    }
}
