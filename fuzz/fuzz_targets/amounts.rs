//! Money and credit amounts: `Credits::parse` (API amounts), `parse_decimal` (Stripe's
//! `unit_amount_decimal`), and what is computed from them.
//!
//! Input: `AMOUNT[\nCURRENCY]`. Properties: nothing panics (debug assertions on, so
//! an overflow is a crash); an accepted credit amount prints through `Display` as a
//! string that parses back to the same value, is what JSON deserialization gives, and is
//! what `Money` prints for a two-decimal currency; `parse_decimal` gives digits and
//! places that print back as the input without redundant zeros; proration and refund
//! shares computed from them never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sm_domain::Money;
use sm_domain::credits::{Credits, parse_decimal, proration_credits, refund_share};
use sm_domain::money::{exponent, fixed_point};

/// `"007.50"` → `"7.5"`: leading zeros of the whole part and trailing zeros of the
/// fraction dropped.
fn canonical(s: &str) -> String {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{frac}")
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (amount, currency) = text.split_once('\n').unwrap_or((text, "usd"));

    let credits = Credits::parse(amount);
    let json = serde_json::to_string(amount).expect("a string encodes");
    let from_json = serde_json::from_str::<Credits>(&json);
    assert_eq!(credits.is_ok(), from_json.is_ok());
    match credits {
        Ok(c) => {
            assert!(c.hundredths() >= 0);
            assert!(c.hundredths() < 10_000_000_000_000 * 100);
            let shown = c.to_string();
            assert_eq!(Credits::parse(&shown), Ok(c), "{amount:?} → {shown:?}");
            assert_eq!(canonical(&shown), canonical(amount));
            assert_eq!(from_json.unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{shown}\""));
            assert_eq!(Money::new(c.hundredths(), "usd").major(), shown);
        }
        Err(ref e) => {
            // The message quotes at most 40 characters of the input.
            assert!(e.0.chars().count() <= 40);
        }
    }

    let decimal = parse_decimal(amount);
    if let Some((digits, places)) = decimal {
        assert!(digits >= 0 && places <= 12);
        assert_eq!(fixed_point(digits as i128, places), canonical(amount));
    }

    // Money in any currency, and the shares computed from these amounts.
    let minor =
        credits.as_ref().map(|c| c.hundredths()).unwrap_or(0) - decimal.map(|d| d.0).unwrap_or(0);
    let money = Money::new(minor, currency);
    assert!(exponent(currency) <= 3);
    let _ = money.major();
    let _ = money.to_string();
    let _ = money.per_unit(decimal.map(|d| d.0 as u64).unwrap_or(0));
    if let (Ok(c), Some(unit)) = (&credits, decimal) {
        let _ = proration_credits(c.hundredths() / 100, minor, unit);
        let _ = proration_credits(c.hundredths() / 100, -minor, unit);
        let share = refund_share(c.hundredths(), unit.0, minor);
        assert!(share >= 0 && share <= c.hundredths());
    }
});
