//! API tokens: rows keyed by the token's hash; the token itself is never stored.

use serde::Serialize;

use crate::credits::NewAudit;
use crate::{Store, StoreError, on_pool, on_tx, on_write};

/// A token as stored (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    #[serde(skip)]
    pub hash: String,
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Who created it: an admin's email, `cli:<user>`, or none (made before this was kept).
    pub created_by: Option<String>,
}

impl TokenRow {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.split_whitespace()
    }
}

const COLUMNS: &str =
    "id, name, prefix, hash, scopes, created_at, last_used_at, revoked_at, created_by";

impl Store {
    /// Stores a new token made by `created_by` (see [`TokenRow::created_by`]), and
    /// `audit` with it in the same transaction; `None` (and nothing written) when the name
    /// is taken.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        name: &str,
        prefix: &str,
        hash: &str,
        scopes: &str,
        created_by: &str,
        audit: Option<&NewAudit<'_>>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        let id: Option<i64> = on_tx!(&mut tx, t => sqlx::query_scalar(
            "INSERT INTO api_tokens (name, prefix, hash, scopes, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id"
        )
        .bind(name)
        .bind(prefix)
        .bind(hash)
        .bind(scopes)
        .bind(now)
        .bind(created_by)
        .fetch_optional(&mut **t)
        .await?);
        if let (Some(_), Some(a)) = (id, audit) {
            tx.audit(a, now).await?;
        }
        tx.commit().await?;
        self.count_token_commit();
        Ok(id)
    }

    /// The live (not revoked) token with this hash.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL");
        let row =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(hash).fetch_optional(pool).await?);
        Ok(row)
    }

    /// Records a use; at most one write per token per minute.
    pub async fn touch_token(&self, id: i64, now: i64) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)"
        )
        .bind(id)
        .bind(now)
        .bind(now - 60)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id");
        let rows = on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(rows)
    }

    /// Revokes the live token with this name; false when there is none.
    pub async fn revoke_token(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL"
        )
        .bind(name)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        self.count_token_commit();
        Ok(n == 1)
    }
}
