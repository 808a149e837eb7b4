//! The idempotency keys we send to Stripe, built from an action and the parts that make
//! one operation (an account, the caller's key, a payment…).
//!
//! Every part is length-prefixed (`sm-cancel:3:x:y:1:z`): with plain separators an
//! account `x:y` with key `z` and an account `x` with key `y:z` made the same key, and
//! Stripe would have answered one account's call with the other's result (or refused it
//! as a mismatched replay) for 24 hours. Stripe takes at most 255 characters
//! (docs.stripe.com/api/idempotent_requests: "Idempotency keys are up to 255 characters
//! long."): a longer key is replaced by its SHA-256, the same for the same parts, so a
//! retry still maps to one operation.

use sha2::{Digest, Sha256};

/// Stripe's limit on an idempotency key's length.
pub const MAX_KEY_LEN: usize = 255;

/// The key for `action` over `parts`: `sm-{action}:{len}:{part}:…`, or
/// `sm-sha256:{hex}` of that when it would exceed [`MAX_KEY_LEN`].
pub fn idempotency_key(action: &str, parts: &[&str]) -> String {
    let mut key = format!("sm-{action}");
    for part in parts {
        key.push_str(&format!(":{}:{part}", part.len()));
    }
    if key.len() <= MAX_KEY_LEN {
        key
    } else {
        format!("sm-sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cannot_run_into_each_other() {
        assert_ne!(
            idempotency_key("cancel", &["x:y", "z"]),
            idempotency_key("cancel", &["x", "y:z"])
        );
        assert_ne!(
            idempotency_key("refund", &["a", "b:c", "d"]),
            idempotency_key("refund", &["a:b", "c", "d"])
        );
        assert_eq!(
            idempotency_key("cancel", &["x:y", "z"]),
            "sm-cancel:3:x:y:1:z"
        );
    }

    #[test]
    fn keys_fit_stripes_limit_and_stay_stable() {
        let account = "a".repeat(128);
        let caller = "k".repeat(200);
        let long = idempotency_key("cancel", &[&account, &caller]);
        assert!(long.len() <= MAX_KEY_LEN, "{}", long.len());
        assert_eq!(long, idempotency_key("cancel", &[&account, &caller]));
        assert_ne!(long, idempotency_key("resume", &[&account, &caller]));
    }
}
