//! The charger: pays queued top-ups with the customer's saved card, off-session.
//!
//! **Why an invoice, not a bare PaymentIntent.** A one-off invoice of the pack's price
//! (`POST /v1/invoices` with `collection_method=charge_automatically`,
//! `auto_advance=false`, `pending_invoice_items_behavior=exclude`; the pack as an invoice
//! item with `pricing[price]` — basil replaced `price` there, stripe@18.0.0 CHANGELOG —
//! and `invoice=`; then finalize and `POST /v1/invoices/{id}/pay` with `off_session=true`
//! and the card) gives the customer an invoice and a receipt like any purchase, records
//! its payments where a refund finds them, and pays the credits through `invoice.paid`,
//! the path every plan invoice already takes: nothing is granted before Stripe says paid
//! (docs.stripe.com/api/invoices/pay: `off_session` "Indicates if a customer is on or
//! off-session while an invoice payment is attempted"). A PaymentIntent would need a
//! second grant path and no invoice.
//!
//! **Exactly one purchase per crossing.** Each purchase is one row, leased to one
//! charger at a time; every Stripe request carries an idempotency key made from the
//! purchase's id, and the invoice id is recorded as soon as it exists, so a retry (or
//! another instance after a lease ran out) continues the same invoice: it adds the item
//! only to an empty draft, finalizes only a draft, pays only an open invoice.
//!
//! **Failures.** Stripe unreachable: tried again with backoff (the purchase stays
//! queued). A card declined: the purchase fails, its invoice is voided, and
//! `top_up.failed` goes to the app; the setting stays on (the next crossing tries
//! again). A card that needs authentication, which an off-session payment cannot do
//! (`authentication_required`, docs.stripe.com/declines/codes), or no saved card: the
//! same, and top-ups are turned off for the account until it saves the setting again,
//! audited. `top_up.succeeded` goes out when `invoice.paid` grants the credits.

use std::time::Duration;

use serde_json::{Value, json};
use sm_store::credits::NewAudit;
use sm_store::top_ups::TopUpRow;
use sm_store::{Store, StoreError};
use sm_stripe::types::Raw;
use sm_stripe::{Client, Form, StripeError};

use crate::clock::unix_now;
use crate::manager::StripeManager;

/// How often an idle charger looks for purchases queued by other instances.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a charger holds a purchase: above the worst case of its six Stripe requests
/// with their retries (each at most about two minutes), so another instance never takes
/// over a purchase still being paid.
const LEASE_SECS: i64 = 900;
/// Attempts while Stripe cannot be reached before the purchase fails: with the backoff
/// below (1 min doubling to at most 3 h), about a day and a half. Stripe keeps
/// idempotency keys for at least 24 hours (docs.stripe.com/idempotency); past that a
/// retry is still the same purchase, because each attempt first reads the invoice
/// recorded for it and only adds an item to an empty draft.
const MAX_ATTEMPTS: i64 = 20;

/// Runs the charger until `stop`.
pub fn spawn(
    store: Store,
    stripe: StripeManager,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let owner = format!("charger-{}", uuid::Uuid::new_v4().simple());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL_EVERY) => {}
                _ = super::WAKE.notified() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = turn(&store, &stripe, &owner).await {
                tracing::warn!(error = %crate::error_chain(&e), "top-ups: a charger turn failed; trying again in a second");
            }
        }
    })
}

/// Pays every purchase due now; returns how many were claimed.
pub async fn turn(store: &Store, stripe: &StripeManager, owner: &str) -> Result<usize, StoreError> {
    let now = unix_now();
    if !store.has_due_top_ups(now).await? {
        return Ok(0);
    }
    let Ok(client) = stripe.client() else {
        return Ok(0);
    };
    // One at a time: each purchase's lease starts when its payment does.
    let mut paid = 0;
    loop {
        let claimed = store
            .claim_top_ups(owner, unix_now(), LEASE_SECS, 1)
            .await?;
        let Some(row) = claimed.first() else {
            return Ok(paid);
        };
        pay(store, client, row, owner).await?;
        paid += 1;
    }
}

/// What became of one attempt.
enum Outcome {
    Paid(String),
    /// Stripe could not be asked now.
    Retry(String),
    Failed {
        reason: String,
        code: Option<String>,
        /// Why top-ups are turned off for the account, if they are.
        disable: Option<&'static str>,
    },
}

async fn pay(
    store: &Store,
    client: &Client,
    row: &TopUpRow,
    owner: &str,
) -> Result<(), StoreError> {
    let outcome = match attempt(store, client, row).await {
        Ok(outcome) => outcome,
        Err(Step::Store(e)) => return Err(e),
        Err(Step::Stripe(e)) => classify(&e),
    };
    let now = unix_now();
    match outcome {
        Outcome::Paid(invoice) => {
            let mut tx = store.begin().await?;
            tx.move_top_up(&row.id, &["queued"], "paid", None, now)
                .await?;
            tx.commit().await?;
            metrics::counter!("stripe_manager_top_ups_total", "outcome" => "paid").increment(1);
            tracing::info!(account = %row.account, top_up = %row.id, %invoice, "top-up paid; its credits come with invoice.paid");
        }
        Outcome::Retry(why) if row.attempts < MAX_ATTEMPTS => {
            let wait = (30i64 << row.attempts.clamp(0, 12)).min(3 * 3600);
            tracing::warn!(account = %row.account, top_up = %row.id, error = %why, "top-up: Stripe could not be asked; trying again in {wait} s");
            store
                .retry_top_up(&row.id, owner, &why, now + wait, now)
                .await?;
        }
        Outcome::Retry(why) => {
            fail(
                store,
                client,
                row,
                &format!("Stripe could not be reached: {why}"),
                None,
                None,
            )
            .await?;
        }
        Outcome::Failed {
            reason,
            code,
            disable,
        } => fail(store, client, row, &reason, code.as_deref(), disable).await?,
    }
    Ok(())
}

enum Step {
    Stripe(StripeError),
    Store(StoreError),
}

impl From<StripeError> for Step {
    fn from(e: StripeError) -> Self {
        Step::Stripe(e)
    }
}

impl From<StoreError> for Step {
    fn from(e: StoreError) -> Self {
        Step::Store(e)
    }
}

fn classify(e: &StripeError) -> Outcome {
    // Not a verdict on the payment: Stripe unreachable, our key refused (an operator
    // fixes it), an answer we could not read, or another request with the same
    // idempotency key still running (409). Tried again, never voided.
    let in_doubt = matches!(
        e.kind(),
        sm_stripe::ErrorKind::Auth | sm_stripe::ErrorKind::Decode
    ) || e.status() == Some(409)
        || matches!(e, StripeError::Api { code: Some(c), .. } if c.starts_with("idempotency"));
    if e.is_unavailable() || in_doubt {
        return Outcome::Retry(crate::error_chain(e));
    }
    let code = match e {
        StripeError::Api {
            code, decline_code, ..
        } => decline_code
            .as_deref()
            .map(str::to_owned)
            .or_else(|| code.clone()),
        _ => None,
    };
    if e.needs_authentication() {
        return Outcome::Failed {
            reason: format!(
                "the card needs the customer to authenticate, which an automatic payment cannot do: {}",
                crate::error_chain(e)
            ),
            code: Some("authentication_required".into()),
            disable: Some("authentication_required"),
        };
    }
    Outcome::Failed {
        reason: if e.is_card_error() {
            format!("the card was declined: {}", crate::error_chain(e))
        } else {
            format!("Stripe refused the purchase: {}", crate::error_chain(e))
        },
        code,
        disable: None,
    }
}

fn key(row: &TopUpRow, step: &str) -> Option<String> {
    Some(format!("stripe-manager-{}-{step}", row.id))
}

/// One attempt: each step only if the invoice is not past it already.
async fn attempt(store: &Store, client: &Client, row: &TopUpRow) -> Result<Outcome, Step> {
    // The invoice already made, if any, first: a payment that went through while our
    // request timed out must be found paid, whatever happened to the card since.
    let existing: Option<Raw<Value>> = match &row.invoice {
        Some(id) => Some(
            client
                .get(
                    "invoices.retrieve",
                    &format!("/v1/invoices/{}", path(id)),
                    &[],
                )
                .await?,
        ),
        None => None,
    };
    if let Some(inv) = &existing
        && inv.value["status"] == "paid"
    {
        return Ok(Outcome::Paid(
            inv.value["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    if existing.is_none() {
        let setting = store.top_up_setting(&row.account).await?;
        if !setting.as_ref().is_some_and(|s| s.enabled) {
            return Ok(Outcome::Failed {
                reason: "top-ups were turned off before the purchase was made".into(),
                code: None,
                disable: None,
            });
        }
        // The pack may have changed since the setting was saved: never charge for
        // credits the invoice's payment could not grant.
        if let Some(why) = super::pack_refusal(store, &row.price).await? {
            return Ok(Outcome::Failed {
                reason: why,
                code: Some("price_not_sellable".into()),
                disable: Some("price_not_sellable"),
            });
        }
    }
    let Some(customer) = store
        .account(&row.account)
        .await?
        .and_then(|a| a.stripe_customer)
    else {
        return Ok(Outcome::Failed {
            reason: "the account has no Stripe customer".into(),
            code: Some("no_customer".into()),
            disable: Some("no_customer"),
        });
    };
    let card = match card_of(client, &customer).await? {
        Some(card) => card,
        None => {
            return Ok(Outcome::Failed {
                reason: format!("customer {customer} has no saved card"),
                code: Some("no_payment_method".into()),
                disable: Some("no_payment_method"),
            });
        }
    };
    let invoice: Raw<Value> = match existing {
        Some(inv) => inv,
        None => {
            let form = Form::new()
                .push("customer", customer.as_str())
                .push("collection_method", "charge_automatically")
                .push("auto_advance", "false")
                .push("pending_invoice_items_behavior", "exclude")
                .push("default_payment_method", card.as_str())
                .push("description", "Automatic credit top-up")
                .push("metadata[stripe_manager_top_up]", row.id.as_str())
                .push("metadata[account]", row.account.as_str());
            let created: Raw<Value> = client
                .post(
                    "invoices.create",
                    "/v1/invoices",
                    &form,
                    key(row, "invoice"),
                )
                .await?;
            let id = created.value["id"].as_str().unwrap_or_default().to_owned();
            store.set_top_up_invoice(&row.id, &id).await?;
            created
        }
    };
    let id = invoice.value["id"].as_str().unwrap_or_default().to_owned();
    let mut status = invoice.value["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if status == "draft" {
        if invoice.value["lines"]["data"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            let quantity = row.quantity.to_string();
            let form = Form::new()
                .push("customer", customer.as_str())
                .push("invoice", id.as_str())
                .push("pricing[price]", row.price.as_str())
                .push("quantity", quantity.as_str());
            let _: Raw<Value> = client
                .post(
                    "invoiceitems.create",
                    "/v1/invoiceitems",
                    &form,
                    key(row, "item"),
                )
                .await?;
        }
        let form = Form::new().push("auto_advance", "false");
        let finalized: Raw<Value> = client
            .post(
                "invoices.finalize",
                &format!("/v1/invoices/{}/finalize", path(&id)),
                &form,
                key(row, "finalize"),
            )
            .await?;
        status = finalized.value["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    match status.as_str() {
        "paid" => Ok(Outcome::Paid(id)),
        "open" => {
            let form = Form::new()
                .push("off_session", "true")
                .push("payment_method", card.as_str());
            let paid: Raw<Value> = client
                .post(
                    "invoices.pay",
                    &format!("/v1/invoices/{}/pay", path(&id)),
                    &form,
                    key(row, "pay"),
                )
                .await?;
            if paid.value["status"] == "paid" {
                Ok(Outcome::Paid(id))
            } else {
                Ok(Outcome::Failed {
                    reason: format!(
                        "invoice {id} is {} after paying it",
                        paid.value["status"].as_str().unwrap_or("unknown")
                    ),
                    code: None,
                    disable: None,
                })
            }
        }
        other => Ok(Outcome::Failed {
            reason: format!("invoice {id} is {other}: it cannot be paid"),
            code: None,
            disable: None,
        }),
    }
}

fn path(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The card to charge: the customer's default for invoices, else its newest saved card.
async fn card_of(client: &Client, customer: &str) -> Result<Option<String>, StripeError> {
    let c = client.retrieve_customer(customer).await?;
    if let Some(pm) = c.default_payment_method() {
        return Ok(Some(pm.to_owned()));
    }
    let cards = client.customer_cards(customer).await?;
    Ok(cards
        .data
        .into_iter()
        .max_by_key(|pm| pm.created)
        .map(|pm| pm.id))
}

/// Records a failed purchase: voids its invoice (so nothing can collect it later),
/// turns top-ups off when `disable` says why (audited), and sends `top_up.failed`.
async fn fail(
    store: &Store,
    client: &Client,
    row: &TopUpRow,
    reason: &str,
    code: Option<&str>,
    disable: Option<&'static str>,
) -> Result<(), StoreError> {
    let invoice = store.top_up(&row.id).await?.and_then(|r| r.invoice);
    if let Some(id) = &invoice {
        // Paid after all (a request we counted as failed went through): not a failure;
        // the credits come with its invoice.paid.
        let now_paid = client
            .get::<Value>(
                "invoices.retrieve",
                &format!("/v1/invoices/{}", path(id)),
                &[],
            )
            .await
            .is_ok_and(|v| v["status"] == "paid");
        if now_paid {
            let mut tx = store.begin().await?;
            tx.move_top_up(&row.id, &["queued"], "paid", None, unix_now())
                .await?;
            tx.commit().await?;
            return Ok(());
        }
        let voided: Result<Raw<Value>, StripeError> = client
            .post(
                "invoices.void",
                &format!("/v1/invoices/{}/void", path(id)),
                &Form::new(),
                key(row, "void"),
            )
            .await;
        if let Err(e) = voided {
            tracing::warn!(top_up = %row.id, invoice = %id, error = %crate::error_chain(&e), "could not void the failed top-up's invoice");
        }
    }
    let now = unix_now();
    let mut tx = store.begin().await?;
    tx.lock_account(&row.account, now).await?;
    let Some(_) = tx
        .move_top_up(&row.id, &["queued"], "failed", Some(reason), now)
        .await?
    else {
        tx.rollback().await?;
        return Ok(());
    };
    if let Some(why) = disable
        && tx.disable_top_up(&row.account, Some(why), now).await?
    {
        let detail = format!("top-ups turned off: {reason}");
        tx.audit(
            &NewAudit {
                actor: "stripe-manager",
                action: "top_up.disabled",
                target: Some(&row.account),
                detail: Some(&detail),
                origin: Some("charger"),
                result: "ok",
            },
            now,
        )
        .await?;
    }
    let data = json!({
        "account": row.account,
        "top_up": row.id,
        "price": row.price,
        "quantity": row.quantity,
        "invoice": invoice,
        "reason": reason,
        "code": code,
        "top_ups_disabled": disable.is_some(),
    });
    crate::outbox::emit(&mut tx, &row.account, "top_up.failed", data, now * 1000).await?;
    tx.commit().await?;
    metrics::counter!("stripe_manager_top_ups_total", "outcome" => "failed").increment(1);
    tracing::warn!(account = %row.account, top_up = %row.id, %reason, disabled = disable.is_some(), "top-up failed");
    Ok(())
}
