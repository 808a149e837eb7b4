//! Personal data of an account: erasure (`accounts erase`, the admin's Erase button,
//! Stripe's `customer.deleted`) and export (`accounts export`).
//!
//! Erasure redacts every stored trace of the account's customers — the mirrors
//! (customers, invoices, charges, subscriptions) and the stored Stripe events that name
//! them — in one transaction with its audit record, and remembers the customers as
//! erased (`sm_store::privacy`): every later mirror write for them, from an event or a
//! `sync --objects`, stores the redacted form. The ledger (amounts, ids, lots, entries)
//! is not touched, so balances are unchanged. The Stripe customer is deleted only when
//! asked (`--stripe`), after the local erasure has committed (never a transaction held
//! across a Stripe call).

use serde::Serialize;
use sm_store::credits::NewAudit;
use sm_store::privacy::{Erasure, Redacted};
use sm_store::{Store, StoreError, Tx};
use sm_stripe::StripeError;

use crate::billing::Actor;
use crate::clock::unix_now;
use crate::manager::{StripeManager, Unavailable};

/// Why an erasure or an export did not (fully) happen.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The request is wrong (an unknown or malformed account, a confirmation that does
    /// not match); nothing was done. Exit 2 on the CLI.
    #[error("{0}")]
    Invalid(String),
    /// Stripe could not be reached (or is not configured) for `--stripe`; the local
    /// erasure, if `erased`, has committed.
    #[error("{source}{}", erased_note(.erased))]
    Unavailable {
        /// Why Stripe could not be used.
        #[source]
        source: Unavailable,
        /// Whether the local redaction had committed already.
        erased: bool,
    },
    #[error(
        "Stripe refused to delete customer {customer}: {source}; the personal data stored here is redacted already"
    )]
    /// Stripe answered the deletion of a customer with an error (the local redaction has
    /// committed).
    Stripe {
        /// The customer Stripe would not delete.
        customer: String,
        /// Stripe's answer.
        #[source]
        source: StripeError,
    },
    /// The database failed; the erasure's transaction rolled back.
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
}

fn erased_note(erased: &bool) -> &'static str {
    if *erased {
        "; the personal data stored here is redacted already: run the erasure again to delete the customer(s) in Stripe"
    } else {
        ""
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize)]
pub struct EraseReport {
    /// The account erased.
    pub account: String,
    /// The account's Stripe customers, every one now remembered as erased.
    pub customers: Vec<String>,
    /// Rows redacted, per table (rows already redacted are not counted again).
    pub redacted: Redacted,
    /// Whether `--stripe` was asked.
    pub stripe: bool,
    /// Customers deleted in Stripe by this run …
    pub deleted_in_stripe: Vec<String>,
    /// … and those Stripe no longer had (deleted before: a second run).
    pub already_deleted_in_stripe: Vec<String>,
}

/// The idempotency key of deleting `customer` in Stripe: the same on every run.
fn delete_key(customer: &str) -> String {
    format!("stripe-manager:erase:{customer}")
}

/// Erases `account`'s personal data (see the module docs); with `in_stripe`, also deletes
/// its customers in Stripe (`DELETE /v1/customers/{id}`, "Permanently deletes a customer.
/// It cannot be undone. Also immediately cancels any active subscriptions on the
/// customer." — docs.stripe.com/api/customers/delete?api-version=2025-03-31.basil). A
/// second run is harmless: the redaction finds nothing new, and a customer Stripe no
/// longer has (404 `resource_missing`) counts as deleted.
pub async fn erase(
    store: &Store,
    stripe: &StripeManager,
    account: &str,
    in_stripe: bool,
    actor: Actor<'_>,
) -> Result<EraseReport, PrivacyError> {
    crate::credits::validate_account(account).map_err(|e| PrivacyError::Invalid(e.to_string()))?;
    let client = if in_stripe {
        Some(
            stripe
                .client()
                .map_err(|source| PrivacyError::Unavailable {
                    source,
                    erased: false,
                })?,
        )
    } else {
        None
    };
    let customers = store.customers_to_erase(account).await?;
    let known = !customers.is_empty()
        || !store
            .export_account(account)
            .await?
            .values()
            .all(Vec::is_empty);
    if !known {
        return Err(PrivacyError::Invalid(format!(
            "nothing is stored about account {account}"
        )));
    }
    let now = unix_now();
    let mut tx = store.begin().await?;
    let redacted = tx
        .erase_customers(
            &customers,
            Some(account),
            Erasure {
                by: actor.name,
                reason: "erase",
                deleted_at: None,
                now,
            },
        )
        .await?;
    let detail = serde_json::json!({
        "customers": customers,
        "redacted": redacted,
        "stripe": in_stripe,
    })
    .to_string();
    tx.audit(
        &NewAudit {
            actor: actor.name,
            action: "accounts.erase",
            target: Some(account),
            detail: Some(&detail),
            origin: Some(actor.origin),
            result: "ok",
        },
        now,
    )
    .await?;
    tx.commit().await?;
    let mut report = EraseReport {
        account: account.to_owned(),
        customers,
        redacted,
        stripe: in_stripe,
        deleted_in_stripe: Vec::new(),
        already_deleted_in_stripe: Vec::new(),
    };
    if let Some(client) = client {
        let result = delete_in_stripe(store, client, &mut report).await;
        let outcome = match &result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        let detail = serde_json::json!({
            "deleted": report.deleted_in_stripe,
            "already_deleted": report.already_deleted_in_stripe,
        })
        .to_string();
        let record = NewAudit {
            actor: actor.name,
            action: "accounts.erase.stripe",
            target: Some(account),
            detail: Some(&detail),
            origin: Some(actor.origin),
            result: &outcome,
        };
        if let Err(e) = store.audit(&record, unix_now()).await {
            tracing::error!(error = %crate::error_chain(&e), account, "could not write the audit record");
        }
        result?;
    }
    Ok(report)
}

/// Deletes the report's customers in Stripe, one request each, and records the deletion
/// (which starts `MIRROR_RETENTION_DAYS`).
async fn delete_in_stripe(
    store: &Store,
    client: &sm_stripe::Client,
    report: &mut EraseReport,
) -> Result<(), PrivacyError> {
    for customer in report.customers.clone() {
        let path = format!("/v1/customers/{customer}");
        match client
            .delete_with_key::<serde_json::Value>("customers.delete", &path, &delete_key(&customer))
            .await
        {
            Ok(_) => report.deleted_in_stripe.push(customer),
            Err(e) if e.is_not_found() => report.already_deleted_in_stripe.push(customer),
            Err(e) => {
                record_deleted(store, report).await?;
                return Err(match Unavailable::from_error(&e) {
                    Some(source) => PrivacyError::Unavailable {
                        source,
                        erased: true,
                    },
                    None => PrivacyError::Stripe {
                        customer,
                        source: e,
                    },
                });
            }
        }
    }
    record_deleted(store, report).await
}

async fn record_deleted(store: &Store, report: &EraseReport) -> Result<(), PrivacyError> {
    let gone: Vec<String> = report
        .deleted_in_stripe
        .iter()
        .chain(&report.already_deleted_in_stripe)
        .cloned()
        .collect();
    store.mark_customers_deleted(&gone, unix_now()).await?;
    Ok(())
}

/// `customer.deleted`: the customer's personal data is redacted like an erasure's, in
/// the event's transaction, and the deletion (at the event's time) starts
/// `MIRROR_RETENTION_DAYS`. The account is the mirrored customer's, if it had one.
pub async fn customer_deleted(
    tx: &mut Tx,
    customer: &str,
    account: Option<&str>,
    at: i64,
    now: i64,
) -> Result<Redacted, StoreError> {
    tx.erase_customers(
        &[customer.to_owned()],
        account,
        Erasure {
            by: "stripe",
            reason: "customer.deleted",
            deleted_at: Some(at),
            now,
        },
    )
    .await
}

/// `accounts export`: everything stored about `account` as one JSON document (the
/// data-subject access request), with its payments as the API shows them.
pub async fn export(store: &Store, account: &str) -> Result<serde_json::Value, PrivacyError> {
    crate::credits::validate_account(account).map_err(|e| PrivacyError::Invalid(e.to_string()))?;
    let tables = store.export_account(account).await?;
    let payments = store.account_payments(account, None, 100_000).await?;
    let mut doc = serde_json::Map::new();
    doc.insert("account".into(), serde_json::json!(account));
    doc.insert("exported_at".into(), serde_json::json!(unix_now()));
    doc.insert("payments".into(), serde_json::json!(payments));
    let mut t = serde_json::Map::new();
    for (name, rows) in tables {
        t.insert(name.to_owned(), serde_json::Value::Array(rows));
    }
    doc.insert("tables".into(), serde_json::Value::Object(t));
    Ok(serde_json::Value::Object(doc))
}
