//! A token bucket: the per-client frame and join budgets.

use tokio::time::Instant;

/// Refills `rate` tokens per second up to `burst`; each admitted event takes one.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A `rate` of zero disables the limit.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            rate: f64::from(rate),
            last: now,
        }
    }

    /// Takes a token if one is available.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert!((0..5).all(|_| b.try_take(t0)), "the burst is admitted");
        assert!(!b.try_take(t0), "one past the burst is refused");
        assert!(
            b.try_take(t0 + Duration::from_millis(100)),
            "refilled at 10/s"
        );
        assert!(!b.try_take(t0 + Duration::from_millis(100)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..5).all(|_| b.try_take(later)));
        assert!(!b.try_take(later));
    }

    #[test]
    fn zero_rate_disables() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, 0, t0);
        assert!((0..10_000).all(|_| b.try_take(t0)));
    }
}
