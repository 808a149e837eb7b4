//! `stripe-manager check`: is the configuration valid, does Stripe answer with this
//! key, which mode and API version, and is the database there. Exit 2 for anything to
//! fix in the configuration, 3 when Stripe cannot be reached or refuses the key.

use serde_json::{Value, json};
use sm_store::{ConnectOptions, Store};

use super::Failure;
use crate::config::{Config, Sources};
use crate::manager::StripeManager;

pub async fn run(sources: &Sources, as_json: bool) -> Result<u8, Failure> {
    let config = match Config::load(sources) {
        Ok(c) => c,
        Err(e) => {
            if as_json {
                let problems: Vec<Value> = e
                    .problems
                    .iter()
                    .map(|p| json!({"variable": p.variable, "message": p.to_string()}))
                    .collect();
                outln!(
                    "{}",
                    json!({"ok": false, "configuration": {"ok": false, "problems": problems}})
                );
                return Ok(2);
            }
            return Err(e.into());
        }
    };
    let mut code = 0u8;
    let mut lines: Vec<(&str, String)> = Vec::new();
    let mut findings = Vec::new();
    for (is_error, message) in config.findings() {
        if is_error {
            code = 2;
        }
        findings
            .push(json!({"level": if is_error { "error" } else { "warning" }, "message": message}));
        lines.push((if is_error { "error" } else { "warning" }, message));
    }

    let stripe = &config.stripe;
    let manager = StripeManager::new(stripe).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    let mut stripe_json = json!({
        "enabled": stripe.enabled(),
        "api_version": stripe.api_version,
        "api_base": stripe.api_base_shown(),
        "max_rps": stripe.max_rps,
        "timeout_secs": stripe.timeout.as_secs(),
    });
    match (&stripe.disabled_reason, &stripe.secret_key) {
        (Some(reason), _) => {
            code = 2;
            stripe_json["disabled_reason"] = json!(reason);
            lines.insert(0, ("stripe", format!("disabled: {reason}")));
        }
        (None, Some(key)) => {
            stripe_json["mode"] = json!(key.mode());
            stripe_json["key"] = json!(key.redacted());
            stripe_json["key_kind"] = json!(key.kind().as_str());
            lines.insert(
                0,
                (
                    "stripe",
                    format!(
                        "{} mode, {} key {}",
                        key.mode(),
                        key.kind().as_str(),
                        key.redacted()
                    ),
                ),
            );
            lines.insert(1, ("api version", stripe.api_version.clone()));
            lines.insert(2, ("api base", stripe.api_base_shown()));
            match manager.check_connectivity().await {
                Ok(latency) => {
                    let ms = latency.as_secs_f64() * 1000.0;
                    stripe_json["connectivity"] =
                        json!({"ok": true, "latency_ms": (ms * 10.0).round() / 10.0});
                    lines.insert(3, ("connectivity", format!("ok in {ms:.1} ms")));
                }
                Err(e) => {
                    if code == 0 {
                        code = 3;
                    }
                    stripe_json["connectivity"] =
                        json!({"ok": false, "reason": e.code(), "error": e.to_string()});
                    lines.insert(3, ("connectivity", format!("FAILED ({}): {e}", e.code())));
                }
            }
        }
        (None, None) => unreachable!("enabled implies a key"),
    }

    let webhooks = match &config.webhook_secrets {
        Some(s) => {
            lines.push((
                "webhooks",
                format!(
                    "{} signing secret(s), tolerance {} s",
                    s.len(),
                    config.webhook_tolerance.as_secs()
                ),
            ));
            json!({"secrets": s.len(), "tolerance_secs": config.webhook_tolerance.as_secs()})
        }
        None => {
            lines.push((
                "webhooks",
                "STRIPE_WEBHOOK_SECRET is not set: webhooks will be refused".into(),
            ));
            json!({"secrets": 0, "tolerance_secs": config.webhook_tolerance.as_secs()})
        }
    };

    let r = &config.retention;
    lines.push((
        "retention",
        format!(
            "webhook events {} d, sync runs {} d, audit {}, mirrors of deleted customers {} d",
            r.webhook_days,
            r.sync_run_days,
            r.audit_days
                .map_or_else(|| "kept".to_owned(), |d| format!("{d} d")),
            r.mirror_days
        ),
    ));
    let retention = json!({
        "webhook_days": r.webhook_days,
        "sync_run_days": r.sync_run_days,
        "audit_days": r.audit_days,
        "mirror_days": r.mirror_days,
    });

    let db = config.database_url.redacted();
    let missing_file = config.database_url.sqlite_path().filter(|p| !p.exists());
    // `serve` and `migrate` create the file, not its directory: a path they would fail
    // on fails here too.
    let uncreatable = missing_file.as_ref().and_then(|path| {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        match std::fs::metadata(dir) {
            // Whether this user may create a file there: try it (mode bits alone say
            // nothing about root, ACLs or a read-only mount).
            Ok(m) if m.is_dir() => {
                let probe = dir.join(format!(".stripe-manager-check-{}", std::process::id()));
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&probe)
                {
                    Ok(_) => {
                        let _ = std::fs::remove_file(&probe);
                        None
                    }
                    Err(e) => Some(format!(
                        "its directory {} is not writable ({e})",
                        dir.display()
                    )),
                }
            }
            Ok(_) => Some(format!("{} is not a directory", dir.display())),
            Err(_) => Some(format!("its directory {} does not exist", dir.display())),
        }
    });
    let database = if let (Some(path), Some(why)) = (&missing_file, uncreatable) {
        code = 2;
        let message = format!("{} cannot be created: {why}", path.display());
        lines.push(("database", format!("FAILED: {db}: {message}")));
        json!({"url": db, "ok": false, "exists": false, "error": message})
    } else if let Some(path) = missing_file {
        lines.push((
            "database",
            format!(
                "{db}: {} does not exist yet; `serve` or `migrate` creates it",
                path.display()
            ),
        ));
        json!({"url": db, "ok": true, "exists": false, "migrated": false})
    } else {
        match Store::connect(
            &config.database_url,
            &ConnectOptions {
                max_connections: 1,
                create_if_missing: false,
                ..ConnectOptions::default()
            },
        )
        .await
        {
            Ok(store) => {
                let migrated = store.is_migrated().await.unwrap_or(false);
                store.close().await;
                lines.push((
                    "database",
                    format!(
                        "{db} reachable, {}",
                        if migrated {
                            "migrated"
                        } else {
                            "NOT migrated (run `stripe-manager migrate`)"
                        }
                    ),
                ));
                json!({"url": db, "ok": true, "migrated": migrated})
            }
            Err(e) => {
                code = 2;
                let message = super::error_chain(&e);
                lines.push(("database", format!("FAILED: {message}")));
                json!({"url": db, "ok": false, "error": message})
            }
        }
    };

    if as_json {
        outln!(
            "{}",
            json!({
                "ok": code == 0,
                "configuration": {"ok": true, "app_env": config.app_env},
                "stripe": stripe_json,
                "webhooks": webhooks,
                "retention": retention,
                "database": database,
                "findings": findings,
            })
        );
    } else {
        for (label, text) in lines {
            outln!("{label:<13} {text}");
        }
    }
    Ok(code)
}
