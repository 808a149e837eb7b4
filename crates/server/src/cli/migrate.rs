//! `stripe-manager migrate [--status] [--json]`: the embedded migrations, forward only.

use serde_json::json;
use sm_store::{ConnectOptions, Store};

use super::{Failure, table};
use crate::config::Config;

pub async fn run(config: Config, json: bool, status: bool) -> Result<u8, Failure> {
    let store = Store::connect(&config.database_url, &ConnectOptions::default()).await?;
    if status {
        let result = store.migration_status().await;
        store.close().await;
        return print_status(&config, result?, json);
    }
    let result = match store.migrate().await {
        Ok(applied) => store.applied_migrations().await.map(|c| (applied, c)),
        Err(e) => Err(e),
    };
    store.close().await;
    let (applied, current) = result?;
    if json {
        outln!(
            "{}",
            json!({"database": config.database_url.redacted(), "applied": applied, "current": current})
        );
    } else if applied.is_empty() {
        outln!(
            "{}: up to date (version {})",
            config.database_url,
            current.last().unwrap_or(&0)
        );
    } else {
        outln!("{}: applied migration(s) {applied:?}", config.database_url);
    }
    Ok(0)
}

/// `migrate --status`: every migration, applied or pending; exit 1 when some are
/// pending (so a deploy script can tell), 2 when the database is newer than the binary.
fn print_status(
    config: &Config,
    status: Vec<sm_store::migrations::Status>,
    json: bool,
) -> Result<u8, Failure> {
    let pending = status.iter().filter(|s| s.applied_at.is_none()).count();
    let unknown = status.iter().filter(|s| s.unknown).count();
    if json {
        outln!(
            "{}",
            json!({
                "database": config.database_url.redacted(),
                "migrations": status,
                "pending": pending,
                "newer_than_binary": unknown > 0,
            })
        );
    } else {
        outln!("{}", config.database_url);
        let mut t = table::new(&["VERSION", "DESCRIPTION", "STATE"]);
        table::right(&mut t, &[0]);
        for s in &status {
            let state = match (s.applied_at, s.unknown) {
                (_, true) => "applied by a newer release (unknown here)".to_owned(),
                (Some(at), false) => format!("applied {}", crate::clock::utc(at)),
                (None, false) => "pending".to_owned(),
            };
            t.add_row(vec![s.version.to_string(), s.description.clone(), state]);
        }
        table::print(&t);
        outln!();
        outln!(
            "{} applied, {pending} pending",
            status.iter().filter(|s| s.applied_at.is_some()).count()
        );
    }
    Ok(if unknown > 0 {
        2
    } else if pending > 0 {
        1
    } else {
        0
    })
}
