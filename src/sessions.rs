//! Conversations around the router: load a session's state within a short deadline, and save the
//! turn's outcome, through the [`SessionStore`] port. The routing policy itself is the core's
//! ([`crate::routing::SessionPolicy`]).
//!
//! Fail-open: a store that is slow, throttled or down costs a turn its session, never the
//! request. A load that does not answer within the deadline is routed as if the session were new
//! (`session.state: "unavailable"`); a save that fails is logged and counted, not retried.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ports::{SessionError, SessionState, SessionStore};
use crate::routing::{Conversation, Decision, RoutingMethod, truncate_bytes};

/// Longest previous user turn kept for the LLM's context, in bytes.
pub const MAX_CONTEXT_BYTES: usize = 500;

/// What the store said about a session before its turn was routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No earlier turn (or it expired).
    New,
    /// The session's state.
    Found(SessionState),
    /// The store failed or did not answer in time: route without the session.
    Unavailable(SessionError),
}

impl Loaded {
    /// The conversation to route the turn in, if there is one.
    pub fn conversation(&self) -> Option<Conversation<'_>> {
        match self {
            Loaded::Found(s) => Some(Conversation {
                agent: &s.agent,
                turns: s.turns,
                last_query: s.last_query.as_deref(),
            }),
            Loaded::New | Loaded::Unavailable(_) => None,
        }
    }
}

/// The session side of the router: a store, its deadline, the idle TTL and whether the previous
/// user turn is kept.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    timeout: Duration,
    ttl: Duration,
    keep_query: bool,
}

impl Sessions {
    /// Sessions in `store`, each call bounded by `timeout`, forgotten after `ttl` idle; with
    /// `keep_query` the previous user turn (at most [`MAX_CONTEXT_BYTES`]) is stored too.
    pub fn new(
        store: Arc<dyn SessionStore>,
        timeout: Duration,
        ttl: Duration,
        keep_query: bool,
    ) -> Sessions {
        Sessions {
            store,
            timeout,
            ttl,
            keep_query,
        }
    }

    /// Loads a session's state within the deadline.
    pub async fn load(&self, session_id: &str) -> Loaded {
        match tokio::time::timeout(self.timeout, self.store.load(session_id)).await {
            Ok(Ok(Some(state))) => Loaded::Found(state),
            Ok(Ok(None)) => Loaded::New,
            Ok(Err(e)) => Loaded::Unavailable(e),
            Err(_) => Loaded::Unavailable(SessionError::Timeout),
        }
    }

    /// The state to save after `decision` for the turn `query` of a session that was `loaded`:
    /// `None` when nothing changes (the default agent took a turn without a tier deciding, so
    /// the conversation keeps its agent), or when the store could not be read (its state may be
    /// newer than this turn knows).
    pub fn next_state(
        &self,
        loaded: &Loaded,
        query: &str,
        decision: &Decision,
    ) -> Option<SessionState> {
        if decision.routing_method == RoutingMethod::Default {
            return None;
        }
        let turns = match loaded {
            // The session's agent left the catalogue: the conversation starts over.
            Loaded::Found(s) if decision.session.is_some() => s.turns.saturating_add(1),
            Loaded::Found(_) | Loaded::New => 1,
            // The store could not be read: whatever it holds may be newer than this turn knows,
            // so it is left alone rather than overwritten with a conversation started afresh.
            Loaded::Unavailable(_) => return None,
        };
        Some(SessionState {
            agent: decision.agent.clone(),
            turns,
            updated_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            last_query: self
                .keep_query
                .then(|| truncate_bytes(query, MAX_CONTEXT_BYTES).to_owned()),
        })
    }

    /// Saves a session's state within the deadline; the error is returned for the caller to log
    /// and count.
    pub async fn save(&self, session_id: &str, state: &SessionState) -> Result<(), SessionError> {
        match tokio::time::timeout(self.timeout, self.store.save(session_id, state, self.ttl)).await
        {
            Ok(result) => result,
            Err(_) => Err(SessionError::Timeout),
        }
    }
}

/// A short, stable tag for a session id in logs (FNV-1a, 64 bits, as 16 hex digits): lines of one
/// conversation can be followed without the id itself, which is the caller's and may be personal.
pub fn session_tag(session_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in session_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{BrokenSessionStore, MemorySessionStore};

    #[tokio::test(start_paused = true)]
    async fn a_slow_store_is_cut_at_the_deadline() {
        let slow = Sessions::new(
            Arc::new(BrokenSessionStore::new(
                SessionError::Unavailable("down".into()),
                Duration::from_secs(5),
            )),
            Duration::from_millis(50),
            Duration::from_secs(1800),
            false,
        );
        let started = tokio::time::Instant::now();
        assert_eq!(
            slow.load("s").await,
            Loaded::Unavailable(SessionError::Timeout)
        );
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        let state = SessionState {
            agent: "cost".into(),
            turns: 1,
            updated_at: 0,
            last_query: None,
        };
        assert_eq!(slow.save("s", &state).await, Err(SessionError::Timeout));
    }

    #[tokio::test]
    async fn context_is_kept_only_when_enabled_and_bounded() {
        let decision = |agent: &str, method| Decision {
            agent: agent.into(),
            routing_method: method,
            reason: String::new(),
            fallback_reason: None,
            matched: Vec::new(),
            confidence: 1.0,
            timings_us: Default::default(),
            model_id: None,
            usage: None,
            session: None,
        };
        let store = Arc::new(MemorySessionStore::new(10));
        let long = "é".repeat(400);
        for keep in [false, true] {
            let s = Sessions::new(
                store.clone(),
                Duration::from_millis(50),
                Duration::from_secs(60),
                keep,
            );
            let next = s
                .next_state(&Loaded::New, &long, &decision("cost", RoutingMethod::Fast))
                .unwrap();
            assert_eq!(next.turns, 1);
            match (keep, next.last_query) {
                (false, q) => assert_eq!(q, None),
                (true, Some(q)) => assert!(q.len() <= MAX_CONTEXT_BYTES && q.starts_with('é')),
                (true, None) => panic!("context kept when enabled"),
            }
            assert_eq!(
                s.next_state(
                    &Loaded::New,
                    "x",
                    &decision("general", RoutingMethod::Default)
                ),
                None,
                "a fallback leaves the session alone"
            );
        }
    }

    #[test]
    fn tags_are_stable_and_hide_the_id() {
        assert_eq!(session_tag("s-42"), session_tag("s-42"));
        assert_ne!(session_tag("s-42"), session_tag("s-43"));
        assert_eq!(session_tag("s-42").len(), 16);
        assert!(!session_tag("secret-user@example.com").contains("secret"));
    }
}
