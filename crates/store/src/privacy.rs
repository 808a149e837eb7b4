//! Personal data: what is redacted when a customer is erased, the record of erased
//! customers, and what an account's data-subject export holds.
//!
//! An erased customer (`accounts erase`, or Stripe's `customer.deleted`) is remembered in
//! `erased_customers` for ever (ids only). The mirror writer ([`crate::objects`]) looks
//! every customer-linked write up there and stores its redacted form, so a later event or
//! `sync --objects` cannot bring the data back; ids, amounts, statuses and the account
//! link stay, so billing and credits keep working. The credit ledger is never touched.
//!
//! What redaction does to stored JSON is [`crate::redact`]'s; the columns it clears are
//! each kind's [`ObjectKind::personal`].

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::objects::{KINDS, ObjectKind};
use crate::redact::redact_json;
use crate::{Store, StoreError, Tx, TxConn, on_pool, on_tx};

/// The mirrored kinds linked to a customer (see [`ObjectKind::customer`]).
fn linked() -> impl Iterator<Item = &'static ObjectKind> {
    KINDS.iter().copied().filter(|k| k.customer.is_some())
}

/// What an erasure redacted, rows per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Redacted {
    pub customers: u64,
    pub invoices: u64,
    pub charges: u64,
    pub subscriptions: u64,
    /// Stored Stripe events (the inbox) whose payload named the customer.
    pub webhook_events: u64,
}

impl Redacted {
    fn add(&mut self, table: &str, n: u64) {
        match table {
            "customers" => self.customers += n,
            "invoices" => self.invoices += n,
            "charges" => self.charges += n,
            "subscriptions" => self.subscriptions += n,
            _ => self.webhook_events += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.customers + self.invoices + self.charges + self.subscriptions + self.webhook_events
    }
}

/// Who erased a customer, and why.
#[derive(Debug, Clone, Copy)]
pub struct Erasure<'a> {
    /// `cli:alice`, `admin:bob@example.com`, `stripe`.
    pub by: &'a str,
    /// `erase` or `customer.deleted`.
    pub reason: &'a str,
    /// When the customer was deleted in Stripe, if it was.
    pub deleted_at: Option<i64>,
    pub now: i64,
}

/// An erased customer as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ErasedCustomer {
    pub customer: String,
    pub account: Option<String>,
    pub erased_at: i64,
    pub erased_by: String,
    pub reason: String,
    pub deleted_at: Option<i64>,
}

/// Every customer of `account` `$1`, deleted ones and erased ones included: the one its
/// ledger row links, customers naming it in `metadata.account`, its subscriptions' and
/// checkouts' customers.
pub(crate) const ALL_CUSTOMERS_OF: &str = "(SELECT stripe_customer FROM credit_accounts \
     WHERE id = $1 AND stripe_customer IS NOT NULL \
     UNION SELECT id FROM customers WHERE account = $1 \
     UNION SELECT customer FROM subscriptions WHERE account = $1 \
     UNION SELECT customer FROM checkout_sessions WHERE account = $1 AND customer IS NOT NULL \
     UNION SELECT customer FROM erased_customers WHERE account = $1)";

impl Tx {
    /// PostgreSQL: takes this transaction's advisory lock of each customer's erasure,
    /// shared for a mirror write, exclusive for an erasure, in sorted order (two
    /// transactions locking several customers cannot deadlock). Under READ COMMITTED a
    /// writer that looked a customer up before an erasure committed would store an
    /// unredacted row after it; with the locks, the erasure waits for writers already
    /// past their lookup, and later writers wait for the erasure and then see it (their
    /// lookup is a later statement). SQLite needs none: one writer at a time.
    pub(crate) async fn erasure_locks(
        &mut self,
        customers: &[&str],
        exclusive: bool,
    ) -> Result<(), StoreError> {
        let TxConn::Postgres(t) = &mut self.conn else {
            return Ok(());
        };
        let mut sorted: Vec<&str> = customers.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Ok(());
        }
        let function = if exclusive {
            "pg_advisory_xact_lock"
        } else {
            "pg_advisory_xact_lock_shared"
        };
        // `unnest` yields the array in order, so the locks are taken sorted.
        let sql = format!(
            "SELECT {function}(hashtextextended('sm-erase:' || c, 0)) FROM unnest($1::text[]) AS c"
        );
        sqlx::query(&sql)
            .persistent(false)
            .bind(&sorted)
            .execute(&mut **t)
            .await?;
        Ok(())
    }

    /// Redacts every stored trace of `customers` (mirrors and stored Stripe events) and
    /// remembers them as erased, in this transaction. Erasing again redacts what came
    /// since (nothing, since writes are redacted) and keeps the first record, adding the
    /// deletion time if it was unknown. The ledger is not touched.
    pub async fn erase_customers(
        &mut self,
        customers: &[String],
        account: Option<&str>,
        erasure: Erasure<'_>,
    ) -> Result<Redacted, StoreError> {
        let mut counts = Redacted::default();
        let ids: Vec<&str> = customers.iter().map(String::as_str).collect();
        self.erasure_locks(&ids, true).await?;
        for customer in customers {
            on_tx!(self, t => sqlx::query(
                "INSERT INTO erased_customers (customer, account, erased_at, erased_by, reason, deleted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (customer) DO UPDATE SET \
                 account = COALESCE(erased_customers.account, excluded.account), \
                 deleted_at = COALESCE(erased_customers.deleted_at, excluded.deleted_at)"
            )
            .bind(customer)
            .bind(account)
            .bind(erasure.now)
            .bind(erasure.by)
            .bind(erasure.reason)
            .bind(erasure.deleted_at)
            .execute(&mut **t)
            .await
            .map(|_| ())?);
            for kind in linked() {
                let sql = format!(
                    "SELECT id, raw FROM {} WHERE {} = $1",
                    kind.table,
                    kind.customer.unwrap_or("id")
                );
                let n = self
                    .redact_rows(kind.table, "id", "raw", kind.personal, &sql, customer)
                    .await?;
                counts.add(kind.table, n);
            }
            // Stored events naming the customer. A scan, but erasures are rare and the
            // inbox is kept short (WEBHOOK_RETENTION_DAYS); `_` in the pattern matches any
            // character, so each payload is checked for the exact id before it is changed.
            let n = self
                .redact_rows(
                    "webhook_events",
                    "id",
                    "payload",
                    &[],
                    "SELECT id, payload FROM webhook_events WHERE payload LIKE '%\"' || $1 || '\"%'",
                    customer,
                )
                .await?;
            counts.add("webhook_events", n);
        }
        Ok(counts)
    }

    /// Redacts the stored payload of event `id` when the customer it is about (its
    /// object's `customer`, or the object itself when it is a customer) is erased: a
    /// later event for an erased customer keeps no personal data in the inbox either.
    /// Returns whether it did.
    pub async fn redact_event_if_erased(
        &mut self,
        id: &str,
        payload: &str,
    ) -> Result<bool, StoreError> {
        let Ok(v) = serde_json::from_str::<Value>(payload) else {
            return Ok(false);
        };
        let object = &v["data"]["object"];
        let customer = if object["object"] == "customer" {
            object["id"].as_str()
        } else {
            object["customer"]
                .as_str()
                .or_else(|| object["customer"]["id"].as_str())
        };
        let Some(customer) = customer else {
            return Ok(false);
        };
        if self.erased_among(&[customer]).await?.is_empty() {
            return Ok(false);
        }
        let redacted = redact_json(payload);
        on_tx!(self, t => sqlx::query("UPDATE webhook_events SET payload = $2 WHERE id = $1")
            .bind(id)
            .bind(&redacted)
            .execute(&mut **t)
            .await
            .map(|_| ())?);
        Ok(true)
    }

    /// Redacts the rows `select` (`key`, `json` columns; `$1` = `customer`) finds: the
    /// JSON, and the `personal` columns set to NULL. Returns the rows that changed.
    async fn redact_rows(
        &mut self,
        table: &str,
        key: &str,
        json: &str,
        personal: &[&str],
        select: &str,
        customer: &str,
    ) -> Result<u64, StoreError> {
        let rows: Vec<(String, String)> = on_tx!(self, t => sqlx::query_as(select)
            .bind(customer)
            .fetch_all(&mut **t)
            .await?);
        let quoted = format!("\"{customer}\"");
        let mut nulls: Vec<String> = personal.iter().map(|c| format!("{c} = NULL")).collect();
        nulls.push(format!("{json} = $2"));
        let any_personal = if personal.is_empty() {
            "FALSE".to_owned()
        } else {
            personal
                .iter()
                .map(|c| format!("{c} IS NOT NULL"))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let update = format!(
            "UPDATE {table} SET {} WHERE {key} = $1 AND ({json} <> $2 OR {any_personal})",
            nulls.join(", ")
        );
        let mut changed = 0;
        for (id, text) in rows {
            if json == "payload" && !text.contains(&quoted) {
                continue;
            }
            let redacted = redact_json(&text);
            changed += on_tx!(self, t => sqlx::query(&update)
                .bind(&id)
                .bind(&redacted)
                .execute(&mut **t)
                .await?
                .rows_affected());
        }
        Ok(changed)
    }
}

impl Store {
    /// Every customer of `account` (the customers it is linked to now or was before), sorted.
    pub async fn customers_to_erase(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let sql = format!("SELECT c.stripe_customer FROM {ALL_CUSTOMERS_OF} c");
        let mut ids: Vec<Option<String>> =
            on_pool!(self, pool => sqlx::query_scalar(&sql).bind(account).fetch_all(pool).await?);
        ids.sort();
        ids.dedup();
        Ok(ids.into_iter().flatten().collect())
    }

    /// The erased customers of `account` (by their record or by being its customers).
    pub async fn erased_customers(&self, account: &str) -> Result<Vec<ErasedCustomer>, StoreError> {
        let sql = format!(
            "SELECT customer, account, erased_at, erased_by, reason, deleted_at FROM erased_customers \
             WHERE customer IN {ALL_CUSTOMERS_OF} ORDER BY customer"
        );
        let rows =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(account).fetch_all(pool).await?);
        Ok(rows)
    }

    /// One erased customer's record.
    pub async fn erased_customer(
        &self,
        customer: &str,
    ) -> Result<Option<ErasedCustomer>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as(
            "SELECT customer, account, erased_at, erased_by, reason, deleted_at FROM erased_customers WHERE customer = $1"
        )
        .bind(customer)
        .fetch_optional(pool)
        .await?);
        Ok(row)
    }

    /// Records that `customers` are deleted in Stripe as of `at` (a first time is kept).
    pub async fn mark_customers_deleted(
        &self,
        customers: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for c in customers {
            on_tx!(tx, t => sqlx::query(
                "UPDATE erased_customers SET deleted_at = COALESCE(deleted_at, $2) WHERE customer = $1"
            )
            .bind(c)
            .bind(at)
            .execute(&mut **t)
            .await
            .map(|_| ())?);
        }
        tx.commit().await
    }

    /// Everything stored about `account`, table by table, as JSON (the data-subject
    /// access request): its ledger row, lots, entries, consumptions, holds, top-ups,
    /// checkouts and events to the app; its customers' mirrors (customers,
    /// subscriptions and their schedules, invoices, charges, entitlements) and erasure
    /// records; audit entries that name it. Stored JSON (`raw`, `payload`) is embedded
    /// as JSON.
    pub async fn export_account(
        &self,
        account: &str,
    ) -> Result<BTreeMap<&'static str, Vec<Value>>, StoreError> {
        let c = ALL_CUSTOMERS_OF;
        let sections: Vec<(&'static str, String)> = vec![
            ("account", "SELECT * FROM credit_accounts WHERE id = $1".into()),
            ("credit_lots", "SELECT * FROM credit_lots WHERE account = $1 ORDER BY id".into()),
            ("credit_entries", "SELECT * FROM credit_entries WHERE account = $1 ORDER BY id".into()),
            (
                "credit_consumptions",
                "SELECT * FROM credit_consumptions WHERE account = $1 ORDER BY created_at".into(),
            ),
            ("credit_origins", "SELECT * FROM credit_origins WHERE account = $1 ORDER BY id".into()),
            ("credit_holds", "SELECT * FROM credit_holds WHERE account = $1 ORDER BY created_at, id".into()),
            ("top_up_settings", "SELECT * FROM top_up_settings WHERE account = $1".into()),
            ("top_ups", "SELECT * FROM top_ups WHERE account = $1 ORDER BY id".into()),
            (
                "checkout_sessions",
                "SELECT * FROM checkout_sessions WHERE account = $1 ORDER BY created_at, id".into(),
            ),
            ("app_events", "SELECT * FROM app_events WHERE account = $1 ORDER BY seq".into()),
            ("customers", format!("SELECT * FROM customers WHERE id IN {c} ORDER BY id")),
            (
                "subscriptions",
                format!("SELECT * FROM subscriptions WHERE account = $1 OR customer IN {c} ORDER BY id"),
            ),
            (
                "subscription_schedules",
                format!(
                    "SELECT * FROM subscription_schedules WHERE subscription IN \
                     (SELECT id FROM subscriptions WHERE account = $1 OR customer IN {c}) ORDER BY id"
                ),
            ),
            ("invoices", format!("SELECT * FROM invoices WHERE customer IN {c} ORDER BY created, id")),
            ("charges", format!("SELECT * FROM charges WHERE customer IN {c} ORDER BY created, id")),
            (
                "customer_entitlements",
                format!("SELECT * FROM customer_entitlements WHERE customer IN {c} ORDER BY customer, lookup_key"),
            ),
            (
                "erased_customers",
                format!("SELECT * FROM erased_customers WHERE customer IN {c} ORDER BY customer"),
            ),
            (
                "credit_reversals",
                "SELECT r.* FROM credit_reversals r WHERE r.link IN (SELECT l.ref FROM credit_links l \
                 WHERE l.origin IN (SELECT o.id FROM credit_origins o WHERE o.account = $1)) ORDER BY r.id"
                    .into(),
            ),
            ("audit_log", "SELECT * FROM audit_log WHERE target = $1 ORDER BY id".into()),
        ];
        let mut out = BTreeMap::new();
        for (name, sql) in sections {
            let rows = on_pool!(self, pool => {
                sqlx::query(&sql)
                    .bind(account)
                    .persistent(false)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(row_json)
                    .collect::<Result<Vec<_>, StoreError>>()?
            });
            out.insert(name, rows);
        }
        Ok(out)
    }
}

/// A row as a JSON object, each column decoded by its SQL type; `raw`, `payload` and
/// `metadata` columns holding JSON are embedded as JSON.
fn row_json<R>(row: &R) -> Result<Value, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use sqlx::{Column, TypeInfo, ValueRef};
    let mut map = serde_json::Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let name = column.name().to_owned();
        if row.try_get_raw(i)?.is_null() {
            map.insert(name, Value::Null);
            continue;
        }
        let ty = column.type_info().name().to_ascii_uppercase();
        let value = if ty.contains("BOOL") {
            Value::from(row.try_get::<bool, _>(i)?)
        } else if ty.contains("INT") {
            match row.try_get::<i64, _>(i) {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(row.try_get::<i32, _>(i)?),
            }
        } else if ty.contains("REAL") || ty.contains("FLOAT") || ty.contains("DOUBLE") {
            Value::from(row.try_get::<f64, _>(i)?)
        } else {
            let text: String = row.try_get(i)?;
            match name.as_str() {
                "raw" | "payload" | "metadata" | "report" => {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                }
                _ => Value::String(text),
            }
        };
        map.insert(name, value);
    }
    Ok(Value::Object(map))
}
