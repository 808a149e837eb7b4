//! Soak load (issue #14, target 5): three streams at fixed rates against one running
//! `serve` on PostgreSQL for a long time, with the server's health sampled beside them.
//!
//! - webhooks: signed, unique `product.updated` events to `/webhooks/stripe`, turning
//!   over a fixed set of `--products` products, so the catalog (and every catalog read)
//!   stays the same size for the whole run instead of growing by 500 products a second;
//! - consumptions: `POST /api/v1/accounts/soak-RUN-i/credits/consume` of 0.01 credits
//!   with unique idempotency keys, over `--accounts` accounts;
//! - catalog reads: `GET /api/v1/products`, the whole answer read.
//!
//! The load is open-loop: each stream sends on its own fixed schedule whatever the
//! server's latency, and latency is measured from the time a request was *scheduled*.
//! A closed loop (N clients each waiting for its answer) slows down with the server and
//! so never measures the stalls it causes (coordinated omission). In-flight requests per
//! stream are bounded; a tick that finds the bound reached is skipped and counted.
//!
//! Every `--sample-secs` one CSV row (printed and appended to `--csv`, flushed) holds
//! the seconds elapsed when it was taken (a sample delayed by a busy machine says so,
//! and rates divide by the real time between samples); per stream the requests sent,
//! answered 200 (`ok`), failed (`err`: another status or no answer), skipped, and
//! p50/p99 in ms of the requests completed in that window; then the server's RSS (KiB, `VmRSS` of /proc/PID/status),
//! its open file descriptors (/proc/PID/fd), its PostgreSQL connections (those of
//! `pg_stat_activity` whose `application_name` is `--pg-app`, which the server's
//! `DATABASE_URL` must set, plus its LISTEN connection, which names itself
//! `sm-listener <schema>`) and the webhook queue depth (events `pending` or
//! `processing`).
//!
//! At the end, once every request has been answered: every webhook answered 200 is in
//! `webhook_events` and, once the worker has drained, `processed`; every account's
//! balance is its `--start-balance` less the consumptions answered 200. Then a table
//! compares the mean of the first and the last `--window-secs` of each metric: FAIL when
//! it got more than 10 % worse (RSS: 10 MiB more), with a small absolute slack for gauges
//! that sit near zero (see [`Limit`]). Exit 1 on loss, a wrong balance or any FAIL.
//!
//! scripts/soak prepares the server, the schema, the token and the accounts, runs this,
//! and plots the CSV (scripts/plot-soak.py).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

#[derive(Debug, Parser)]
#[command(about = "Soak load: webhooks, consumptions and catalog reads at fixed rates")]
struct Args {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    base_url: String,
    /// The server's STRIPE_WEBHOOK_SECRET.
    #[arg(long)]
    secret: String,
    /// The server's process: its RSS and open descriptors are read from /proc.
    #[arg(long)]
    pid: u32,
    /// The server's PostgreSQL database, with its schema's search_path option.
    #[arg(long)]
    database_url: String,
    /// The `application_name` the server's DATABASE_URL sets: how its connections are
    /// told from every other client's (ours, psql, other tests) in pg_stat_activity.
    #[arg(long)]
    pg_app: String,
    /// Unique per run: prefixes event, product and account ids.
    #[arg(long)]
    run: String,
    #[arg(long, default_value_t = 1800)]
    seconds: u64,
    #[arg(long, default_value_t = 500.0)]
    webhooks_per_sec: f64,
    #[arg(long, default_value_t = 200.0)]
    consumes_per_sec: f64,
    #[arg(long, default_value_t = 1000.0)]
    reads_per_sec: f64,
    #[arg(long, default_value_t = 100)]
    products: u64,
    /// Accounts soak-RUN-0 … soak-RUN-(N-1); each must hold START_BALANCE credits.
    #[arg(long, default_value_t = 16)]
    accounts: u64,
    /// Whole credits each account holds at the start.
    #[arg(long)]
    start_balance: u64,
    /// Requests in flight per stream; a tick beyond it is skipped (and counted).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// The first and the last this many seconds are compared (at most half the run).
    #[arg(long, default_value_t = 300)]
    window_secs: u64,
    /// The CSV of samples (appended to, header first).
    #[arg(long)]
    csv: PathBuf,
    /// Also write the summary table (Markdown) here.
    #[arg(long)]
    summary: Option<PathBuf>,
}

/// One stream's counts and latencies since the last sample.
#[derive(Debug, Default)]
struct Window {
    sent: u64,
    ok: u64,
    errors: u64,
    skipped: u64,
    latencies: Vec<Duration>,
}

#[derive(Debug)]
struct Stream {
    name: &'static str,
    window: Mutex<Window>,
    in_flight: Arc<Semaphore>,
}

/// What one sample says about one stream.
#[derive(Debug, Clone, Copy, Default)]
struct StreamSample {
    sent: u64,
    ok: u64,
    errors: u64,
    skipped: u64,
    /// `None` when nothing completed in the window.
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the start, when the windows were taken.
    elapsed: f64,
    /// Seconds since the sample before: what the counts cover.
    span: f64,
    streams: Vec<StreamSample>,
    rss_kib: u64,
    fds: u64,
    pg_connections: i64,
    queue_depth: i64,
}

impl Stream {
    fn new(name: &'static str, max_in_flight: usize) -> Arc<Self> {
        Arc::new(Self {
            name,
            window: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
        })
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window
            .lock()
            .expect("no panics while holding the window")
    }

    /// Takes the window's counts and starts a new one.
    fn sample(&self) -> StreamSample {
        let mut w = std::mem::take(&mut *self.window());
        w.latencies.sort();
        let pct = |p: f64| {
            (!w.latencies.is_empty()).then(|| {
                let i = ((w.latencies.len() as f64 * p) as usize).min(w.latencies.len() - 1);
                w.latencies[i].as_secs_f64() * 1000.0
            })
        };
        StreamSample {
            sent: w.sent,
            ok: w.ok,
            errors: w.errors,
            skipped: w.skipped,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
        }
    }
}

/// Sends `request(n)` (true for a 200) `rate` times a second from `start` until `end`.
/// `Interval::tick` hands back each tick's scheduled instant, and `Burst` fires missed
/// ticks at once, so a stalled loader or runtime still sends what was due and charges
/// the wait to the request's latency.
async fn drive<F, Fut>(stream: Arc<Stream>, rate: f64, start: Instant, end: Instant, request: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    if rate <= 0.0 {
        return;
    }
    let mut ticks = tokio::time::interval_at(start, Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for n in 0.. {
        let scheduled = ticks.tick().await;
        if scheduled >= end {
            break;
        }
        let Ok(permit) = stream.in_flight.clone().try_acquire_owned() else {
            stream.window().skipped += 1;
            continue;
        };
        stream.window().sent += 1;
        let (answer, stream) = (request(n), stream.clone());
        tokio::spawn(async move {
            let ok = answer.await;
            let latency = scheduled.elapsed();
            let mut w = stream.window();
            if ok {
                w.ok += 1
            } else {
                w.errors += 1
            }
            w.latencies.push(latency);
            drop(permit);
        });
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A `product.updated` event for product `p`. The product's JSON depends only on `p`
/// and the second it was sent in: two events of the same product and second carry the
/// same object, because a same-`updated` event with other content is a tie the worker
/// resolves by refetching from Stripe, which this server (no Stripe key) cannot do.
fn product_event(run: &str, n: u64, p: u64, created: i64, now: i64) -> String {
    format!(
        r#"{{"id":"evt_soak{run}x{n}","object":"event","type":"product.updated","created":{now},"livemode":false,"api_version":"2025-03-31.basil","pending_webhooks":1,"request":{{"id":null}},"data":{{"object":{{"id":"prod_soak{run}x{p}","object":"product","active":true,"name":"Soak {p}","description":null,"images":[],"metadata":{{"credit_amount":"10"}},"default_price":null,"created":{created},"updated":{now},"livemode":false}}}}}}"#
    )
}

/// The server's resident memory in KiB, or `None` once the process is gone.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The server's connections: ours (this pool) have no `application_name`, and the
/// backend running the query is left out in case the environment gave it one. The
/// server's LISTEN connection renames itself `sm-listener <schema>` (see
/// `sm_store::changes::listener_name`), so it is counted by that name.
const PG_CONNECTIONS: &str = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
    AND (application_name = $1 OR application_name = $2) AND pid <> pg_backend_pid()";

/// Two counts rather than `status IN (…)`: each matches one of the inbox's partial
/// indexes (`webhook_events_pending`, `webhook_events_leased`), so sampling stays cheap
/// while the table grows by 500 rows a second.
const QUEUE_DEPTH: &str = "SELECT (SELECT count(*) FROM webhook_events WHERE status = 'pending') + (SELECT count(*) FROM webhook_events WHERE status = 'processing')";

const STREAMS: [&str; 3] = ["webhooks", "consume", "catalog"];

fn csv_header() -> String {
    let mut h = String::from("elapsed_s");
    for s in STREAMS {
        for c in ["sent", "ok", "err", "skipped", "p50_ms", "p99_ms"] {
            write!(h, ",{s}_{c}").expect("writing to a String");
        }
    }
    h + ",rss_kib,fds,pg_connections,queue_depth"
}

fn csv_row(s: &Sample) -> String {
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
    let mut row = format!("{:.1}", s.elapsed);
    for t in &s.streams {
        let (p50, p99) = (ms(t.p50_ms), ms(t.p99_ms));
        let (sent, ok, err, skipped) = (t.sent, t.ok, t.errors, t.skipped);
        write!(row, ",{sent},{ok},{err},{skipped},{p50},{p99}").expect("writing to a String");
    }
    let (rss, fds, pg, queue) = (s.rss_kib, s.fds, s.pg_connections, s.queue_depth);
    row + &format!(",{rss},{fds},{pg},{queue}")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    sm_stripe::client::install_tls_provider();
    let Ok(token) = std::env::var("SM_TOKEN") else {
        eprintln!("set SM_TOKEN to an API token with catalog:read, credits:read and credits:write");
        std::process::exit(2);
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("a header value"),
    );
    // Idle connections are dropped before the server's HTTP_HEADER_TIMEOUT (10 s) would
    // close them: a request sent on a connection the server is closing fails, and that
    // would be counted against the server.
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    // One connection, opened now and kept: a sample must not wait for a new connection
    // on a PostgreSQL server that other clients have filled up.
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect(&args.database_url)
        .await
        .expect("the server's PostgreSQL database is reachable");
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.csv)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", args.csv.display()));
    writeln!(csv, "{}", csv_header()).expect("the CSV is writable");
    println!("{}", csv_header());

    let streams: Vec<_> = STREAMS
        .iter()
        .map(|name| Stream::new(name, args.max_in_flight))
        .collect();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let consumed: Arc<Vec<AtomicU64>> = Arc::new((0..args.accounts).map(|_| 0.into()).collect());
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let created = unix_now();

    let (url, secret, run, products) = (
        format!("{}/webhooks/stripe", args.base_url),
        args.secret.clone(),
        args.run.clone(),
        args.products,
    );
    let (c, acks) = (client.clone(), acked.clone());
    let webhook = move |n| {
        let now = unix_now();
        let body = product_event(&run, n, n % products, created, now);
        let signature = fake_stripe::sign(&secret, now, body.as_bytes());
        let send = c
            .post(&url)
            .header("Stripe-Signature", signature)
            .header("Content-Type", "application/json")
            .body(body)
            .send();
        let acks = acks.clone();
        async move {
            let ok = matches!(send.await.map(|r| r.status().as_u16()), Ok(200));
            if ok {
                acks.lock().expect("no panics while holding it").push(n);
            }
            ok
        }
    };

    let (base, run, accounts) = (args.base_url.clone(), args.run.clone(), args.accounts);
    let (c, counts) = (client.clone(), consumed.clone());
    let consume = move |n| {
        let a = n % accounts;
        let send = c
            .post(format!(
                "{base}/api/v1/accounts/soak-{run}-{a}/credits/consume"
            ))
            .header("Content-Type", "application/json")
            .body(format!(
                r#"{{"amount":"0.01","idempotency_key":"soak{run}k{n}"}}"#
            ))
            .send();
        let counts = counts.clone();
        async move {
            let ok = matches!(send.await.map(|r| r.status().as_u16()), Ok(200));
            if ok {
                counts[a as usize].fetch_add(1, Ordering::Relaxed);
            }
            ok
        }
    };

    let (c, list) = (client.clone(), format!("{}/api/v1/products", args.base_url));
    let read = move |_| {
        let send = c.get(&list).send();
        async move {
            match send.await {
                Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    };
    let (w, c, r) = (streams[0].clone(), streams[1].clone(), streams[2].clone());
    let load = tokio::spawn(async move {
        tokio::join!(
            drive(w, args.webhooks_per_sec, start, end, webhook),
            drive(c, args.consumes_per_sec, start, end, consume),
            drive(r, args.reads_per_sec, start, end, read),
        )
    });

    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&db)
        .await
        .expect("the schema answers");
    let listener = sm_store::changes::listener_name(&schema);
    let mut samples: Vec<Sample> = Vec::new();
    let period = Duration::from_secs(args.sample_secs.max(1));
    for k in 1..=args.seconds / period.as_secs() {
        tokio::time::sleep_until(start + period * k as u32).await;
        let elapsed = start.elapsed().as_secs_f64();
        let streams = streams.iter().map(|s| s.sample()).collect();
        let (Some(rss_kib), Some(fds)) = (rss_kib(args.pid), open_fds(args.pid)) else {
            eprintln!(
                "!!! the server (pid {}) is gone after {elapsed:.0} s",
                args.pid
            );
            std::process::exit(1);
        };
        let pg_connections: i64 = sqlx::query_scalar(PG_CONNECTIONS)
            .bind(&args.pg_app)
            .bind(&listener)
            .fetch_one(&db)
            .await
            .expect("pg_stat_activity answers");
        let queue_depth: i64 = sqlx::query_scalar(QUEUE_DEPTH)
            .fetch_one(&db)
            .await
            .expect("webhook_events answers (is the search_path the server's schema?)");
        let sample = Sample {
            elapsed,
            span: elapsed - samples.last().map_or(0.0, |s| s.elapsed),
            streams,
            rss_kib,
            fds,
            pg_connections,
            queue_depth,
        };
        let row = csv_row(&sample);
        println!("{row}");
        writeln!(csv, "{row}").expect("the CSV is writable");
        csv.flush().expect("the CSV is writable");
        samples.push(sample);
    }

    // Every request answered before the checks: take back every in-flight permit.
    load.await.expect("the load tasks");
    for s in &streams {
        let _ = s.in_flight.acquire_many(args.max_in_flight as u32).await;
    }
    let acked = std::mem::take(&mut *acked.lock().expect("no panics while holding it"));
    let lost = check_inbox(&db, &args.run, &acked).await;
    let wrong = check_balances(&client, &args, &consumed).await;
    let failed = summarize(&args, &samples, &streams);
    if lost + wrong > 0 || failed > 0 {
        std::process::exit(1);
    }
}

/// Every acknowledged event is stored and, once the worker has drained, processed.
/// Returns how many are lost or not processed.
async fn check_inbox(db: &PgPool, run: &str, acked: &[u64]) -> usize {
    let pattern = format!("evt_soak{run}x%");
    // As webhook_load: wait with a query the partial queue indexes answer cheaply.
    let unfinished = "SELECT count(*) FROM (SELECT 1 FROM webhook_events WHERE status IN ('pending', 'processing') AND id LIKE $1 LIMIT 1) t";
    let started = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar(unfinished)
            .bind(&pattern)
            .fetch_one(db)
            .await
            .expect("webhook_events answers");
        if left == 0 || started.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = started.elapsed();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, status FROM webhook_events WHERE id LIKE $1")
            .bind(&pattern)
            .fetch_all(db)
            .await
            .expect("webhook_events answers");
    let status: HashMap<String, String> = rows.into_iter().collect();
    let (mut lost, mut by_status) = (0, HashMap::<&str, usize>::new());
    for n in acked {
        match status.get(&format!("evt_soak{run}x{n}")) {
            None => lost += 1,
            Some(s) => *by_status.entry(s.as_str()).or_default() += 1,
        }
    }
    let processed = by_status.remove("processed").unwrap_or(0);
    let others: usize = by_status.values().sum();
    println!(
        "webhook check: {} answered 200, {lost} lost, {processed} processed, {others} not processed {by_status:?}, drained in {drained:.1?}",
        acked.len()
    );
    lost + others
}

/// Every account's balance is its start less 0.01 per consumption answered 200 (in
/// cents, so no float rounding). Returns how many accounts are wrong.
async fn check_balances(client: &reqwest::Client, args: &Args, consumed: &[AtomicU64]) -> usize {
    let mut wrong = 0;
    let mut total = 0;
    for (a, n) in consumed.iter().enumerate() {
        let n = n.load(Ordering::Relaxed);
        total += n;
        let url = format!(
            "{}/api/v1/accounts/soak-{}-{a}/credits",
            args.base_url, args.run
        );
        let balance: serde_json::Value = client
            .get(&url)
            .send()
            .await
            .expect("balance answers")
            .json()
            .await
            .expect("balance is JSON");
        let cents = args.start_balance * 100 - n;
        let expected = format!("{}.{:02}", cents / 100, cents % 100);
        if balance["available"] != serde_json::json!(expected) {
            eprintln!(
                "account {a}: balance {} but {n} consumptions of 0.01 from {} leave {expected}",
                balance["available"], args.start_balance
            );
            wrong += 1;
        }
    }
    println!(
        "ledger check: {total} consumptions answered 200 over {} accounts, {wrong} with a wrong balance",
        consumed.len()
    );
    wrong
}

/// How far a metric may move from the first window to the last in the direction that
/// is worse: a soak looks for regressions, so a move the other way (p99 falling once
/// warmed up, fewer idle connections) passes and is marked "better".
#[derive(Debug, Clone, Copy)]
struct Limit {
    /// Within 10 % of the first window's mean; off for RSS, which has only its 10 MiB.
    ten_percent: bool,
    /// Or within this much, in the metric's unit: RSS's 10 MiB, and a floor for gauges
    /// that sit near zero (queue depth 0.2 → 0.5), which would fail 10 % on noise.
    slack: f64,
    /// Growth is the regression (memory, latency); for throughput it is a fall.
    higher_is_worse: bool,
}

impl Limit {
    /// At most 10 % (or `slack`) higher.
    fn up(slack: f64) -> Self {
        Self {
            ten_percent: true,
            slack,
            higher_is_worse: true,
        }
    }

    fn passes(self, first: f64, last: f64) -> bool {
        let worse = if self.higher_is_worse {
            last - first
        } else {
            first - last
        };
        let allowed = if self.ten_percent {
            first.abs() * 0.10
        } else {
            0.0
        };
        worse <= allowed.max(self.slack)
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.higher_is_worse { "+" } else { "−" };
        match (self.ten_percent, self.slack) {
            (true, 0.0) => write!(f, "{sign}10 %"),
            (true, x) => write!(f, "{sign}10 % or {sign}{x}"),
            (false, x) => write!(f, "{sign}{x}"),
        }
    }
}

/// A row of the summary: its name, how to read it from a sample, and its limit.
type Metric = (String, Box<dyn Fn(&Sample) -> Option<f64>>, Limit);

/// Prints (and writes to `--summary`) the table of first vs last window; returns how
/// many metrics FAIL.
fn summarize(args: &Args, samples: &[Sample], streams: &[Arc<Stream>]) -> usize {
    let window = args.window_secs.min(args.seconds / 2);
    // By count, not by time: the samples were scheduled every `sample_secs`.
    let n = (window / args.sample_secs.max(1)) as usize;
    let first: Vec<_> = samples.iter().take(n).collect();
    let last: Vec<_> = samples
        .iter()
        .skip(samples.len().saturating_sub(n))
        .collect();
    let mean = |rows: &[&Sample], f: &dyn Fn(&Sample) -> Option<f64>| {
        let v: Vec<f64> = rows.iter().filter_map(|s| f(s)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let rss = Limit {
        ten_percent: false,
        slack: 10.0,
        higher_is_worse: true,
    };
    let throughput = Limit {
        ten_percent: true,
        slack: 0.0,
        higher_is_worse: false,
    };
    let mut metrics: Vec<Metric> = vec![
        (
            "RSS (MiB)".into(),
            Box::new(|s: &Sample| Some(s.rss_kib as f64 / 1024.0)),
            rss,
        ),
        (
            "open fds".into(),
            Box::new(|s: &Sample| Some(s.fds as f64)),
            Limit::up(5.0),
        ),
        (
            "PostgreSQL connections".into(),
            Box::new(|s: &Sample| Some(s.pg_connections as f64)),
            Limit::up(1.0),
        ),
        (
            "queue depth".into(),
            Box::new(|s: &Sample| Some(s.queue_depth as f64)),
            Limit::up(10.0),
        ),
    ];
    for (i, s) in streams.iter().enumerate() {
        metrics.push((
            format!("{} p99 (ms)", s.name),
            Box::new(move |x: &Sample| x.streams[i].p99_ms),
            Limit::up(1.0),
        ));
        metrics.push((
            format!("{} ok/s", s.name),
            Box::new(move |x: &Sample| Some(x.streams[i].ok as f64 / x.span)),
            throughput,
        ));
    }
    let mut table = format!(
        "| metric | first {window} s | last {window} s | change | limit | |\n|---|---:|---:|---:|---|---|\n"
    );
    let mut failed = 0;
    for (name, f, limit) in &metrics {
        let (a, b) = (mean(&first, f), mean(&last, f));
        let (verdict, change) = match (a, b) {
            (Some(a), Some(b)) => {
                let d = b - a;
                let verdict = if !limit.passes(a, b) {
                    "FAIL"
                } else if !limit.passes(b, a) {
                    "PASS (better)"
                } else {
                    "PASS"
                };
                let change = if a != 0.0 {
                    format!("{:+.1} %", d / a * 100.0)
                } else {
                    format!("{d:+.2}")
                };
                (verdict, change)
            }
            _ => ("FAIL", "no data".to_owned()),
        };
        failed += usize::from(verdict == "FAIL");
        let cell = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or("–".into());
        writeln!(
            table,
            "| {name} | {} | {} | {change} | {limit} | {verdict} |",
            cell(a),
            cell(b)
        )
        .expect("writing to a String");
    }
    let total = |i: usize, f: fn(&StreamSample) -> u64| -> u64 {
        samples.iter().map(|s| f(&s.streams[i])).sum()
    };
    writeln!(table).expect("writing to a String");
    for (i, s) in streams.iter().enumerate() {
        writeln!(
            table,
            "- {}: {} sent, {} ok, {} errors, {} skipped (in-flight bound {})",
            s.name,
            total(i, |t| t.sent),
            total(i, |t| t.ok),
            total(i, |t| t.errors),
            total(i, |t| t.skipped),
            args.max_in_flight
        )
        .expect("writing to a String");
    }
    println!("\n{table}");
    if let Some(path) = &args.summary {
        std::fs::write(path, &table)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    failed
}
