//! Tier 2, the decision cache: LLM decisions reused for a TTL, per process.
//!
//! Keyed by the normalised query (case and whitespace folded), bounded in entries, built on
//! `quick_cache` (a sharded, concurrent S3-FIFO cache). Expiry is lazy: an entry older than the TTL
//! is a miss and is removed when read. Time comes from `tokio::time`, so tests can pause it.

use std::time::Duration;

use quick_cache::sync::Cache;
use tokio::time::Instant;

use crate::normalize::normalize_query;

/// A bounded, expiring map from normalised query to agent index.
#[derive(Debug)]
pub struct DecisionCache {
    entries: Cache<String, (usize, Instant)>,
    ttl: Duration,
}

/// A cache hit: the agent and how long ago the LLM decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHit {
    /// Index of the cached agent.
    pub agent: usize,
    /// Age of the entry.
    pub age: Duration,
}

impl DecisionCache {
    /// A cache of at most `capacity` entries (at least 1) that live for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        DecisionCache {
            entries: Cache::new(capacity.max(1)),
            ttl,
        }
    }

    /// The cache key for a query.
    pub fn key(query: &str) -> String {
        normalize_query(query)
    }

    /// The cached decision for `key`, if fresh.
    pub fn get(&self, key: &str) -> Option<CacheHit> {
        let (agent, at) = self.entries.get(key)?;
        let age = at.elapsed();
        if age >= self.ttl {
            // Only if still expired: another request may have stored a fresh decision since.
            self.entries
                .remove_if(key, |(_, at)| at.elapsed() >= self.ttl);
            return None;
        }
        Some(CacheHit { agent, age })
    }

    /// Remembers that the LLM chose `agent` for `key`.
    pub fn insert(&self, key: String, agent: usize) {
        self.entries.insert(key, (agent, Instant::now()));
    }

    /// Number of entries held (expired ones included until read or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_after_ttl_and_folds_case() {
        let cache = DecisionCache::new(10, Duration::from_secs(300));
        cache.insert(DecisionCache::key("What  is MY bill"), 3);
        let hit = cache
            .get(&DecisionCache::key("what is my bill"))
            .expect("hit");
        assert_eq!(hit.agent, 3);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(cache.get("what is my bill").is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.get("what is my bill"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded() {
        let cache = DecisionCache::new(100, Duration::from_secs(60));
        for i in 0..1000 {
            cache.insert(format!("q{i}"), 0);
        }
        assert!(cache.len() <= 100, "{}", cache.len());
    }
}
