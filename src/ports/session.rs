//! The port to the conversation store ([`SessionStore`]), its in-process adapter
//! ([`MemorySessionStore`]) and a failing test double ([`BrokenSessionStore`]).
//!
//! A session is what routing needs to keep a conversation with its agent: the agent that took
//! the last turn, when, and how many turns there were; the previous query only when the operator
//! enables it (`ROUTER_SESSION_CONTEXT=on`). [`crate::aws::DynamoDbSessionStore`] is the adapter
//! for Lambda, where one conversation's turns land on different instances.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use quick_cache::sync::Cache;

/// What the store keeps of one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The agent that took the conversation's last routed turn.
    pub agent: String,
    /// Turns routed in this session so far.
    pub turns: u32,
    /// When the last turn was routed, in seconds since the Unix epoch.
    pub updated_at: u64,
    /// The last user turn's text, kept only when context is enabled (bounded by the caller).
    pub last_query: Option<String>,
}

/// Why the store could not answer. The router then routes the turn without its session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store did not answer within its deadline.
    #[error("the session store did not answer in time")]
    Timeout,
    /// The store throttled the call.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The store could not be reached or answered with an error.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A future returned by a [`SessionStore`].
pub type SessionFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SessionError>> + Send + 'a>>;

/// The port to the conversation store: one record per session id, read and replaced whole.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// The session's state, or `None` when there is none or it has been idle for longer than
    /// the TTL it was saved with.
    fn load<'a>(&'a self, session_id: &'a str) -> SessionFuture<'a, Option<SessionState>>;

    /// Replaces the session's state; it expires after `ttl` without another save.
    fn save<'a>(
        &'a self,
        session_id: &'a str,
        state: &'a SessionState,
        ttl: Duration,
    ) -> SessionFuture<'a, ()>;
}

/// The in-process store: bounded in entries (least recently used go first, via `quick_cache`),
/// each expiring after its TTL. Time comes from `tokio::time`, so tests can pause it. The
/// default for the local server; in Lambda it only remembers the turns one instance saw.
#[derive(Debug)]
pub struct MemorySessionStore {
    entries: Cache<String, (SessionState, tokio::time::Instant)>,
}

impl MemorySessionStore {
    /// A store of at most `capacity` sessions (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemorySessionStore {
            entries: Cache::new(capacity.max(1)),
        }
    }
}

impl SessionStore for MemorySessionStore {
    fn load<'a>(&'a self, session_id: &'a str) -> SessionFuture<'a, Option<SessionState>> {
        let now = tokio::time::Instant::now();
        let found = match self.entries.get(session_id) {
            Some((state, expires)) if expires > now => Some(state),
            Some(_) => {
                // Only if still expired: a concurrent turn may have saved a fresh state.
                self.entries.remove_if(session_id, |(_, e)| *e <= now);
                None
            }
            None => None,
        };
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(
        &'a self,
        session_id: &'a str,
        state: &'a SessionState,
        ttl: Duration,
    ) -> SessionFuture<'a, ()> {
        let expires = tokio::time::Instant::now() + ttl;
        self.entries
            .insert(session_id.to_owned(), (state.clone(), expires));
        Box::pin(async { Ok(()) })
    }
}

/// A [`SessionStore`] double that is down: every call waits `delay` (tokio time), then fails
/// with `error`. For fail-open tests.
#[derive(Debug)]
pub struct BrokenSessionStore {
    error: SessionError,
    delay: Duration,
}

impl BrokenSessionStore {
    /// A store whose every call fails with `error` after `delay`.
    pub fn new(error: SessionError, delay: Duration) -> Self {
        BrokenSessionStore { error, delay }
    }
}

impl SessionStore for BrokenSessionStore {
    fn load<'a>(&'a self, _session_id: &'a str) -> SessionFuture<'a, Option<SessionState>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            Err(self.error.clone())
        })
    }

    fn save<'a>(
        &'a self,
        _session_id: &'a str,
        _state: &'a SessionState,
        _ttl: Duration,
    ) -> SessionFuture<'a, ()> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            Err(self.error.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(agent: &str, turns: u32) -> SessionState {
        SessionState {
            agent: agent.into(),
            turns,
            updated_at: 0,
            last_query: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn memory_store_keeps_and_expires() {
        let store = MemorySessionStore::new(10);
        let ttl = Duration::from_secs(1800);
        assert_eq!(store.load("s").await, Ok(None));
        store.save("s", &state("cost", 1), ttl).await.unwrap();
        assert_eq!(store.load("s").await, Ok(Some(state("cost", 1))));
        tokio::time::advance(Duration::from_secs(1799)).await;
        store.save("s", &state("cost", 2), ttl).await.unwrap();
        tokio::time::advance(Duration::from_secs(1799)).await;
        assert_eq!(
            store.load("s").await,
            Ok(Some(state("cost", 2))),
            "idle TTL restarts"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.load("s").await, Ok(None), "expired");
    }

    #[test]
    fn memory_store_is_bounded() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = MemorySessionStore::new(100);
            for i in 0..1000 {
                store
                    .save(&format!("s{i}"), &state("cost", 1), Duration::from_secs(60))
                    .await
                    .unwrap();
            }
            assert!(store.entries.len() <= 100, "{}", store.entries.len());
        });
    }
}
