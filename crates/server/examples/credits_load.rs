//! Load for `POST /api/v1/accounts/{account}/credits/consume`: consumptions of 0.01
//! credits with unique idempotency keys at a fixed concurrency for a fixed time, spread
//! over ACCOUNTS accounts; prints throughput and latency percentiles, then checks every
//! account's balance against the consumptions that were answered 200.
//!
//! ```text
//! credits_load BASE_URL CONCURRENCY SECONDS ACCOUNTS START_BALANCE
//! ```
//!
//! The accounts (`load-<run>-<i>`) must already hold START_BALANCE credits each, and
//! `SM_TOKEN` must hold an API token with credits:read and credits:write;
//! scripts/bench-credits prepares both with the CLI.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: credits_load BASE_URL CONCURRENCY SECONDS ACCOUNTS START_BALANCE [RUN]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, concurrency, seconds, accounts, start, run] = args.as_slice() else {
        usage()
    };
    let (Ok(concurrency), Ok(seconds), Ok(accounts), Ok(start)) = (
        concurrency.parse::<usize>(),
        seconds.parse::<u64>(),
        accounts.parse::<u64>(),
        start.parse::<f64>(),
    ) else {
        usage()
    };
    sm_stripe::client::install_tls_provider();
    let Ok(token) = std::env::var("SM_TOKEN") else {
        eprintln!("set SM_TOKEN to an API token with credits:read and credits:write");
        std::process::exit(2);
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("a header value"),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .default_headers(headers)
        .build()
        .expect("an HTTP client");
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, base, counter, run) =
                (client.clone(), base.clone(), counter.clone(), run.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut ok = vec![0u64; accounts as usize];
                let mut other = 0u64;
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let a = n % accounts;
                    let url = format!("{base}/api/v1/accounts/load-{run}-{a}/credits/consume");
                    let body = format!(r#"{{"amount":"0.01","idempotency_key":"k{n}"}}"#);
                    let started = Instant::now();
                    let status = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    latencies.push(started.elapsed());
                    match status {
                        Ok(200) => ok[a as usize] += 1,
                        _ => other += 1,
                    }
                }
                (latencies, ok, other)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut ok = vec![0u64; accounts as usize];
    let mut other = 0;
    for t in tasks {
        let (l, o, x) = t.await.expect("a load task");
        all.extend(l);
        for (total, n) in ok.iter_mut().zip(o) {
            *total += n;
        }
        other += x;
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    let total: u64 = ok.iter().sum();
    println!(
        "concurrency {concurrency:>3}: {:>8.0} consumptions/s  p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  non-200 {other}",
        total as f64 / seconds as f64,
        pct(0.50),
        pct(0.99),
        all[all.len() - 1],
    );
    let mut wrong = 0;
    for (a, n) in ok.iter().enumerate() {
        let url = format!("{base}/api/v1/accounts/load-{run}-{a}/credits");
        let balance: serde_json::Value = client
            .get(&url)
            .send()
            .await
            .expect("balance answers")
            .json()
            .await
            .expect("balance is JSON");
        let expected = format!("{:.2}", start - *n as f64 / 100.0);
        if balance["available"] != serde_json::json!(expected) {
            eprintln!(
                "account {a}: balance {} but {n} consumptions of 0.01 from {start} leave {expected}",
                balance["available"]
            );
            wrong += 1;
        }
    }
    println!(
        "                 ledger check: {total} consumptions answered 200, {} accounts, {wrong} with a wrong balance",
        ok.len()
    );
    if wrong > 0 {
        std::process::exit(1);
    }
}
