//! `stripe-manager products [--all] [--json]`: the local catalog, no Stripe call.

use serde_json::json;
use sm_store::catalog::ProductFilter;

use super::{Failure, table};
use crate::catalog::ApiProduct;
use crate::state::AppState;

fn price_label(p: &ApiProduct) -> String {
    let Some(d) = &p.default_price else {
        return "-".into();
    };
    let amount = match d.unit_amount {
        Some(a) => sm_domain::Money::new(a, &d.currency).to_string(),
        None => format!("{} ({})", d.currency.to_uppercase(), d.amount_kind),
    };
    match (&d.interval, d.interval_count) {
        (Some(i), Some(1)) => format!("{amount} / {i}"),
        (Some(i), Some(n)) => format!("{amount} / {n} {i}s"),
        _ => amount,
    }
}

pub async fn run(state: AppState, all: bool, json: bool) -> Result<u8, Failure> {
    let filter = if all {
        ProductFilter::All
    } else {
        ProductFilter::Active
    };
    let products = state.catalog.list(filter).await.map_err(|e| Failure {
        code: 1,
        message: crate::error_chain(&e),
    })?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "data": products })).expect("serializable")
        );
        return Ok(0);
    }
    if products.is_empty() {
        outln!(
            "no products{}; run `stripe-manager sync` to fetch them from Stripe",
            if all { "" } else { " active" }
        );
        return Ok(0);
    }
    let mut t = table::new(&[
        "ID",
        "NAME",
        "STATUS",
        "VALID",
        "CREDITS",
        "TYPE",
        "DEFAULT PRICE",
        "PER CREDIT",
    ]);
    table::right(&mut t, &[4, 7]);
    for p in &products {
        let status = if p.deleted {
            "deleted"
        } else if p.active {
            "active"
        } else {
            "archived"
        };
        t.add_row(vec![
            p.id.clone(),
            p.name.chars().take(40).collect(),
            status.to_owned(),
            if p.valid { "yes" } else { "NO" }.to_owned(),
            p.credit_amount
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            p.credit_type.to_owned(),
            price_label(p),
            p.price_per_credit
                .as_ref()
                .map(|c| c.amount.clone())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    table::print(&t);
    // Why a product is invalid, under the table: a long message would widen a column.
    let invalid: Vec<_> = products
        .iter()
        .filter_map(|p| Some((&p.id, p.validation_error.as_ref()?)))
        .collect();
    if !invalid.is_empty() {
        outln!();
        for (id, e) in invalid {
            outln!("{id}: {e}");
        }
    }
    Ok(0)
}
