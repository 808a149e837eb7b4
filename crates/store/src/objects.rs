//! The generic object pipeline: Stripe objects mirrored locally, each described once by
//! an [`ObjectKind`] (its table and the columns taken from its JSON), and written and
//! read by one writer per backend with the same ordering guard and tombstones.
//!
//! Every mirror table has the same frame: `id`, the kind's columns, `version`, `deleted`,
//! `raw` (Stripe's JSON) and `synced_at`. `version` orders writes: an event's `created`
//! (also for the copy refetched to settle a tie), or the time a sync listed the object
//! (Stripe's customers, invoices and subscriptions carry no `updated`). A write lands when it is newer; on the same
//! version a tombstone wins over a live row and stays, and two live states with other
//! content are a *tie* the caller settles (see [`Ties`]).
//!
//! Adding an object: a migration with the table, a descriptor here, an extractor in the
//! server's `mirror` module; the writer, the reader, sync and the webhook path are shared.

use std::collections::HashMap;

use serde::Serialize;

use crate::catalog::{Ties, WriteCounts};
use crate::{Store, StoreError, Tx, on_pool, on_tx};

/// The SQL type of an extracted column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    Bool,
}

/// One mirrored Stripe object type.
#[derive(Debug, PartialEq, Eq)]
pub struct ObjectKind {
    /// Stripe's `object` value (`customer`).
    pub object: &'static str,
    pub table: &'static str,
    /// Columns taken from the JSON, in the order of [`ObjectWrite::cells`].
    pub columns: &'static [(&'static str, ColumnType)],
}

use ColumnType::{Bool, Int, Text};

/// `customers`: `account` is `metadata.account`.
pub static CUSTOMERS: ObjectKind = ObjectKind {
    object: "customer",
    table: "customers",
    columns: &[
        ("account", Text),
        ("email", Text),
        ("name", Text),
        ("livemode", Bool),
        ("created", Int),
    ],
};

/// `invoices`, with what a payment history shows.
pub static INVOICES: ObjectKind = ObjectKind {
    object: "invoice",
    table: "invoices",
    columns: &[
        ("customer", Text),
        ("subscription", Text),
        ("status", Text),
        ("currency", Text),
        ("total", Int),
        ("amount_due", Int),
        ("amount_paid", Int),
        ("amount_remaining", Int),
        ("number", Text),
        ("hosted_invoice_url", Text),
        ("invoice_pdf", Text),
        ("billing_reason", Text),
        ("livemode", Bool),
        ("created", Int),
    ],
};

/// A value for one extracted column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
}

/// One object to write.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectWrite {
    pub id: String,
    /// See the module docs.
    pub version: i64,
    /// A tombstone: the object is deleted in Stripe (its last JSON is kept).
    pub deleted: bool,
    /// One per [`ObjectKind::columns`], in order.
    pub cells: Vec<Cell>,
    pub raw: String,
}

/// An object as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredObject {
    pub id: String,
    pub version: i64,
    pub deleted: bool,
    pub raw: String,
    pub synced_at: i64,
}

/// What the guard decides for one write against the stored row.
fn classify(write: &ObjectWrite, stored: Option<&StoredObject>, ties: Ties) -> Outcome {
    let Some(s) = stored else {
        return Outcome::Created;
    };
    if write.version > s.version {
        return if !s.deleted && !write.deleted && s.raw == write.raw {
            Outcome::Unchanged
        } else {
            Outcome::Updated
        };
    }
    if write.version < s.version || s.deleted {
        return Outcome::Stale;
    }
    // Same version, live row.
    if write.deleted {
        Outcome::Updated
    } else if s.raw == write.raw {
        Outcome::Unchanged
    } else if ties == Ties::Refresh {
        Outcome::Updated
    } else {
        Outcome::Tie
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    Stale,
    Tie,
}

/// Rows per statement: far below either backend's parameter limit for any kind here.
const CHUNK: usize = 200;

fn check(kind: &ObjectKind, writes: &[ObjectWrite]) -> Result<(), StoreError> {
    for w in writes {
        let fits = w.cells.len() == kind.columns.len()
            && w.cells.iter().zip(kind.columns).all(|(c, (_, t))| {
                matches!(
                    (c, t),
                    (Cell::Text(_), Text) | (Cell::Int(_), Int) | (Cell::Bool(_), Bool)
                )
            });
        if !fits {
            return Err(StoreError::Corrupt(format!(
                "{} {}: cells do not match the {} columns",
                kind.object, w.id, kind.table
            )));
        }
    }
    Ok(())
}

/// `INSERT … ON CONFLICT` with the guard, for `n` rows; `$1…` placeholders, row-major.
/// The guard repeats [`classify`] for rows the read could not see (two instances
/// inserting one new id at once on PostgreSQL): on the same version a live row is
/// replaced only by a tombstone or, under [`Ties::Refresh`], by a fresh read.
fn upsert_sql(kind: &ObjectKind, n: usize, ties: Ties) -> String {
    let mut columns = vec!["id"];
    columns.extend(kind.columns.iter().map(|(c, _)| *c));
    columns.extend(["version", "deleted", "raw", "synced_at"]);
    let width = columns.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        kind.table,
        columns.join(", ")
    );
    for row in 0..n {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * width + col + 1));
        }
        sql.push(')');
    }
    let sets: Vec<String> = columns[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let refresh = if ties == Ties::Refresh {
        "TRUE"
    } else {
        "FALSE"
    };
    sql.push_str(&format!(
        " ON CONFLICT (id) DO UPDATE SET {} WHERE {t}.version < excluded.version \
         OR ({t}.version = excluded.version AND NOT {t}.deleted \
         AND (excluded.deleted OR {t}.raw = excluded.raw OR {refresh}))",
        sets.join(", "),
        t = kind.table
    ));
    sql
}

/// Binds one row's values in column order, for either backend.
macro_rules! bind_row {
    ($q:expr, $w:expr, $now:expr) => {{
        let mut q = $q.bind($w.id.clone());
        for cell in &$w.cells {
            q = match cell {
                Cell::Text(v) => q.bind(v.clone()),
                Cell::Int(v) => q.bind(*v),
                Cell::Bool(v) => q.bind(*v),
            };
        }
        q.bind($w.version)
            .bind($w.deleted)
            .bind($w.raw.clone())
            .bind($now)
    }};
}

fn select_sql(kind: &ObjectKind, n: usize) -> String {
    let marks: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    format!(
        "SELECT id, version, deleted, raw, synced_at FROM {} WHERE id IN ({})",
        kind.table,
        marks.join(", ")
    )
}

impl Tx {
    /// Writes `writes` of `kind` under the ordering guard and counts what happened.
    /// With [`Ties::Reject`] a same-version row with other content is left alone and
    /// counted in `ties` (the caller refetches the object). Later duplicates of an id in
    /// `writes` are compared with the earlier ones as written.
    pub async fn upsert_objects(
        &mut self,
        kind: &ObjectKind,
        writes: &[ObjectWrite],
        ties: Ties,
        now: i64,
    ) -> Result<WriteCounts, StoreError> {
        check(kind, writes)?;
        let mut counts = WriteCounts::default();
        for chunk in writes.chunks(CHUNK) {
            let ids: Vec<&str> = chunk.iter().map(|w| w.id.as_str()).collect();
            let mut stored = self.stored_objects(kind, &ids, true).await?;
            let mut apply: Vec<&ObjectWrite> = Vec::new();
            for w in chunk {
                match classify(w, stored.get(&w.id), ties) {
                    Outcome::Created => counts.created += 1,
                    Outcome::Updated => counts.updated += 1,
                    Outcome::Unchanged => counts.unchanged += 1,
                    Outcome::Stale => {
                        counts.stale += 1;
                        continue;
                    }
                    Outcome::Tie => {
                        counts.ties += 1;
                        continue;
                    }
                }
                stored.insert(
                    w.id.clone(),
                    StoredObject {
                        id: w.id.clone(),
                        version: w.version,
                        deleted: w.deleted,
                        raw: w.raw.clone(),
                        synced_at: now,
                    },
                );
                // One row per id per statement (ON CONFLICT cannot touch a row twice).
                apply.retain(|a| a.id != w.id);
                apply.push(w);
            }
            if apply.is_empty() {
                continue;
            }
            let sql = upsert_sql(kind, apply.len(), ties);
            on_tx!(self, t => {
                let mut q = sqlx::query(&sql);
                for w in &apply {
                    q = bind_row!(q, w, now);
                }
                q.execute(&mut **t).await?;
            });
        }
        Ok(counts)
    }

    /// The stored rows of `ids`; on PostgreSQL locked (`lock`) so that two instances
    /// writing one object decide in turn.
    async fn stored_objects(
        &mut self,
        kind: &ObjectKind,
        ids: &[&str],
        lock: bool,
    ) -> Result<HashMap<String, StoredObject>, StoreError> {
        let mut sql = select_sql(kind, ids.len());
        let rows: Vec<StoredObject> = match self {
            Tx::Sqlite(t, _) => {
                let mut q = sqlx::query_as(&sql);
                for id in ids {
                    q = q.bind(*id);
                }
                q.fetch_all(&mut **t).await?
            }
            Tx::Postgres(t) => {
                if lock {
                    sql.push_str(" ORDER BY id FOR UPDATE");
                }
                let mut q = sqlx::query_as(&sql).persistent(false);
                for id in ids {
                    q = q.bind(*id);
                }
                q.fetch_all(&mut **t).await?
            }
        };
        Ok(rows.into_iter().map(|r| (r.id.clone(), r)).collect())
    }
}

impl Store {
    /// [`Tx::upsert_objects`] in a transaction of its own.
    pub async fn upsert_objects(
        &self,
        kind: &ObjectKind,
        writes: &[ObjectWrite],
        ties: Ties,
        now: i64,
    ) -> Result<WriteCounts, StoreError> {
        let mut tx = self.begin().await?;
        let counts = tx.upsert_objects(kind, writes, ties, now).await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// One stored object of `kind`, tombstones included.
    pub async fn get_object(
        &self,
        kind: &ObjectKind,
        id: &str,
    ) -> Result<Option<StoredObject>, StoreError> {
        let sql = select_sql(kind, 1);
        let row = on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?);
        Ok(row)
    }

    /// Stored objects of `kind` whose `column` equals one of `values`, newest first
    /// (`created`), live ones only; `before` pages by `(created, id)`.
    pub async fn objects_where(
        &self,
        kind: &ObjectKind,
        column: &str,
        values: &[String],
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<StoredObject>, StoreError> {
        if values.is_empty() || !kind.columns.iter().any(|(c, _)| *c == column) {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
        let n = values.len();
        let mut sql = format!(
            "SELECT id, version, deleted, raw, synced_at FROM {} WHERE NOT deleted AND {column} IN ({})",
            kind.table,
            marks.join(", ")
        );
        if before.is_some() {
            sql.push_str(&format!(
                " AND (created < ${a} OR (created = ${a} AND id < ${b}))",
                a = n + 1,
                b = n + 2
            ));
        }
        sql.push_str(&format!(" ORDER BY created DESC, id DESC LIMIT {limit}"));
        let rows = on_pool!(self, pool => {
            let mut q = sqlx::query_as(&sql);
            for v in values {
                q = q.bind(v.as_str());
            }
            if let Some((created, id)) = before {
                q = q.bind(created).bind(id);
            }
            q.fetch_all(pool).await?
        });
        Ok(rows)
    }

    /// Rows of `kind` (live and tombstones), for tests and the admin.
    pub async fn count_objects(&self, kind: &ObjectKind) -> Result<(u64, u64), StoreError> {
        let sql = format!(
            "SELECT COALESCE(SUM(CASE WHEN deleted THEN 0 ELSE 1 END), 0), \
             COALESCE(SUM(CASE WHEN deleted THEN 1 ELSE 0 END), 0) FROM {}",
            kind.table
        );
        let (live, dead): (i64, i64) =
            on_pool!(self, pool => sqlx::query_as(&sql).fetch_one(pool).await?);
        Ok((live as u64, dead as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(version: i64, deleted: bool, raw: &str) -> ObjectWrite {
        ObjectWrite {
            id: "cus_1".into(),
            version,
            deleted,
            cells: Vec::new(),
            raw: raw.into(),
        }
    }

    fn s(version: i64, deleted: bool, raw: &str) -> StoredObject {
        StoredObject {
            id: "cus_1".into(),
            version,
            deleted,
            raw: raw.into(),
            synced_at: 0,
        }
    }

    #[test]
    fn the_guard_orders_by_version_and_keeps_tombstones() {
        use Outcome::*;
        let cases = [
            (w(5, false, "a"), None, Ties::Reject, Created),
            (
                w(6, false, "b"),
                Some(s(5, false, "a")),
                Ties::Reject,
                Updated,
            ),
            (
                w(6, false, "a"),
                Some(s(5, false, "a")),
                Ties::Reject,
                Unchanged,
            ),
            (
                w(4, false, "b"),
                Some(s(5, false, "a")),
                Ties::Reject,
                Stale,
            ),
            (w(5, false, "b"), Some(s(5, false, "a")), Ties::Reject, Tie),
            (
                w(5, false, "b"),
                Some(s(5, false, "a")),
                Ties::Refresh,
                Updated,
            ),
            (
                w(5, true, "a"),
                Some(s(5, false, "a")),
                Ties::Reject,
                Updated,
            ),
            (
                w(5, false, "a"),
                Some(s(5, true, "a")),
                Ties::Refresh,
                Stale,
            ),
            (
                w(6, false, "a"),
                Some(s(5, true, "a")),
                Ties::Reject,
                Updated,
            ),
        ];
        for (write, stored, ties, want) in cases {
            assert_eq!(
                classify(&write, stored.as_ref(), ties),
                want,
                "{write:?} over {stored:?}"
            );
        }
    }

    #[test]
    fn the_upsert_names_every_column_once_per_row() {
        let sql = upsert_sql(&CUSTOMERS, 2, Ties::Reject);
        assert!(sql.starts_with(
            "INSERT INTO customers (id, account, email, name, livemode, created, version, deleted, raw, synced_at) VALUES ($1,"
        ));
        assert!(sql.contains("($11, $12"), "{sql}");
        assert!(sql.contains("$20)"), "{sql}");
        assert!(!sql.contains("$21"), "{sql}");
    }
}
