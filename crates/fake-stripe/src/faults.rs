//! Fault injection and Stripe-like rate limiting.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// What goes wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer with this status and a Stripe error body, without touching state.
    Status {
        status: u16,
        /// Sent as `Retry-After` (seconds).
        retry_after: Option<u64>,
        /// Sent as `Stripe-Should-Retry`.
        should_retry: Option<bool>,
    },
    /// Wait this long, then answer normally (a slow Stripe).
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

/// A fault and which requests it hits.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Only requests whose path starts with this; `None` for every path.
    pub path_prefix: Option<String>,
    /// Only requests with this method (`GET`, `POST`, …).
    pub method: Option<String>,
    /// Let this many matching requests through before the fault starts.
    pub skip: u32,
    /// How many matching requests it hits; `None` for all of them until cleared.
    pub times: Option<u32>,
}

impl Fault {
    /// The next `times` requests (any path) get this fault.
    pub fn next(times: u32, kind: FaultKind) -> Self {
        Self {
            kind,
            path_prefix: None,
            method: None,
            skip: 0,
            times: Some(times),
        }
    }

    /// Every request whose path starts with `prefix` gets this fault.
    pub fn on_path(prefix: &str, kind: FaultKind) -> Self {
        Self {
            kind,
            path_prefix: Some(prefix.to_owned()),
            method: None,
            skip: 0,
            times: None,
        }
    }

    pub fn status(status: u16) -> FaultKind {
        FaultKind::Status {
            status,
            retry_after: None,
            should_retry: None,
        }
    }

    pub fn after(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }

    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// The active faults, checked in the order they were added.
#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<Fault>,
}

impl Faults {
    pub fn add(&mut self, fault: Fault) {
        self.active.push(fault);
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// The fault that hits this request, if any, consuming one use of it.
    pub fn take(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let idx = self.active.iter().position(|f| f.matches(method, path))?;
        let fault = &mut self.active[idx];
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        let kind = fault.kind.clone();
        if let Some(times) = &mut fault.times {
            *times -= 1;
            if *times == 0 {
                self.active.remove(idx);
            }
        }
        Some(kind)
    }
}

/// A sliding one-second window, like Stripe's per-second limits.
#[derive(Debug)]
pub struct RateWindow {
    pub per_second: u32,
    recent: VecDeque<Instant>,
    pub rejected: u64,
}

impl RateWindow {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            recent: VecDeque::new(),
            rejected: 0,
        }
    }

    /// True when the request is within the limit (and counts it).
    pub fn admit(&mut self) -> bool {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= self.per_second {
            self.rejected += 1;
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_then_times_then_gone() {
        let mut f = Faults::default();
        f.add(
            Fault::on_path("/v1/products", Fault::status(500))
                .after(1)
                .times(2),
        );
        assert_eq!(f.take("GET", "/v1/prices"), None);
        assert_eq!(f.take("GET", "/v1/products"), None);
        assert!(f.take("GET", "/v1/products").is_some());
        assert!(f.take("GET", "/v1/products").is_some());
        assert_eq!(f.take("GET", "/v1/products"), None);
    }
}
