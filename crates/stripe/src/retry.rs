//! The retry policy as plain data.
//!
//! Stripe's guidance: `Stripe-Should-Retry` is authoritative when present; otherwise
//! retry network errors, 409 (lock timeout), 424, 429 and 5xx, honour `Retry-After`,
//! and back off exponentially with jitter up to a cap. Everything else (a 400, 401,
//! 402, 403, 404) is a problem with the request that repeating will not fix.

use std::time::Duration;

/// What one attempt produced, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No answer: connection refused or reset, or a body cut short.
    Network,
    /// No answer within the timeout.
    Timeout,
    /// An HTTP answer.
    Response {
        status: u16,
        /// The `Stripe-Should-Retry` header, when Stripe sent one.
        should_retry: Option<bool>,
        /// The `Retry-After` header in seconds, when present.
        retry_after: Option<Duration>,
    },
}

/// The policy's decision after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Wait this long, then send the same request again (same idempotency key).
    RetryAfter(Duration),
    /// Give up and report this attempt's error.
    Stop,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// The backoff ceiling before jitter for the first retry; doubles each retry.
    pub initial_backoff: Duration,
    /// The largest backoff ceiling.
    pub max_backoff: Duration,
    /// The longest `Retry-After` we are willing to wait; a longer one ends the call, so
    /// that one caller is never parked for minutes.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Close to Stripe's own libraries: a few retries, 0.5 s doubling up to 8 s.
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0-based), with full jitter: a uniform
    /// draw between zero and the exponential ceiling. `unit` is that draw in `[0, 1)`,
    /// passed in so the schedule is testable.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let ceiling = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(self.max_backoff);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Whether an attempt's outcome is worth another try at all, ignoring the count.
    pub fn is_retryable(attempt: &Attempt) -> bool {
        match attempt {
            Attempt::Network | Attempt::Timeout => true,
            Attempt::Response {
                status,
                should_retry,
                ..
            } => match should_retry {
                Some(explicit) => *explicit,
                None => matches!(status, 409 | 424 | 429) || *status >= 500,
            },
        }
    }

    /// Decides what to do after retry number `retries_done` failed with `attempt`.
    pub fn decide(&self, retries_done: u32, attempt: &Attempt, unit: f64) -> Verdict {
        if retries_done >= self.max_retries || !Self::is_retryable(attempt) {
            return Verdict::Stop;
        }
        let backoff = self.backoff(retries_done, unit);
        match attempt {
            Attempt::Response {
                retry_after: Some(after),
                ..
            } => {
                if *after > self.max_retry_after {
                    Verdict::Stop
                } else {
                    Verdict::RetryAfter((*after).max(backoff))
                }
            }
            _ => Verdict::RetryAfter(backoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16) -> Attempt {
        Attempt::Response {
            status,
            should_retry: None,
            retry_after: None,
        }
    }

    #[test]
    fn retries_exactly_the_transient_statuses() {
        let p = RetryPolicy::default();
        for s in [409, 424, 429, 500, 502, 503, 504] {
            assert!(
                matches!(p.decide(0, &resp(s), 0.5), Verdict::RetryAfter(_)),
                "{s}"
            );
        }
        for s in [400, 401, 402, 403, 404] {
            assert_eq!(p.decide(0, &resp(s), 0.5), Verdict::Stop, "{s}");
        }
        assert!(matches!(
            p.decide(0, &Attempt::Network, 0.5),
            Verdict::RetryAfter(_)
        ));
        assert!(matches!(
            p.decide(0, &Attempt::Timeout, 0.5),
            Verdict::RetryAfter(_)
        ));
    }

    #[test]
    fn stripe_should_retry_is_authoritative() {
        let p = RetryPolicy::default();
        let no = Attempt::Response {
            status: 500,
            should_retry: Some(false),
            retry_after: None,
        };
        assert_eq!(p.decide(0, &no, 0.5), Verdict::Stop);
        let yes = Attempt::Response {
            status: 400,
            should_retry: Some(true),
            retry_after: None,
        };
        assert!(matches!(p.decide(0, &yes, 0.5), Verdict::RetryAfter(_)));
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_gives_up() {
        let p = RetryPolicy::default();
        let a = Attempt::Response {
            status: 429,
            should_retry: None,
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(
            p.decide(0, &a, 0.0),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
        let long = Attempt::Response {
            status: 429,
            should_retry: None,
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(p.decide(0, &long, 0.0), Verdict::Stop);
    }

    #[test]
    fn backoff_doubles_under_a_cap_with_full_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(500));
        assert_eq!(p.backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(p.backoff(10, 1.0), Duration::from_secs(8));
        assert_eq!(p.backoff(40, 1.0), Duration::from_secs(8));
        assert_eq!(p.backoff(2, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(2, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn stops_after_max_retries() {
        let p = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        };
        assert!(matches!(
            p.decide(1, &resp(500), 0.1),
            Verdict::RetryAfter(_)
        ));
        assert_eq!(p.decide(2, &resp(500), 0.1), Verdict::Stop);
    }
}
