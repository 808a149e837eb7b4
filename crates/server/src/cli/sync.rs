//! `stripe-manager sync [PRODUCT_ID …] [--objects LIST] [--json]`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sm_domain::ProductId;

use super::{Failure, table};
use crate::clock::duration_ms;
use crate::manager::Unavailable;
use crate::state::AppState;
use crate::sync::{Origin, Progress, SyncError, SyncReport};

/// A spinner with live counts on a terminal.
struct Bar {
    bar: ProgressBar,
    started: Instant,
    counts: std::sync::Mutex<(u64, u64, u64)>,
}

impl Progress for Bar {
    fn page(&self, kind: &'static str, items: usize, requests: u64) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.0 += 1;
        if kind == "products" {
            c.1 += items as u64;
        } else {
            c.2 += items as u64;
        }
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{} · {} · {} · {} · {:.0} objects/s",
            super::count(c.0, "page"),
            super::count(c.1, "product"),
            super::count(c.2, "price"),
            super::count(requests, "request"),
            (c.1 + c.2) as f64 / secs
        ));
    }
}

/// One plain line per page when stderr is not a terminal (logs, CI).
struct Lines;

impl Progress for Lines {
    fn page(&self, kind: &'static str, items: usize, requests: u64) {
        errln!(
            "synced a page of {items} {kind} ({} so far)",
            super::count(requests, "request")
        );
    }
}

pub async fn run(
    state: AppState,
    ids: Vec<String>,
    objects: Option<String>,
    json: bool,
) -> Result<u8, Failure> {
    let (catalog, names) = match objects.as_deref() {
        None => (true, Vec::new()),
        Some(list) => crate::mirror::parse_objects(list).map_err(Failure::usage)?,
    };
    if !names.is_empty() {
        if !ids.is_empty() {
            return Err(Failure::usage(
                "product ids and --objects other than catalog cannot be combined".to_owned(),
            ));
        }
        return run_objects(state, catalog, &names, json).await;
    }
    let ids = ids
        .iter()
        .map(|id| ProductId::parse(id.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::usage(e.to_string()))?;
    // Refuse before touching anything when Stripe is not configured.
    state.stripe.client().map_err(|e| Failure::stripe(&e))?;

    let terminal = std::io::stderr().is_terminal() && !json;
    let bar = terminal.then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("static template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("listing products…");
        Bar {
            bar,
            started: Instant::now(),
            counts: Default::default(),
        }
    });
    let progress: &dyn Progress = match &bar {
        Some(b) => b,
        None if json => &crate::sync::NoProgress,
        None => &Lines,
    };
    let result = if ids.is_empty() {
        state.syncer.sync_all(Origin::Cli, progress).await
    } else {
        state
            .syncer
            .sync_products(&ids, Origin::Cli, progress)
            .await
    };
    if let Some(b) = &bar {
        b.bar.finish_and_clear();
    }
    let report = result.map_err(|e| match e {
        SyncError::Unavailable(u) => Failure::stripe(&u),
        SyncError::AlreadyRunning { .. } => Failure {
            code: 1,
            message: e.to_string(),
        },
        SyncError::Store(e) => Failure {
            code: 1,
            message: format!("the database failed: {}", crate::error_chain(&e)),
        },
    })?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        print_summary(&report);
    }
    Ok(exit_code(&report))
}

/// `sync --objects …`: the catalog first if named, then each object type, 100 per request.
async fn run_objects(
    state: AppState,
    catalog: bool,
    names: &[&str],
    json: bool,
) -> Result<u8, Failure> {
    let client = state.stripe.client().map_err(|e| Failure::stripe(&e))?;
    let mut code = 0;
    let mut out = serde_json::Map::new();
    if catalog {
        let report = state
            .syncer
            .sync_all(Origin::Cli, &crate::sync::NoProgress)
            .await
            .map_err(|e| Failure {
                code: 1,
                message: crate::error_chain(&e),
            })?;
        code = exit_code(&report);
        if json {
            out.insert(
                "catalog".into(),
                serde_json::to_value(&report).expect("serializes"),
            );
        } else {
            print_summary(&report);
            outln!();
        }
    }
    let reports = crate::mirror::sync_named(&state.store, client, names).await;
    let mut t = table::new(&[
        "OBJECT",
        "REQUESTS",
        "WRITTEN",
        "UNCHANGED",
        "STALE",
        "PAGES",
        "TIME",
    ]);
    table::right(&mut t, &[1, 2, 3, 4, 5, 6]);
    for r in &reports {
        if r.error.is_some() {
            code = code.max(1);
        }
        if json {
            out.insert(
                r.object.into(),
                serde_json::to_value(r).expect("serializes"),
            );
            continue;
        }
        t.add_row(vec![
            r.object.to_owned(),
            r.requests.to_string(),
            (r.counts.created + r.counts.updated).to_string(),
            r.counts.unchanged.to_string(),
            r.counts.stale.to_string(),
            r.pages.to_string(),
            duration_ms(r.duration_ms as i64),
        ]);
    }
    if !json {
        table::print(&t);
        // Under the table: an error message would widen a column.
        let failed: Vec<_> = reports
            .iter()
            .filter_map(|r| Some((r.object, r.error.as_ref()?)))
            .collect();
        if !failed.is_empty() {
            outln!();
            for (object, e) in failed {
                outln!("{object}: stopped: {e} (pages already written are kept)");
            }
        }
    }
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&out).expect("reports serialize")
        );
    }
    Ok(code)
}

/// 0 all good; 3 Stripe became unavailable; 1 other failures or invalid products.
pub fn exit_code(report: &SyncReport) -> u8 {
    if report.unavailable.is_some() {
        3
    } else if !report.succeeded() || report.products.invalid > 0 {
        1
    } else {
        0
    }
}

fn print_summary(r: &SyncReport) {
    outln!(
        "sync #{} ({}) {} in {}, {} to Stripe, {}",
        r.run_id,
        r.scope,
        r.status,
        duration_ms(r.duration_ms as i64),
        super::count(r.requests, "request"),
        super::count(r.pages, "page")
    );
    outln!();
    let mut t = table::new(&[
        "OBJECT",
        "CREATED",
        "UPDATED",
        "UNCHANGED",
        "STALE",
        "INVALID",
        "TOMBSTONED",
    ]);
    table::right(&mut t, &[1, 2, 3, 4, 5, 6]);
    let (p, q) = (&r.products, &r.prices);
    // Prices have no validity of their own: `-`.
    for (object, [created, updated, unchanged, stale, tombstoned], invalid) in [
        (
            "products",
            [p.created, p.updated, p.unchanged, p.stale, p.tombstoned],
            p.invalid.to_string(),
        ),
        (
            "prices",
            [q.created, q.updated, q.unchanged, q.stale, q.tombstoned],
            "-".to_owned(),
        ),
    ] {
        t.add_row(vec![
            object.to_owned(),
            created.to_string(),
            updated.to_string(),
            unchanged.to_string(),
            stale.to_string(),
            invalid,
            tombstoned.to_string(),
        ]);
    }
    table::print(&t);
    if !r.invalid.is_empty() {
        outln!();
        outln!(
            "{} invalid product(s), stored but never offered for checkout:",
            r.products.invalid
        );
        for i in &r.invalid {
            outln!("  {}  {:?}: {}", i.id, i.name, i.error);
        }
        if (r.invalid.len() as u64) < r.products.invalid {
            outln!(
                "  … and {} more",
                r.products.invalid - r.invalid.len() as u64
            );
        }
    }
    if !r.errors.is_empty() {
        outln!();
        outln!("errors:");
        for e in &r.errors {
            outln!("  {e}");
        }
        if let Some(reason) = r.unavailable {
            outln!("  (Stripe unavailable: {reason}; pages already written are kept)");
        }
    }
}

impl From<Unavailable> for Failure {
    fn from(e: Unavailable) -> Self {
        Failure::stripe(&e)
    }
}
