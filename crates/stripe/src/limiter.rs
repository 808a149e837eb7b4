//! A client-side rate limiter, so we stay under Stripe's per-account limits (25 requests
//! per second in test mode, 100 in live) instead of discovering them through 429s.
//!
//! It is a token bucket in its GCRA form: one "theoretical arrival time" advances by
//! `1/rate` per request, and a request may go as soon as that time is within `burst`
//! intervals of now. Waiting happens outside the lock, so callers queue fairly in the
//! order they reserved. Time is `tokio::time`, testable with paused time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    tat: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `per_second` requests per second on average, with bursts of up to `burst`
    /// requests at once. Both must be at least 1.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            tat: Mutex::new(None),
        }
    }

    /// Reserves a slot and returns how long the caller must wait before using it.
    pub fn reserve(&self) -> Duration {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let current = tat.map_or(now, |t| t.max(now));
        let allowed_at = current.checked_sub(self.tolerance).unwrap_or(now);
        let wait = allowed_at.saturating_duration_since(now);
        *tat = Some(current + self.interval);
        wait
    }

    /// Waits for a slot; returns the time spent waiting (for metrics).
    pub async fn acquire(&self) -> Duration {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate_after_the_burst() {
        let limiter = RateLimiter::new(10, 5);
        let start = Instant::now();
        for _ in 0..25 {
            limiter.acquire().await;
        }
        // 5 go at once, the other 20 at 10 per second.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(2000), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(2100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limiter_does_not_bank_more_than_the_burst() {
        let limiter = RateLimiter::new(10, 2);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let waits: Vec<_> = (0..4).map(|_| limiter.reserve()).collect();
        assert_eq!(waits[0], Duration::ZERO);
        assert_eq!(waits[1], Duration::ZERO);
        assert_eq!(waits[2], Duration::from_millis(100));
        assert_eq!(waits[3], Duration::from_millis(200));
    }
}
