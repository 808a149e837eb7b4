//! `prune` and `backup`: the maintenance an operator runs by hand (the service prunes
//! on its own too; see `crate::retention`).

use std::path::Path;

use serde_json::json;

use sm_store::{ConnectOptions, Store};

use super::{Failure, table};
use crate::clock::unix_now;
use crate::config::Config;
use crate::state::AppState;

pub async fn prune(state: AppState, dry_run: bool, json: bool) -> Result<u8, Failure> {
    let config = state.config.retention;
    let pass = crate::retention::prune(&state.store, &config, unix_now(), dry_run).await?;
    state.store.close().await;
    if !pass.ran {
        return Err(Failure {
            code: 1,
            message: "another instance is pruning this database right now; nothing was deleted (try again later)"
                .into(),
        });
    }
    let c = pass.counts;
    if json {
        outln!(
            "{}",
            json!({
                "dry_run": dry_run,
                "deleted": if dry_run { serde_json::Value::Null } else { json!(c) },
                "would_delete": if dry_run { json!(c) } else { serde_json::Value::Null },
                "retention": {
                    "webhook_days": config.webhook_days,
                    "sync_run_days": config.sync_run_days,
                    "audit_days": config.audit_days,
                    "mirror_days": config.mirror_days,
                },
            })
        );
        return Ok(0);
    }
    let audit = match config.audit_days {
        Some(d) => format!("older than {d} days"),
        None => "kept (AUDIT_RETENTION_DAYS unset)".into(),
    };
    outln!("{}:", if dry_run { "would delete" } else { "deleted" });
    let mut t = table::new(&["WHAT", "ROWS", "WHICH"]);
    table::right(&mut t, &[1]);
    for (what, rows, which) in [
        (
            "webhook events",
            c.webhook_events,
            format!(
                "processed or ignored, older than {} days",
                config.webhook_days
            ),
        ),
        (
            "events to the app",
            c.app_events,
            format!("delivered, older than {} days", config.webhook_days),
        ),
        (
            "sync runs",
            c.sync_runs,
            format!("older than {} days", config.sync_run_days),
        ),
        ("audit entries", c.audit_log, audit),
        ("admin sessions", c.admin_sessions, "expired".to_owned()),
        ("sign-in limits", c.login_throttle, "expired".to_owned()),
        (
            "mirrors of deleted customers",
            c.mirrors(),
            format!(
                "customers, invoices, charges, subscriptions; deleted in Stripe more than {} days ago",
                config.mirror_days
            ),
        ),
    ] {
        t.add_row(vec![what.to_owned(), rows.to_string(), which]);
    }
    table::print(&t);
    Ok(0)
}

/// Copies the database whatever its schema (it neither migrates nor reads a table): a
/// backup before an upgrade, taken with the new binary while the old instances run, is
/// of the old schema, as a restore for a rollback needs.
pub async fn backup(config: &Config, path: &Path, json: bool) -> Result<u8, Failure> {
    let started = std::time::Instant::now();
    let store = Store::connect(
        &config.database_url,
        &ConnectOptions {
            max_connections: 1,
            create_if_missing: false,
            ..Default::default()
        },
    )
    .await?;
    let result = store.backup_to(path).await;
    store.close().await;
    result.map_err(|e| Failure {
        code: match e {
            sm_store::StoreError::Unsupported(_) => 2,
            _ => 1,
        },
        message: e.to_string(),
    })?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();
    if json {
        outln!(
            "{}",
            json!({"backup": path.display().to_string(), "bytes": bytes, "seconds": seconds})
        );
    } else {
        outln!(
            "backed up to {} ({bytes} bytes, {seconds:.1} s): a consistent copy of what was committed when it began",
            path.display()
        );
    }
    Ok(0)
}
