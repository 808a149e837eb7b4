//! One error type for everything that can go wrong talking to Stripe.
//!
//! Messages never contain an API key: Stripe's own "Invalid API Key provided" message
//! quotes part of the key, so [`scrub`] removes anything key-shaped from text that came
//! from the network before it is stored in an error.

use std::time::Duration;

/// The broad class of a failure, which decides how callers and operators react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The key was refused (401) or lacks a permission (403): fix the configuration.
    Auth,
    /// Stripe could not be reached, did not answer in time, or answered 5xx.
    Network,
    /// The circuit breaker is open; no request was sent.
    CircuitOpen,
    /// Stripe kept answering 429 after our retries.
    RateLimited,
    /// The object does not exist (404 `resource_missing`).
    NotFound,
    /// Any other error Stripe answered with (a 4xx about the request itself).
    Request,
    /// Stripe answered 2xx with a body we could not decode.
    Decode,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error status.
    #[error("Stripe answered {status}{}{}: {message}{}",
        error_type.as_deref().map(|t| format!(" {t}")).unwrap_or_default(),
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        request_id.as_deref().map(|r| format!(" [request {r}]")).unwrap_or_default())]
    Api {
        status: u16,
        /// Stripe's `error.type`, e.g. `invalid_request_error` (boxed, with
        /// `decline_code`, to keep the error small).
        error_type: Option<Box<str>>,
        /// Stripe's `error.code`, e.g. `resource_missing`.
        code: Option<String>,
        /// Stripe's `error.decline_code` on a card error (`authentication_required`,
        /// `insufficient_funds`, …).
        decline_code: Option<Box<str>>,
        /// Stripe's `error.message`, scrubbed of anything key-shaped.
        message: String,
        /// The `Request-Id` header, to quote to Stripe support.
        request_id: Option<String>,
    },
    /// The request never got an answer (connect refused, reset, DNS, TLS).
    #[error("could not reach Stripe at {base}: {source}")]
    Network {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    /// No answer within the configured timeout.
    #[error("Stripe did not answer within {timeout:?} ({base})")]
    Timeout { base: String, timeout: Duration },
    /// The breaker is open after repeated failures; nothing was sent.
    #[error(
        "Stripe calls are paused for {retry_in:?}: the circuit breaker opened after {failures} consecutive failures"
    )]
    CircuitOpen { failures: u32, retry_in: Duration },
    /// Stripe's answer was 2xx but not what we expected.
    #[error("could not decode Stripe's answer to {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StripeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StripeError::Api { status, code, .. } => match status {
                401 | 403 => ErrorKind::Auth,
                404 if code.as_deref() == Some("resource_missing") || code.is_none() => {
                    ErrorKind::NotFound
                }
                429 => ErrorKind::RateLimited,
                s if *s >= 500 => ErrorKind::Network,
                _ => ErrorKind::Request,
            },
            StripeError::Network { .. } | StripeError::Timeout { .. } => ErrorKind::Network,
            StripeError::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            StripeError::Decode { .. } => ErrorKind::Decode,
        }
    }

    /// True when the object asked for does not exist in Stripe.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// True when the problem is Stripe being unreachable rather than our request: the
    /// caller should keep serving local data and try later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Network | ErrorKind::CircuitOpen | ErrorKind::RateLimited
        )
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            StripeError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A card payment refused by the card's issuer or network (`card_error`, HTTP 402):
    /// the customer must act, retrying the same card will not help.
    pub fn is_card_error(&self) -> bool {
        matches!(self, StripeError::Api { status: 402, .. })
            || matches!(self, StripeError::Api { error_type: Some(t), .. } if &**t == "card_error")
    }

    /// A payment that needs the customer to authenticate (3-D Secure), which an
    /// off-session payment cannot do: `authentication_required` as the code or the
    /// decline code (docs.stripe.com/declines/codes), or, paying an invoice,
    /// `invoice_payment_intent_requires_action` (docs.stripe.com/error-codes).
    pub fn needs_authentication(&self) -> bool {
        match self {
            StripeError::Api {
                code, decline_code, ..
            } => [code.as_deref(), decline_code.as_deref()].iter().any(|c| {
                matches!(
                    c,
                    Some("authentication_required" | "invoice_payment_intent_requires_action")
                )
            }),
            _ => false,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            StripeError::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

/// Replaces anything that looks like a Stripe secret (`sk_…`, `rk_…`, `whsec_…`) with its
/// prefix and `***`. Applied to every string that came from the network.
pub fn scrub(text: &str) -> String {
    const PREFIXES: [&str; 3] = ["sk_", "rk_", "whsec_"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for p in PREFIXES {
            if rest.starts_with(p) {
                let body_len = rest[p.len()..]
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'*')
                    .count();
                out.push_str(p);
                out.push_str("***");
                rest = &rest[p.len() + body_len..];
                continue 'outer;
            }
        }
        let ch = rest.chars().next().expect("rest is not empty");
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_key_shapes() {
        assert_eq!(
            scrub("Invalid API Key provided: sk_test_51abc***wxyz"),
            "Invalid API Key provided: sk_***"
        );
        assert_eq!(scrub("rk_live_abc and whsec_zz!"), "rk_*** and whsec_***!");
        assert_eq!(scrub("no keys here: ask_me"), "no keys here: ask_***");
    }

    #[test]
    fn kinds() {
        let api = |status, code: Option<&str>| StripeError::Api {
            status,
            error_type: None,
            code: code.map(str::to_owned),
            decline_code: None,
            message: String::new(),
            request_id: Some("req_1".into()),
        };
        assert_eq!(api(401, None).kind(), ErrorKind::Auth);
        assert!(api(404, Some("resource_missing")).is_not_found());
        assert_eq!(
            api(400, Some("parameter_invalid")).kind(),
            ErrorKind::Request
        );
        assert!(api(503, None).is_unavailable());
        assert_eq!(
            api(429, None).to_string(),
            "Stripe answered 429:  [request req_1]"
        );
    }
}
