//! Second opinions, sampled: the LLM is asked about a share of the queries the fast path decided
//! outside a conversation, so production says how often those decisions agree with the LLM's,
//! with no label from anyone. The user's answer never waits for it.
//!
//! [`Shadows`] decides which requests get one: a rate (`ROUTER_SHADOW_RATE`), a per-process cap
//! per second (`ROUTER_SHADOW_MAX_PER_SEC`, a token bucket), never for a decision the LLM already
//! made, and never while the model service throttles ([`crate::routing::Router::second_opinion`]).

use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::routing::{Decision, RoutingMethod, SecondOpinion, SessionStatus};

/// What became of a sampled second opinion, for the metrics, the stats and the decision log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowResult {
    /// The agent the decision gave.
    pub agent: String,
    /// The LLM's answer.
    pub opinion: SecondOpinion,
}

impl ShadowResult {
    /// `Some(true)` when the LLM named the same agent, `Some(false)` another one (or none of
    /// them); `None` when it could not answer.
    pub fn agrees(&self) -> Option<bool> {
        match &self.opinion {
            SecondOpinion::Agent(a) => Some(*a == self.agent),
            SecondOpinion::Unrecognised => Some(false),
            SecondOpinion::Failed(_) | SecondOpinion::Skipped => None,
        }
    }

    /// Whether the call failed (counted, never retried).
    pub fn failed(&self) -> bool {
        matches!(self.opinion, SecondOpinion::Failed(_))
    }
}

/// Which decisions get a second opinion.
#[derive(Debug)]
pub struct Shadows {
    rate: f64,
    max_per_sec: f64,
    /// Also on `GET`/`POST /route`, where the answer is sent before the opinion comes back:
    /// right for a long-lived process, not in Lambda, which freezes after each response.
    on_route: bool,
    seed: u64,
    counter: AtomicU64,
    bucket: Mutex<(f64, Option<tokio::time::Instant>)>,
}

impl Shadows {
    /// Samples `rate` (0 to 1) of the eligible decisions, at most `max_per_sec` a second per
    /// process; `on_route`: also on `/route` (spawned after the answer).
    pub fn new(rate: f64, max_per_sec: f64, on_route: bool) -> Shadows {
        Shadows {
            rate: rate.clamp(0.0, 1.0),
            max_per_sec: max_per_sec.max(0.0),
            on_route,
            // Seeded by the OS: processes do not sample the same requests.
            seed: RandomState::new().hash_one(0x5ad0_u64),
            counter: AtomicU64::new(0),
            bucket: Mutex::new((max_per_sec.max(0.0), None)),
        }
    }

    /// Whether `/route` requests are sampled too.
    pub fn on_route(&self) -> bool {
        self.on_route
    }

    /// Whether this decision gets a second opinion: a fast-path decision, drawn at the rate,
    /// within the per-second cap. Not a conversation's turn: the LLM would be asked without the
    /// conversation, so its answer would not be comparable.
    pub fn sample(&self, decision: &Decision) -> bool {
        let in_conversation = decision
            .session
            .as_ref()
            .is_some_and(|s| s.state == SessionStatus::Continued);
        if decision.routing_method != RoutingMethod::Fast || in_conversation || self.rate <= 0.0 {
            return false;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        if unit(splitmix(self.seed ^ n)) >= self.rate {
            return false;
        }
        self.take_token()
    }

    /// One token of the per-second bucket, refilled continuously.
    fn take_token(&self) -> bool {
        let Ok(mut b) = self.bucket.lock() else {
            return false;
        };
        let now = tokio::time::Instant::now();
        let (tokens, last) = &mut *b;
        if let Some(last) = *last {
            let refill = now.duration_since(last).as_secs_f64() * self.max_per_sec;
            *tokens = (*tokens + refill).min(self.max_per_sec.max(1.0));
        }
        *last = Some(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// SplitMix64: a well-mixed 64-bit value from a counter.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A 64-bit value as a number in [0, 1).
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Timings;
    use std::time::Duration;

    fn decision(method: RoutingMethod) -> Decision {
        Decision {
            agent: "cost".into(),
            routing_method: method,
            reason: String::new(),
            fallback_reason: None,
            matched: Vec::new(),
            confidence: 1.0,
            timings_us: Timings::default(),
            model_id: None,
            usage: None,
            session: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn samples_at_the_rate_within_the_cap() {
        let fast = decision(RoutingMethod::Fast);
        // Rate 0.25, cap high enough not to bind: about a quarter of 10,000.
        let s = Shadows::new(0.25, 1e9, true);
        let n = (0..10_000).filter(|_| s.sample(&fast)).count();
        assert!((2_300..=2_700).contains(&n), "{n}");
        // Never for what the LLM (or its cache, or the default agent) decided.
        let all = Shadows::new(1.0, 1e9, true);
        for m in [
            RoutingMethod::Llm,
            RoutingMethod::Cache,
            RoutingMethod::Default,
        ] {
            assert!(!all.sample(&decision(m)), "{m:?}");
        }
        assert!(
            !all.sample(&decision(RoutingMethod::Session)),
            "no context, no comparison"
        );
        assert!(!Shadows::new(0.0, 1e9, true).sample(&fast));
        // The cap: 5 a second, whatever the rate.
        let capped = Shadows::new(1.0, 5.0, true);
        let first = (0..100).filter(|_| capped.sample(&fast)).count();
        assert_eq!(first, 5);
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!((0..100).filter(|_| capped.sample(&fast)).count(), 2);
    }

    #[test]
    fn agreement() {
        let r = |opinion| ShadowResult {
            agent: "cost".into(),
            opinion,
        };
        assert_eq!(r(SecondOpinion::Agent("cost".into())).agrees(), Some(true));
        assert_eq!(
            r(SecondOpinion::Agent("security".into())).agrees(),
            Some(false)
        );
        assert_eq!(r(SecondOpinion::Unrecognised).agrees(), Some(false));
        let failed = r(SecondOpinion::Failed(
            crate::routing::FallbackReason::LlmTimeout,
        ));
        assert_eq!((failed.agrees(), failed.failed()), (None, true));
        assert_eq!(r(SecondOpinion::Skipped).agrees(), None);
    }
}
