//! Helpers every part of the service shares: the clock in Stripe's unit and Stripe's
//! JSON in the form it is stored and compared in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now (Stripe's unit for every timestamp).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A Unix time for people: `2025-11-26 14:03 UTC` (the service keeps every time in UTC).
pub fn utc(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => format!("{unix} (not a valid time)"),
    }
}

/// Stripe's JSON without insignificant whitespace: the same object reads the same
/// whichever endpoint returned it, so "unchanged" can be decided by comparing text.
pub fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::compact_json;

    #[test]
    fn compact_json_drops_only_whitespace_outside_strings() {
        assert_eq!(
            compact_json("{\n  \"a\": \"x y\\\" z\",\n  \"b\": [1, 2]\n}"),
            "{\"a\":\"x y\\\" z\",\"b\":[1,2]}"
        );
        assert_eq!(compact_json(r#"{"k":"\\","n":1}"#), r#"{"k":"\\","n":1}"#);
    }
}
