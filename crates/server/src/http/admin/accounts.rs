//! `/admin/credits`: credit accounts (paged) with their balances; one account with its
//! balance, plan, payments (paged, each refundable), lots and history; staff grants,
//! deductions and refunds; erasure of the account's personal data (confirmed by typing
//! the account id).

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sm_domain::credits::Credits;

use super::view::{Badge, PAGE, Pager, link, money, split_cursor, when};
use super::{AdminCtx, Nav, failed, render};
use crate::clock::unix_now;
use crate::credits::{AdjustRequest, Adjustment, Balance};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/credits", get(credits))
        .route("/admin/credits/account", get(account))
        .route("/admin/credits/adjust", post(adjust))
        .route("/admin/credits/refund", post(refund))
        .route("/admin/credits/erase", post(erase))
}

/// Payments shown per page on the account page.
const PAYMENTS_PAGE: u32 = 20;

fn account_link(account: &str) -> String {
    link("/admin/credits/account", &[("account", account)])
}

struct AccountRow {
    account: String,
    href: String,
    available: Credits,
    debt: Credits,
    stripe_customer: String,
    created: String,
    cursor: String,
}

#[derive(Template)]
#[template(path = "credits.html")]
struct CreditsPage {
    nav: Nav,
    accounts: Vec<AccountRow>,
    pager: Pager,
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    /// `<created_at>:<account>` of the last account on the previous page.
    #[serde(default)]
    cursor: String,
}

async fn credits(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<ListQuery>,
) -> Response {
    credits_page(&state, &ctx, &q.cursor, None).await
}

/// The accounts page; with `error`, that message shown and status 400 (a GET never
/// writes: the error is not audited nor kept for another page).
async fn credits_page(
    state: &AppState,
    ctx: &AdminCtx,
    cursor: &str,
    error: Option<String>,
) -> Response {
    let before = split_cursor(cursor);
    if before.is_none() && !cursor.is_empty() {
        return super::view::bad_cursor(&ctx.mount.at("/admin/credits"));
    }
    let accounts = match state
        .store
        .list_accounts_page(before, PAGE as u32 + 1)
        .await
    {
        Ok(a) => a,
        Err(e) => return failed("the accounts could not be read", &e),
    };
    let now = unix_now();
    let mut rows = Vec::with_capacity(accounts.len());
    for a in accounts {
        match state.ledger.balance(&a.id, now).await {
            Ok(b) => rows.push(AccountRow {
                href: account_link(&a.id),
                cursor: format!("{}:{}", a.created_at, a.id),
                created: when(a.created_at),
                account: a.id,
                available: b.available,
                debt: b.debt,
                stripe_customer: a.stripe_customer.unwrap_or_else(|| "—".to_owned()),
            }),
            Err(e) => return failed("a balance could not be read", &e),
        }
    }
    let pager = Pager::cut(&mut rows, "/admin/credits", &[], before.is_some(), |r| {
        r.cursor.clone()
    });
    let mut nav = ctx.nav(state, "credits").await;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    if error.is_some() {
        nav.flash_err = error;
    }
    let page = CreditsPage {
        nav,
        accounts: rows,
        pager,
    };
    (status, render(&page)).into_response()
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    account: String,
    b: Balance,
    lots: Vec<LotLine>,
    history: Vec<EntryLine>,
    subscriptions: Vec<SubscriptionLine>,
    entitlement: Badge,
    entitlement_status: String,
    features: Vec<sm_store::entitlements::EntitlementRow>,
    payments: Vec<PaymentLine>,
    payments_pager: Pager,
    /// The account's erased customers: `cus_… (erased <when> by <who>)`.
    erased: Vec<String>,
}

struct LotLine {
    id: i64,
    source: String,
    source_ref: String,
    amount: Credits,
    remaining: Credits,
    expires: String,
    created: String,
}

struct EntryLine {
    id: i64,
    kind: Badge,
    amount: Credits,
    reference: String,
    description: String,
    actor: String,
    at: String,
}

struct SubscriptionLine {
    id: String,
    status: Badge,
    product: String,
    price: String,
    period_end: String,
    cancels: String,
    /// A plan change left for the period's end, or paused collection; `—` otherwise.
    changes: String,
}

/// A payment on the account page, with its refund form.
struct PaymentLine {
    id: String,
    kind: String,
    status: Badge,
    created: String,
    paid: String,
    refunded: String,
    url: Option<String>,
    refundable: bool,
    /// The form's idempotency key: a double submit is one refund.
    key: String,
}

#[derive(Debug, Deserialize)]
struct AccountQuery {
    account: String,
    /// The payments page to show (a `next_cursor` of the payments history).
    #[serde(default)]
    cursor: String,
}

async fn account(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<AccountQuery>,
) -> Response {
    let now = unix_now();
    let (b, history) = match (
        state.ledger.balance(&q.account, now).await,
        state.ledger.history(&q.account, 100).await,
    ) {
        (Ok(b), Ok(h)) => (b, h),
        (Err(e), _) | (_, Err(e)) => {
            return credits_page(&state, &ctx, "", Some(e.to_string())).await;
        }
    };
    let accounts = crate::accounts::Accounts::new(state.store.clone(), state.config.past_due_grace);
    let cursor = (!q.cursor.is_empty()).then_some(q.cursor.as_str());
    let (view, payments) = match (
        accounts.show(&q.account, now).await,
        accounts.payments(&q.account, cursor, PAYMENTS_PAGE).await,
    ) {
        (Ok(v), Ok(p)) => (v, p),
        (Err(crate::accounts::AccountError::Cursor(c)), _)
        | (_, Err(crate::accounts::AccountError::Cursor(c))) => {
            return credits_page(
                &state,
                &ctx,
                "",
                Some(format!("{c:?} is not a page of this account's payments.")),
            )
            .await;
        }
        (Err(e), _) | (_, Err(e)) => return failed("the account could not be read", &e),
    };
    let payments_pager = Pager {
        next: payments.next_cursor.as_deref().map(|c| {
            link(
                "/admin/credits/account",
                &[("account", &q.account), ("cursor", c)],
            )
        }),
        first: cursor.map(|_| account_link(&q.account)),
    };
    let payments = payments
        .data
        .into_iter()
        .map(|p| {
            let currency = p.currency.clone().unwrap_or_default();
            let paid = p.amount_paid.unwrap_or(0);
            PaymentLine {
                paid: money(paid, &currency),
                refunded: money(p.refunded, &currency),
                refundable: paid > p.refunded,
                key: uuid::Uuid::new_v4().simple().to_string(),
                status: Badge::status(p.status.as_deref().unwrap_or("unknown")),
                created: when(p.created),
                id: p.id,
                kind: p.kind,
                url: p.url,
            }
        })
        .collect();
    let lots = b
        .lots
        .iter()
        .map(|l| LotLine {
            id: l.id,
            source: l.source.clone(),
            source_ref: l.source_ref.clone(),
            amount: l.amount,
            remaining: l.remaining,
            expires: match l.expires_at {
                _ if l.expired => "expired".to_owned(),
                Some(e) => when(e),
                None => "never".to_owned(),
            },
            created: when(l.created_at),
        })
        .collect();
    let history = history
        .into_iter()
        .map(|e| EntryLine {
            id: e.id,
            kind: Badge::new(
                match e.kind.as_str() {
                    "grant" => "good",
                    "refund" | "debt" => "bad",
                    _ => "muted",
                },
                e.kind,
            ),
            amount: e.amount,
            reference: e.reference,
            description: e.description.unwrap_or_default(),
            actor: e.actor.unwrap_or_default(),
            at: when(e.created_at),
        })
        .collect();
    let subscriptions = view
        .subscriptions
        .into_iter()
        .map(|s| SubscriptionLine {
            status: Badge::status(&s.status),
            product: s.product.unwrap_or_default(),
            price: s.price.unwrap_or_default(),
            period_end: s.current_period_end.map_or("—".to_owned(), when),
            cancels: match (s.cancel_at_period_end, s.cancel_at) {
                (_, Some(at)) => format!("yes, {}", when(at)),
                (true, None) => "at the period end".to_owned(),
                (false, None) => "no".to_owned(),
            },
            changes: match (&s.scheduled_change, &s.pause_collection) {
                (Some(c), _) => format!(
                    "to {} × {} at {}",
                    c.price,
                    c.quantity.unwrap_or(1),
                    when(c.at)
                ),
                (None, Some(_)) => "payment collection paused".to_owned(),
                (None, None) => "—".to_owned(),
            },
            id: s.id,
        })
        .collect();
    let erased = match state.store.erased_customers(&q.account).await {
        Ok(rows) => rows
            .into_iter()
            .map(|e| {
                format!(
                    "{} (erased {} by {}{})",
                    e.customer,
                    when(e.erased_at),
                    e.erased_by,
                    e.deleted_at
                        .map(|d| format!("; deleted in Stripe {}", when(d)))
                        .unwrap_or_default()
                )
            })
            .collect(),
        Err(e) => return failed("the erasures could not be read", &e),
    };
    let page = AccountPage {
        erased,
        nav: ctx.nav(&state, "credits").await,
        account: q.account.clone(),
        entitlement: if view.entitlement.active {
            Badge::new("good", "active")
        } else {
            Badge::new("muted", "inactive")
        },
        entitlement_status: view.entitlement.status.replace('_', " "),
        features: view.features.clone(),
        b,
        lots,
        history,
        subscriptions,
        payments,
        payments_pager,
    };
    render(&page).into_response()
}

#[derive(Debug, Deserialize)]
struct RefundForm {
    account: String,
    payment: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    key: String,
}

/// Refunds a payment in Stripe; the ledger follows through the refund's webhook. The
/// amount is in the payment's currency (`5.00`); empty refunds what is left. Billing
/// audits the refund itself.
async fn refund(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<RefundForm>,
) -> Response {
    let currency = match state
        .store
        .account_payment(&form.account, &form.payment)
        .await
    {
        Ok(p) => p.and_then(|p| p.currency).unwrap_or_default(),
        Err(e) => return failed("the payment could not be read", &e),
    };
    let amount = match form.amount.trim() {
        "" => Ok(None),
        text => sm_domain::money::parse_major(text, &currency)
            .map(Some)
            .map_err(|e| format!("Nothing refunded: {e}")),
    };
    let actor_name = ctx.actor();
    let outcome = match amount {
        Err(m) => Err(m),
        Ok(amount) => {
            let request = crate::billing::RefundRequest {
                payment: form.payment.clone(),
                amount,
                reason: form.reason.clone(),
            };
            let actor = crate::billing::Actor {
                name: &actor_name,
                origin: &ctx.origin,
            };
            let key = (!form.key.is_empty()).then_some(form.key.as_str());
            match crate::billing::Billing::new(state.store.clone(), state.stripe.clone())
                .refund(&form.account, &request, key, actor)
                .await
            {
                Ok(r) => Ok(format!(
                    "Refund {} of {} requested in Stripe ({}); the credits follow when Stripe reports it.",
                    r.refund,
                    money(r.amount, r.currency.as_deref().unwrap_or("")),
                    r.status.as_deref().unwrap_or("pending")
                )),
                Err(e) => Err(format!("Nothing refunded: {e}")),
            }
        }
    };
    ctx.flash(&state, outcome).await;
    Redirect::to(&account_link(&form.account)).into_response()
}

#[derive(Debug, Deserialize)]
struct EraseForm {
    account: String,
    /// The account id typed again: nothing is erased unless it matches.
    #[serde(default)]
    confirm: String,
    /// `on`: also delete the customer in Stripe.
    #[serde(default)]
    stripe: String,
}

/// Erases the account's personal data (`accounts erase`), once the operator typed the
/// account id into the confirmation field. The erasure audits itself; a refusal is
/// audited here.
async fn erase(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<EraseForm>,
) -> Response {
    if form.confirm.trim() != form.account {
        ctx.done(
            &state,
            "accounts.erase",
            Some(&form.account),
            Err(format!(
                "Nothing erased: type the account id ({}) into the confirmation field to erase its personal data.",
                form.account
            )),
        )
        .await;
        return Redirect::to(&account_link(&form.account)).into_response();
    }
    let actor_name = ctx.actor();
    let actor = crate::billing::Actor {
        name: &actor_name,
        origin: &ctx.origin,
    };
    let in_stripe = form.stripe == "on";
    let outcome = match crate::privacy::erase(
        &state.store,
        &state.stripe,
        &form.account,
        in_stripe,
        actor,
    )
    .await
    {
        Ok(r) => {
            let c = r.redacted;
            Ok(format!(
                "Personal data of {} erased ({} customer(s)); rows redacted: customers {}, invoices {}, charges {}, subscriptions {}, stored events {}. Ledger amounts kept.{}",
                r.account,
                r.customers.len(),
                c.customers,
                c.invoices,
                c.charges,
                c.subscriptions,
                c.webhook_events,
                if in_stripe {
                    format!(
                        " Deleted in Stripe: {}.",
                        r.deleted_in_stripe
                            .iter()
                            .chain(&r.already_deleted_in_stripe)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    String::new()
                }
            ))
        }
        Err(e) => Err(format!("Erasure failed: {}", crate::error_chain(&e))),
    };
    ctx.flash(&state, outcome).await;
    Redirect::to(&account_link(&form.account)).into_response()
}

#[derive(Debug, Deserialize)]
struct AdjustForm {
    account: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    action: String,
}

async fn adjust(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<AdjustForm>,
) -> Response {
    let kind = if form.action == "deduct" {
        Adjustment::Deduct
    } else {
        Adjustment::Grant
    };
    let action = if kind == Adjustment::Deduct {
        "credits.deduct"
    } else {
        "credits.grant"
    };
    let outcome = match Credits::parse(form.amount.trim()) {
        Err(e) => Err(format!("Nothing changed: {e}")),
        Ok(amount) => {
            let actor = ctx.actor();
            let request = AdjustRequest {
                kind,
                amount,
                reason: &form.reason,
                actor: &actor,
                origin: &ctx.origin,
            };
            match state
                .ledger
                .adjust(&form.account, &request, unix_now())
                .await
            {
                Ok(done) => Ok(format!(
                    "{} {} credits {} {}; balance {}.",
                    if kind == Adjustment::Grant {
                        "Granted"
                    } else {
                        "Deducted"
                    },
                    done.amount,
                    if kind == Adjustment::Grant {
                        "to"
                    } else {
                        "from"
                    },
                    done.account,
                    done.balance
                )),
                Err(e) => Err(format!("Nothing changed: {e}")),
            }
        }
    };
    // The ledger audits a successful adjustment itself; a refused one is audited here.
    match outcome {
        Err(message) => {
            ctx.done(&state, action, Some(&form.account), Err(message))
                .await
        }
        ok => ctx.flash(&state, ok).await,
    }
    Redirect::to(&account_link(&form.account)).into_response()
}
