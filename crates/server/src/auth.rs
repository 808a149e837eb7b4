//! API tokens and their scopes.
//!
//! A token is `smt_` followed by 64 hex digits from the operating system's random
//! generator (256 bits). Only its SHA-256 is stored, so a copy of the database does not
//! hold usable tokens; a fast hash is enough because the input is random, not a
//! password. The token is shown once, when created.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use sm_store::tokens::TokenRow;
use sm_store::{Store, StoreError};

use crate::changes::{Changes, Stamp, Topic};

/// What a token may do. Each `/api/v1` route needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `catalog:read`: list and read products (`GET /api/v1/products…`).
    CatalogRead,
    /// `sync:write`: start a catalog sync from Stripe (`POST /api/v1/sync`).
    SyncWrite,
    /// `credits:read`: balances, history, holds and the low-balance threshold.
    CreditsRead,
    /// `credits:write`: spend credits (consume, holds and their capture or release) and set
    /// the low-balance threshold.
    CreditsWrite,
    /// `checkout:write`: open Stripe Checkout sessions (`POST /api/v1/checkout`).
    CheckoutWrite,
    /// `accounts:read`: an account's subscriptions and entitlement, payments and top-up setting.
    AccountsRead,
    /// `billing:write`: change an account's billing in Stripe (portal sessions, subscription
    /// cancel, resume and plan change, automatic top-up).
    BillingWrite,
    /// Promotional grants from the app: separate from `credits:write`, so a token that
    /// spends credits cannot mint them.
    CreditsGrant,
    /// The feature gate: an app's per-request check, read-only.
    EntitlementsRead,
}

impl Scope {
    /// Every scope, in the order `all` expands to and listings show.
    pub const ALL: [Scope; 9] = [
        Scope::CatalogRead,
        Scope::SyncWrite,
        Scope::CreditsRead,
        Scope::CreditsWrite,
        Scope::CheckoutWrite,
        Scope::AccountsRead,
        Scope::BillingWrite,
        Scope::CreditsGrant,
        Scope::EntitlementsRead,
    ];

    /// The scope's name as tokens, the CLI and the OpenAPI document spell it (`credits:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CatalogRead => "catalog:read",
            Scope::SyncWrite => "sync:write",
            Scope::CreditsRead => "credits:read",
            Scope::CreditsWrite => "credits:write",
            Scope::CheckoutWrite => "checkout:write",
            Scope::AccountsRead => "accounts:read",
            Scope::BillingWrite => "billing:write",
            Scope::CreditsGrant => "credits:grant",
            Scope::EntitlementsRead => "entitlements:read",
        }
    }

    /// The scope named `s` (exactly, as [`Scope::as_str`] spells it); `None` for any other.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses scope names (`all` stands for every scope); the error names the unknown one.
pub fn parse_scopes<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>, String> {
    let mut out: Vec<Scope> = Vec::new();
    for name in names.into_iter().flat_map(|n| n.split([',', ' '])) {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let found = if name == "all" {
            Scope::ALL.to_vec()
        } else {
            vec![Scope::parse(name).ok_or_else(|| {
                format!(
                    "{name:?} is not a scope; use {} or all",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })?]
        };
        for s in found {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    if out.is_empty() {
        return Err("give at least one --scope".into());
    }
    Ok(out)
}

/// Every `/api/v1` route with the scope it needs. The OpenAPI document
/// (`/api/v1/openapi.json`) lists the same routes; a test keeps the two equal.
pub const API_ROUTES: &[(&str, &str, Scope)] = &[
    ("GET", "/api/v1/products", Scope::CatalogRead),
    ("GET", "/api/v1/products/{id}", Scope::CatalogRead),
    ("POST", "/api/v1/sync", Scope::SyncWrite),
    (
        "GET",
        "/api/v1/accounts/{account}/credits",
        Scope::CreditsRead,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/credits/history",
        Scope::CreditsRead,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/credits/consume",
        Scope::CreditsWrite,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/credits/grants",
        Scope::CreditsGrant,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/credits/low-threshold",
        Scope::CreditsRead,
    ),
    (
        "PUT",
        "/api/v1/accounts/{account}/credits/low-threshold",
        Scope::CreditsWrite,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/credits/holds",
        Scope::CreditsWrite,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/credits/holds",
        Scope::CreditsRead,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/credits/holds/{hold}",
        Scope::CreditsRead,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/credits/holds/{hold}/capture",
        Scope::CreditsWrite,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/credits/holds/{hold}/release",
        Scope::CreditsWrite,
    ),
    ("POST", "/api/v1/checkout", Scope::CheckoutWrite),
    ("GET", "/api/v1/accounts/{account}", Scope::AccountsRead),
    (
        "GET",
        "/api/v1/accounts/{account}/payments",
        Scope::AccountsRead,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/portal",
        Scope::BillingWrite,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/subscription/cancel",
        Scope::BillingWrite,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/subscription/resume",
        Scope::BillingWrite,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/subscription/change",
        Scope::BillingWrite,
    ),
    (
        "DELETE",
        "/api/v1/accounts/{account}/subscription/change",
        Scope::BillingWrite,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/entitlements",
        Scope::EntitlementsRead,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/entitlements/{lookup_key}",
        Scope::EntitlementsRead,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/top-up",
        Scope::AccountsRead,
    ),
    (
        "PUT",
        "/api/v1/accounts/{account}/top-up",
        Scope::BillingWrite,
    ),
    (
        "DELETE",
        "/api/v1/accounts/{account}/top-up",
        Scope::BillingWrite,
    ),
];

/// Routes under `/api/v1` that need no token: the API's own description.
pub const PUBLIC_API_ROUTES: &[(&str, &str)] = &[("GET", "/api/v1/openapi.json")];

/// The scope a route needs: `None` for routes that need no token (outside `/api/v1`,
/// or public). Unknown `/api/v1` routes need a scope no token has, so a new route
/// cannot be left open by mistake.
pub fn required_scope(method: &str, route: &str) -> Option<Result<Scope, ()>> {
    // Mounted under a prefix (`Router::nest("/billing", …)` in an app that embeds the
    // library), the matched path carries it: the API's own path starts at `/api/v1/`.
    // Without this, every API route under a prefix would need no token at all.
    let route = route.find("/api/v1/").map_or(route, |i| &route[i..]);
    if !route.starts_with("/api/v1/") || PUBLIC_API_ROUTES.contains(&(method, route)) {
        return None;
    }
    Some(
        API_ROUTES
            .iter()
            .find(|(m, r, _)| *m == method && *r == route)
            .map(|(_, _, scope)| *scope)
            .ok_or(()),
    )
}

/// A new token: `(token, prefix shown in listings, hash to store)`.
pub fn generate() -> (String, String, String) {
    let token = format!(
        "smt_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let prefix = token[..12].to_owned();
    let hash = hash(&token);
    (token, prefix, hash)
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, prefix, h) = generate();
        let (b, _, _) = generate();
        assert_ne!(a, b);
        assert!(a.starts_with("smt_") && a.len() == 68);
        assert!(a.starts_with(&prefix));
        assert_eq!(h, hash(&a));
        assert!(!h.contains(&a[4..]));
    }

    #[test]
    fn scopes_parse_strictly() {
        assert_eq!(
            parse_scopes(["credits:read,credits:write", "credits:read"]),
            Ok(vec![Scope::CreditsRead, Scope::CreditsWrite])
        );
        assert_eq!(parse_scopes(["all"]).unwrap().len(), Scope::ALL.len());
        assert!(
            parse_scopes(["credits:admin"])
                .unwrap_err()
                .contains("credits:admin")
        );
        assert!(parse_scopes([""]).is_err());
    }

    #[test]
    fn every_api_route_needs_a_scope() {
        assert_eq!(required_scope("GET", "/healthz"), None);
        assert_eq!(
            required_scope("POST", "/api/v1/accounts/{account}/credits/consume"),
            Some(Ok(Scope::CreditsWrite))
        );
        assert_eq!(required_scope("DELETE", "/api/v1/products"), Some(Err(())));
    }
}

/// A token just issued: `token` is shown once and never stored.
pub struct Issued {
    /// The token's row id (what `token revoke` and the admin's tokens page name it by).
    pub id: i64,
    /// The token itself (`smt_` and 64 hex digits): show it once, it cannot be read back.
    pub token: String,
    /// The scopes it was given.
    pub scopes: Vec<Scope>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Why a token was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The name is empty or longer than 100 characters.
    #[error("the name must be 1 to 100 characters")]
    Name,
    /// No scope given, or an unknown one; the text says which.
    #[error("{0}")]
    Scopes(String),
    /// A token (live or revoked) already has this name.
    #[error("a token named {0:?} exists (names are never reused, even after revocation)")]
    Taken(String),
    /// The database failed.
    #[error("the token could not be stored: {0}")]
    Store(#[from] sm_store::StoreError),
}

/// Issues a token named `name` with `scopes` (names, `all` for every scope), audited in
/// the same transaction as `actor` from `origin`. The CLI and the admin's tokens page
/// both issue through here, so both refuse the same names and scopes.
pub async fn issue_token<'a>(
    store: &sm_store::Store,
    name: &str,
    scopes: impl IntoIterator<Item = &'a str>,
    actor: &str,
    origin: &str,
    now: i64,
) -> Result<Issued, IssueError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(IssueError::Name);
    }
    let names: Vec<&str> = scopes
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect();
    if names.is_empty() {
        return Err(IssueError::Scopes("choose at least one scope".to_owned()));
    }
    let scopes = parse_scopes(names).map_err(IssueError::Scopes)?;
    let scope_list = scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let (token, prefix, hash) = generate();
    let audit = sm_store::credits::NewAudit {
        actor,
        action: "token.create",
        target: Some(name),
        detail: Some(&scope_list),
        origin: Some(origin),
        result: "ok",
    };
    let id = store
        .create_token(name, &prefix, &hash, &scope_list, actor, Some(&audit), now)
        .await?
        .ok_or_else(|| IssueError::Taken(name.to_owned()))?;
    Ok(Issued { id, token, scopes })
}

/// Live tokens by hash, each with the stamp it was read under.
type Kept = HashMap<String, (Stamp, Arc<TokenRow>)>;

/// Tokens kept at most; beyond, the cache starts over (a client presenting many
/// different valid tokens is not a case worth more memory).
const CACHED_TOKENS: usize = 10_000;

/// The live tokens this instance has checked, by hash, each with the [`Stamp`] it was
/// read under: a copy is used only while no token change was announced or made here
/// since (see [`crate::changes`]). So an API request costs no query on PostgreSQL, and
/// a revocation anywhere still refuses the token on every instance as soon as the
/// announcement arrives. Unknown tokens are not kept: each asks the database.
#[derive(Debug, Clone)]
pub struct TokenCache {
    store: Store,
    changes: Arc<Changes>,
    kept: Arc<Mutex<Kept>>,
}

impl TokenCache {
    /// An empty cache over `store`; `changes` tells it when another instance changed tokens.
    pub fn new(store: Store, changes: Arc<Changes>) -> Self {
        Self {
            store,
            changes,
            kept: Arc::default(),
        }
    }

    /// The live token whose hash is `hash`, if any.
    pub async fn find(&self, hash: &str) -> Result<Option<Arc<TokenRow>>, StoreError> {
        let stamp = self.changes.current(Topic::Tokens);
        if let Some(stamp) = stamp
            && let Some((kept, row)) = self.lock().get(hash)
            && *kept == stamp
        {
            return Ok(Some(row.clone()));
        }
        let row = self.store.token_by_hash(hash).await?.map(Arc::new);
        // Kept only if nothing changed while it was read: a revocation committed after
        // the query announces itself after its commit, which changes the stamp.
        if let (Some(stamp), Some(row)) = (stamp, &row)
            && self.changes.still(Topic::Tokens, Some(stamp))
        {
            let mut kept = self.lock();
            if kept.len() >= CACHED_TOKENS {
                kept.clear();
            }
            kept.insert(hash.to_owned(), (stamp, row.clone()));
        }
        Ok(row)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}
