//! Metadata validation through the catalog's product mapping (`map_product`), and
//! price mapping (`map_price`), with arbitrary metadata maps.
//!
//! Input: records separated by 0x1E, each `KEY 0x1F VALUE` (a record without 0x1F is
//! a key with an empty value); the last value for a key wins, as in Stripe. Properties:
//! mapping never panics and keeps the metadata as given; `credit_amount` is accepted
//! exactly when it is `^[1-9][0-9]{0,8}$` (so 1..=999,999,999), and then as that number;
//! the product is valid exactly when `credit_amount` is accepted and `display_order` /
//! `credit_type`, when present, are an integer of at most nine digits / `payg` or
//! `subscription`; the validation message is bounded whatever the input's size.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sm_domain::catalog::{
    CREDIT_AMOUNT, CREDIT_TYPE, DISPLAY_ORDER, MAX_CREDIT_AMOUNT, StripePrice, StripeProduct,
    map_price, map_product,
};

/// The credit-amount rule, written the obvious way.
fn credit_amount_rule(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    let ok = (1..=9).contains(&b.len())
        && (b'1'..=b'9').contains(&b[0])
        && b.iter().all(u8::is_ascii_digit);
    ok.then(|| s.parse().expect("nine digits fit in u32"))
}

fn display_order_rule(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut metadata = BTreeMap::new();
    for record in text.split('\u{1e}').filter(|r| !r.is_empty()) {
        let (k, v) = record.split_once('\u{1f}').unwrap_or((record, ""));
        metadata.insert(k.to_owned(), v.to_owned());
    }
    let product = StripeProduct {
        id: "prod_fuzz".into(),
        name: text.chars().take(50).collect(),
        description: None,
        active: data.len() % 2 == 0,
        metadata: metadata.clone(),
        default_price: Some("price_fuzz".into()),
        created: data.len() as i64,
        updated: data.first().copied().unwrap_or(0) as i64,
        livemode: false,
    };
    let m = map_product(&product);

    assert_eq!(m.metadata, metadata);
    assert_eq!(m.updated, product.updated.max(product.created));
    let amount = metadata
        .get(CREDIT_AMOUNT)
        .and_then(|v| credit_amount_rule(v));
    assert_eq!(m.credit_amount.map(|a| a.get()), amount);
    if let Some(a) = m.credit_amount {
        assert!((1..=MAX_CREDIT_AMOUNT).contains(&a.get()));
    }
    let order_ok = metadata
        .get(DISPLAY_ORDER)
        .is_none_or(|v| display_order_rule(v));
    let type_ok = metadata
        .get(CREDIT_TYPE)
        .is_none_or(|v| v == "payg" || v == "subscription");
    assert_eq!(
        m.valid,
        amount.is_some() && order_ok && type_ok,
        "{metadata:?}"
    );
    assert_eq!(m.valid, m.validation_error.is_none());
    if let Some(message) = &m.validation_error {
        // Three problems at most, each quoting at most 40 characters (escaped).
        assert!(message.len() < 2_000, "{} bytes", message.len());
    }

    let price = map_price(&StripePrice {
        id: "price_fuzz".into(),
        product: "prod_fuzz".into(),
        active: true,
        currency: metadata.keys().next().cloned().unwrap_or_default(),
        unit_amount: amount.map(i64::from),
        unit_amount_decimal: metadata.values().next().cloned(),
        kind: metadata.get("kind").cloned().unwrap_or_default(),
        interval: metadata.get("interval").cloned(),
        interval_count: m.display_order.map(|n| n as u32),
        billing_scheme: metadata.get("billing_scheme").cloned(),
        custom_unit_amount: data.len() % 3 == 0,
        nickname: None,
        lookup_key: None,
        metadata,
        created: 1,
        livemode: false,
    });
    assert_eq!(
        price.unit_amount.is_some(),
        price.amount_kind.as_str() == "fixed"
    );
    assert_eq!(price.interval_count.is_some(), price.recurring);
});
