//! Helpers every part of the service shares: the clock in Stripe's unit and Stripe's
//! JSON in the form it is stored and compared in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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

/// A Unix time in UTC in a `strftime` format of jiff's (`%H:%M`).
pub fn utc_as(unix: i64, format: &str) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(t) => t.strftime(format).to_string(),
        Err(_) => format!("{unix}"),
    }
}

/// A Unix time for people with how long ago it was: `2025-11-26 14:03 UTC · 3 min ago`
/// (or `· in 5 min` for a time still to come).
pub fn when(unix: i64, now: i64) -> String {
    let delta = now - unix;
    let rel = if delta >= 0 {
        format!("{} ago", span(delta))
    } else {
        format!("in {}", span(-delta))
    };
    let rel = if delta.abs() < 5 {
        "just now".to_owned()
    } else {
        rel
    };
    format!("{} · {rel}", utc(unix))
}

/// A span of seconds, rounded to the unit people read it in: `45 s`, `3 min`, `5 h`,
/// `12 days`.
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7_200 => format!("{} min", s / 60),
        7_200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// A duration in milliseconds as people read it: `850 ms`, `2.4 s`, `3 min 05 s`.
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60),
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
    use super::*;

    #[test]
    fn times_read_as_dates_spans_and_durations() {
        let t = 1_764_165_780; // 2025-11-26 14:03 UTC
        assert_eq!(utc(t), "2025-11-26 14:03 UTC");
        assert_eq!(when(t, t + 180), "2025-11-26 14:03 UTC · 3 min ago");
        assert_eq!(when(t, t + 2), "2025-11-26 14:03 UTC · just now");
        assert_eq!(when(t, t - 7_200), "2025-11-26 14:03 UTC · in 2 h");
        assert_eq!(span(45), "45 s");
        assert_eq!(span(3 * 86_400 + 5), "3 days");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(2_449), "2.4 s");
        assert_eq!(duration_ms(185_000), "3 min 05 s");
    }

    #[test]
    fn compact_json_drops_only_whitespace_outside_strings() {
        assert_eq!(
            compact_json("{\n  \"a\": \"x y\\\" z\",\n  \"b\": [1, 2]\n}"),
            "{\"a\":\"x y\\\" z\",\"b\":[1,2]}"
        );
        assert_eq!(compact_json(r#"{"k":"\\","n":1}"#), r#"{"k":"\\","n":1}"#);
    }
}
