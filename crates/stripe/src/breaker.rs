//! A circuit breaker: after `failure_threshold` consecutive failed attempts (no answer,
//! timeout, or a 5xx) it opens, and calls fail at once without touching the network.
//! After `open_for` one probe is let through (half-open): success closes the circuit,
//! failure opens it again for another `open_for`.
//!
//! Any HTTP answer below 500, even a 4xx, proves Stripe is reachable and counts as a
//! success here; a bad key is a configuration problem, not an outage.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the open period ends.
    Open,
    /// One probe call is allowed through to test recovery.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe is allowed.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 10,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Returned when the breaker refuses a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub failures: u32,
    /// Time until the next probe may go through.
    pub retry_in: Duration,
}

/// Permission to make one attempt. Report its outcome with [`Permit::success`] or
/// [`Permit::failure`]; a permit dropped without an outcome (a cancelled call) frees the
/// probe slot without changing the state.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(true);
    }

    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(false);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.lock().probe_in_flight = false;
        }
    }
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to make one attempt.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let mut inner = self.lock();
        match inner.state {
            CircuitState::Closed => Ok(Permit {
                breaker: self,
                probe: false,
                done: false,
            }),
            CircuitState::Open | CircuitState::HalfOpen => {
                let opened_at = inner.opened_at.unwrap_or_else(Instant::now);
                let elapsed = opened_at.elapsed();
                if elapsed >= self.config.open_for && !inner.probe_in_flight {
                    inner.state = CircuitState::HalfOpen;
                    inner.probe_in_flight = true;
                    Ok(Permit {
                        breaker: self,
                        probe: true,
                        done: false,
                    })
                } else {
                    Err(Rejected {
                        failures: inner.consecutive_failures,
                        retry_in: self.config.open_for.saturating_sub(elapsed),
                    })
                }
            }
        }
    }

    fn record(&self, ok: bool) {
        let mut inner = self.lock();
        inner.probe_in_flight = false;
        if ok {
            if inner.state != CircuitState::Closed {
                tracing::info!("Stripe circuit breaker closed: a probe succeeded");
            }
            inner.state = CircuitState::Closed;
            inner.consecutive_failures = 0;
            inner.opened_at = None;
            return;
        }
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let reopen = inner.state == CircuitState::HalfOpen;
        if reopen || inner.consecutive_failures >= self.config.failure_threshold {
            if inner.state == CircuitState::Closed {
                tracing::warn!(
                    failures = inner.consecutive_failures,
                    "Stripe circuit breaker opened"
                );
            }
            inner.state = CircuitState::Open;
            inner.opened_at = Some(Instant::now());
        }
    }

    /// The current state. An open circuit whose open period has passed reports
    /// `half_open`: the next call will be the probe.
    pub fn state(&self) -> CircuitState {
        let inner = self.lock();
        match (inner.state, inner.opened_at) {
            (CircuitState::Open, Some(at)) if at.elapsed() >= self.config.open_for => {
                CircuitState::HalfOpen
            }
            (state, _) => state,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_probes_then_closes() {
        let b = breaker();
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        assert_eq!(b.state(), CircuitState::Open);
        let rejected = b.try_acquire().unwrap_err();
        assert_eq!(rejected.retry_in, Duration::from_secs(10));

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.state(), CircuitState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        // Only one probe at a time.
        assert!(b.try_acquire().is_err());
        probe.success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_for_a_full_period() {
        let b = breaker();
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(
            b.try_acquire().unwrap_err().retry_in,
            Duration::from_secs(10)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker();
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_the_slot() {
        let b = breaker();
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(b.try_acquire().unwrap());
        assert!(b.try_acquire().is_ok());
    }
}
