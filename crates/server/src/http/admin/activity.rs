//! `/admin/activity`: what the service did, as charts — webhook events per minute over
//! the last 24 hours by outcome, the queue depth over the same day, credits granted and
//! consumed per day over 30 days, and how long the last syncs took. Everything is
//! counted from the tables (see `sm_store::stats`), so it survives restarts and is the
//! same on every instance.

use askama::Template;
use axum::Router;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::charts::{Chart, Kind, Series};
use super::{AdminCtx, Nav, failed, render};
use crate::clock::unix_now;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/activity", get(activity))
}

const MINUTE_MS: i64 = 60_000;
const MINUTES: usize = 24 * 60;
const DAYS: usize = 30;

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    nav: Nav,
    /// Rendered SVG figures (our own markup; numbers and fixed labels only).
    charts: Vec<String>,
}

/// "HH:MM" of a minute bucket.
fn clock_label(minute: i64) -> String {
    crate::clock::utc_as(minute * 60, "%H:%M")
}

async fn activity(State(state): State<AppState>, Extension(ctx): Extension<AdminCtx>) -> Response {
    let now_ms = crate::webhooks::now_ms();
    let last_minute = now_ms / MINUTE_MS;
    let first_minute = last_minute - (MINUTES as i64 - 1);
    let since_ms = first_minute * MINUTE_MS;
    let today = unix_now().div_euclid(86_400);
    let first_day = today - (DAYS as i64 - 1);
    let (buckets, departures, queue, days, runs) = tokio::join!(
        state.store.event_buckets(since_ms, MINUTE_MS),
        // Events that waited more than a day are not counted as leaving (the bound keeps
        // the read on the index).
        state
            .store
            .event_departures(since_ms, since_ms - 24 * 3_600_000, MINUTE_MS),
        state.store.inbox_counts(now_ms),
        state.store.credit_days(first_day * 86_400),
        state.store.list_sync_runs(30),
    );
    let (buckets, departures, queue, days, mut runs) =
        match (buckets, departures, queue, days, runs) {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, b, c, d, e),
            (Err(e), ..)
            | (_, Err(e), ..)
            | (_, _, Err(e), ..)
            | (.., Err(e), _)
            | (.., Err(e)) => {
                return failed("the activity could not be read", &e);
            }
        };

    // Events per minute by outcome, and arrivals for the queue depth.
    let mut applied = vec![0.0; MINUTES];
    let mut failed_ = vec![0.0; MINUTES];
    let mut waiting = vec![0.0; MINUTES];
    let mut arrivals = vec![0i64; MINUTES];
    for b in &buckets {
        let Some(i) = usize::try_from(b.bucket - first_minute)
            .ok()
            .filter(|i| *i < MINUTES)
        else {
            continue;
        };
        arrivals[i] += b.count;
        let series = match b.status.as_str() {
            "processed" | "ignored" => &mut applied,
            "failed" => &mut failed_,
            _ => &mut waiting,
        };
        series[i] += b.count as f64;
    }
    // The depth at the end of each minute, walked back from now: one minute earlier it
    // was what it is now, less what arrived in this minute, plus what left in it.
    let mut left = vec![0i64; MINUTES];
    for (minute, n) in &departures {
        if let Some(i) = usize::try_from(minute - first_minute)
            .ok()
            .filter(|i| *i < MINUTES)
        {
            left[i] += n;
        }
    }
    let mut depth = vec![0.0; MINUTES];
    let mut d = (queue.pending + queue.processing) as i64;
    for i in (0..MINUTES).rev() {
        depth[i] = d.max(0) as f64;
        d = d - arrivals[i] + left[i];
    }
    let hours: Vec<(usize, String)> = (0..MINUTES)
        .step_by(180)
        .map(|i| (i, clock_label(first_minute + i as i64)))
        .chain(std::iter::once((MINUTES - 1, "now".to_owned())))
        .collect();
    let events = Chart {
        id: "chart-events",
        title: "Webhook events per minute, last 24 hours (UTC), by outcome",
        unit: "events/min",
        kind: Kind::Lines,
        series: vec![
            Series {
                label: "applied",
                color: "#1f8a4c",
                values: applied,
            },
            Series {
                label: "failed",
                color: "#c0392b",
                values: failed_,
            },
            Series {
                label: "waiting",
                color: "#d68910",
                values: waiting,
            },
        ],
        x_labels: hours.clone(),
    };
    let depth = Chart {
        id: "chart-queue",
        title: "Webhook queue depth (received, not yet finished), last 24 hours (UTC)",
        unit: "events",
        kind: Kind::Lines,
        series: vec![Series {
            label: "in the queue",
            color: "#2e5eaa",
            values: depth,
        }],
        x_labels: hours,
    };

    let mut granted = vec![0.0; DAYS];
    let mut consumed = vec![0.0; DAYS];
    let mut taken = vec![0.0; DAYS];
    for c in &days {
        let Some(i) = usize::try_from(c.day - first_day)
            .ok()
            .filter(|i| *i < DAYS)
        else {
            continue;
        };
        // Granted: purchases, plans and staff grants; consumed: what was spent;
        // taken back: refunds, disputes and staff deductions.
        granted[i] += c.added as f64 / 100.0;
        match c.kind.as_str() {
            "consume" => consumed[i] += c.removed as f64 / 100.0,
            _ => taken[i] += c.removed as f64 / 100.0,
        }
    }
    let day_label = |d: i64| crate::clock::utc_as(d * 86_400, "%m-%d");
    let credits = Chart {
        id: "chart-credits",
        title: "Credits granted, consumed and taken back per day, last 30 days (UTC)",
        unit: "credits/day",
        kind: Kind::Bars,
        series: vec![
            Series {
                label: "granted",
                color: "#1f8a4c",
                values: granted,
            },
            Series {
                label: "consumed",
                color: "#2e5eaa",
                values: consumed,
            },
            Series {
                label: "taken back",
                color: "#c0392b",
                values: taken,
            },
        ],
        x_labels: (0..DAYS)
            .step_by(7)
            .map(|i| (i, day_label(first_day + i as i64)))
            .collect(),
    };

    runs.reverse();
    let now = unix_now();
    let seconds =
        |r: &sm_store::runs::SyncRun| (r.finished_at.unwrap_or(now) - r.started_at).max(0) as f64;
    let pick = |status: &str| -> Vec<f64> {
        runs.iter()
            .map(|r| {
                if r.status == status {
                    seconds(r).max(0.5)
                } else {
                    0.0
                }
            })
            .collect()
    };
    let syncs = Chart {
        id: "chart-syncs",
        title: "Duration of the last 30 syncs, oldest first",
        unit: "s",
        kind: Kind::Stacked,
        series: vec![
            Series {
                label: "succeeded",
                color: "#1f8a4c",
                values: pick("succeeded"),
            },
            Series {
                label: "failed",
                color: "#c0392b",
                values: pick("failed"),
            },
            Series {
                label: "running",
                color: "#d68910",
                values: pick("running"),
            },
        ],
        x_labels: runs
            .iter()
            .enumerate()
            .step_by(if runs.len() > 10 { 5 } else { 1 })
            .map(|(i, r)| (i, format!("#{}", r.id)))
            .collect(),
    };
    let page = ActivityPage {
        nav: ctx.nav(&state, "activity").await,
        charts: vec![
            events.render(),
            depth.render(),
            credits.render(),
            syncs.render(),
        ],
    };
    render(&page).into_response()
}
