//! Retries of transient failures, with capped exponential backoff and jitter.
//!
//! The delay before retry `n` (counting from 0) is drawn uniformly from
//! `[d/2, d]` ("equal jitter"), where
//!
//! ```text
//! d = min(max_delay, base_delay * 2^n)
//! ```
//!
//! Halving the lower bound spreads clients that failed together (a node
//! restart) so they do not return in lock-step, while keeping a floor so a
//! retry never hammers a node that just said it is overloaded. Only errors
//! for which [`ApiError::is_retryable`] is true are retried: a refused request
//! (InvalidArgument, Unauthenticated, ...) fails at once.
//!
//! Retrying a publish is safe: the node stores a duplicate envelope once, so a
//! publish whose acknowledgement was lost can be sent again without creating a
//! second copy.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::ApiError;

/// How often and how patiently a failed call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (1 means no retry). 0 is
    /// treated as 1.
    pub max_attempts: u32,
    /// Backoff before the first retry (before jitter).
    pub base_delay: Duration,
    /// Upper bound of any single backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, backing off from 100 ms up to 5 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A policy that makes one attempt and never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// A policy with the given attempts and delays.
    pub fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts,
            base_delay,
            max_delay,
        }
    }

    /// The backoff ceiling before retry `retry` (0 for the first retry),
    /// without jitter: `min(max_delay, base_delay * 2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The jittered delay before retry `retry`, drawn uniformly from
    /// `[ceiling/2, ceiling]`.
    pub fn backoff<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let floor = ceiling / 2;
        let span = ceiling.saturating_sub(floor).as_nanos();
        let span = u64::try_from(span).unwrap_or(u64::MAX);
        let jitter = if span == 0 {
            0
        } else {
            rng.gen_range(0..=span)
        };
        floor + Duration::from_nanos(jitter)
    }

    /// Whether a failure on attempt `attempt` (1 for the first) may be
    /// followed by another attempt.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }

    /// Runs `call` until it succeeds, fails with a non-retryable error, or the
    /// attempts are used up; returns the last result. `what` names the call
    /// in logs.
    pub async fn run<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_retryable() && self.allows_another(attempt) => {
                    let delay = self.backoff(attempt - 1, &mut rand::thread_rng());
                    tracing::debug!(what, attempt, ?delay, %error, "retrying after a transient error");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(6, Duration::from_millis(100), Duration::from_secs(1))
    }

    #[test]
    fn ceiling_doubles_from_base_until_capped() {
        let ceilings: Vec<u64> = (0..8)
            .map(|n| policy().backoff_ceiling(n).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    }

    #[test]
    fn ceiling_does_not_overflow_on_huge_retry_counts() {
        assert_eq!(policy().backoff_ceiling(u32::MAX), Duration::from_secs(1));
        let huge = RetryPolicy::new(3, Duration::from_secs(u64::MAX / 4), Duration::MAX);
        assert_eq!(huge.backoff_ceiling(40), Duration::MAX);
    }

    #[test]
    fn jittered_backoff_stays_within_half_and_full_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 0..10 {
            let ceiling = policy().backoff_ceiling(retry);
            for _ in 0..200 {
                let delay = policy().backoff(retry, &mut rng);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "retry {retry}: {delay:?} vs {ceiling:?}"
                );
            }
        }
    }

    #[test]
    fn jitter_actually_spreads_delays() {
        let mut rng = StdRng::seed_from_u64(1);
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| policy().backoff(3, &mut rng)).collect();
        assert!(delays.len() > 40, "only {} distinct delays", delays.len());
    }

    #[test]
    fn zero_attempts_still_makes_one() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        assert!(!p.allows_another(1));
        assert!(policy().allows_another(5));
        assert!(!policy().allows_another(6));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = policy()
            .run("test", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(ApiError::Unavailable("down".into()))
                } else {
                    Ok(42)
                }
            })
            .await;
        assert_eq!(result.unwrap(), 42);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_stop_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy()
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ApiError::ResourceExhausted("slow down".into()))
            })
            .await;
        assert!(matches!(result, Err(ApiError::ResourceExhausted(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy()
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ApiError::InvalidArgument("too big".into()))
            })
            .await;
        assert!(matches!(result, Err(ApiError::InvalidArgument(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn total_sleep_follows_the_schedule() {
        let start = tokio::time::Instant::now();
        let _: Result<(), _> = policy()
            .run("test", || async {
                Err(ApiError::Unavailable("down".into()))
            })
            .await;
        let slept = start.elapsed();
        // Five backoffs with ceilings 100+200+400+800+1000 ms, each at least half.
        assert!(slept >= Duration::from_millis(1250), "{slept:?}");
        assert!(slept <= Duration::from_millis(2500), "{slept:?}");
    }
}
