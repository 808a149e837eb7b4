//! Property tests of the catalog rules: mapping never fails, never loses data, and the
//! credit-amount rule is exactly `^[1-9][0-9]{0,8}$`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sm_domain::Money;
use sm_domain::catalog::{
    AmountKind, CreditAmount, StripePrice, StripeProduct, map_price, map_product,
};

/// The rule written the obvious way, to check the parser against.
fn matches_rule(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 9
        && (b'1'..=b'9').contains(&b[0])
        && b.iter().all(|c| c.is_ascii_digit())
}

proptest! {
    #[test]
    fn credit_amount_accepts_exactly_the_rule(s in "\\PC{0,12}|[+-]?[0-9 .e]{0,11}") {
        let parsed = CreditAmount::parse(&s);
        prop_assert_eq!(parsed.is_ok(), matches_rule(&s));
        if let Ok(a) = parsed {
            prop_assert_eq!(a.get().to_string(), s);
        }
    }

    #[test]
    fn every_positive_nine_digit_number_round_trips(n in 1u32..=999_999_999) {
        prop_assert_eq!(CreditAmount::parse(&n.to_string()).unwrap().get(), n);
    }

    #[test]
    fn product_mapping_never_fails_and_keeps_what_stripe_sent(
        name in "\\PC{0,40}",
        description in proptest::option::of("\\PC{0,40}"),
        active in any::<bool>(),
        metadata in proptest::collection::btree_map("[a-z_]{1,15}", "\\PC{0,12}", 0..6),
        created in 0i64..2_000_000_000,
        later in 0i64..1_000_000,
    ) {
        let p = StripeProduct {
            id: "prod_x".into(), name: name.clone(), description: description.clone(), active,
            metadata: metadata.clone(), default_price: None, created, updated: created + later, livemode: false,
        };
        let m = map_product(&p);
        prop_assert_eq!(&m.name, &name);
        prop_assert_eq!(&m.description, &description);
        prop_assert_eq!(m.active, active);
        prop_assert_eq!(&m.metadata, &metadata);
        prop_assert_eq!(m.valid, m.validation_error.is_none());
        prop_assert_eq!(m.valid, m.credit_amount.is_some() && metadata.get("display_order").is_none_or(|_| m.display_order.is_some()));
        prop_assert!(!m.deleted);
    }

    #[test]
    fn price_mapping_has_an_amount_exactly_when_fixed(
        unit_amount in proptest::option::of(0i64..10_000_000),
        tiered in any::<bool>(),
        custom in any::<bool>(),
        recurring in any::<bool>(),
        count in proptest::option::of(0u32..100),
        currency in "[A-Za-z]{3}",
    ) {
        let p = StripePrice {
            id: "price_x".into(), product: "prod_x".into(), active: true, currency: currency.clone(),
            unit_amount, unit_amount_decimal: unit_amount.map(|a| a.to_string()),
            kind: if recurring { "recurring".into() } else { "one_time".into() },
            interval: recurring.then(|| "week".into()), interval_count: count,
            billing_scheme: Some(if tiered { "tiered".into() } else { "per_unit".into() }),
            custom_unit_amount: custom, nickname: None, lookup_key: None,
            metadata: BTreeMap::new(), created: 1, livemode: false,
        };
        let m = map_price(&p);
        prop_assert_eq!(m.unit_amount.is_some(), m.amount_kind == AmountKind::Fixed);
        prop_assert_eq!(m.currency, currency.to_ascii_lowercase());
        prop_assert_eq!(m.interval_count.is_some(), recurring);
        if recurring { prop_assert!(m.interval_count.unwrap() >= 1); }
    }

    #[test]
    fn price_per_credit_is_the_quotient_rounded(minor in 0i64..100_000_000, credits in 1u64..1_000_000) {
        let per = Money::new(minor, "usd").per_unit(credits).unwrap();
        // Back to hundredths of a cent, times credits, is within half a step per credit.
        let steps: i128 = per.replace('.', "").parse().unwrap();
        let total = steps * credits as i128;
        let exact = minor as i128 * 100;
        prop_assert!((total - exact).abs() * 2 <= credits as i128, "{} {} {}", per, minor, credits);
    }
}
