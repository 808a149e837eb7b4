//! The `Stripe-Signature` header and the verification of a delivery.
//!
//! Input: `HEADER\nBODY` (everything before the first newline is the header, the rest
//! is the body, any bytes). Properties:
//! - `parse_header` and `verify` never panic, whatever the header and body;
//! - whatever `verify` accepts is exactly what the Events API path accepts for that body;
//! - a header signed here, with an HMAC written independently of the product's, for the
//!   same body and a timestamp within the tolerance, always verifies, also among any
//!   other well-formed elements of the fuzzed header (extra `v1`s, `v0`, unknown
//!   schemes) and with either configured secret (rotation); the same header with the
//!   body changed, or the timestamp outside the tolerance, never does;
//! - no rejection message contains a secret.
#![no_main]

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use sm_stripe::WebhookSecrets;
use sm_stripe::webhook::{Rejection, from_events_api, parse_header, verify};

const SECRETS: [&str; 2] = ["whsec_fuzzOldSecret0123", "whsec_fuzzNewSecret4567"];
const NOW: i64 = 1_700_000_000;
const TOLERANCE: u64 = 300;

/// HMAC-SHA256 of `"{t}.{body}"`, as Stripe documents it (not the product's code).
fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn check_message(r: &Result<sm_stripe::Verified, Rejection>) {
    if let Err(e) = r {
        let text = e.to_string();
        for s in SECRETS {
            assert!(!text.contains(s), "a rejection shows a secret: {text}");
        }
        assert!(!e.code().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let (header_bytes, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header_bytes);
    let secrets = WebhookSecrets::parse(&SECRETS.join(",")).expect("valid secrets");
    let tolerance = Duration::from_secs(TOLERANCE);

    // Arbitrary header and body.
    let _ = parse_header(&header);
    let r = verify(Some(&secrets), Some(&header), body, NOW, tolerance);
    check_message(&r);
    if let Ok(v) = &r {
        let text = std::str::from_utf8(body).expect("a verified body is UTF-8");
        assert_eq!(from_events_api(text).as_ref(), Ok(v));
        assert_eq!(v.body(), text);
    }

    // A header signed for this body, among the fuzzed header's well-formed elements.
    let extras: Vec<&str> = header
        .split(',')
        .map(str::trim)
        .filter(|e| match e.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() && k != "t" => {
                k != "v1" || (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            }
            _ => false,
        })
        .collect();
    let seed = data
        .iter()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(*b as u64));
    let secret = SECRETS[(seed % 2) as usize];
    let offset = (seed / 2 % (2 * TOLERANCE + 1)) as i64 - TOLERANCE as i64;
    let t = NOW + offset;
    let at = (seed / 7) as usize % (extras.len() + 1);
    let mut parts: Vec<String> = extras.iter().map(|e| e.to_string()).collect();
    parts.insert(at.min(parts.len()), format!("v1={}", sign(secret, t, body)));
    parts.insert(0, format!("t={t}"));
    let signed = parts.join(",");

    let expected = match std::str::from_utf8(body) {
        Ok(text) => from_events_api(text),
        Err(_) => Err(Rejection::BodyNotJson),
    };
    let got = verify(Some(&secrets), Some(&signed), body, NOW, tolerance);
    check_message(&got);
    assert_eq!(got, expected, "signed header {signed:?}");

    // Outside the tolerance, either way, it is refused for that reason.
    for now in [t + TOLERANCE as i64 + 1, t - TOLERANCE as i64 - 1] {
        let late = verify(Some(&secrets), Some(&signed), body, now, tolerance);
        assert!(
            matches!(late, Err(Rejection::TimestampOutsideTolerance { .. })),
            "{late:?}"
        );
    }

    // A changed body never verifies.
    let mut tampered = body.to_vec();
    match tampered.get_mut(seed as usize % body.len().max(1)) {
        Some(b) => *b ^= 1 << (seed % 8),
        None => tampered.push(b'x'),
    }
    assert_eq!(
        verify(Some(&secrets), Some(&signed), tampered.as_slice(), NOW, tolerance),
        Err(Rejection::NoMatchingSignature)
    );
});
