//! The local server's `GET /stats`: counts and latency percentiles since the process started,
//! kept in memory (bounded: fixed-size histograms, one counter per agent and routing method).
//! Not exposed through API Gateway; in Lambda the CloudWatch metrics say the same per minute.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::routing::{Decision, FallbackReason, RoutingMethod};
use crate::shadow::ShadowResult;

/// Relative width of a latency bucket: percentiles are within 2 % of the true value.
const GROWTH: f64 = 1.02;
/// Buckets cover 1 µs to about 48 minutes.
const BUCKETS: usize = 1100;

/// A latency histogram in microseconds with logarithmic buckets.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        let b = ((us as f64 + 1.0).ln() / GROWTH.ln()) as usize;
        b.min(BUCKETS - 1)
    }

    fn record(&mut self, us: u64) {
        self.counts[Histogram::bucket(us)] += 1;
        self.total += 1;
    }

    /// The `p`-th percentile (0 to 100): the upper bound of the bucket that holds it.
    fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some((GROWTH.powi(b as i32 + 1) - 1.0).round() as u64);
            }
        }
        None
    }

    fn summary(&self) -> Value {
        json!({
            "count": self.total,
            "p50": self.percentile(50.0),
            "p95": self.percentile(95.0),
            "p99": self.percentile(99.0),
        })
    }
}

#[derive(Debug)]
struct Inner {
    requests: u64,
    by_status: BTreeMap<u16, u64>,
    by_method: BTreeMap<&'static str, u64>,
    by_agent: BTreeMap<String, u64>,
    fallbacks: BTreeMap<&'static str, u64>,
    llm_calls: u64,
    llm_failures: u64,
    shadow_asked: u64,
    shadow_agreed: u64,
    shadow_failed: u64,
    shadow_by_agent: BTreeMap<String, (u64, u64)>,
    route: Histogram,
    llm: Histogram,
    agent: Histogram,
    total: Histogram,
}

/// Counters and latency histograms since start, for `GET /stats`.
#[derive(Debug)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Stats {
        Stats {
            inner: Mutex::new(Inner {
                requests: 0,
                by_status: BTreeMap::new(),
                by_method: BTreeMap::new(),
                by_agent: BTreeMap::new(),
                fallbacks: BTreeMap::new(),
                llm_calls: 0,
                llm_failures: 0,
                shadow_asked: 0,
                shadow_agreed: 0,
                shadow_failed: 0,
                shadow_by_agent: BTreeMap::new(),
                route: Histogram::new(),
                llm: Histogram::new(),
                agent: Histogram::new(),
                total: Histogram::new(),
            }),
        }
    }

    /// Counts one request: its status, total time and, when it was routed, its decision.
    pub fn record(&self, decision: Option<&Decision>, status: u16, total_us: u64) {
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        s.requests += 1;
        *s.by_status.entry(status).or_default() += 1;
        s.total.record(total_us);
        let Some(d) = decision else {
            return;
        };
        *s.by_method.entry(d.routing_method.as_str()).or_default() += 1;
        *s.by_agent.entry(d.agent.clone()).or_default() += 1;
        s.route.record(d.timings_us.route);
        if let Some(llm) = d.timings_us.llm {
            s.llm_calls += 1;
            s.llm.record(llm);
        }
        if let Some(agent) = d.timings_us.agent {
            s.agent.record(agent);
        }
        if let Some(reason) = d.fallback_reason {
            *s.fallbacks.entry(reason.as_str()).or_default() += 1;
            if !matches!(
                reason,
                FallbackReason::LlmDisabled | FallbackReason::LlmUnrecognisedAnswer
            ) {
                s.llm_failures += 1;
            }
        }
    }

    /// Counts one second opinion (one skipped because Bedrock throttles is not counted).
    pub fn record_shadow(&self, r: &ShadowResult) {
        if r.opinion == crate::routing::SecondOpinion::Skipped {
            return;
        }
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        s.shadow_asked += 1;
        if r.failed() {
            s.shadow_failed += 1;
        }
        if let Some(agrees) = r.agrees() {
            s.shadow_agreed += u64::from(agrees);
            let e = s.shadow_by_agent.entry(r.agent.clone()).or_default();
            e.0 += u64::from(agrees);
            e.1 += 1;
        }
    }

    /// The `/stats` document.
    pub fn snapshot(&self) -> Value {
        let Ok(s) = self.inner.lock() else {
            return json!({});
        };
        let routed: u64 = s.by_method.values().sum();
        let cache = s
            .by_method
            .get(RoutingMethod::Cache.as_str())
            .copied()
            .unwrap_or(0);
        let answered: u64 = s.shadow_by_agent.values().map(|v| v.1).sum();
        let rate = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        let counts = |m: &BTreeMap<&'static str, u64>, key: &str| -> Vec<Value> {
            m.iter()
                .map(|(k, v)| json!({ key: k, "count": v }))
                .collect()
        };
        json!({
            "requests": s.requests,
            "by_status": s.by_status.iter().map(|(k, v)| json!({"status": k, "count": v})).collect::<Vec<_>>(),
            "routed": routed,
            "by_routing_method": counts(&s.by_method, "routing_method"),
            "by_agent": s.by_agent.iter().map(|(k, v)| json!({"agent": k, "count": v})).collect::<Vec<_>>(),
            "cache_hit_rate": rate(cache, cache + s.llm_calls),
            "llm": {"calls": s.llm_calls, "failures": s.llm_failures, "fallbacks": counts(&s.fallbacks, "fallback_reason")},
            "shadow": {
                "asked": s.shadow_asked,
                "failed": s.shadow_failed,
                "agreement": rate(s.shadow_agreed, answered),
                "by_agent": s.shadow_by_agent.iter().map(|(a, (agree, n))| {
                    json!({"agent": a, "answered": n, "agreement": rate(*agree, *n)})
                }).collect::<Vec<_>>(),
            },
            "latency_us": {
                "total": s.total.summary(),
                "route": s.route.summary(),
                "llm": s.llm.summary(),
                "agent": s.agent.summary(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(us);
        }
        for (p, want) in [(50.0, 5_000.0), (95.0, 9_500.0), (99.0, 9_900.0)] {
            let got = h.percentile(p).unwrap() as f64;
            assert!((got - want).abs() / want <= 0.021, "p{p}: {got} vs {want}");
        }
        assert_eq!(Histogram::new().percentile(50.0), None);
        let mut one = Histogram::new();
        one.record(0);
        assert_eq!(one.percentile(99.0), Some(0));
        one.record(u64::MAX);
        assert!(
            one.percentile(100.0).is_some(),
            "huge values land in the last bucket"
        );
    }
}
