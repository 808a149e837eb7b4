//! Events to the app under load (docs/BENCHMARKS.md): an endpoint on `127.0.0.1:PORT`
//! that answers 204 and records when each event arrived, and an open-loop generator
//! that sends promotional grants (one `credits.granted` each) at a fixed RATE per
//! second for SECONDS, spread over ACCOUNTS accounts. Prints how many events arrived,
//! duplicates, and the latency from the event's `timestamp` (taken in the transaction,
//! just before its commit) to its arrival: p50, p99, p99.9, max.
//!
//! ```text
//! app_events_load BASE_URL PORT RATE SECONDS ACCOUNTS [WAIT_SECS=60]
//! ```
//!
//! WAIT_SECS is how long it waits for the events after sending (0: not at all, for a
//! load beside another measurement).
//!
//! `SM_TOKEN` holds an API token with `credits:grant`; the service runs with
//! `APP_WEBHOOK_URL=http://127.0.0.1:PORT/hooks` (scripts/bench-app-events).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

fn usage() -> ! {
    eprintln!("usage: app_events_load BASE_URL PORT RATE SECONDS ACCOUNTS [WAIT_SECS]");
    std::process::exit(2);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Arrival latencies in ms by event id (a second arrival counts as a duplicate).
type Seen = Arc<Mutex<(HashMap<String, i64>, u64)>>;

async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let arrived = now_ms();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let sent = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["timestamp"].as_str().map(str::to_owned))
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(arrived, |t| t.as_millisecond());
    let mut s = seen.lock().unwrap();
    if s.0.insert(id, arrived - sent).is_some() {
        s.1 += 1;
    }
    StatusCode::NO_CONTENT
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, wait) = match args.as_slice() {
        [rest @ .., wait] if rest.len() == 5 => {
            (rest, wait.parse::<u64>().unwrap_or_else(|_| usage()))
        }
        rest => (rest, 60),
    };
    let [base, port, rate, seconds, accounts] = args else {
        usage()
    };
    let (Ok(port), Ok(rate), Ok(seconds), Ok(accounts)) = (
        port.parse::<u16>(),
        rate.parse::<u64>(),
        seconds.parse::<u64>(),
        accounts.parse::<u64>(),
    ) else {
        usage()
    };
    let Ok(token) = std::env::var("SM_TOKEN") else {
        eprintln!("set SM_TOKEN to an API token with credits:grant");
        std::process::exit(2);
    };
    sm_stripe::client::install_tls_provider();
    let seen: Seen = Default::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the endpoint's port is free");
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the endpoint runs") });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("an HTTP client");
    let run = format!("{:x}", now_ms());
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let (client, url, token) = (
            client.clone(),
            format!(
                "{base}/api/v1/accounts/ev-{run}-{}/credits/grants",
                n % accounts
            ),
            token.clone(),
        );
        let key = format!("{run}-{n}");
        requests.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(
                    &serde_json::json!({"amount": "1", "idempotency_key": key, "reason": "bench"}),
                )
                .send()
                .await
                .map(|r| r.status().as_u16() == 201)
                .unwrap_or(false)
        }));
        n += 1;
    }
    let sent_for = started.elapsed().as_secs_f64();
    let mut granted = 0u64;
    for r in requests {
        if r.await.unwrap_or(false) {
            granted += 1;
        }
    }
    // Wait for every event (at most WAIT_SECS).
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let got = seen.lock().unwrap().0.len() as u64;
        if got >= granted || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (latencies, duplicates) = {
        let s = seen.lock().unwrap();
        let mut l: Vec<i64> = s.0.values().copied().collect();
        l.sort_unstable();
        (l, s.1)
    };
    println!(
        "grants sent {n} in {sent_for:.1} s ({:.0}/s), answered 201: {granted}; events received {} (missing {}, duplicates {duplicates})",
        n as f64 / sent_for,
        latencies.len(),
        granted.saturating_sub(latencies.len() as u64),
    );
    println!(
        "commit-to-delivery ms: p50 {} p99 {} p99.9 {} max {}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or(0)
    );
}
