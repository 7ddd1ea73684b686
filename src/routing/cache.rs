//! Tier 2, the decision cache: LLM decisions reused for a TTL, per process.
//!
//! Keyed by the query's words: lower-cased (Unicode-aware), every run of characters that are not
//! letters or digits (spaces, punctuation, symbols) folded into one space, so `Access?`,
//! `access ?` and ` ACCESS ` share one entry while `s3 cost` and `s3-cost-x` differ only where
//! their letters differ. Bounded in entries, built on
//! `quick_cache` (a sharded, concurrent S3-FIFO cache). Expiry is lazy: an entry older than the TTL
//! is a miss and is removed when read. Time comes from `tokio::time`, so tests can pause it.

use std::time::Duration;

use quick_cache::sync::Cache;
use tokio::time::Instant;

use super::normalize::normalize_query;

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

    /// The cache key for a query: its lower-cased words, joined by single spaces.
    pub fn key(query: &str) -> String {
        let mut key = String::with_capacity(query.len());
        for word in normalize_query(query)
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if !key.is_empty() {
                key.push(' ');
            }
            key.push_str(word);
        }
        key
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

    #[cfg(test)]
    /// Number of entries held (expired ones included until read or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
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
    fn keys_fold_case_spacing_and_punctuation() {
        let cases = [
            ("access?", "access"),
            ("access ?", "access"),
            ("  ACCESS!! ", "access"),
            ("What's my bill?", "what s my bill"),
            ("s3-cost, please", "s3 cost please"),
            ("Coût  EC2…", "coût ec2"),
            ("東京の天気", "東京の天気"),
            ("?!", ""),
        ];
        for (query, key) in cases {
            assert_eq!(DecisionCache::key(query), key, "query {query:?}");
        }
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
