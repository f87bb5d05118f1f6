//! Per-client token buckets, one set for publishes and one for reads.
//!
//! A client is its peer IP address: headers such as `x-client-id` are chosen
//! by the client and so cannot identify it for abuse control. Each bucket
//! holds up to `burst` tokens and refills at `per_second`; a request costs one
//! token per envelope (publish) or per query (reads) and is refused with
//! [`RateLimited`] when the bucket cannot pay. Full, idle buckets are dropped
//! when the table grows, so memory stays bounded by the active clients.

use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Instant};

/// Limits of one bucket kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketConfig {
    /// Tokens added per second.
    pub per_second: f64,
    /// Largest balance (the burst a client may spend at once).
    pub burst: f64,
}

/// A request was refused for want of tokens.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("rate limit exceeded: at most {per_second} per second with bursts of {burst}")]
pub struct RateLimited {
    /// The configured refill rate.
    pub per_second: f64,
    /// The configured burst.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A table of buckets keyed by client address.
#[derive(Debug)]
pub struct RateLimiter {
    config: BucketConfig,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Above this many tracked clients, full buckets are pruned.
const PRUNE_ABOVE: usize = 10_000;

impl RateLimiter {
    /// A limiter with the given limits.
    pub fn new(config: BucketConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` tokens from `client`'s bucket, or refuses.
    pub fn check(&self, client: IpAddr, cost: u32) -> Result<(), RateLimited> {
        self.check_at(client, cost, Instant::now())
    }

    fn check_at(&self, client: IpAddr, cost: u32, now: Instant) -> Result<(), RateLimited> {
        let BucketConfig { per_second, burst } = self.config;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_second
                    < burst
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated = now;
        let cost = f64::from(cost);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(RateLimited { per_second, burst })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn burst_is_spent_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(BucketConfig {
            per_second: 2.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check_at(A, 1, t0).unwrap();
        }
        assert!(limiter.check_at(A, 1, t0).is_err());
        assert!(
            limiter.check_at(B, 1, t0).is_ok(),
            "clients have separate buckets"
        );
        let later = t0 + Duration::from_millis(500);
        limiter.check_at(A, 1, later).unwrap();
        assert!(limiter.check_at(A, 1, later).is_err());
    }

    #[test]
    fn a_request_costing_more_than_the_balance_is_refused_whole() {
        let limiter = RateLimiter::new(BucketConfig {
            per_second: 1.0,
            burst: 5.0,
        });
        let t0 = Instant::now();
        assert!(limiter.check_at(A, 6, t0).is_err());
        limiter.check_at(A, 5, t0).unwrap();
    }
}
