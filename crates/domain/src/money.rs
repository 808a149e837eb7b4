//! Money as integer minor units plus a lowercase currency code, as Stripe sends it.
//!
//! "Minor units" depend on the currency: cents for USD (2 decimals), whole yen for JPY
//! (zero-decimal), fils for KWD (3 decimals). Getting this wrong is how a ¥500 price
//! becomes ¥5.00, so the exponent comes from Stripe's published lists, not from a guess.

/// Stripe's zero-decimal currencies: `unit_amount` is in whole units.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Stripe's three-decimal currencies.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// How many decimal places the minor unit of `currency` has (0, 2 or 3).
pub fn exponent(currency: &str) -> u32 {
    let c = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&c.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&c.as_str()) {
        3
    } else {
        2
    }
}

/// Renders `value` with `decimals` implied decimal places: `(1234, 2)` → `"12.34"`.
pub fn fixed_point(value: i128, decimals: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let v = value.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{v}");
    }
    let scale = 10u128.pow(decimals);
    format!(
        "{sign}{}.{:0width$}",
        v / scale,
        v % scale,
        width = decimals as usize
    )
}

/// Parses an amount written in major units of `currency` (`"5.00"`, `"5"`, `"500"` for
/// JPY) into minor units: a positive number with at most the currency's decimals.
pub fn parse_major(text: &str, currency: &str) -> Result<i64, String> {
    let decimals = exponent(currency);
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (text.contains('.') && !digits(frac)) {
        return Err(format!("{text:?} is not an amount like 5.00"));
    }
    if frac.len() > decimals as usize {
        return Err(format!(
            "{} has {decimals} decimal places; {text:?} has more",
            currency.to_uppercase()
        ));
    }
    let scale = 10i64.pow(decimals);
    let frac_minor = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().unwrap_or(0) * 10i64.pow(decimals - frac.len() as u32)
    };
    whole
        .parse::<i64>()
        .ok()
        .and_then(|w| w.checked_mul(scale))
        .and_then(|w| w.checked_add(frac_minor))
        .filter(|m| *m > 0)
        .ok_or_else(|| format!("{text:?} must be more than zero"))
}

/// An amount in minor units with its currency, e.g. `Money::new(1000, "usd")` is $10.00.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Money {
    pub minor: i64,
    /// Lowercase ISO 4217 code.
    pub currency: String,
}

impl Money {
    pub fn new(minor: i64, currency: &str) -> Self {
        Self {
            minor,
            currency: currency.to_ascii_lowercase(),
        }
    }

    /// The amount in major units as a decimal string: `"10.00"`, `"500"` for ¥500.
    pub fn major(&self) -> String {
        fixed_point(self.minor as i128, exponent(&self.currency))
    }

    /// The price of one of `credits` bought for this amount, in major units with two
    /// more decimals than the currency has (rounded half up): $10.00 for 300 credits is
    /// `"0.0333"`, ¥500 for 50 credits is `"10.00"`.
    pub fn per_unit(&self, credits: u64) -> Option<String> {
        if credits == 0 {
            return None;
        }
        let scaled = self.minor as i128 * 100;
        let n = credits as i128;
        let rounded = if scaled >= 0 {
            (scaled + n / 2) / n
        } else {
            (scaled - n / 2) / n
        };
        Some(fixed_point(rounded, exponent(&self.currency) + 2))
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.major(), self.currency.to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_amounts_parse_with_the_currencys_decimals() {
        assert_eq!(parse_major("5.00", "usd"), Ok(500));
        assert_eq!(parse_major("5.5", "usd"), Ok(550));
        assert_eq!(parse_major("12", "eur"), Ok(1200));
        assert_eq!(parse_major("500", "jpy"), Ok(500));
        assert!(parse_major("5.5", "jpy").is_err());
        assert_eq!(parse_major("1.234", "kwd"), Ok(1234));
        assert!(parse_major("1.001", "usd").is_err());
        for bad in [
            "",
            "-1",
            "0",
            "0.00",
            "1e3",
            "1,5",
            ".5",
            "5.",
            "99999999999999999",
        ] {
            assert!(parse_major(bad, "usd").is_err(), "{bad}");
        }
    }

    #[test]
    fn exponents_follow_stripe() {
        assert_eq!(exponent("usd"), 2);
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(exponent("krw"), 0);
        assert_eq!(exponent("kwd"), 3);
    }

    #[test]
    fn renders_major_units() {
        assert_eq!(Money::new(1000, "usd").to_string(), "10.00 USD");
        assert_eq!(Money::new(500, "jpy").to_string(), "500 JPY");
        assert_eq!(Money::new(1500, "kwd").major(), "1.500");
        assert_eq!(Money::new(5, "eur").major(), "0.05");
        assert_eq!(Money::new(-5, "eur").major(), "-0.05");
    }

    #[test]
    fn price_per_credit() {
        assert_eq!(
            Money::new(1000, "usd").per_unit(100).as_deref(),
            Some("0.1000")
        );
        assert_eq!(
            Money::new(1000, "usd").per_unit(300).as_deref(),
            Some("0.0333")
        );
        assert_eq!(
            Money::new(500, "jpy").per_unit(50).as_deref(),
            Some("10.00")
        );
        assert_eq!(Money::new(1000, "usd").per_unit(0), None);
    }
}
