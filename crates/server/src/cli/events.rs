//! `stripe-manager events list|show|replay`: the webhook inbox for operators.
//! Replayed events are applied by a running `serve`: at once on PostgreSQL (the replay
//! sends `NOTIFY`), within a second on SQLite (the worker's poll).

use clap::Subcommand;
use serde_json::json;
use sm_store::inbox::{EventFilter, InboxEvent, STATUSES};

use super::{Failure, table};
use crate::clock::{utc, when};
use crate::state::AppState;
use crate::webhooks::now_ms;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List stored events, newest first.
    List {
        /// pending, processing, processed, ignored or failed.
        #[arg(long)]
        status: Option<String>,
        /// An event type, e.g. product.updated.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// How many events, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON (times as stored: Stripe's `created` in Unix seconds, the inbox's in
        /// milliseconds).
        #[arg(long)]
        json: bool,
    },
    /// Show one event with its payload.
    Show {
        /// The event id (evt_…).
        id: String,
        /// Print JSON (times as stored: Stripe's `created` in Unix seconds, the inbox's in
        /// milliseconds).
        #[arg(long)]
        json: bool,
    },
    /// Store the events of the last DURATION that the inbox lacks, from Stripe's Events
    /// API (recovery after downtime; Stripe keeps 30 days).
    Reconcile {
        /// How far back: 72h, 30m, 7d (at most 30d).
        #[arg(long, default_value = "72h")]
        since: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Queue events to be applied again (the same idempotent path as the first time).
    Replay {
        /// Event ids (evt_…).
        #[arg(
            value_name = "ID",
            required_unless_present = "failed",
            conflicts_with = "failed"
        )]
        ids: Vec<String>,
        /// Every event in the dead letter (status failed).
        #[arg(long)]
        failed: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// An inbox time (Unix milliseconds) for people, with how long ago it was.
fn at(ms: i64, now_ms: i64) -> String {
    when(ms.div_euclid(1000), now_ms.div_euclid(1000))
}

/// An error on one line, so it stays in its table row.
fn one_line(error: Option<&str>) -> String {
    error
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_table(events: &[InboxEvent], now_ms: i64) {
    let mut t = table::new(&["ID", "TYPE", "STATUS", "ATTEMPTS", "RECEIVED", "LAST ERROR"]);
    table::right(&mut t, &[3]);
    for e in events {
        t.add_row(vec![
            e.id.clone(),
            e.kind.clone(),
            e.status.clone(),
            e.attempts.to_string(),
            at(e.received_at, now_ms),
            one_line(e.last_error.as_deref()),
        ]);
    }
    table::print(&t);
}

/// One event's fields, a line each, for `events show`.
fn print_fields(e: &InboxEvent, now_ms: i64) {
    let mut lines = vec![
        ("id", e.id.clone()),
        ("type", e.kind.clone()),
        ("created", utc(e.created)),
        ("livemode", e.livemode.to_string()),
        (
            "api version",
            e.api_version.clone().unwrap_or_else(|| "-".into()),
        ),
        ("source", e.source.clone()),
        ("status", e.status.clone()),
        ("attempts", e.attempts.to_string()),
        ("received", at(e.received_at, now_ms)),
    ];
    if let Some(p) = e.processed_at {
        // Applied, ignored or dead-lettered: when it left the queue.
        lines.push(("finished", at(p, now_ms)));
    }
    if e.status == "pending" && e.attempts > 0 {
        lines.push(("next attempt", at(e.next_attempt_at, now_ms)));
    }
    if let Some(error) = &e.last_error {
        lines.push(("last error", error.clone()));
    }
    for (label, value) in lines {
        outln!("{label:<13} {value}");
    }
}

pub async fn run(state: AppState, command: EventsCommand) -> Result<u8, Failure> {
    let db = |e: sm_store::StoreError| Failure {
        code: 1,
        message: crate::error_chain(&e),
    };
    match command {
        EventsCommand::List {
            status,
            kind,
            limit,
            json,
        } => {
            if let Some(s) = &status
                && !STATUSES.contains(&s.as_str())
            {
                return Err(Failure::usage(format!(
                    "--status {s:?} is not one of {}",
                    STATUSES.join(", ")
                )));
            }
            let events = state
                .store
                .list_events(&EventFilter {
                    status,
                    kind,
                    limit,
                })
                .await
                .map_err(db)?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"data": events})).expect("serializable")
                );
            } else if events.is_empty() {
                outln!("no events");
            } else {
                print_table(&events, now_ms());
            }
            Ok(0)
        }
        EventsCommand::Show { id, json } => {
            let Some(e) = state.store.get_event(&id).await.map_err(db)? else {
                return Err(Failure {
                    code: 1,
                    message: format!("no event {id:?} in the inbox"),
                });
            };
            let payload: serde_json::Value =
                serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
            if json {
                let mut v = serde_json::to_value(&e).expect("serializable");
                v["payload"] = payload;
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("serializable")
                );
            } else {
                print_fields(&e, now_ms());
                outln!();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&payload).expect("serializable")
                );
            }
            Ok(0)
        }
        EventsCommand::Reconcile { since, json } => {
            let window = crate::webhooks::reconcile::parse_since(&since).map_err(Failure::usage)?;
            let client = state.stripe.client().map_err(|e| Failure::stripe(&e))?;
            let report = crate::webhooks::reconcile::reconcile(&state.store, client, window)
                .await
                .map_err(|e| match &e {
                    crate::webhooks::reconcile::ReconcileError::Stripe(s) => {
                        match crate::manager::Unavailable::from_error(s) {
                            Some(u) => Failure::stripe(&u),
                            None => Failure {
                                code: 1,
                                message: crate::error_chain(&e),
                            },
                        }
                    }
                    _ => Failure {
                        code: 1,
                        message: crate::error_chain(&e),
                    },
                })?;
            if json {
                outln!("{}", serde_json::to_string(&report).expect("serializable"));
            } else {
                outln!(
                    "{} event(s) in the last {since} at Stripe, {} were missing and are now stored ({} page(s)); a running `serve` applies them",
                    report.seen,
                    report.stored,
                    report.pages
                );
            }
            Ok(0)
        }
        EventsCommand::Replay { ids, failed, json } => {
            let now = now_ms();
            let (mut unknown, mut busy, mut known) = (Vec::new(), Vec::new(), Vec::new());
            if !failed {
                for id in ids {
                    match state.store.get_event(&id).await.map_err(db)? {
                        None => unknown.push(id),
                        Some(e) if e.status == "processing" => busy.push(id),
                        Some(_) => known.push(id),
                    }
                }
            }
            let (requested, queued) = if failed {
                let n = state.store.replay_failed(now).await.map_err(db)?;
                (n, n)
            } else {
                (
                    (known.len() + unknown.len() + busy.len()) as u64,
                    state.store.replay_events(&known, now).await.map_err(db)?,
                )
            };
            if json {
                outln!(
                    "{}",
                    json!({"requested": requested, "queued": queued, "unknown": unknown, "processing": busy})
                );
            } else {
                outln!(
                    "queued {queued} event{} for replay; a running `serve` applies {} within a second",
                    if queued == 1 { "" } else { "s" },
                    if queued == 1 { "it" } else { "them" }
                );
                if !unknown.is_empty() {
                    errln!(
                        "error: no stored event {} (`events list` shows what is stored; `events reconcile` fetches missed ones from Stripe)",
                        unknown.join(", ")
                    );
                }
                if !busy.is_empty() {
                    errln!(
                        "error: {} being applied right now; replay it once it finishes",
                        busy.join(", ")
                    );
                }
            }
            // Ids that were unknown or being processed right now.
            Ok(if queued < requested { 1 } else { 0 })
        }
    }
}
