//! `stripe-manager accounts show|list|erase|export`, `subscription cancel|resume|change` and
//! `payments list|refund`: what an account has and paid, and the billing actions, for
//! operators. Reads are local; actions call Stripe (exit 3 when it is unavailable, 2
//! for bad arguments, 1 when Stripe or the state refuses) and are audited as
//! `cli:$USER`.

use clap::Subcommand;

use super::Failure;
use super::table;
use crate::accounts::{AccountError, Accounts};
use crate::billing::{
    Actor, Billing, BillingError, ChangeRequest, RefundRequest, SubscriptionChanged,
};
use crate::clock::{unix_now, utc};
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// An account's customer, subscriptions, entitlement and credits (local data).
    Show {
        /// The account id (your application's id for the customer).
        account: String,
        /// Print JSON (the API's answer).
        #[arg(long)]
        json: bool,
    },
    /// Redact the personal data stored about an account (its Stripe customers' names,
    /// e-mails, addresses, receipts and invoice links, in every mirror and stored event);
    /// the ledger's amounts and ids are kept, so its balance is unchanged. The customers
    /// stay erased: later events and syncs store only the redacted form. Audited.
    Erase {
        /// The account id.
        account: String,
        /// Also delete the account's customers in Stripe (cancels their subscriptions;
        /// cannot be undone). A second run is harmless.
        #[arg(long)]
        stripe: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Everything stored about an account (ledger, holds, top-ups, checkouts, payments,
    /// customers, subscriptions, invoices, charges, events to the app) as one JSON
    /// document: the data-subject access request. Without --json, rows per table.
    Export {
        /// The account id.
        account: String,
        /// Print the JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Accounts known to the ledger, newest first.
    List {
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Cancel the account's running subscription at the end of its period.
    Cancel {
        /// The account id.
        account: String,
        /// Cancel now instead of at the period end.
        #[arg(long)]
        now: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take back a scheduled cancellation.
    Resume {
        /// The account id.
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move the running subscription to another plan price (the same subscription).
    Change {
        /// The account id.
        account: String,
        /// The new recurring price (price_…).
        price: String,
        /// now or period_end; default: now for an upgrade, period_end for a downgrade.
        #[arg(long, value_parser = ["now", "period_end"])]
        when: Option<String>,
        /// With --when now: always_invoice (default), create_prorations or none.
        #[arg(long)]
        proration: Option<String>,
        /// The new quantity (default: the subscription's own).
        #[arg(long)]
        quantity: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a plan change left for the end of the period (releases its schedule).
    CancelChange {
        /// The account id.
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PaymentsCommand {
    /// The account's invoices and one-time checkouts, newest first.
    List {
        /// The account id.
        account: String,
        /// How many to list (1–100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Refund (part of) a payment in Stripe; the ledger follows through its webhook.
    Refund {
        /// The account id.
        account: String,
        /// The payment: an invoice (in_…) or a checkout session (cs_…).
        payment: String,
        /// In the payment's currency (5.00); everything not refunded yet when absent.
        #[arg(long)]
        amount: Option<String>,
        /// Why (kept in the audit log and the refund's metadata).
        #[arg(long)]
        reason: String,
        /// Makes a retried command one refund.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print_json(value: &impl serde::Serialize) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("views serialize")
    );
}

fn account_failure(e: AccountError) -> Failure {
    let code = match e {
        AccountError::Invalid(_) | AccountError::Cursor(_) => 2,
        AccountError::Store(_) => 1,
    };
    Failure {
        code,
        message: crate::error_chain(&e),
    }
}

fn billing_failure(e: BillingError) -> Failure {
    match e {
        BillingError::Unavailable(u) => Failure::stripe(&u),
        BillingError::Invalid(_) => Failure::usage(crate::error_chain(&e)),
        e => Failure {
            code: 1,
            message: crate::error_chain(&e),
        },
    }
}

fn privacy_failure(e: crate::privacy::PrivacyError) -> Failure {
    use crate::privacy::PrivacyError;
    let code = match &e {
        PrivacyError::Invalid(_) => 2,
        PrivacyError::Unavailable { source, .. } => Failure::stripe(source).code,
        PrivacyError::Stripe { .. } | PrivacyError::Store(_) => 1,
    };
    Failure {
        code,
        message: crate::error_chain(&e),
    }
}

fn list_or_dash(ids: &[String]) -> String {
    if ids.is_empty() {
        "-".to_owned()
    } else {
        ids.join(", ")
    }
}

fn user() -> String {
    super::actor()
}

fn accounts(state: &AppState) -> Accounts {
    Accounts::new(state.store.clone(), state.config.past_due_grace)
}

/// A time for people (`2025-11-26 14:03 UTC`), `-` when there is none.
fn when(secs: Option<i64>) -> String {
    secs.map_or_else(|| "-".to_owned(), utc)
}

pub async fn run_accounts(state: AppState, command: AccountsCommand) -> Result<u8, Failure> {
    match command {
        AccountsCommand::Show { account, json } => {
            let a = accounts(&state)
                .show(&account, unix_now())
                .await
                .map_err(account_failure)?;
            if json {
                print_json(&a);
                return Ok(0);
            }
            outln!("account      {}", a.account);
            match &a.customer {
                Some(c) => match &c.email {
                    Some(email) => outln!("customer     {} {email}", c.id),
                    None => outln!("customer     {}", c.id),
                },
                None => outln!("customer     -"),
            }
            outln!(
                "entitlement  {} ({}{})",
                if a.entitlement.active {
                    "active"
                } else {
                    "inactive"
                },
                a.entitlement.status,
                a.entitlement
                    .grace_until
                    .map(|g| format!(", grace until {}", utc(g)))
                    .unwrap_or_default()
            );
            outln!(
                "features     {}",
                if a.features.is_empty() {
                    "-".to_owned()
                } else {
                    a.features
                        .iter()
                        .map(|f| format!("{} ({})", f.lookup_key, f.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            outln!("credits      {} available", a.credits.available);
            for s in &a.subscriptions {
                outln!(
                    "subscription {} {} {} period end {}{}",
                    s.id,
                    s.status,
                    s.price.as_deref().unwrap_or("-"),
                    when(s.current_period_end),
                    if s.cancel_at_period_end {
                        ", cancels at period end"
                    } else {
                        ""
                    }
                );
                if let Some(next) = &s.scheduled_change {
                    outln!(
                        "             changes to {} × {} at {} (schedule {})",
                        next.price,
                        next.quantity.unwrap_or(1),
                        when(Some(next.at)),
                        next.schedule
                    );
                }
                if s.pause_collection.is_some() {
                    outln!("             payment collection paused");
                }
            }
        }
        AccountsCommand::Erase {
            account,
            stripe,
            json,
        } => {
            let name = user();
            let actor = Actor {
                name: &name,
                origin: "cli",
            };
            let r = crate::privacy::erase(&state.store, &state.stripe, &account, stripe, actor)
                .await
                .map_err(privacy_failure)?;
            if json {
                print_json(&r);
                return Ok(0);
            }
            outln!(
                "account {}: personal data redacted ({} customer(s): {}); ledger amounts kept",
                r.account,
                r.customers.len(),
                if r.customers.is_empty() {
                    "-".to_owned()
                } else {
                    r.customers.join(", ")
                }
            );
            let mut t = table::new(&["TABLE", "ROWS REDACTED"]);
            table::right(&mut t, &[1]);
            let c = r.redacted;
            for (what, n) in [
                ("customers", c.customers),
                ("invoices", c.invoices),
                ("charges", c.charges),
                ("subscriptions", c.subscriptions),
                ("webhook_events", c.webhook_events),
            ] {
                t.add_row(vec![what.to_owned(), n.to_string()]);
            }
            table::print(&t);
            if r.stripe {
                outln!(
                    "deleted in Stripe: {}; already deleted: {}",
                    list_or_dash(&r.deleted_in_stripe),
                    list_or_dash(&r.already_deleted_in_stripe)
                );
            } else {
                outln!("the Stripe customer(s) are kept (--stripe deletes them)");
            }
        }
        AccountsCommand::Export { account, json } => {
            let doc = crate::privacy::export(&state.store, &account)
                .await
                .map_err(privacy_failure)?;
            if json {
                print_json(&doc);
                return Ok(0);
            }
            let mut t = table::new(&["TABLE", "ROWS"]);
            table::right(&mut t, &[1]);
            let count = |v: &serde_json::Value| v.as_array().map_or(0, Vec::len);
            t.add_row(vec![
                "payments".to_owned(),
                count(&doc["payments"]).to_string(),
            ]);
            if let Some(tables) = doc["tables"].as_object() {
                for (name, rows) in tables {
                    t.add_row(vec![name.clone(), count(rows).to_string()]);
                }
            }
            table::print(&t);
            outln!();
            outln!("(--json prints the document)");
        }
        AccountsCommand::List { limit, json } => {
            let rows = state
                .store
                .list_accounts(limit.clamp(1, 1000))
                .await
                .map_err(|e| Failure {
                    code: 1,
                    message: crate::error_chain(&e),
                })?;
            if json {
                print_json(&rows);
                return Ok(0);
            }
            if rows.is_empty() {
                outln!("no accounts");
                return Ok(0);
            }
            let mut t = table::new(&["ACCOUNT", "CUSTOMER", "CREATED"]);
            for r in rows {
                t.add_row(vec![
                    r.id,
                    r.stripe_customer.unwrap_or_else(|| "-".into()),
                    utc(r.created_at),
                ]);
            }
            table::print(&t);
        }
    }
    Ok(0)
}

fn print_changed(c: &SubscriptionChanged, json: bool) {
    if json {
        print_json(c);
        return;
    }
    outln!(
        "{}: subscription {} {} on {}{}",
        c.account,
        c.subscription,
        c.status,
        c.price.as_deref().unwrap_or("-"),
        if c.cancel_at_period_end {
            format!(
                ", cancels at {}",
                when(c.cancel_at.or(c.current_period_end))
            )
        } else {
            String::new()
        }
    );
    if let Some(next) = &c.scheduled_change {
        outln!(
            "  changes to {} × {} at {} (schedule {})",
            next.price,
            next.quantity.unwrap_or(1),
            when(Some(next.at)),
            next.schedule
        );
    }
}

pub async fn run_subscription(
    state: AppState,
    command: SubscriptionCommand,
) -> Result<u8, Failure> {
    let billing = Billing::new(state.store.clone(), state.stripe.clone());
    let name = user();
    let actor = Actor {
        name: &name,
        origin: "cli",
    };
    let (changed, json) = match command {
        SubscriptionCommand::Cancel { account, now, json } => {
            (billing.cancel(&account, now, None, actor).await, json)
        }
        SubscriptionCommand::Resume { account, json } => {
            (billing.resume(&account, None, actor).await, json)
        }
        SubscriptionCommand::Change {
            account,
            price,
            when,
            proration,
            quantity,
            json,
        } => {
            let req = ChangeRequest {
                price,
                proration_behavior: proration,
                when,
                quantity,
            };
            (billing.change(&account, &req, None, actor).await, json)
        }
        SubscriptionCommand::CancelChange { account, json } => {
            (billing.cancel_change(&account, None, actor).await, json)
        }
    };
    print_changed(&changed.map_err(billing_failure)?, json);
    Ok(0)
}

pub async fn run_payments(state: AppState, command: PaymentsCommand) -> Result<u8, Failure> {
    match command {
        PaymentsCommand::List {
            account,
            limit,
            json,
        } => {
            let page = accounts(&state)
                .payments(&account, None, limit)
                .await
                .map_err(account_failure)?;
            if json {
                print_json(&page);
                return Ok(0);
            }
            if page.data.is_empty() {
                outln!("no payments");
                return Ok(0);
            }
            let mut t = table::new(&["PAYMENT", "KIND", "STATUS", "PAID", "REFUNDED", "CREATED"]);
            table::right(&mut t, &[3, 4]);
            for p in &page.data {
                let currency = p.currency.as_deref().unwrap_or("");
                t.add_row(vec![
                    p.id.clone(),
                    p.kind.clone(),
                    p.status.clone().unwrap_or_else(|| "-".into()),
                    sm_domain::Money::new(p.amount_paid.unwrap_or(0), currency).to_string(),
                    sm_domain::Money::new(p.refunded, currency).to_string(),
                    utc(p.created),
                ]);
            }
            table::print(&t);
            if page.has_more {
                outln!();
                outln!("(more: raise --limit)");
            }
        }
        PaymentsCommand::Refund {
            account,
            payment,
            amount,
            reason,
            idempotency_key,
            json,
        } => {
            let amount = match amount {
                None => None,
                Some(text) => {
                    let currency = state
                        .store
                        .account_payment(&account, &payment)
                        .await
                        .map_err(|e| Failure {
                            code: 1,
                            message: crate::error_chain(&e),
                        })?
                        .and_then(|p| p.currency)
                        .ok_or_else(|| {
                            Failure::usage(format!(
                                "{payment:?} is not a payment of account {account}"
                            ))
                        })?;
                    Some(
                        sm_domain::money::parse_major(&text, &currency)
                            .map_err(|e| Failure::usage(format!("--amount: {e}")))?,
                    )
                }
            };
            let name = user();
            let actor = Actor {
                name: &name,
                origin: "cli",
            };
            let req = RefundRequest {
                payment,
                amount,
                reason,
            };
            let r = Billing::new(state.store.clone(), state.stripe.clone())
                .refund(&account, &req, idempotency_key.as_deref(), actor)
                .await
                .map_err(billing_failure)?;
            if json {
                print_json(&r);
            } else {
                outln!(
                    "refund {} of {} for {} requested ({}); the credits follow when Stripe reports it",
                    r.refund,
                    sm_domain::Money::new(r.amount, r.currency.as_deref().unwrap_or("")),
                    r.payment,
                    r.status.as_deref().unwrap_or("pending")
                );
            }
        }
    }
    Ok(0)
}
