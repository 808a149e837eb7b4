//! What can be sold: a product and price whose credits are well defined. Checkout
//! sells only these, and a plan changes only to these (a tiered or metered line would
//! bill money whose credits nobody can count).

/// Why a price's credits are not well defined, if they are not: credits are
/// `credit_amount × quantity` for a fixed price per unit, and proration lines are
/// credited by their share of `unit_amount`; a customer-chosen amount, tiers or metered
/// usage give neither a quantity that was paid for nor a unit amount to share.
pub fn credits_undefined(price: &sm_store::catalog::PriceRecord) -> Option<&'static str> {
    use sm_domain::catalog::AmountKind;
    match price.amount_kind {
        AmountKind::Custom => {
            return Some(
                "with a customer-chosen amount (pay what you want), which has no fixed credits per payment",
            );
        }
        AmountKind::Tiered => {
            return Some(
                "with tiered pricing, which has no single unit amount to count credits by",
            );
        }
        AmountKind::Fixed => {}
    }
    let raw: serde_json::Value = serde_json::from_str(&price.raw).unwrap_or_default();
    if raw["recurring"]["usage_type"] == "metered" {
        return Some(
            "with metered usage, billed after the period for what was used, not for a quantity of credits",
        );
    }
    if price.unit_amount.is_none() && price.unit_amount_decimal.is_none() {
        return Some("without a unit amount");
    }
    None
}

/// Why `price` of `product` cannot be sold (checkout) or moved to (plan change), if it
/// cannot: the product is deleted, archived or not a valid credit product, the price is
/// inactive, or its credits are not well defined ([`credits_undefined`]).
pub fn refusal(
    product: &sm_store::catalog::ProductRecord,
    price: &sm_store::catalog::PriceRecord,
) -> Option<String> {
    if product.deleted {
        Some("is deleted in Stripe".to_owned())
    } else if !product.active {
        Some("is archived".to_owned())
    } else if !product.valid {
        Some(format!(
            "is not a valid credit product: {}",
            product
                .validation_error
                .as_deref()
                .unwrap_or("invalid metadata")
        ))
    } else if price.deleted || !price.active {
        Some(format!("has price {} inactive", price.id))
    } else {
        credits_undefined(price).map(|why| format!("is sold by price {} {why}", price.id))
    }
}
