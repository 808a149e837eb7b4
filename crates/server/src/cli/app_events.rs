//! `stripe-manager app-events list|replay`: the events sent to the app (the outbox).
//! A replayed event is sent again by a running `serve` within a second, with its own
//! `webhook-id` (the app's idempotency key), ahead of its account's queue.

use clap::Subcommand;
use serde_json::json;

use super::{Failure, table};
use crate::clock::when;
use crate::net::redact_url as redact;
use crate::state::AppState;
use crate::webhooks::now_ms;

const STATUSES: &[&str] = &["queued", "pending", "processing", "delivered", "failed"];

#[derive(Debug, Subcommand)]
pub enum AppEventsCommand {
    /// List events to the app, newest first (one row per event and endpoint).
    List {
        /// queued, pending, processing, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        /// Only this account's events.
        #[arg(long)]
        account: Option<String>,
        /// How many, newest first (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print JSON (times in Unix milliseconds), with each event's body.
        #[arg(long)]
        json: bool,
    },
    /// Send events again (delivered or failed ones), to every endpoint they went to.
    Replay {
        /// Event ids (msg_…).
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(state: AppState, command: AppEventsCommand) -> Result<u8, Failure> {
    let now = now_ms();
    match command {
        AppEventsCommand::List {
            status,
            account,
            limit,
            json,
        } => {
            if let Some(s) = status.as_deref()
                && !STATUSES.contains(&s)
            {
                return Err(Failure::usage(format!(
                    "--status {s:?} is not one of {}",
                    STATUSES.join(", ")
                )));
            }
            let rows = state
                .store
                .list_app_events(status.as_deref(), account.as_deref(), None, limit)
                .await?;
            if json {
                let out: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        json!({
                            "id": r.id, "endpoint": redact(&r.endpoint), "account": r.account,
                            "type": r.kind, "status": r.status, "attempts": r.attempts,
                            "created_at": r.created_at, "next_attempt_at": r.next_attempt_at,
                            "delivered_at": r.delivered_at, "last_status": r.last_status,
                            "last_error": r.last_error,
                            "payload": serde_json::from_str::<serde_json::Value>(&r.payload).ok(),
                        })
                    })
                    .collect();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&out).expect("JSON values serialize")
                );
                return Ok(0);
            }
            if rows.is_empty() {
                outln!(
                    "no events to the app{}",
                    match &status {
                        Some(s) => format!(" with status {s}"),
                        None => String::new(),
                    }
                );
                return Ok(0);
            }
            let mut t = table::new(&[
                "ID",
                "TYPE",
                "ACCOUNT",
                "STATUS",
                "ATTEMPTS",
                "CREATED",
                "ENDPOINT",
                "LAST ERROR",
            ]);
            table::right(&mut t, &[4]);
            for r in rows {
                t.add_row(vec![
                    r.id.clone(),
                    r.kind.clone(),
                    r.account.clone(),
                    match r.status.as_str() {
                        "pending" if r.attempts > 0 => {
                            format!("retry {}", when(r.next_attempt_at / 1000, now / 1000))
                        }
                        s => s.to_owned(),
                    },
                    r.attempts.to_string(),
                    when(r.created_at / 1000, now / 1000),
                    redact(&r.endpoint),
                    r.last_error
                        .unwrap_or_default()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .chars()
                        .take(80)
                        .collect(),
                ]);
            }
            table::print(&t);
            Ok(0)
        }
        AppEventsCommand::Replay { ids, json } => {
            let (mut queued, mut unknown, mut busy) = (0u64, Vec::new(), Vec::new());
            for id in ids {
                let rows = state.store.app_event(&id).await?;
                if rows.is_empty() {
                    unknown.push(id);
                    continue;
                }
                let n = state.store.replay_app_event(&id, now).await?;
                if n == 0 {
                    busy.push(id);
                }
                queued += n;
            }
            if json {
                outln!(
                    "{}",
                    json!({"queued": queued, "unknown": unknown, "not_finished": busy})
                );
            } else {
                outln!(
                    "queued {queued} deliver{} again; a running `serve` sends {} within a second",
                    if queued == 1 { "y" } else { "ies" },
                    if queued == 1 { "it" } else { "them" }
                );
                if !unknown.is_empty() {
                    errln!(
                        "error: no event {} (`app-events list` shows what is stored)",
                        unknown.join(", ")
                    );
                }
                if !busy.is_empty() {
                    errln!(
                        "error: {} not delivered or failed yet (still on its way); nothing to replay",
                        busy.join(", ")
                    );
                }
            }
            Ok(if unknown.is_empty() && busy.is_empty() {
                0
            } else {
                2
            })
        }
    }
}
