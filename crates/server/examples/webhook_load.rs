//! Load for a webhook endpoint: unique, signed `product.updated` events (each for a
//! product of its own) at a fixed concurrency for a fixed time; prints throughput and
//! latency percentiles, then checks the database for loss.
//!
//! ```text
//! webhook_load URL SECRET CONCURRENCY SECONDS [--inbox DATABASE_URL | --peer DATABASE_URL]
//! ```
//!
//! - `--inbox`: stripe-manager's database. Every event answered 200 must be in
//!   `webhook_events`; then, once the worker has drained, each must be `processed` and
//!   its product in `products`.
//! - `--peer`: the Supabase sync engine's database. Every product whose event was
//!   answered 200 must be in `stripe.products` (it has no inbox).
//!
//! The run prefix makes every id unique, so several runs can share a database.
//! scripts/bench-webhooks runs this against release builds of both.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sm_store::{ConnectOptions, DatabaseUrl, Pool, Store};

enum Check {
    None,
    Inbox(String),
    Peer(String),
}

fn usage() -> ! {
    eprintln!(
        "usage: webhook_load URL SECRET CONCURRENCY SECONDS [--inbox DATABASE_URL | --peer DATABASE_URL]"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, secret, concurrency, seconds, check) = match args.as_slice() {
        [u, s, c, t] => (u, s, c, t, Check::None),
        [u, s, c, t, flag, db] if flag == "--inbox" => (u, s, c, t, Check::Inbox(db.clone())),
        [u, s, c, t, flag, db] if flag == "--peer" => (u, s, c, t, Check::Peer(db.clone())),
        _ => usage(),
    };
    let (Ok(concurrency), Ok(seconds)) = (concurrency.parse::<usize>(), seconds.parse::<u64>())
    else {
        usage()
    };
    sm_stripe::client::install_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("an HTTP client");
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
            let (client, url, secret, counter, run) = (
                client.clone(),
                url.clone(),
                secret.clone(),
                counter.clone(),
                run.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut acked = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64;
                    let body = format!(
                        r#"{{"id":"evt_load{run}x{n}","object":"event","type":"product.updated","created":{now},"livemode":false,"api_version":"2025-03-31.basil","pending_webhooks":1,"request":{{"id":null}},"data":{{"object":{{"id":"prod_load{run}x{n}","object":"product","active":true,"name":"Load {n}","description":null,"images":[],"metadata":{{"credit_amount":"10"}},"default_price":null,"created":{now},"updated":{now},"livemode":false}}}}}}"#
                    );
                    let header = fake_stripe::sign(&secret, now, body.as_bytes());
                    let started = Instant::now();
                    let status = client
                        .post(&url)
                        .header("Stripe-Signature", header)
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    latencies.push(started.elapsed());
                    if matches!(status, Ok(200)) {
                        acked.push(n);
                    }
                }
                (latencies, acked)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut acked = Vec::new();
    for t in tasks {
        let (l, a) = t.await.expect("a load task");
        all.extend(l);
        acked.extend(a);
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "concurrency {concurrency:>3}: {:>8.0} events/s  p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  sent {}  non-200 {}",
        acked.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.99),
        all[all.len() - 1],
        all.len(),
        all.len() - acked.len(),
    );
    let lost = match check {
        Check::None => return,
        Check::Inbox(db) => check_inbox(&db, &run, &acked).await,
        Check::Peer(db) => check_peer(&db, &run, &acked).await,
    };
    if lost > 0 {
        std::process::exit(1);
    }
}

async fn connect(db: &str) -> Store {
    let url = DatabaseUrl::parse(db).unwrap_or_else(|e| panic!("the check's database URL {e}"));
    Store::connect(&url, &ConnectOptions::default())
        .await
        .expect("the check's database is reachable")
}

async fn ids(store: &Store, sql: &str, pattern: &str) -> HashSet<String> {
    let rows: Vec<String> = match store.pool() {
        Pool::Sqlite(p) => sqlx::query_scalar(sql).bind(pattern).fetch_all(p).await,
        Pool::Postgres(p) => sqlx::query_scalar(sql).bind(pattern).fetch_all(p).await,
    }
    .expect("the check's query runs");
    rows.into_iter().collect()
}

fn missing(have: &HashSet<String>, prefix: &str, run: &str, acked: &[u64]) -> usize {
    acked
        .iter()
        .filter(|n| !have.contains(&format!("{prefix}{run}x{n}")))
        .count()
}

/// Every acknowledged event is stored, and once drained, processed and applied.
async fn check_inbox(db: &str, run: &str, acked: &[u64]) -> usize {
    let store = connect(db).await;
    let pattern = format!("evt_load{run}x%");
    let stored = ids(
        &store,
        "SELECT id FROM webhook_events WHERE id LIKE $1",
        &pattern,
    )
    .await;
    let lost = missing(&stored, "evt_load", run, acked);
    // Wait for the worker with a query the partial queue indexes answer cheaply: polling
    // with a scan of the whole table would steal the CPU the worker is draining with.
    let started = Instant::now();
    let unfinished = "SELECT id FROM webhook_events WHERE status IN ('pending', 'processing') AND id LIKE $1 LIMIT 1";
    while !ids(&store, unfinished, &pattern).await.is_empty()
        && started.elapsed() < Duration::from_secs(600)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = started.elapsed();
    let processed = ids(
        &store,
        "SELECT id FROM webhook_events WHERE id LIKE $1 AND status = 'processed'",
        &pattern,
    )
    .await;
    let products = ids(
        &store,
        "SELECT id FROM products WHERE id LIKE $1",
        &format!("prod_load{run}x%"),
    )
    .await;
    let unapplied = missing(&products, "prod_load", run, acked);
    println!(
        "                 loss check: acknowledged {}  stored {}  lost {lost}  processed {}  applied {}  drained in {:.1?}  unapplied {unapplied}",
        acked.len(),
        stored.len(),
        processed.len(),
        products.len(),
        drained,
    );
    lost + unapplied
}

/// Every acknowledged event's product is in the peer's `stripe.products`.
async fn check_peer(db: &str, run: &str, acked: &[u64]) -> usize {
    let store = connect(db).await;
    let products = ids(
        &store,
        "SELECT id FROM stripe.products WHERE id LIKE $1",
        &format!("prod_load{run}x%"),
    )
    .await;
    let lost = missing(&products, "prod_load", run, acked);
    println!(
        "                 loss check: acknowledged {}  stored {}  lost {lost}",
        acked.len(),
        products.len()
    );
    lost
}
