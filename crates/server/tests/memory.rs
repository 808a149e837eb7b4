//! Memory under a steady webhook load (issue #15, item 6): the real binary, driven with
//! a few hundred thousand signed `product.updated` events for 100 products (the same
//! products over and over, so the data does not grow), on SQLite and PostgreSQL. The
//! process's RSS is sampled after each phase; once warm it must level off.
//!
//! Before the fix the Prometheus recorder kept every histogram sample until a scrape
//! (nobody scrapes here): ~42 bytes per event, so the last phases grew by megabytes.
//! Now the recorder's upkeep runs every 5 s and the growth over the last two phases is
//! allocator noise.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use sm_store::testing::TestDb;

sm_store::contract_tests!(rss_levels_off_under_a_steady_webhook_load);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Events before the first sample. SQLite's page caches (2 MiB per pooled connection,
/// 8 connections) fill while the inbox table and its indexes grow: with the
/// `(received_at, id)` index of migration 13, measured here RSS rose 1–3 MiB per 10,000
/// events up to 60,000 events and 0.2–0.5 MiB per 10,000 after that (46.2, 47.5, 50.3,
/// 52.4, 53.2, 53.4, 53.9 MiB at 30,000 … 90,000). So SQLite warms up with 60,000;
/// PostgreSQL's server keeps its cache outside this process and 30,000 are enough.
fn warm_up_events(db: &TestDb) -> usize {
    let default = match db.store.backend() {
        sm_store::Backend::Sqlite => 60_000,
        sm_store::Backend::Postgres => 30_000,
    };
    env_or("MEMORY_TEST_WARM_UP", default)
}

/// Events per measured phase (`MEMORY_TEST_EVENTS`, `MEMORY_TEST_PHASES` for a longer run
/// by hand).
fn phase_events() -> usize {
    env_or("MEMORY_TEST_EVENTS", 10_000)
}

/// Measured phases after the warm-up. A leak grows RSS in every phase by the same amount;
/// noise comes in steps (a page cache or a malloc arena growing once), so the check takes
/// the smallest growth of any phase. SQLite gets a third phase because its steps are
/// larger and more frequent: a CI run with other tests sharing the two cores saw one
/// step of more than 4 MiB within two phases, with no leak (the run alone: +0.3 MiB).
fn phases(db: &TestDb) -> usize {
    let default = match db.store.backend() {
        sm_store::Backend::Sqlite => 3,
        sm_store::Backend::Postgres => 2,
    };
    env_or("MEMORY_TEST_PHASES", default).max(2)
}

/// Growth allowed in the quietest phase. The retained histogram samples were 42 B/event:
/// with the upkeep disabled the PostgreSQL run grew 0.4–0.5 MiB per 10,000 events
/// (0.05–0.15 MiB with it), so PostgreSQL's budget catches that leak. On SQLite the
/// pool's page caches (up to 2 MiB per connection, 8 connections) are still filling at
/// this point: 0.1–2.4 MiB per 20,000 events measured here between 30,000 and 120,000,
/// more when other tests share the cores. Its budget only catches a leak of some
/// 200 B/event; the leak found was not backend-specific, and the PostgreSQL run is the
/// one that pins it.
fn budget_bytes(db: &TestDb) -> u64 {
    match db.store.backend() {
        sm_store::Backend::Postgres => 320 * 1024,
        sm_store::Backend::Sqlite => 2 * 1024 * 1024,
    }
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn product_event(seq: usize, base: i64) -> String {
    let product = format!("prod_mem{:03}", seq % 100);
    // Each event is newer than the last for its product, so the worker writes it.
    let updated = base + seq as i64;
    json!({
        "id": format!("evt_mem{seq:08}"), "object": "event", "type": "product.updated",
        "created": updated, "livemode": false, "api_version": "2025-03-31.basil",
        "pending_webhooks": 1,
        "data": {"object": {
            "id": product, "object": "product", "active": true, "name": format!("Pack {seq}"),
            "description": null, "metadata": {"credit_amount": "10"}, "default_price": null,
            "created": 1, "updated": updated, "livemode": false
        }}
    })
    .to_string()
}

async fn deliver_range(url: &str, range: std::ops::Range<usize>, base: i64) {
    let client = http();
    let refused = futures_util::stream::iter(range)
        .map(|seq| {
            let client = client.clone();
            async move {
                let body = product_event(seq, base);
                let header = fake_stripe::sign(WEBHOOK_SECRET, unix_now(), body.as_bytes());
                let status = client
                    .post(url)
                    .header("Stripe-Signature", header)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                u64::from(status != 200)
            }
        })
        .buffer_unordered(32)
        .fold(0u64, |a, b| async move { a + b })
        .await;
    assert_eq!(refused, 0, "every delivery is acknowledged");
}

async fn wait_applied(db: &TestDb) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let c = db.store.inbox_counts(0).await.expect("counts");
        assert_eq!(c.failed, 0, "no event dead-lettered");
        if c.pending == 0 && c.processing == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the worker keeps up: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn rss_levels_off_under_a_steady_webhook_load(db: TestDb) {
    let mut env = env_for(None, &db);
    // Fewer malloc arenas: less fragmentation noise in RSS, the same retained bytes.
    env.push(("MALLOC_ARENA_MAX".into(), "2".into()));
    let (mut child, addr) = spawn_serve(&env).await;
    let pid = child.id().expect("running");
    let url = format!("http://{addr}/webhooks/stripe");
    let per_phase = phase_events();
    let base = unix_now() - 10_000_000;

    let warm_up = warm_up_events(&db);
    let mut samples = Vec::new();
    let phases = phases(&db);
    for phase in 0..=phases {
        let started = Instant::now();
        let (from, to) = match phase {
            0 => (0, warm_up),
            n => (warm_up + (n - 1) * per_phase, warm_up + n * per_phase),
        };
        deliver_range(&url, from..to, base).await;
        wait_applied(&db).await;
        let rss = rss_bytes(pid);
        eprintln!(
            "phase {phase}: {} events in {:.1} s, RSS {:.1} MiB",
            to - from,
            started.elapsed().as_secs_f64(),
            rss as f64 / 1048576.0
        );
        samples.push(rss);
    }
    let _ = child.kill().await;

    let total = warm_up + phases * per_phase;
    let counts = db.store.catalog_counts().await.unwrap();
    assert_eq!(counts.active, 100, "100 products, updated over and over");
    let quietest = samples
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .min()
        .expect("at least two measured phases");
    assert!(
        quietest <= budget_bytes(&db),
        "RSS grew at least {:.2} MiB in each phase of {per_phase} events, {total} in all \
         ({:.1} B/event; samples {:?} MiB): something is kept per event",
        quietest as f64 / 1048576.0,
        quietest as f64 / per_phase as f64,
        samples
            .iter()
            .map(|s| format!("{:.1}", *s as f64 / 1048576.0))
            .collect::<Vec<_>>()
    );
}
