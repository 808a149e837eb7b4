//! What one account is, read from the mirrors: its Stripe customers, subscriptions and
//! payments (invoices and one-time checkouts). Local data only: these answer every
//! request without a Stripe call.

use serde::Serialize;

use crate::credits::SubscriptionRow;
use crate::{Store, StoreError, on_pool};

/// One payment in an account's history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Payment))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PaymentRow {
    /// `invoice` or `checkout`.
    pub kind: String,
    pub id: String,
    pub created: i64,
    /// An invoice's status (`open`, `paid`, `void`, `uncollectible`), or a checkout's
    /// payment status (`paid`, `unpaid`, `no_payment_required`, `failed`).
    pub status: Option<String>,
    /// Minor units of `currency`: an invoice's total, a checkout's amount paid.
    pub amount: Option<i64>,
    pub amount_paid: Option<i64>,
    pub currency: Option<String>,
    /// Money refunded (minor units) by refunds the ledger has seen for this payment.
    pub refunded: i64,
    /// Stripe's hosted invoice page (invoices), or the receipt of a checkout's charge
    /// (once `charge.*` events or `sync --objects charges` mirrored it).
    pub url: Option<String>,
    pub pdf: Option<String>,
}

/// The refunds (active ones) of the payments linked to the origin `{id}`.
const REFUNDED: &str = "CAST(COALESCE((SELECT SUM(r.amount) FROM credit_reversals r \
     JOIN credit_links l ON l.ref = r.link \
     WHERE l.origin = {id} AND r.kind = 'refund' AND r.active), 0) AS BIGINT)";

/// The customers of account `$1` (see [`Store::account_customers`]), as a subquery: an
/// account with many customers costs no bound parameters.
const CUSTOMERS_OF: &str = "(SELECT stripe_customer FROM credit_accounts WHERE id = $1 \
     AND stripe_customer IS NOT NULL UNION SELECT id FROM customers WHERE account = $1 AND NOT deleted)";

impl Store {
    /// Customers linked to `account`: the one the account row names first (linked when
    /// it checked out), then live ones whose `metadata.account` is the account (created
    /// outside this service).
    pub async fn account_customers(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let ids = on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM (SELECT stripe_customer AS id, 0 AS rank FROM credit_accounts \
             WHERE id = $1 AND stripe_customer IS NOT NULL \
             UNION SELECT id, 1 AS rank FROM customers WHERE account = $1 AND NOT deleted) c \
             ORDER BY rank, id LIMIT 100"
        )
        .bind(account)
        .fetch_all(pool)
        .await?);
        let mut seen = std::collections::HashSet::new();
        Ok(ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect())
    }

    /// The account's subscriptions (linked to it, or to one of its customers), the one
    /// whose period ends last first; at most 100.
    pub async fn account_subscriptions(
        &self,
        account: &str,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        let sql = format!(
            "SELECT id, account, customer, status, price, product, quantity, current_period_start, current_period_end, \
             cancel_at_period_end, canceled_at, event_created, raw, updated_at FROM subscriptions \
             WHERE (account = $1 OR customer IN {CUSTOMERS_OF}) AND event_created > 0 \
             ORDER BY COALESCE(current_period_end, 0) DESC, id LIMIT 100"
        );
        let rows =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(account).fetch_all(pool).await?);
        Ok(rows)
    }

    /// The account's payments, newest first: invoices of its customers (drafts left
    /// out) and its completed one-time checkouts. `before` is the `(created, id)` of the
    /// last payment of the previous page.
    pub async fn account_payments(
        &self,
        account: &str,
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        let filter = match before {
            Some((created, id)) => Filter::Before(created, id),
            None => Filter::All,
        };
        self.payments(account, filter, limit).await
    }

    /// One payment of the account (`in_…` or `cs_…`), if it is the account's.
    pub async fn account_payment(
        &self,
        account: &str,
        id: &str,
    ) -> Result<Option<PaymentRow>, StoreError> {
        Ok(self
            .payments(account, Filter::Only(id), 1)
            .await?
            .into_iter()
            .next())
    }

    async fn payments(
        &self,
        account: &str,
        filter: Filter<'_>,
        limit: u32,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        // Ids compare byte by byte on both backends (Stripe's ids mix cases; a PostgreSQL
        // database with a language collation would order them otherwise than the merge
        // below and the cursor, and skip or repeat payments between pages).
        let bytes = match self.backend() {
            crate::Backend::Postgres => " COLLATE \"C\"",
            crate::Backend::Sqlite => "",
        };
        let condition = |created: &str, id: &str| match filter {
            Filter::Before(..) => {
                format!(" AND ({created} < $2 OR ({created} = $2 AND {id}{bytes} < $3))")
            }
            Filter::Only(_) => format!(" AND {id} = $2"),
            Filter::All => String::new(),
        };
        let invoices = format!(
            "SELECT 'invoice' AS kind, i.id, i.created, i.status, i.total AS amount, i.amount_paid, i.currency, \
             {refunded} AS refunded, i.hosted_invoice_url AS url, i.invoice_pdf AS pdf FROM invoices i \
             WHERE NOT i.deleted AND i.status <> 'draft' AND i.customer IN {CUSTOMERS_OF}{} \
             ORDER BY i.created DESC, i.id{bytes} DESC LIMIT {limit}",
            condition("i.created", "i.id"),
            refunded = REFUNDED.replace("{id}", "i.id"),
        );
        let checkouts = format!(
            "SELECT 'checkout' AS kind, cs.id, cs.created_at AS created, cs.payment_status AS status, \
             o.paid_amount AS amount, o.paid_amount AS amount_paid, o.currency, {refunded} AS refunded, \
             (SELECT ch.receipt_url FROM charges ch JOIN credit_links l ON l.ref = ch.payment_intent \
              WHERE l.origin = cs.id AND NOT ch.deleted ORDER BY ch.created DESC LIMIT 1) AS url, \
             CAST(NULL AS TEXT) AS pdf \
             FROM checkout_sessions cs LEFT JOIN credit_origins o ON o.id = cs.id \
             WHERE cs.account = $1 AND cs.mode = 'payment' AND cs.status = 'complete'{} \
             ORDER BY cs.created_at DESC, cs.id{bytes} DESC LIMIT {limit}",
            condition("cs.created_at", "cs.id"),
            refunded = REFUNDED.replace("{id}", "cs.id"),
        );
        let mut rows: Vec<PaymentRow> = Vec::new();
        for sql in [invoices, checkouts] {
            let found: Vec<PaymentRow> = on_pool!(self, pool => {
                let mut q = sqlx::query_as(&sql).bind(account);
                match filter {
                    Filter::Before(created, id) => q = q.bind(created).bind(id),
                    Filter::Only(id) => q = q.bind(id),
                    Filter::All => {}
                }
                q.fetch_all(pool).await?
            });
            rows.extend(found);
        }
        rows.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        rows.truncate(limit as usize);
        Ok(rows)
    }
}

/// Which payments to read.
#[derive(Debug, Clone, Copy)]
enum Filter<'a> {
    All,
    /// Older than `(created, id)`.
    Before(i64, &'a str),
    Only(&'a str),
}
