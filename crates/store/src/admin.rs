//! Admin users, their sessions, and the failed-login counters behind throttling.

use crate::credits::NewAudit;
use crate::{Store, StoreError, Tx, on_pool, on_tx, on_write};

/// An admin login as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdminUser {
    pub id: i64,
    /// Lower case; the sign-in name and the throttle key (`email:<email>`).
    pub email: String,
    /// An argon2id PHC string, never the password.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When an operator disabled the login (Unix seconds); `None` while it is active. A
    /// disabled login keeps its row (the audit log names it) but has no live session.
    pub disabled_at: Option<i64>,
}

/// The columns of [`AdminUser`], in its order.
const USER_COLUMNS: &str = "id, email, password_hash, created_at, disabled_at";

/// A live session with its user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdminSession {
    pub id: String,
    pub user_id: i64,
    pub email: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// Failed logins for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct Throttle {
    pub failures: i64,
    pub window_start: i64,
    pub locked_until: Option<i64>,
}

impl Store {
    /// Creates an admin, and `audit` with it in the same transaction; `None` (and nothing
    /// written) when the email is taken.
    pub async fn create_admin(
        &self,
        email: &str,
        password_hash: &str,
        audit: Option<&NewAudit<'_>>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        let id: Option<i64> = on_tx!(&mut tx, t => sqlx::query_scalar(
            "INSERT INTO admin_users (email, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO NOTHING RETURNING id"
        )
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(&mut **t)
        .await?);
        if let (Some(_), Some(a)) = (id, audit) {
            tx.audit(a, now).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// The admin with this (lower-case) email, disabled or not: the caller decides what a
    /// disabled login may still do.
    pub async fn admin_by_email(&self, email: &str) -> Result<Option<AdminUser>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM admin_users WHERE email = $1");
        let row = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(email)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// Every admin, disabled ones too, ordered by email.
    pub async fn list_admins(&self) -> Result<Vec<AdminUser>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM admin_users ORDER BY email");
        let rows = on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(rows)
    }

    /// Gives the admin a new password hash and, in the same transaction, ends every
    /// session of theirs (a reset is what an operator does when a password may be known
    /// to someone else, so it signs them out everywhere), clears the failed sign-ins of
    /// their email (the new password should work at once) and writes `audit`. `false`,
    /// and nothing written, when there is no such admin.
    pub async fn set_admin_password(
        &self,
        email: &str,
        password_hash: &str,
        audit: Option<&NewAudit<'_>>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let id: Option<i64> = on_tx!(&mut tx, t => sqlx::query_scalar(
            "UPDATE admin_users SET password_hash = $2 WHERE email = $1 RETURNING id"
        )
        .bind(email)
        .bind(password_hash)
        .fetch_optional(&mut **t)
        .await?);
        let Some(id) = id else {
            tx.rollback().await?;
            return Ok(false);
        };
        tx.end_sessions_of(id).await?;
        tx.clear_email_throttle(email).await?;
        if let Some(a) = audit {
            tx.audit(a, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Disables the admin (`disabled_at = now`; every session of theirs ends and every
    /// API token they created is revoked, in the same transaction) or enables them again
    /// (`disabled_at` cleared; they sign in anew; revoked tokens stay revoked: new ones
    /// are made and handed out again), with `audit`. Disabling a disabled admin keeps the
    /// first time. `None`, and nothing written, when there is no such admin; else the
    /// number of tokens revoked.
    pub async fn set_admin_disabled(
        &self,
        email: &str,
        disabled: bool,
        audit: Option<&NewAudit<'_>>,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.begin().await?;
        let disabled_at = disabled.then_some(now);
        let id: Option<i64> = on_tx!(&mut tx, t => sqlx::query_scalar(
            "UPDATE admin_users SET disabled_at = CASE WHEN $2 IS NULL THEN NULL \
               ELSE COALESCE(disabled_at, $2) END \
             WHERE email = $1 RETURNING id"
        )
        .bind(email)
        .bind(disabled_at)
        .fetch_optional(&mut **t)
        .await?);
        let Some(id) = id else {
            tx.rollback().await?;
            return Ok(None);
        };
        let mut revoked: Vec<String> = Vec::new();
        if disabled {
            tx.end_sessions_of(id).await?;
            // A disabled person's tokens would otherwise keep working: whoever left (or
            // lost their laptop) keeps the API.
            revoked = on_tx!(&mut tx, t => sqlx::query_scalar(
                "UPDATE api_tokens SET revoked_at = $2 WHERE created_by = $1 AND revoked_at IS NULL \
                 RETURNING name"
            )
            .bind(email)
            .bind(now)
            .fetch_all(&mut **t)
            .await?);
            revoked.sort();
        }
        if let Some(a) = audit {
            // The audit names the tokens revoked with the admin: an app that stops
            // authenticating is traced to this entry.
            let detail = match (a.detail, revoked.is_empty()) {
                (_, true) => a.detail.map(str::to_owned),
                (Some(d), false) => Some(format!("{d}; revoked tokens: {}", revoked.join(", "))),
                (None, false) => Some(format!("revoked tokens: {}", revoked.join(", "))),
            };
            tx.audit(
                &NewAudit {
                    detail: detail.as_deref(),
                    ..*a
                },
                now,
            )
            .await?;
        }
        tx.commit().await?;
        if !revoked.is_empty() {
            self.count_token_commit();
        }
        Ok(Some(revoked.len() as u64))
    }

    /// Lifts the sign-in lock of the admin's email (the one the service sets after too
    /// many failures; see [`Store::record_login_attempt`]) and starts its count over, with
    /// `audit`, in one transaction, so an operator need not wait the lock out. The lock of
    /// a client address is not touched: that is [`Store::clear_throttle`] with
    /// `ip:<address>`. `false`, and nothing written, when there is no such admin.
    pub async fn unlock_admin(
        &self,
        email: &str,
        audit: Option<&NewAudit<'_>>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let known: Option<i64> = on_tx!(&mut tx, t => sqlx::query_scalar(
            "SELECT id FROM admin_users WHERE email = $1"
        )
        .bind(email)
        .fetch_optional(&mut **t)
        .await?);
        if known.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.clear_email_throttle(email).await?;
        if let Some(a) = audit {
            tx.audit(a, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Opens a session for `user_id` only if the user still has `password_hash` and is not
    /// disabled, in one statement: a password reset or a disable that commits while a
    /// sign-in is checking the old password leaves that sign-in without a session.
    /// False when nothing was opened.
    pub async fn open_session(
        &self,
        id: &str,
        user_id: i64,
        password_hash: &str,
        csrf_token: &str,
        origin: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO admin_sessions (id, user_id, csrf_token, created_at, last_seen_at, origin) \
             SELECT $1, id, $3, $4, $4, $5 FROM admin_users \
             WHERE id = $2 AND password_hash = $6 AND disabled_at IS NULL"
        )
        .bind(id)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now)
        .bind(origin)
        .bind(password_hash)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// The client addresses whose sign-in attempts as `email` failed or met the lock
    /// since `since`, among the addresses that have signed in as `email` successfully
    /// before: the addresses an unlock may lift, and never a guesser's that never got in.
    pub async fn failed_login_addresses(
        &self,
        email: &str,
        since: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT DISTINCT origin FROM audit_log \
             WHERE action = 'login' AND actor = $1 AND at >= $2 \
               AND result IN ('invalid_credentials', 'locked') AND origin IS NOT NULL \
               AND origin IN (SELECT origin FROM audit_log WHERE action = 'login' AND actor = $1 \
                              AND result = 'ok' AND origin IS NOT NULL) \
             ORDER BY origin"
        )
        .bind(email)
        .bind(since)
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    pub async fn create_session(
        &self,
        id: &str,
        user_id: i64,
        csrf_token: &str,
        origin: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO admin_sessions (id, user_id, csrf_token, created_at, last_seen_at, origin) VALUES ($1, $2, $3, $4, $4, $5)"
        )
        .bind(id)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now)
        .bind(origin)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The session with this id if it is still valid at `now` (seen within `idle` seconds
    /// and created within `absolute` seconds, and its admin not disabled); marks it seen
    /// (at most once a minute).
    pub async fn live_session(
        &self,
        id: &str,
        now: i64,
        idle: i64,
        absolute: i64,
    ) -> Result<Option<AdminSession>, StoreError> {
        let row: Option<AdminSession> = on_pool!(self, pool => sqlx::query_as(
            "SELECT s.id, s.user_id, u.email, s.csrf_token, s.created_at, s.last_seen_at \
             FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.last_seen_at > $2 AND s.created_at > $3 \
               AND u.disabled_at IS NULL"
        )
        .bind(id)
        .bind(now - idle)
        .bind(now - absolute)
        .fetch_optional(pool)
        .await?);
        if let Some(s) = &row
            && now - s.last_seen_at >= 60
        {
            on_write!(self, pool => sqlx::query("UPDATE admin_sessions SET last_seen_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())?);
        }
        Ok(row)
    }

    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query("DELETE FROM admin_sessions WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Keeps a message for the session's next page.
    pub async fn set_flash(&self, session: &str, flash: &str) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query("UPDATE admin_sessions SET flash = $2 WHERE id = $1")
            .bind(session)
            .bind(flash)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// The session's pending message, removed as it is read.
    pub async fn take_flash(&self, session: &str) -> Result<Option<String>, StoreError> {
        let flash: Option<Option<String>> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT flash FROM admin_sessions WHERE id = $1"
        )
        .bind(session)
        .fetch_optional(pool)
        .await?);
        let flash = flash.flatten();
        if flash.is_some() {
            on_write!(self, pool => sqlx::query("UPDATE admin_sessions SET flash = NULL WHERE id = $1")
                .bind(session)
                .execute(pool)
                .await
                .map(|_| ())?);
        }
        Ok(flash)
    }

    pub async fn throttle(&self, key: &str) -> Result<Throttle, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as(
            "SELECT failures, window_start, locked_until FROM login_throttle WHERE key = $1"
        )
        .bind(key)
        .fetch_optional(pool)
        .await?);
        Ok(row.unwrap_or_default())
    }

    /// Counts one sign-in attempt for `key` at `now`, atomically, before its password is
    /// checked, and returns the new counter: an attempt outside the `window` (seconds) or
    /// after an ended lock starts a new count; at `lock_after` attempts the key is locked
    /// for `lock_for` seconds (an attempt during a lock does not extend it). One
    /// statement, so parallel attempts cannot lose counts, and each learns whether it
    /// may go on. A successful sign-in clears the counter.
    pub async fn record_login_attempt(
        &self,
        key: &str,
        now: i64,
        window: i64,
        lock_after: i64,
        lock_for: i64,
    ) -> Result<Throttle, StoreError> {
        let row = on_write!(self, pool => sqlx::query_as(
            "INSERT INTO login_throttle (key, failures, window_start, locked_until) \
             VALUES ($1, 1, $2, CASE WHEN $4 <= 1 THEN $2 + $5 END) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN login_throttle.window_start <= $2 - $3 OR login_throttle.locked_until <= $2 \
                          THEN 1 ELSE login_throttle.failures + 1 END, \
               window_start = CASE WHEN login_throttle.window_start <= $2 - $3 OR login_throttle.locked_until <= $2 \
                              THEN $2 ELSE login_throttle.window_start END, \
               locked_until = CASE WHEN login_throttle.locked_until > $2 THEN login_throttle.locked_until \
                              WHEN (CASE WHEN login_throttle.window_start <= $2 - $3 OR login_throttle.locked_until <= $2 \
                                         THEN 1 ELSE login_throttle.failures + 1 END) >= $4 \
                              THEN $2 + $5 END \
             RETURNING failures, window_start, locked_until"
        )
        .bind(key)
        .bind(now)
        .bind(window)
        .bind(lock_after)
        .bind(lock_for)
        .fetch_one(pool)
        .await?);
        Ok(row)
    }

    pub async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }
}

impl Tx {
    /// Deletes every session of the admin `user_id`: they are signed out everywhere.
    async fn end_sessions_of(&mut self, user_id: i64) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query("DELETE FROM admin_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut **t)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Deletes the failed sign-ins (and any lock) of `email`'s throttle key, the key the
    /// sign-in form counts under (`email:<email>`).
    async fn clear_email_throttle(&mut self, email: &str) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(format!("email:{email}"))
            .execute(&mut **t)
            .await
            .map(|_| ())?);
        Ok(())
    }
}
