//! Admin sign-in as a service ([`sign_in`], [`sign_out`]): argon2id passwords, database
//! sessions, CSRF tokens, and throttling of failed logins. The HTTP handlers in
//! `http::admin::login` only translate forms and cookies to and from these calls.
//!
//! - **Passwords** are argon2id (the crate's defaults: 19 MiB, 2 passes), verified on a
//!   blocking thread. An unknown email is verified against a fixed dummy hash, so the
//!   answer takes as long and says the same as for a wrong password.
//! - **Sessions**: the cookie holds 256 random bits; the database keeps their SHA-256
//!   as the session id (a database copy holds no usable cookie). A session ends after
//!   [`SESSION_IDLE`] without a request or [`SESSION_ABSOLUTE`] after sign-in, and on
//!   sign-out.
//! - **CSRF**: each session has a random token that every state-changing form sends
//!   back; the sign-in form uses a double-submit cookie instead (there is no session yet).
//! - **Throttling**, per email and per client address, in a [`WINDOW`]: from
//!   [`SLOW_AFTER`] failures on, each attempt waits longer before it is answered; at
//!   [`LOCK_AFTER`] the key is locked for [`LOCK_FOR`], whatever the password. Every
//!   attempt is counted, before its password is checked, by one atomic statement
//!   (`Store::record_login_attempt`), so of a burst of parallel guesses only those
//!   counted below the lock are checked; a success clears the count. At most a few
//!   password checks run at once (argon2 takes 19 MiB each).

use std::sync::LazyLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sm_store::admin::Throttle;
use sm_store::credits::NewAudit;
use sm_store::{Store, StoreError};

use crate::auth::hash;

/// An admin session ends after this long without a request (seconds).
pub const SESSION_IDLE: i64 = 30 * 60;
/// An admin session ends this long after sign-in, however active (seconds).
pub const SESSION_ABSOLUTE: i64 = 12 * 3600;
/// The window failed sign-ins are counted in, per email and per client (seconds).
pub const WINDOW: i64 = 15 * 60;
/// Failures in a [`WINDOW`] after which each attempt is answered more slowly.
pub const SLOW_AFTER: i64 = 3;
/// Failures in a [`WINDOW`] that lock the key for [`LOCK_FOR`].
pub const LOCK_AFTER: i64 = 8;
/// How long a locked key refuses every attempt, right password or not (seconds).
pub const LOCK_FOR: i64 = 15 * 60;
/// The shortest password `admin create-user` accepts.
pub const MIN_PASSWORD: usize = 12;

/// An admin's email, trimmed and lower-cased; the error says why it is not one.
pub fn parse_email(email: &str) -> Result<String, String> {
    let email = email.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(format!("{email:?} is not an email address"))
    }
}

/// Checks a new password's length and hashes it on a blocking thread (argon2 takes a
/// core for tens of milliseconds).
pub async fn new_password_hash(password: String) -> Result<String, String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD} characters"
        ));
    }
    // Queued with the sign-in checks: each takes 19 MiB and a core.
    let _permit = CHECKS
        .acquire()
        .await
        .map_err(|e| format!("could not hash the password: {e}"))?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| format!("could not hash the password: {e}"))?
}

/// Hashes a password (argon2id, random salt) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("could not hash the password: {e}"))
}

static DUMMY: LazyLock<String> =
    LazyLock::new(|| hash_password("not a password anyone has").expect("hashing works"));

/// Password checks running at once. Each takes 19 MiB and a core for a few tens of
/// milliseconds; a burst of sign-ins queues here instead of taking gigabytes.
static CHECKS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(cores.clamp(1, 4))
});

/// Whether `password` matches `hash`; with `None` (no such user) it checks against a
/// dummy hash and answers false, taking the same time. At most a few run at once.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    let Ok(_permit) = CHECKS.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY.clone());
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

/// 256 random bits as hex, for cookies and CSRF tokens.
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// What a key's failures mean for the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No wait: check the password now.
    Open,
    /// Answer only after this wait.
    Slow(Duration),
    /// Refuse until this time (unix seconds).
    Locked(i64),
}

/// What a key's throttle row means at `now` (unix seconds): locked, slowed (200 ms per
/// failure past [`SLOW_AFTER`], at most 2 s) or open.
pub fn gate(t: &Throttle, now: i64) -> Gate {
    if let Some(until) = t.locked_until
        && until > now
    {
        return Gate::Locked(until);
    }
    if now - t.window_start >= WINDOW || t.failures < SLOW_AFTER {
        return Gate::Open;
    }
    let steps = (t.failures - SLOW_AFTER + 1).min(10) as u64;
    Gate::Slow(Duration::from_millis(200 * steps))
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Too many failures for this email or this client; `minutes` until it may retry.
    #[error("Too many failed sign-in attempts. Try again in {minutes} minute{}.", if *minutes == 1 { "" } else { "s" })]
    Locked {
        /// Whole minutes until the lock ends, rounded up.
        minutes: i64,
    },
    /// Unknown email, wrong password or disabled user: one answer for all three, so
    /// the form tells a guesser nothing.
    #[error("Invalid email or password.")]
    Invalid,
    /// The database failed (the form shows a generic error; the log has the cause).
    #[error("sign-in failed")]
    Store(#[from] StoreError),
}

/// A new session: `cookie` goes to the browser, only its hash is stored.
pub struct SignedIn {
    /// The session cookie's value (256 random bits, hex); never stored, only its SHA-256.
    pub cookie: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("cookie", &"<redacted>")
            .finish()
    }
}

/// Checks a sign-in attempt and opens a session. Every attempt is counted per email and
/// per client before its password is checked, by one atomic statement per key: of a
/// burst of parallel guesses, only those counted below the lock are checked at all; a
/// success clears both counts. Each outcome is audited with the client's address.
pub async fn sign_in(
    store: &Store,
    email: &str,
    password: String,
    origin: &str,
    now: i64,
) -> Result<SignedIn, SignInError> {
    let email = email.trim().to_ascii_lowercase();
    let keys = [format!("email:{email}"), format!("ip:{origin}")];
    let mut wait = Duration::ZERO;
    for key in &keys {
        let t = store
            .record_login_attempt(key, now, WINDOW, LOCK_AFTER, LOCK_FOR)
            .await?;
        let before = Throttle {
            failures: t.failures - 1,
            ..t
        };
        match (t.locked_until.filter(|u| *u > now), gate(&before, now)) {
            (Some(until), _) | (None, Gate::Locked(until)) => {
                audit(store, &email, "login", "locked", origin, now).await;
                return Err(SignInError::Locked {
                    minutes: ((until - now) + 59) / 60,
                });
            }
            (None, Gate::Slow(d)) => wait = wait.max(d),
            (None, Gate::Open) => {}
        }
    }
    tokio::time::sleep(wait).await;
    let user = store.admin_by_email(&email).await?;
    let ok = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let Some(user) = user.filter(|_| ok) else {
        audit(store, &email, "login", "invalid_credentials", origin, now).await;
        return Err(SignInError::Invalid);
    };
    // A disabled admin gets the answer a wrong password gets (the audit log tells).
    if user.disabled_at.is_some() {
        audit(store, &email, "login", "disabled", origin, now).await;
        return Err(SignInError::Invalid);
    }
    for key in &keys {
        // A count left behind only makes the next failures lock sooner; the right
        // password still signs in.
        if let Err(e) = store.clear_throttle(key).await {
            tracing::error!(error = %e, "could not clear the sign-in count");
        }
    }
    let cookie = random_token();
    // Only if the password checked is still the user's and they are still enabled: a
    // reset or a disable committed meanwhile wins.
    if !store
        .open_session(
            &hash(&cookie),
            user.id,
            &user.password_hash,
            &random_token(),
            origin,
            now,
        )
        .await?
    {
        audit(store, &email, "login", "changed_meanwhile", origin, now).await;
        return Err(SignInError::Invalid);
    }
    audit(store, &email, "login", "ok", origin, now).await;
    Ok(SignedIn { cookie })
}

/// Lifts the sign-in lock of `email` and of the client addresses its failed attempts came
/// from while a lock could still hold (the form locks both; lifting only the email would
/// leave the operator locked out from their own address) — but only addresses that have
/// signed in as `email` successfully before, so a guesser's address is never freed by
/// the victim's unlock — plus `also`, an address the operator names (the CLI's
/// `--address`). Audited with the addresses lifted. `None` when no admin has the email.
/// The CLI's `admin unlock` and the users page both unlock through here.
pub async fn lift_lock(
    store: &Store,
    email: &str,
    also: Option<&str>,
    actor: &str,
    origin: &str,
    now: i64,
) -> Result<Option<Vec<String>>, StoreError> {
    let mut addresses = store
        .failed_login_addresses(email, now - WINDOW - LOCK_FOR)
        .await?;
    addresses.extend(also.map(str::to_owned));
    addresses.sort();
    addresses.dedup();
    let detail = (!addresses.is_empty()).then(|| format!("addresses {}", addresses.join(", ")));
    let audit = NewAudit {
        actor,
        action: "admin.unlock",
        target: Some(email),
        detail: detail.as_deref(),
        origin: Some(origin),
        result: "ok",
    };
    if !store.unlock_admin(email, Some(&audit), now).await? {
        return Ok(None);
    }
    for address in &addresses {
        store.clear_throttle(&format!("ip:{address}")).await?;
    }
    Ok(Some(addresses))
}

/// Ends a session (the cookie stops working at once) and audits it.
pub async fn sign_out(
    store: &Store,
    session: &str,
    email: &str,
    origin: &str,
    now: i64,
) -> Result<(), StoreError> {
    store.delete_session(session).await?;
    audit(store, email, "logout", "ok", origin, now).await;
    Ok(())
}

/// Audits a sign-in event; a failure to write it is logged, not shown to the visitor.
async fn audit(store: &Store, actor: &str, action: &str, result: &str, origin: &str, now: i64) {
    // An email is at most 254 characters: the unlock finds attempts by the whole of it.
    let actor: String = actor.chars().take(254).collect();
    let entry = NewAudit {
        actor: if actor.is_empty() { "unknown" } else { &actor },
        action,
        target: None,
        detail: None,
        origin: Some(origin),
        result,
    };
    if let Err(e) = store.audit(&entry, now).await {
        tracing::error!(error = %e, action, "could not write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_down_then_lock_and_the_lock_ends() {
        let now = 10_000;
        let at = |failures, locked_until| Throttle {
            failures,
            window_start: now,
            locked_until,
        };
        assert_eq!(gate(&at(SLOW_AFTER - 1, None), now), Gate::Open);
        assert_eq!(
            gate(&at(SLOW_AFTER, None), now),
            Gate::Slow(Duration::from_millis(200))
        );
        assert_eq!(
            gate(&at(7, None), now),
            Gate::Slow(Duration::from_millis(1000))
        );
        let locked = at(LOCK_AFTER, Some(now + LOCK_FOR));
        assert_eq!(gate(&locked, now + 1), Gate::Locked(now + LOCK_FOR));
        assert_eq!(gate(&locked, now + LOCK_FOR + 1), Gate::Open);
        assert_eq!(
            gate(&at(7, None), now + WINDOW),
            Gate::Open,
            "an old window is forgotten"
        );
    }

    #[test]
    fn passwords_verify_and_unknown_users_never_do() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        rt.block_on(async {
            assert!(verify_password("correct horse battery".into(), Some(hash.clone())).await);
            assert!(!verify_password("wrong".into(), Some(hash)).await);
            assert!(!verify_password("not a password anyone has".into(), None).await);
        });
    }
}
