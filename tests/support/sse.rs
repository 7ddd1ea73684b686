//! A minimal HTTP/1.1 client for streamed answers: sends one request, then reads the chunked
//! response body as it arrives and splits it into Server-Sent Events, so a test sees each event
//! when the router sends it (and can stop reading, or hang up, at any point).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One server-sent event: its name and its data lines joined with `\n`, as an SSE client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:` field.
    pub name: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl Event {
    /// The data as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }
}

/// A streamed response being read.
pub struct SseClient {
    stream: TcpStream,
    /// Raw bytes read and not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet split into events.
    body: Vec<u8>,
    /// Bytes left in the current chunk, or `None` between chunks.
    chunk_left: Option<usize>,
    ended: bool,
    /// Status code.
    pub status: u16,
    /// Response headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl SseClient {
    /// Sends `POST path` with `body` and `Accept: text/event-stream` (unless `accept` says
    /// otherwise), and reads the response head.
    pub async fn post(addr: std::net::SocketAddr, path: &str, body: &str, accept: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\naccept: {accept}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut client = SseClient {
            stream,
            raw: Vec::new(),
            body: Vec::new(),
            chunk_left: None,
            ended: false,
            status: 0,
            headers: Vec::new(),
        };
        let end = loop {
            if let Some(i) = client.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(
                client.read_more().await,
                "connection closed before the head"
            );
        };
        let head = String::from_utf8(client.raw[..end].to_vec()).unwrap();
        client.raw.drain(..end + 4);
        let mut lines = head.split("\r\n");
        client.status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        client.headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        client
    }

    /// A response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    async fn read_more(&mut self) -> bool {
        let mut buf = vec![0u8; 256 * 1024];
        let n = self.stream.read(&mut buf).await.unwrap_or(0);
        self.raw.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// De-chunks what has been read so far.
    fn dechunk(&mut self) {
        while !self.ended {
            match self.chunk_left {
                Some(0) => {
                    if self.raw.len() < 2 {
                        return;
                    }
                    self.raw.drain(..2);
                    self.chunk_left = None;
                }
                Some(n) => {
                    let take = n.min(self.raw.len());
                    if take == 0 {
                        return;
                    }
                    self.body.extend(self.raw.drain(..take));
                    self.chunk_left = Some(n - take);
                }
                None => {
                    let Some(i) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                        return;
                    };
                    let line = String::from_utf8(self.raw[..i].to_vec()).unwrap();
                    let size = usize::from_str_radix(line.trim(), 16).unwrap_or_else(|e| {
                        panic!(
                            "{e}: {line:?} then {:?}",
                            String::from_utf8_lossy(&self.raw[..self.raw.len().min(200)])
                        )
                    });
                    self.raw.drain(..i + 2);
                    if size == 0 {
                        self.ended = true;
                        return;
                    }
                    self.chunk_left = Some(size);
                }
            }
        }
    }

    /// The next event, or `None` when the body has ended. Panics after `limit` without one.
    pub async fn next_event_within(&mut self, limit: Duration) -> Option<Event> {
        tokio::time::timeout(limit, self.next_event())
            .await
            .expect("no event in time")
    }

    /// The next event, or `None` when the body has ended.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            self.dechunk();
            if let Some(i) = self.body.windows(2).position(|w| w == b"\n\n") {
                let text = String::from_utf8(self.body[..i].to_vec()).unwrap();
                self.body.drain(..i + 2);
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in text.split('\n') {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => name = value.to_owned(),
                        "data" => data.push(value.to_owned()),
                        _ => {}
                    }
                }
                return Some(Event {
                    name,
                    data: data.join("\n"),
                });
            }
            if self.ended {
                assert!(self.body.is_empty(), "body ends mid-event");
                return None;
            }
            if !self.read_more().await {
                return None;
            }
        }
    }

    /// Every remaining event.
    pub async fn rest(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next_event_within(Duration::from_secs(60)).await {
            out.push(e);
        }
        out
    }
}
