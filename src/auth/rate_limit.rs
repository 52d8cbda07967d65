//! Per-token request rate limiting: one in-memory token bucket per SCIM token, refilled at a
//! steady rate up to a burst capacity. Buckets run on the monotonic clock ([`Instant`]), not
//! wall time, and idle buckets (which would be full anyway) are dropped so memory stays
//! bounded by the number of tokens in recent use.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often, at most, idle buckets are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One token bucket.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub(crate) fn full(capacity: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token at `now`, or says how long until one is available.
    pub(crate) fn try_take(
        &mut self,
        now: Instant,
        rate: f64,
        capacity: f64,
    ) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        if now > self.last {
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }

    /// Whether the bucket has been idle long enough to be full again at `now`.
    fn is_full_at(&self, now: Instant, rate: f64, capacity: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate >= capacity
    }
}

/// Token buckets keyed by `K`.
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    rate: f64,
    capacity: f64,
    state: Mutex<State<K>>,
}

#[derive(Debug)]
struct State<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep: Option<Instant>,
}

impl<K: Eq + Hash> RateLimiter<K> {
    /// `rate_per_second` refills per second, at most `burst` at once; zeros count as one.
    pub(crate) fn new(rate_per_second: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate_per_second.max(1)),
            capacity: f64::from(burst.max(1)),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Takes one request from `key`'s bucket at `now`, or returns how many whole seconds to
    /// wait before retrying (at least 1).
    pub(crate) fn check(&self, key: K, now: Instant) -> Result<(), u64> {
        let (rate, capacity) = (self.rate, self.capacity);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .last_sweep
            .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY)
        {
            state
                .buckets
                .retain(|_, b| !b.is_full_at(now, rate, capacity));
            state.last_sweep = Some(now);
        }
        state
            .buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(capacity, now))
            .try_take(now, rate, capacity)
            .map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// How many buckets are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .buckets
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_the_burst_then_refuses_with_a_retry_after_of_at_least_a_second() {
        let limiter = RateLimiter::new(1, 3);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.check("a", t0), Ok(()), "request {i}");
        }
        let retry = limiter.check("a", t0).expect_err("fourth is refused");
        assert!(retry >= 1, "{retry}");
        // Another key has its own bucket.
        assert_eq!(limiter.check("b", t0), Ok(()));
    }

    #[test]
    fn a_bucket_refills_at_the_configured_rate() {
        let limiter = RateLimiter::new(2, 2);
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", t0), Ok(()));
        assert_eq!(limiter.check("a", t0), Ok(()));
        assert!(limiter.check("a", t0).is_err());
        // Half a second refills one request at 2/s, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check("a", t1), Ok(()));
        assert!(limiter.check("a", t1).is_err());
        // A long pause refills no more than the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(limiter.check("a", t2), Ok(()));
        assert_eq!(limiter.check("a", t2), Ok(()));
        assert!(limiter.check("a", t2).is_err());
    }

    #[test]
    fn retry_after_rounds_the_wait_up_to_whole_seconds() {
        let mut bucket = Bucket::full(1.0, Instant::now());
        let now = Instant::now() + Duration::from_millis(1);
        let rate = 0.25;
        assert_eq!(bucket.try_take(now, rate, 1.0), Ok(()));
        let wait = bucket.try_take(now, rate, 1.0).expect_err("empty");
        assert!(wait > Duration::from_secs(3), "{wait:?}");
        let limiter = RateLimiter::new(1, 1);
        assert_eq!(limiter.check(1, now), Ok(()));
        assert_eq!(limiter.check(1, now + Duration::from_millis(10)), Err(1));
    }

    #[test]
    fn idle_buckets_are_swept_so_memory_stays_bounded() {
        let limiter = RateLimiter::new(10, 5);
        let t0 = Instant::now();
        for key in 0..1000 {
            assert_eq!(limiter.check(key, t0), Ok(()));
        }
        assert_eq!(limiter.len(), 1000);
        let later = t0 + SWEEP_EVERY;
        assert_eq!(limiter.check(5000, later), Ok(()));
        assert_eq!(limiter.len(), 1, "only the bucket just used is left");
    }

    #[test]
    fn a_bucket_never_refills_when_time_seems_to_run_backwards() {
        let limiter = RateLimiter::new(1, 1);
        let t0 = Instant::now() + Duration::from_secs(10);
        assert_eq!(limiter.check("a", t0), Ok(()));
        assert!(limiter.check("a", t0 - Duration::from_secs(5)).is_err());
        assert!(limiter.check("a", t0).is_err());
    }
}
