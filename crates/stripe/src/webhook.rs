//! Webhook signature verification: a pure function over the raw body and the
//! `Stripe-Signature` header.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 under the endpoint secret and sends
//! `t=<unix>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`. While a secret is being rolled the header
//! carries one `v1` per valid secret, and we may hold several secrets too, so an event is
//! authentic when **any** `v1` matches **any** configured secret (one popular crate
//! checks only the last `v1`, which breaks rotation). `v0` (a test-mode scheme) is
//! ignored. The timestamp must be within the tolerance in both directions, and digests
//! are compared in constant time.
//!
//! The only way to get a [`Verified`] event is [`verify`], so code that stores or applies
//! events can demand one in its signature and can never be handed unverified input.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::keys::WebhookSecrets;

/// Why a delivery was refused. Each has a stable code for the `400` answer and metrics;
/// none of them carries a secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the Stripe-Signature header is missing")]
    MissingHeader,
    #[error("the Stripe-Signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1,
    #[error(
        "the signature timestamp is {age_secs} s away from now, more than the {tolerance_secs} s tolerance"
    )]
    TimestampOutsideTolerance { age_secs: i64, tolerance_secs: u64 },
    #[error("no v1 signature matches any configured webhook secret")]
    NoMatchingSignature,
    #[error("the body is not JSON")]
    BodyNotJson,
    #[error("the body is not a Stripe event: {0}")]
    NotAnEvent(&'static str),
    #[error("no webhook secret is configured (STRIPE_WEBHOOK_SECRET)")]
    NoSecretConfigured,
}

impl Rejection {
    /// The snake_case code used in the `400` body and as a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingHeader => "missing_signature",
            Rejection::MalformedHeader(_) => "malformed_signature",
            Rejection::NoV1 => "no_v1_signature",
            Rejection::TimestampOutsideTolerance { .. } => "timestamp_outside_tolerance",
            Rejection::NoMatchingSignature => "signature_mismatch",
            Rejection::BodyNotJson => "body_not_json",
            Rejection::NotAnEvent(_) => "body_not_event",
            Rejection::NoSecretConfigured => "webhooks_not_configured",
        }
    }
}

/// The parts of an event the inbox needs; the whole body is kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    id: String,
    kind: String,
    created: i64,
    livemode: bool,
    api_version: Option<String>,
    body: String,
}

impl Verified {
    /// The event id (`evt_…`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event type, e.g. `product.updated`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn created(&self) -> i64 {
        self.created
    }

    pub fn livemode(&self) -> bool {
        self.livemode
    }

    pub fn api_version(&self) -> Option<&str> {
        self.api_version.as_deref()
    }

    /// The body exactly as Stripe sent it.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// [`Verified::body`], owned, without a copy.
    pub fn into_body(self) -> String {
        self.body
    }
}

/// A parsed `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    /// Every `v1` digest, decoded.
    pub v1: Vec<[u8; 32]>,
}

/// Parses `t=…,v1=…[,v1=…][,v0=…]` strictly: every element is `key=value`, `t` appears
/// exactly once as an integer, every `v1` is 64 hex digits. Other schemes are ignored.
pub fn parse_header(header: &str) -> Result<SignatureHeader, Rejection> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for element in header.split(',') {
        let element = element.trim();
        let (key, value) = element
            .split_once('=')
            .ok_or(Rejection::MalformedHeader("an element is not key=value"))?;
        if key.is_empty() || value.is_empty() {
            return Err(Rejection::MalformedHeader(
                "an element has an empty key or value",
            ));
        }
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(Rejection::MalformedHeader("t appears more than once"));
                }
                let t = value
                    .parse::<i64>()
                    .ok()
                    .filter(|t| *t > 0)
                    .ok_or(Rejection::MalformedHeader("t is not a unix timestamp"))?;
                timestamp = Some(t);
            }
            "v1" => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(value, &mut digest).map_err(|_| {
                    Rejection::MalformedHeader("a v1 signature is not 64 hex digits")
                })?;
                v1.push(digest);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Rejection::MalformedHeader("t is missing"))?;
    if v1.is_empty() {
        return Err(Rejection::NoV1);
    }
    Ok(SignatureHeader { timestamp, v1 })
}

/// HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn compute_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

#[derive(Deserialize)]
struct EventShape {
    id: Option<String>,
    object: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    created: Option<i64>,
    #[serde(default)]
    livemode: bool,
    api_version: Option<String>,
    data: Option<EventDataShape>,
}

#[derive(Deserialize)]
struct EventDataShape {
    /// Only whether it is there (and not `null`): skipped, not built into a tree, since
    /// the worker parses the payload anyway.
    object: Option<serde::de::IgnoredAny>,
}

/// An event read from Stripe's Events API with our own key. It is authentic by the
/// way it was fetched (no signature involved), so it may enter the inbox like a
/// verified delivery; its shape is checked the same way.
pub fn from_events_api(raw: &str) -> Result<Verified, Rejection> {
    event_shape(raw.to_owned())
}

/// Everything that can be checked before the body is read: a secret is configured, the
/// header is present and well formed, its timestamp within the tolerance. The HTTP
/// handler calls it first, so a delivery that cannot verify is refused without
/// buffering its body.
pub fn check_header(
    secrets: Option<&WebhookSecrets>,
    header: Option<&str>,
    now: i64,
    tolerance: Duration,
) -> Result<SignatureHeader, Rejection> {
    secrets.ok_or(Rejection::NoSecretConfigured)?;
    let header = parse_header(header.ok_or(Rejection::MissingHeader)?)?;
    let age = now.saturating_sub(header.timestamp);
    if age.unsigned_abs() > tolerance.as_secs() {
        return Err(Rejection::TimestampOutsideTolerance {
            age_secs: age,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(header)
}

/// Verifies a delivery. `now` is unix seconds; `tolerance` applies both ways.
///
/// `body` is taken by value (a `Vec`, or `Bytes` converted without a copy when it is
/// the only handle): the verified event keeps it as its text without copying it again.
pub fn verify(
    secrets: Option<&WebhookSecrets>,
    header: Option<&str>,
    body: impl Into<Vec<u8>>,
    now: i64,
    tolerance: Duration,
) -> Result<Verified, Rejection> {
    let body: Vec<u8> = body.into();
    let header = check_header(secrets, header, now, tolerance)?;
    let secrets = secrets.ok_or(Rejection::NoSecretConfigured)?;
    // Compare every pair without stopping early, so timing does not reveal which
    // secret or which signature matched.
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets.expose_all() {
        let expected = compute_signature(secret, header.timestamp, &body);
        for candidate in &header.v1 {
            matched |= expected.ct_eq(candidate);
        }
    }
    if !bool::from(matched) {
        return Err(Rejection::NoMatchingSignature);
    }
    let text = String::from_utf8(body).map_err(|_| Rejection::BodyNotJson)?;
    event_shape(text)
}

fn event_shape(text: String) -> Result<Verified, Rejection> {
    let shape: EventShape = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) if e.is_data() => return Err(Rejection::NotAnEvent("it is not a JSON object")),
        Err(_) => return Err(Rejection::BodyNotJson),
    };
    let id = shape.id.ok_or(Rejection::NotAnEvent("id is missing"))?;
    if !id.starts_with("evt_")
        || id.len() > 255
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Rejection::NotAnEvent("id is not an evt_ id"));
    }
    if shape.object.as_deref() != Some("event") {
        return Err(Rejection::NotAnEvent("object is not \"event\""));
    }
    let kind = shape.kind.ok_or(Rejection::NotAnEvent("type is missing"))?;
    // Stripe's types are short dotted lowercase names (`invoice.paid`,
    // `v2.core.event_destination.ping`); anything else is not one of its events.
    if kind.is_empty()
        || kind.len() > 100
        || !kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
    {
        return Err(Rejection::NotAnEvent("type is not an event type"));
    }
    let created = shape
        .created
        .ok_or(Rejection::NotAnEvent("created is missing"))?;
    if shape
        .api_version
        .as_deref()
        .is_some_and(|v| v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(Rejection::NotAnEvent("api_version is not an API version"));
    }
    if shape.data.and_then(|d| d.object).is_none() {
        return Err(Rejection::NotAnEvent("data.object is missing"));
    }
    if !scalars_parse(text.as_bytes()) {
        return Err(Rejection::BodyNotJson);
    }
    Ok(Verified {
        id,
        kind,
        created,
        livemode: shape.livemode,
        api_version: shape.api_version,
        body: text,
    })
}

/// What serde_json checks in a full parse but not when it skips a field the shape
/// ignores (found by fuzzing): every `\u` escape is valid UTF-16 (no lone surrogate),
/// every number is one serde_json reads (`1e400` is not: out of range), and nothing is
/// nested deeper than its recursion limit. A body failing either was stored
/// and then refused by the worker's full parse, for ever. One pass over the bytes, no
/// allocation: the body already passed serde's syntax check, so only strings' escapes
/// and number tokens need looking at.
fn scalars_parse(b: &[u8]) -> bool {
    let hex4 = |at: usize| -> Option<u16> {
        let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    };
    // serde_json refuses a document nested deeper than this (its recursion limit of 128
    // counts the way in as one more), but skips a deeper ignored field without counting.
    const MAX_DEPTH: usize = 127;
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] != b'\\' {
                        i += 1;
                        continue;
                    }
                    if b.get(i + 1) != Some(&b'u') {
                        i += 2;
                        continue;
                    }
                    let Some(unit) = hex4(i + 2) else {
                        return false;
                    };
                    i += 6;
                    match unit {
                        0xD800..=0xDBFF => {
                            // A high surrogate must be followed by an escaped low one.
                            if b.get(i..i + 2) != Some(b"\\u".as_slice())
                                || !matches!(hex4(i + 2), Some(0xDC00..=0xDFFF))
                            {
                                return false;
                            }
                            i += 6;
                        }
                        0xDC00..=0xDFFF => return false,
                        _ => {}
                    }
                }
                i += 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                // serde_json's own number parser, so the answer is the worker's whatever
                // its features (`float_roundtrip` changes where a number overflows).
                let token = std::str::from_utf8(&b[start..i]).unwrap_or("x");
                if serde_json::from_str::<serde_json::Number>(token).is_err() {
                    return false;
                }
            }
            _ => i += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &str = r#"{"id":"evt_1","object":"event","type":"product.updated","created":1700000000,"livemode":false,"data":{"object":{"id":"prod_1"}}}"#;
    /// Computed outside this code, with Python:
    /// `hmac.new(b"whsec_test_secret", b"1700000000." + BODY, hashlib.sha256).hexdigest()`
    const PY_SIGNATURE: &str = "ce07d08865f56b77979d9d15b0b229e7c02a7df954887c6627b0da555a3ca627";

    fn secrets(list: &str) -> WebhookSecrets {
        WebhookSecrets::parse(list).unwrap()
    }

    fn ok(header: &str, list: &str) -> Result<Verified, Rejection> {
        verify(
            Some(&secrets(list)),
            Some(header),
            BODY.as_bytes(),
            1_700_000_010,
            Duration::from_secs(300),
        )
    }

    #[test]
    fn an_independently_computed_signature_verifies() {
        let v = ok(&format!("t=1700000000,v1={PY_SIGNATURE}"), SECRET).unwrap();
        assert_eq!(
            (v.id(), v.kind(), v.created()),
            ("evt_1", "product.updated", 1_700_000_000)
        );
        assert_eq!(v.body(), BODY);
        assert_eq!(
            hex::encode(compute_signature(
                SECRET.as_bytes(),
                1_700_000_000,
                BODY.as_bytes()
            )),
            PY_SIGNATURE
        );
    }

    #[test]
    fn rotation_any_v1_against_any_secret() {
        let other = "a".repeat(64);
        // The matching signature first, then last; two secrets configured either way round.
        for header in [
            format!("t=1700000000,v1={PY_SIGNATURE},v1={other}"),
            format!("t=1700000000,v1={other},v1={PY_SIGNATURE},v0={other}"),
        ] {
            assert!(
                ok(&header, &format!("whsec_old,{SECRET}")).is_ok(),
                "{header}"
            );
            assert!(
                ok(&header, &format!("{SECRET}, whsec_new")).is_ok(),
                "{header}"
            );
        }
    }

    #[test]
    fn every_rejection_has_its_reason() {
        let s = secrets(SECRET);
        let body = BODY.as_bytes();
        let at = |h: &str, now: i64| verify(Some(&s), Some(h), body, now, Duration::from_secs(300));
        let good = format!("t=1700000000,v1={PY_SIGNATURE}");
        assert_eq!(
            verify(
                Some(&s),
                None,
                body,
                1_700_000_000,
                Duration::from_secs(300)
            )
            .unwrap_err()
            .code(),
            "missing_signature"
        );
        assert_eq!(
            verify(
                None,
                Some(&good),
                body,
                1_700_000_000,
                Duration::from_secs(300)
            )
            .unwrap_err()
            .code(),
            "webhooks_not_configured"
        );
        for bad in [
            "garbage",
            "t=abc,v1=00",
            "v1=00",
            &format!("t=1,t=2,v1={PY_SIGNATURE}"),
            "t=1700000000,v1=zz",
            "t=,v1=aa",
        ] {
            assert_eq!(
                at(bad, 1_700_000_000).unwrap_err().code(),
                "malformed_signature",
                "{bad}"
            );
        }
        assert_eq!(
            at("t=1700000000,v0=abc", 1_700_000_000).unwrap_err().code(),
            "no_v1_signature"
        );
        assert_eq!(
            at(&good, 1_700_000_301).unwrap_err().code(),
            "timestamp_outside_tolerance"
        );
        assert_eq!(
            at(&good, 1_699_999_699).unwrap_err().code(),
            "timestamp_outside_tolerance",
            "the future too"
        );
        assert!(
            at(&good, 1_700_000_300).is_ok() && at(&good, 1_699_999_700).is_ok(),
            "the bounds are inclusive"
        );
        assert_eq!(
            at(
                &format!("t=1700000000,v1={}", "b".repeat(64)),
                1_700_000_000
            )
            .unwrap_err()
            .code(),
            "signature_mismatch"
        );
        let wrong_secret = verify(
            Some(&secrets("whsec_other")),
            Some(&good),
            body,
            1_700_000_000,
            Duration::from_secs(300),
        );
        assert_eq!(wrong_secret.unwrap_err().code(), "signature_mismatch");
        // A signed body that is not an event.
        let sign = |b: &str| {
            format!(
                "t=1700000000,v1={}",
                hex::encode(compute_signature(
                    SECRET.as_bytes(),
                    1_700_000_000,
                    b.as_bytes()
                ))
            )
        };
        for (b, code) in [
            ("not json", "body_not_json"),
            ("[1,2]", "body_not_event"),
            (
                r#"{"id":"cus_1","object":"event","type":"x","created":1,"data":{"object":{}}}"#,
                "body_not_event",
            ),
            (
                r#"{"id":"evt_1","object":"customer","type":"x","created":1,"data":{"object":{}}}"#,
                "body_not_event",
            ),
            (
                r#"{"id":"evt_1","object":"event","created":1,"data":{"object":{}}}"#,
                "body_not_event",
            ),
            (
                r#"{"id":"evt_1","object":"event","type":"x","created":1}"#,
                "body_not_event",
            ),
        ] {
            let r = verify(
                Some(&s),
                Some(&sign(b)),
                b.as_bytes(),
                1_700_000_000,
                Duration::from_secs(300),
            );
            assert_eq!(r.unwrap_err().code(), code, "{b}");
        }
    }

    #[test]
    fn a_changed_body_does_not_verify() {
        let tampered = BODY.replace("prod_1", "prod_2");
        let r = verify(
            Some(&secrets(SECRET)),
            Some(&format!("t=1700000000,v1={PY_SIGNATURE}")),
            tampered.as_bytes(),
            1_700_000_000,
            Duration::from_secs(300),
        );
        assert_eq!(r.unwrap_err(), Rejection::NoMatchingSignature);
    }

    #[test]
    fn messages_never_show_a_secret() {
        let r = ok("t=1700000000,v1=".to_owned().as_str(), SECRET).unwrap_err();
        assert!(!r.to_string().contains("whsec"));
    }
}

#[cfg(test)]
mod scalar_tests {
    use super::*;

    fn event(extra: &str) -> String {
        format!(
            r#"{{"id":"evt_1","object":"event","type":"invoice.paid","created":1,"data":{{"object":{{"id":"in_1"}}}},"extra":{extra}}}"#
        )
    }

    /// Fuzz finding 1 (docs/BENCHMARKS.md, "Fuzzing"): in a field the shape check skips,
    /// a lone surrogate escape or an infinite number was accepted, then refused by the
    /// worker's full parse.
    #[test]
    fn what_a_full_parse_refuses_is_refused_in_skipped_fields_too() {
        for bad in [
            r#""\ud800""#,
            r#""x\udc00y""#,
            r#""\ud83dx""#,
            r#""\ud83d\u0041""#,
            r#"1e400"#,
            r#"[-1E+999]"#,
            r#"{"deep":{"n":12345678901e300}}"#,
        ] {
            let body = event(bad);
            assert!(
                serde_json::from_str::<serde_json::Value>(&body).is_err(),
                "{bad}"
            );
            assert_eq!(
                from_events_api(&body).map(|_| ()),
                Err(Rejection::BodyNotJson),
                "{bad}"
            );
        }
        // Nesting: what the full parse takes, the check takes, and no deeper.
        for depth in 120..136 {
            let body = event(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
            assert_eq!(
                from_events_api(&body).is_ok(),
                serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                "depth {depth}"
            );
        }
        // The fuzzer's reproducers.
        for found in [
            include_str!("../../../fuzz/findings/envelope-lone-surrogate.json"),
            include_str!("../../../fuzz/findings/envelope-number-out-of-range.json"),
        ] {
            assert_eq!(
                from_events_api(found).map(|_| ()),
                Err(Rejection::BodyNotJson)
            );
        }
        for good in [
            r#""\ud83d\ude00 \\ud800 \" 1e400""#,
            r#"[1e300, -0, 0.5e-400, 18446744073709551616, 1E2]"#,
            r#"{"u":"\u00e9\u0041"}"#,
        ] {
            let body = event(good);
            assert!(
                serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                "{good}"
            );
            assert!(from_events_api(&body).is_ok(), "{good}");
        }
    }
}
