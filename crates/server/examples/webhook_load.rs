//! Load for `POST /webhooks/stripe`: unique, signed `product.updated` events at a fixed
//! concurrency for a fixed time; prints throughput and latency percentiles.
//!
//! `cargo run --release -p stripe-manager --example webhook_load -- URL SECRET CONCURRENCY SECONDS`
//! (scripts/bench-webhooks runs it against a release server).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, secret, concurrency, seconds] = args.as_slice() else {
        eprintln!("usage: webhook_load URL SECRET CONCURRENCY SECONDS");
        std::process::exit(2);
    };
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY is a number");
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    sm_stripe::client::install_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let run = format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, secret, counter, run) = (client.clone(), url.clone(), secret.clone(), counter.clone(), run.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0u64;
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
                    let body = format!(
                        r#"{{"id":"evt_load{run}x{n}","object":"event","type":"product.updated","created":{now},"livemode":false,"api_version":"2025-03-31.basil","data":{{"object":{{"id":"prod_load{n}","object":"product","active":true,"name":"Load {n}","description":null,"metadata":{{"credit_amount":"10"}},"default_price":null,"created":{now},"updated":{now},"livemode":false}}}}}}"#
                    );
                    let header = fake_stripe::sign(&secret, now, body.as_bytes());
                    let started = Instant::now();
                    let status = client.post(&url).header("Stripe-Signature", header).body(body).send().await.map(|r| r.status().as_u16());
                    latencies.push(started.elapsed());
                    if !matches!(status, Ok(200)) {
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await.unwrap();
        all.extend(l);
        failures += f;
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "concurrency {concurrency:>3}: {:>8.0} req/s  p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  requests {}  non-200 {failures}",
        all.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.99),
        all[all.len() - 1],
        all.len()
    );
}
