//! The catalog rules: how a Stripe product and price become local rows, and what makes
//! a product a valid credit product.
//!
//! Mapping never fails. A product whose metadata is wrong is still stored exactly as
//! Stripe has it, marked invalid with a reason a person can act on, and never sold; a
//! price we cannot charge a fixed amount for (tiered, customer-chosen) is stored with
//! `unit_amount: None` and its [`AmountKind`]. Invalid data never stops a sync.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The metadata key holding the credits one unit of a product grants.
pub const CREDIT_AMOUNT: &str = "credit_amount";
/// Optional: the position in listings (an integer, smaller first).
pub const DISPLAY_ORDER: &str = "display_order";
/// Optional: `payg` or `subscription`; derived from the default price when absent.
pub const CREDIT_TYPE: &str = "credit_type";

/// The largest credit amount: nine digits, so `amount × quantity` never overflows.
pub const MAX_CREDIT_AMOUNT: u32 = 999_999_999;

/// Quotes a metadata value for a message: escaped, and cut if long.
fn quote(value: &str) -> String {
    let cut: String = value.chars().take(40).collect();
    let mut q = format!("{cut:?}");
    if cut.len() < value.len() {
        q.push('…');
    }
    q
}

/// Why a product's metadata makes it unsellable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata credit_amount is missing")]
    CreditAmountMissing,
    #[error("metadata credit_amount {} is not a positive whole number", quote(.0))]
    CreditAmountInvalid(String),
    #[error("metadata display_order {} is not an integer", quote(.0))]
    DisplayOrderInvalid(String),
    #[error("metadata credit_type {} must be payg or subscription", quote(.0))]
    CreditTypeInvalid(String),
}

/// Credits granted per unit bought: a positive whole number of at most nine digits,
/// written exactly so (`^[1-9][0-9]{0,8}$`: no sign, spaces, decimals or exponents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CreditAmount(u32);

impl CreditAmount {
    pub fn parse(raw: &str) -> Result<Self, MetadataError> {
        let b = raw.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 9
            && (b'1'..=b'9').contains(&b[0])
            && b.iter().all(u8::is_ascii_digit);
        if !ok {
            return Err(MetadataError::CreditAmountInvalid(raw.to_owned()));
        }
        raw.parse()
            .map(CreditAmount)
            .map_err(|_| MetadataError::CreditAmountInvalid(raw.to_owned()))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// Pay-as-you-go packs versus subscription plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreditType {
    Payg,
    Subscription,
}

impl CreditType {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "payg" => Some(CreditType::Payg),
            "subscription" => Some(CreditType::Subscription),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CreditType::Payg => "payg",
            CreditType::Subscription => "subscription",
        }
    }

    /// The type a product has when its metadata does not say: recurring default
    /// price → subscription, anything else → pay-as-you-go.
    pub fn derive(default_price_recurring: Option<bool>) -> Self {
        match default_price_recurring {
            Some(true) => CreditType::Subscription,
            _ => CreditType::Payg,
        }
    }
}

/// What we read off a Stripe product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeProduct {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub metadata: BTreeMap<String, String>,
    pub default_price: Option<String>,
    pub created: i64,
    /// Stripe's `updated`; products created before the field existed have `created`.
    pub updated: i64,
    pub livemode: bool,
}

/// The local row for a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProduct {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub deleted: bool,
    pub credit_amount: Option<CreditAmount>,
    /// Only when the metadata says so; see [`CreditType::derive`].
    pub credit_type: Option<CreditType>,
    pub display_order: Option<i64>,
    pub valid: bool,
    pub validation_error: Option<String>,
    pub default_price: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
    pub updated: i64,
    pub livemode: bool,
}

/// Validates a product's metadata. All problems are reported, joined by `; `.
pub fn validate_metadata(
    metadata: &BTreeMap<String, String>,
) -> (
    Option<CreditAmount>,
    Option<CreditType>,
    Option<i64>,
    Vec<MetadataError>,
) {
    let mut errors = Vec::new();
    let credit_amount = match metadata.get(CREDIT_AMOUNT) {
        None => {
            errors.push(MetadataError::CreditAmountMissing);
            None
        }
        Some(raw) => CreditAmount::parse(raw).map_err(|e| errors.push(e)).ok(),
    };
    let display_order = metadata.get(DISPLAY_ORDER).and_then(|raw| {
        let b = raw.as_bytes();
        let digits = b.strip_prefix(b"-").unwrap_or(b);
        let ok = !digits.is_empty() && digits.len() <= 9 && digits.iter().all(u8::is_ascii_digit);
        match ok.then(|| raw.parse::<i64>().ok()).flatten() {
            Some(n) => Some(n),
            None => {
                errors.push(MetadataError::DisplayOrderInvalid(raw.clone()));
                None
            }
        }
    });
    let credit_type = metadata.get(CREDIT_TYPE).and_then(|raw| {
        let parsed = CreditType::parse(raw);
        if parsed.is_none() {
            errors.push(MetadataError::CreditTypeInvalid(raw.clone()));
        }
        parsed
    });
    (credit_amount, credit_type, display_order, errors)
}

/// Maps a live (not deleted) Stripe product to its local row.
pub fn map_product(p: &StripeProduct) -> CatalogProduct {
    let (credit_amount, credit_type, display_order, errors) = validate_metadata(&p.metadata);
    let validation_error = (!errors.is_empty()).then(|| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    });
    CatalogProduct {
        id: p.id.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        active: p.active,
        deleted: false,
        credit_amount,
        credit_type,
        display_order,
        valid: errors.is_empty(),
        validation_error,
        default_price: p.default_price.clone(),
        metadata: p.metadata.clone(),
        created: p.created,
        updated: p.updated.max(p.created),
        livemode: p.livemode,
    }
}

/// Billing period unit of a recurring price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            "year" => Some(Interval::Year),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }
}

/// How a price's amount is determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmountKind {
    /// `unit_amount` per unit.
    Fixed,
    /// Tiers (volume or graduated): no single unit amount.
    Tiered,
    /// The customer chooses (`custom_unit_amount`).
    Custom,
}

impl AmountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AmountKind::Fixed => "fixed",
            AmountKind::Tiered => "tiered",
            AmountKind::Custom => "custom",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "fixed" => Some(AmountKind::Fixed),
            "tiered" => Some(AmountKind::Tiered),
            "custom" => Some(AmountKind::Custom),
            _ => None,
        }
    }
}

/// What we read off a Stripe price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripePrice {
    pub id: String,
    pub product: String,
    pub active: bool,
    pub currency: String,
    pub unit_amount: Option<i64>,
    pub unit_amount_decimal: Option<String>,
    /// `one_time` or `recurring`.
    pub kind: String,
    pub interval: Option<String>,
    pub interval_count: Option<u32>,
    pub billing_scheme: Option<String>,
    pub custom_unit_amount: bool,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
    pub livemode: bool,
}

/// The local row for a price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPrice {
    pub id: String,
    pub product: String,
    pub active: bool,
    pub deleted: bool,
    /// Lowercase.
    pub currency: String,
    /// Minor units; `None` unless [`AmountKind::Fixed`].
    pub unit_amount: Option<i64>,
    pub unit_amount_decimal: Option<String>,
    pub amount_kind: AmountKind,
    /// `true` for `recurring`, `false` for `one_time`.
    pub recurring: bool,
    /// As Stripe says, kept even if it is a unit we do not know yet.
    pub interval: Option<String>,
    pub interval_count: Option<u32>,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
    pub livemode: bool,
}

impl CatalogPrice {
    /// `one_time` or `recurring`.
    pub fn type_str(&self) -> &'static str {
        if self.recurring {
            "recurring"
        } else {
            "one_time"
        }
    }
}

/// Maps a Stripe price to its local row.
pub fn map_price(p: &StripePrice) -> CatalogPrice {
    let amount_kind = if p.billing_scheme.as_deref() == Some("tiered") {
        AmountKind::Tiered
    } else if p.custom_unit_amount || p.unit_amount.is_none() {
        AmountKind::Custom
    } else {
        AmountKind::Fixed
    };
    let recurring = p.kind == "recurring";
    CatalogPrice {
        id: p.id.clone(),
        product: p.product.clone(),
        active: p.active,
        deleted: false,
        currency: p.currency.to_ascii_lowercase(),
        unit_amount: if amount_kind == AmountKind::Fixed {
            p.unit_amount
        } else {
            None
        },
        unit_amount_decimal: p.unit_amount_decimal.clone(),
        amount_kind,
        recurring,
        interval: if recurring { p.interval.clone() } else { None },
        interval_count: if recurring {
            Some(p.interval_count.unwrap_or(1).max(1))
        } else {
            None
        },
        nickname: p.nickname.clone(),
        lookup_key: p.lookup_key.clone(),
        metadata: p.metadata.clone(),
        created: p.created,
        livemode: p.livemode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn product(pairs: &[(&str, &str)]) -> StripeProduct {
        StripeProduct {
            id: "prod_1".into(),
            name: "Pack".into(),
            description: None,
            active: true,
            metadata: meta(pairs),
            default_price: Some("price_1".into()),
            created: 10,
            updated: 20,
            livemode: false,
        }
    }

    #[test]
    fn every_invalid_credit_amount_is_rejected_with_its_value() {
        for raw in [
            "10.0",
            "+5",
            " 5",
            "5 ",
            "1e3",
            "0",
            "-1",
            "abc",
            "",
            "0010",
            "1234567890",
            "１",
        ] {
            let p = map_product(&product(&[("credit_amount", raw)]));
            assert!(!p.valid, "{raw:?}");
            assert_eq!(p.credit_amount, None);
            assert_eq!(
                p.validation_error.unwrap(),
                format!("metadata credit_amount {raw:?} is not a positive whole number")
            );
        }
        let p = map_product(&product(&[]));
        assert_eq!(
            p.validation_error.as_deref(),
            Some("metadata credit_amount is missing")
        );
    }

    #[test]
    fn valid_amounts() {
        for (raw, n) in [("1", 1), ("100", 100), ("999999999", 999_999_999)] {
            let p = map_product(&product(&[("credit_amount", raw)]));
            assert!(p.valid);
            assert_eq!(p.credit_amount.unwrap().get(), n);
        }
    }

    #[test]
    fn the_message_matches_the_issue() {
        let p = map_product(&product(&[("credit_amount", "10.0")]));
        assert_eq!(
            p.validation_error.unwrap(),
            "metadata credit_amount \"10.0\" is not a positive whole number"
        );
    }

    #[test]
    fn other_metadata_is_checked_and_all_problems_reported() {
        let p = map_product(&product(&[
            ("credit_amount", "5"),
            ("display_order", "first"),
            ("credit_type", "monthly"),
        ]));
        assert!(!p.valid);
        assert_eq!(
            p.validation_error.unwrap(),
            "metadata display_order \"first\" is not an integer; metadata credit_type \"monthly\" must be payg or subscription"
        );
        let p = map_product(&product(&[
            ("credit_amount", "5"),
            ("display_order", "-2"),
            ("credit_type", "subscription"),
        ]));
        assert!(p.valid);
        assert_eq!(p.display_order, Some(-2));
        assert_eq!(p.credit_type, Some(CreditType::Subscription));
    }

    #[test]
    fn null_description_maps() {
        let p = map_product(&product(&[("credit_amount", "5")]));
        assert_eq!(p.description, None);
        assert_eq!(p.updated, 20);
    }

    fn price() -> StripePrice {
        StripePrice {
            id: "price_1".into(),
            product: "prod_1".into(),
            active: true,
            currency: "JPY".into(),
            unit_amount: Some(500),
            unit_amount_decimal: Some("500".into()),
            kind: "one_time".into(),
            interval: None,
            interval_count: None,
            billing_scheme: Some("per_unit".into()),
            custom_unit_amount: false,
            nickname: None,
            lookup_key: None,
            metadata: BTreeMap::new(),
            created: 1,
            livemode: false,
        }
    }

    #[test]
    fn prices_map_with_currency_interval_and_amount_kind() {
        let p = map_price(&price());
        assert_eq!(
            (p.currency.as_str(), p.unit_amount, p.amount_kind),
            ("jpy", Some(500), AmountKind::Fixed)
        );
        assert_eq!(
            (p.type_str(), p.interval.as_deref(), p.interval_count),
            ("one_time", None, None)
        );

        let weekly = map_price(&StripePrice {
            kind: "recurring".into(),
            interval: Some("week".into()),
            interval_count: Some(2),
            ..price()
        });
        assert_eq!(
            (
                weekly.type_str(),
                weekly.interval.as_deref(),
                weekly.interval_count
            ),
            ("recurring", Some("week"), Some(2))
        );

        let tiered = map_price(&StripePrice {
            unit_amount: None,
            billing_scheme: Some("tiered".into()),
            ..price()
        });
        assert_eq!(
            (tiered.unit_amount, tiered.amount_kind),
            (None, AmountKind::Tiered)
        );

        let custom = map_price(&StripePrice {
            unit_amount: None,
            custom_unit_amount: true,
            ..price()
        });
        assert_eq!(
            (custom.unit_amount, custom.amount_kind),
            (None, AmountKind::Custom)
        );
    }
}
