//! Counters for `GET /metrics`, in the Prometheus text exposition format
//! (version 0.0.4), written by hand: a few atomics and one fixed-bucket
//! latency histogram per request kind need no metrics framework.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The unary request kinds whose latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// `Publish`.
    Publish,
    /// `Query`.
    Query,
    /// `BatchQuery`.
    BatchQuery,
    /// Any key-service call.
    KeyApi,
}

impl Rpc {
    const ALL: [Rpc; 4] = [Rpc::Publish, Rpc::Query, Rpc::BatchQuery, Rpc::KeyApi];

    fn label(self) -> &'static str {
        match self {
            Rpc::Publish => "publish",
            Rpc::Query => "query",
            Rpc::BatchQuery => "batch_query",
            Rpc::KeyApi => "key_api",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// The node's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Publish requests that succeeded.
    pub publishes: AtomicU64,
    /// Envelopes newly stored.
    pub envelopes_stored: AtomicU64,
    /// Envelopes refused as duplicates.
    pub envelopes_duplicate: AtomicU64,
    /// Queries answered (each query of a batch counts).
    pub queries: AtomicU64,
    /// Requests refused by a rate limit.
    pub rate_limited: AtomicU64,
    /// Requests refused as invalid.
    pub invalid_requests: AtomicU64,
    /// Subscribers cut off for lagging.
    pub lagged_subscribers: AtomicU64,
    /// Publishes refused for a missing or invalid token (`--require-auth`).
    pub unauthenticated: AtomicU64,
    /// Publishes refused because the token's wallet may not publish on a
    /// topic (another wallet's contact or privatestore topic).
    pub permission_denied: AtomicU64,
    latency: [Histogram; 4],
}

impl Metrics {
    /// Records the latency of one request.
    pub fn observe(&self, rpc: Rpc, elapsed: Duration) {
        let h = &self.latency[rpc.index()];
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        h.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition, with the current number of subscribers.
    pub fn render(&self, subscribers: usize) -> String {
        let mut out = String::new();
        let counters = [
            (
                "xmtp_node_publish_requests_total",
                "Publish requests that succeeded.",
                &self.publishes,
            ),
            (
                "xmtp_node_envelopes_stored_total",
                "Envelopes newly stored.",
                &self.envelopes_stored,
            ),
            (
                "xmtp_node_envelopes_duplicate_total",
                "Envelopes already stored.",
                &self.envelopes_duplicate,
            ),
            (
                "xmtp_node_queries_total",
                "Queries answered.",
                &self.queries,
            ),
            (
                "xmtp_node_rate_limited_total",
                "Requests refused by a rate limit.",
                &self.rate_limited,
            ),
            (
                "xmtp_node_invalid_requests_total",
                "Requests refused as invalid.",
                &self.invalid_requests,
            ),
            (
                "xmtp_node_lagged_subscribers_total",
                "Subscribers cut off for lagging.",
                &self.lagged_subscribers,
            ),
            (
                "xmtp_node_unauthenticated_total",
                "Publishes refused for a missing or invalid token.",
                &self.unauthenticated,
            ),
            (
                "xmtp_node_permission_denied_total",
                "Publishes refused for a topic the token's wallet may not publish on.",
                &self.permission_denied,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let name = "xmtp_node_subscribers";
        let _ = writeln!(
            out,
            "# HELP {name} Live subscriptions.\n# TYPE {name} gauge\n{name} {subscribers}"
        );
        let name = "xmtp_node_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Latency of unary requests.\n# TYPE {name} histogram"
        );
        for rpc in Rpc::ALL {
            let h = &self.latency[rpc.index()];
            let label = rpc.label();
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{rpc=\"{label}\",le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{rpc=\"{label}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{rpc=\"{label}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{rpc=\"{label}\"}} {count}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_rendered() {
        let m = Metrics::default();
        m.observe(Rpc::Query, Duration::from_micros(700));
        m.observe(Rpc::Query, Duration::from_millis(30));
        Metrics::inc(&m.publishes);
        let text = m.render(3);
        assert!(text.contains("xmtp_node_publish_requests_total 1\n"));
        assert!(text.contains("xmtp_node_subscribers 3\n"));
        assert!(text.contains(
            "xmtp_node_request_duration_seconds_bucket{rpc=\"query\",le=\"0.0005\"} 0\n"
        ));
        assert!(text
            .contains("xmtp_node_request_duration_seconds_bucket{rpc=\"query\",le=\"0.001\"} 1\n"));
        assert!(text
            .contains("xmtp_node_request_duration_seconds_bucket{rpc=\"query\",le=\"0.05\"} 2\n"));
        assert!(text.contains("xmtp_node_request_duration_seconds_count{rpc=\"query\"} 2\n"));
    }
}
