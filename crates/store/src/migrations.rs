//! The migrations of each backend, embedded in the binary so a deployment is one file.
//! Add a new numbered file per change in both folders and list it here; never edit a
//! released one (sqlx refuses a checksum mismatch, which is the point).

use std::borrow::Cow;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

use crate::Backend;

type Entry = (i64, &'static str, &'static str);

const SQLITE: &[Entry] = &[
    (
        1,
        "catalog",
        include_str!("../migrations/sqlite/0001_catalog.sql"),
    ),
    (
        2,
        "webhook inbox",
        include_str!("../migrations/sqlite/0002_webhook_inbox.sql"),
    ),
    (
        3,
        "inbox queue indexes",
        include_str!("../migrations/sqlite/0003_inbox_queue_indexes.sql"),
    ),
    (
        4,
        "credits",
        include_str!("../migrations/sqlite/0004_credits.sql"),
    ),
    (
        5,
        "api tokens",
        include_str!("../migrations/sqlite/0005_api_tokens.sql"),
    ),
    (
        6,
        "admin",
        include_str!("../migrations/sqlite/0006_admin.sql"),
    ),
    (
        7,
        "ledger origins",
        include_str!("../migrations/sqlite/0007_ledger_origins.sql"),
    ),
    (
        8,
        "mirrors",
        include_str!("../migrations/sqlite/0008_mirrors.sql"),
    ),
    (
        9,
        "subscription frame",
        include_str!("../migrations/sqlite/0009_subscription_frame.sql"),
    ),
    (
        10,
        "retention",
        include_str!("../migrations/sqlite/0010_retention.sql"),
    ),
    (
        11,
        "charges",
        include_str!("../migrations/sqlite/0011_charges.sql"),
    ),
    (
        12,
        "admin users",
        include_str!("../migrations/sqlite/0012_admin_users.sql"),
    ),
    (
        13,
        "admin lists",
        include_str!("../migrations/sqlite/0013_admin_lists.sql"),
    ),
    (
        14,
        "change announcements",
        include_str!("../migrations/sqlite/0014_change_announcements.sql"),
    ),
    (
        15,
        "plan changes",
        include_str!("../migrations/sqlite/0015_plan_changes.sql"),
    ),
    (
        16,
        "holds",
        include_str!("../migrations/sqlite/0016_holds.sql"),
    ),
    (
        17,
        "app events",
        include_str!("../migrations/sqlite/0017_app_events.sql"),
    ),
    (
        18,
        "entitlements and top-ups",
        include_str!("../migrations/sqlite/0018_entitlements_top_ups.sql"),
    ),
    (
        19,
        "token creators",
        include_str!("../migrations/sqlite/0019_token_creators.sql"),
    ),
    (
        20,
        "erasures",
        include_str!("../migrations/sqlite/0020_erasures.sql"),
    ),
];
const POSTGRES: &[Entry] = &[
    (
        1,
        "catalog",
        include_str!("../migrations/postgres/0001_catalog.sql"),
    ),
    (
        2,
        "webhook inbox",
        include_str!("../migrations/postgres/0002_webhook_inbox.sql"),
    ),
    (
        3,
        "inbox queue indexes",
        include_str!("../migrations/postgres/0003_inbox_queue_indexes.sql"),
    ),
    (
        4,
        "credits",
        include_str!("../migrations/postgres/0004_credits.sql"),
    ),
    (
        5,
        "api tokens",
        include_str!("../migrations/postgres/0005_api_tokens.sql"),
    ),
    (
        6,
        "admin",
        include_str!("../migrations/postgres/0006_admin.sql"),
    ),
    (
        7,
        "ledger origins",
        include_str!("../migrations/postgres/0007_ledger_origins.sql"),
    ),
    (
        8,
        "mirrors",
        include_str!("../migrations/postgres/0008_mirrors.sql"),
    ),
    (
        9,
        "subscription frame",
        include_str!("../migrations/postgres/0009_subscription_frame.sql"),
    ),
    (
        10,
        "retention",
        include_str!("../migrations/postgres/0010_retention.sql"),
    ),
    (
        11,
        "charges",
        include_str!("../migrations/postgres/0011_charges.sql"),
    ),
    (
        12,
        "admin users",
        include_str!("../migrations/postgres/0012_admin_users.sql"),
    ),
    (
        13,
        "admin lists",
        include_str!("../migrations/postgres/0013_admin_lists.sql"),
    ),
    (
        14,
        "change announcements",
        include_str!("../migrations/postgres/0014_change_announcements.sql"),
    ),
    (
        15,
        "plan changes",
        include_str!("../migrations/postgres/0015_plan_changes.sql"),
    ),
    (
        16,
        "holds",
        include_str!("../migrations/postgres/0016_holds.sql"),
    ),
    (
        17,
        "app events",
        include_str!("../migrations/postgres/0017_app_events.sql"),
    ),
    (
        18,
        "entitlements and top-ups",
        include_str!("../migrations/postgres/0018_entitlements_top_ups.sql"),
    ),
    (
        19,
        "token creators",
        include_str!("../migrations/postgres/0019_token_creators.sql"),
    ),
    (
        20,
        "erasures",
        include_str!("../migrations/postgres/0020_erasures.sql"),
    ),
];

fn entries(backend: Backend) -> &'static [Entry] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// One migration as `migrate --status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub version: i64,
    pub description: String,
    /// Unix seconds; `None` while pending.
    pub applied_at: Option<i64>,
    /// Applied here but unknown to this binary: a newer release migrated the database.
    pub unknown: bool,
}

/// The embedded migrations of `backend` matched with the applied `(version,
/// description, applied_at)` rows, then applied ones this binary does not know.
pub fn status(backend: Backend, applied: &[(i64, String, i64)]) -> Vec<Status> {
    let mut out: Vec<Status> = entries(backend)
        .iter()
        .map(|(version, description, _)| Status {
            version: *version,
            description: (*description).to_owned(),
            applied_at: applied
                .iter()
                .find(|(v, _, _)| v == version)
                .map(|(_, _, at)| *at),
            unknown: false,
        })
        .collect();
    for (version, description, at) in applied {
        if !out.iter().any(|s| s.version == *version) {
            out.push(Status {
                version: *version,
                description: description.clone(),
                applied_at: Some(*at),
                unknown: true,
            });
        }
    }
    out
}

/// Every embedded migration version of `backend`, in order.
pub fn versions(backend: Backend) -> Vec<i64> {
    entries(backend).iter().map(|(v, _, _)| *v).collect()
}

/// The embedded migrations up to a version, as a sqlx migration source.
#[derive(Debug)]
struct Embedded(Backend, i64);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> futures_core::future::BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        let migrations = entries(self.0)
            .iter()
            .filter(|(version, _, _)| *version <= self.1)
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

pub(crate) async fn migrator(backend: Backend, up_to: i64) -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(backend, up_to)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_versions() {
        assert_eq!(versions(Backend::Sqlite), versions(Backend::Postgres));
    }
}
