//! Logs (`tracing`, text or JSON) and the Prometheus recorder.
//!
//! The `metrics` facade is process-global by design, so the recorder is installed once
//! per process and every `Application` in that process renders the same registry.
//!
//! [`METRICS`] lists every metric the code emits, with its type, unit and `# HELP` text:
//! the alerts in `deploy/prometheus` and the dashboard in `deploy/grafana` are checked
//! against it (`tests/ops_metrics.rs`), and so is the code, so a new metric without a
//! description fails the tests instead of reaching a scrape without `# HELP`.

use std::sync::OnceLock;

use metrics::{Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use MetricKind::{Counter, Gauge, Histogram};

/// Installs the log subscriber for the service (idempotent): `info` and up. `RUST_LOG`
/// overrides the default level.
pub fn init_logging(format: LogFormat) {
    init_logging_at(format, "info,sqlx=warn,hyper=warn,reqwest=warn");
}

/// Installs the log subscriber for a one-shot command (idempotent): warnings and errors
/// only, unless `RUST_LOG` says otherwise. What such a command did is its own output;
/// its `info` lines (`sync finished …`) repeated it on stderr, between the progress bar
/// and the table on a terminal.
pub fn init_command_logging(format: LogFormat) {
    init_logging_at(format, "warn");
}

fn init_logging_at(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process's Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .expect("static, non-empty buckets")
                .build_recorder();
            // Described on our recorder itself, not through the facade: the descriptions
            // then reach this handle even when the global install below fails.
            describe_metrics(&recorder);
            register_counters(&recorder);
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding app);
            // then ours still renders, just without the facade's events.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A metric's Prometheus type, as `# TYPE` lines spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (`_total`).
    Counter,
    /// A value that goes up and down (queue depths, states).
    Gauge,
    /// Observations in buckets (durations).
    Histogram,
}

impl MetricKind {
    /// `counter`, `gauge` or `histogram`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric the service exports.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The name as emitted; it carries its unit (`_seconds`, and `_total` for counters),
    /// because the exporter is not asked to append units to names.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// `None` for plain counts, states and ratios.
    pub unit: Option<Unit>,
    /// The `# HELP` text: what is counted and, where it is not obvious, its labels.
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: MetricKind,
    unit: Option<Unit>,
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        unit,
        help,
    }
}

/// Every metric the code emits. A name emitted without an entry here renders without
/// `# HELP`; `tests/ops_metrics.rs` scans the sources and fails on one.
pub const METRICS: &[MetricDef] = &[
    // HTTP (http/middleware.rs, listener.rs)
    metric(
        "stripe_manager_http_requests_total",
        Counter,
        None,
        "HTTP requests answered, by route (matched pattern or unmatched), method and status.",
    ),
    metric(
        "stripe_manager_http_request_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time from a request's arrival to its answer, by route.",
    ),
    metric(
        "stripe_manager_http_connections_refused_total",
        Counter,
        None,
        "Connections closed at once, by the limit reached: total (HTTP_MAX_CONNECTIONS), \
         per_address (HTTP_MAX_CONNECTIONS_PER_ADDRESS from one address or IPv6 /64), health \
         (the HEALTH_BIND listener's own cap).",
    ),
    metric(
        "stripe_manager_http_accept_errors_total",
        Counter,
        None,
        "Failed accepts of new connections (e.g. out of file descriptors).",
    ),
    metric(
        "stripe_manager_api_auth_failures_total",
        Counter,
        None,
        "API requests refused for their token, by reason (unauthorized, forbidden).",
    ),
    // Stripe client (crates/stripe/src/client.rs) and its state at scrape time
    metric(
        "stripe_manager_stripe_api_requests_total",
        Counter,
        None,
        "Requests to Stripe, retries included, by endpoint and outcome (ok, client_error, \
         server_error, timeout, network_error, circuit_open).",
    ),
    metric(
        "stripe_manager_stripe_api_request_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Duration of one request to Stripe (one attempt), by endpoint.",
    ),
    metric(
        "stripe_manager_stripe_api_retries_total",
        Counter,
        None,
        "Retries of failed requests to Stripe, by endpoint.",
    ),
    metric(
        "stripe_manager_stripe_rate_limiter_waits_total",
        Counter,
        None,
        "Requests to Stripe that waited for the client-side rate limit (STRIPE_MAX_RPS).",
    ),
    metric(
        "stripe_manager_stripe_rate_limiter_wait_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time a request to Stripe waited for the client-side rate limit.",
    ),
    metric(
        "stripe_manager_build_info",
        Gauge,
        None,
        "Always 1; its labels say which release and commit this instance runs.",
    ),
    metric(
        "stripe_manager_retention_pruned_rows_total",
        Counter,
        None,
        "Rows the pruner deleted, by table (webhook_events, app_events, sync_runs, audit_log, \
         admin_sessions, login_throttle; customers, invoices, charges, subscriptions: mirrors of \
         customers deleted in Stripe).",
    ),
    metric(
        "stripe_manager_stripe_circuit_open",
        Gauge,
        None,
        "The Stripe circuit breaker: 0 closed, 0.5 half-open (one probe allowed), 1 open. \
         Set at scrape time.",
    ),
    metric(
        "stripe_manager_stripe_enabled",
        Gauge,
        None,
        "1 when Stripe is configured and enabled, 0 when the service serves local data only.",
    ),
    // Catalog sync (sync.rs, catalog.rs) and the last full sync at scrape time
    metric(
        "stripe_manager_sync_runs_total",
        Counter,
        None,
        "Finished sync runs, by scope (full, selected) and status (succeeded, failed).",
    ),
    metric(
        "stripe_manager_sync_products_total",
        Counter,
        None,
        "Products found by syncs, by outcome (invalid, tombstoned).",
    ),
    metric(
        "stripe_manager_sync_last_success_timestamp_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Unix time at which the most recent successful full catalog sync finished; 0 when \
         none has. Read from the database at scrape time.",
    ),
    metric(
        "stripe_manager_sync_last_run_failed",
        Gauge,
        None,
        "1 when the most recent finished full catalog sync failed, else 0. Read from the \
         database at scrape time.",
    ),
    metric(
        "stripe_manager_catalog_cache_rebuilds_total",
        Counter,
        None,
        "Rebuilds of the in-memory catalog served by the API.",
    ),
    // Webhooks (http/webhooks.rs, webhooks/*) and the inbox at scrape time
    metric(
        "stripe_manager_webhook_events_received_total",
        Counter,
        None,
        "Verified webhook deliveries stored, by event type and outcome (received, duplicate).",
    ),
    metric(
        "stripe_manager_webhook_events_rejected_total",
        Counter,
        None,
        "Webhook deliveries refused, by reason (the 400 codes such as signature_mismatch, \
         source_not_allowed, body_too_large, not_stored).",
    ),
    metric(
        "stripe_manager_credit_consume_group_size",
        Histogram,
        None,
        "Consumptions applied per ledger transaction (requests arriving together share one).",
    ),
    metric(
        "stripe_manager_change_listener_losses_total",
        Counter,
        None,
        "Times the LISTEN connection broke or went quiet; until it is back every request asks the database instead of memory (PostgreSQL).",
    ),
    metric(
        "stripe_manager_webhook_intake_batch_size",
        Histogram,
        None,
        "Events stored per intake commit (deliveries arriving together share one).",
    ),
    metric(
        "stripe_manager_webhook_events_processed_total",
        Counter,
        None,
        "Events the worker finished, by type and outcome (processed, ignored, lease_lost).",
    ),
    metric(
        "stripe_manager_webhook_processing_latency_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time from an event's receipt to its being applied.",
    ),
    metric(
        "stripe_manager_webhook_events_retried_total",
        Counter,
        None,
        "Failed attempts to apply an event that will be retried, by type.",
    ),
    metric(
        "stripe_manager_webhook_events_parked_total",
        Counter,
        None,
        "Events parked until what they need arrives (an invoice waiting for the checkout that names its account), by type.",
    ),
    metric(
        "stripe_manager_webhook_events_failed_total",
        Counter,
        None,
        "Events moved to the dead letter (status failed) after WEBHOOK_MAX_ATTEMPTS, by type.",
    ),
    metric(
        "stripe_manager_webhook_events_reconciled_total",
        Counter,
        None,
        "Events the inbox lacked, stored by reconciliation with Stripe's Events API.",
    ),
    metric(
        "stripe_manager_webhook_queue_depth",
        Gauge,
        None,
        "Events in the inbox, by status (pending, processing, failed: the dead letter). Read \
         from the database at scrape time.",
    ),
    metric(
        "stripe_manager_webhook_oldest_pending_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Age of the oldest pending event (waiting or waiting for a retry); 0 when none. Read \
         from the database at scrape time.",
    ),
    // Credits (credits.rs)
    metric(
        "stripe_manager_credit_grants_total",
        Counter,
        None,
        "Credit lots granted, by source (purchase, subscription, promotional).",
    ),
    metric(
        "stripe_manager_credit_consumptions_total",
        Counter,
        None,
        "Credit consumptions recorded (hold captures are counted apart).",
    ),
    // Holds (credits/holds.rs)
    metric(
        "stripe_manager_credit_holds_total",
        Counter,
        None,
        "Holds asked for, by outcome (held; refused: available − held was short).",
    ),
    metric(
        "stripe_manager_credit_hold_captures_total",
        Counter,
        None,
        "Hold captures, by outcome (captured; refused: the lots could not give the amount).",
    ),
    metric(
        "stripe_manager_credit_hold_releases_total",
        Counter,
        None,
        "Holds released, by how (released by the app; expired, recorded by the releaser).",
    ),
    // Entitlements and top-ups (entitlements.rs, topup/)
    metric(
        "stripe_manager_entitlement_checks_total",
        Counter,
        None,
        "Feature gate checks (GET …/entitlements/{lookup_key}), by answer (entitled true or false).",
    ),
    metric(
        "stripe_manager_entitlement_changes_total",
        Counter,
        None,
        "Customers whose active entitlements changed when read from Stripe.",
    ),
    metric(
        "stripe_manager_top_ups_total",
        Counter,
        None,
        "Automatic top-ups by outcome: queued and skipped (a crossing; skipped over the day's \
         maximum), paid (Stripe took the money), succeeded (credits granted), failed.",
    ),
    // Events to the app (outbox/)
    metric(
        "stripe_manager_app_events_emitted_total",
        Counter,
        None,
        "Events to the app stored (once per event, whatever the number of endpoints), by type.",
    ),
    metric(
        "stripe_manager_app_event_deliveries_total",
        Counter,
        None,
        "Delivery attempts of events to the app, by outcome (delivered; retry: will be \
         tried again; failed: given up after three days).",
    ),
    metric(
        "stripe_manager_app_event_delivery_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time from an event's commit to its delivery (a 2xx from the app's endpoint).",
    ),
    metric(
        "stripe_manager_app_events_queue_depth",
        Gauge,
        None,
        "Events to the app not delivered, by status (queued behind an earlier event of their \
         account, pending, processing, failed). Read from the database at scrape time.",
    ),
    metric(
        "stripe_manager_app_events_oldest_undelivered_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Age of the oldest event to the app not yet delivered (queued, pending or \
         processing); 0 when none. Read from the database at scrape time.",
    ),
];

/// Gives every metric in [`METRICS`] its `# HELP` text and unit.
pub fn describe_metrics(recorder: &impl Recorder) {
    for m in METRICS {
        let (name, unit, help) = (m.name.into(), m.unit, m.help.into());
        match m.kind {
            Counter => recorder.describe_counter(name, unit, help),
            Gauge => recorder.describe_gauge(name, unit, help),
            Histogram => recorder.describe_histogram(name, unit, help),
        }
    }
}

/// A counter's labels, in the order its call sites write them.
pub type Labels = &'static [(&'static str, &'static str)];

/// The series of every counter in [`METRICS`] that exist, at 0, from start-up: a series
/// that appears only with its first event makes `rate()` and `increase()` miss that
/// event and leaves absence alerts nothing to watch (Prometheus's instrumentation
/// guidance). An unlabelled counter has the one empty label set.
///
/// Labels from a small closed set (reasons, outcomes, sources, tables) are listed
/// whole. Labels from an open or large set (route × method × status, Stripe endpoint
/// × outcome, event type × outcome) get one series each, named below, so the counter
/// exists and `sum(rate(…))` reads 0; their other series appear with their first event.
/// `tests/ops_metrics.rs` checks this table against the `counter!` calls in the sources:
/// every counter has an entry, every label set a call site writes in literals is here,
/// and every series here has its call sites' label names.
pub const COUNTER_SERIES: &[(&str, &[Labels])] = &[
    (
        "stripe_manager_http_requests_total",
        // Open: the first scrape's own series.
        &[&[("route", "/metrics"), ("method", "GET"), ("status", "200")]],
    ),
    (
        "stripe_manager_http_connections_refused_total",
        &[
            &[("limit", "total")],
            &[("limit", "per_address")],
            &[("limit", "health")],
        ],
    ),
    ("stripe_manager_http_accept_errors_total", &[&[]]),
    (
        "stripe_manager_api_auth_failures_total",
        &[&[("reason", "unauthorized")], &[("reason", "forbidden")]],
    ),
    (
        "stripe_manager_stripe_api_requests_total",
        // Open: the first request of a sync.
        &[&[("endpoint", "products.list"), ("outcome", "ok")]],
    ),
    (
        "stripe_manager_stripe_api_retries_total",
        &[&[("endpoint", "products.list")]],
    ),
    ("stripe_manager_stripe_rate_limiter_waits_total", &[&[]]),
    (
        "stripe_manager_retention_pruned_rows_total",
        // sm_store::retention::Target::ALL
        &[
            &[("table", "webhook_events")],
            &[("table", "app_events")],
            &[("table", "sync_runs")],
            &[("table", "audit_log")],
            &[("table", "admin_sessions")],
            &[("table", "login_throttle")],
            &[("table", "customers")],
            &[("table", "invoices")],
            &[("table", "charges")],
            &[("table", "subscriptions")],
        ],
    ),
    (
        "stripe_manager_sync_runs_total",
        &[
            &[("scope", "full"), ("status", "succeeded")],
            &[("scope", "full"), ("status", "failed")],
            &[("scope", "selected"), ("status", "succeeded")],
            &[("scope", "selected"), ("status", "failed")],
        ],
    ),
    (
        "stripe_manager_sync_products_total",
        &[&[("outcome", "invalid")], &[("outcome", "tombstoned")]],
    ),
    ("stripe_manager_catalog_cache_rebuilds_total", &[&[]]),
    (
        "stripe_manager_webhook_events_received_total",
        // Open (webhooks::type_label): the event that grants a purchase's credits.
        &[
            &[
                ("type", "checkout.session.completed"),
                ("outcome", "received"),
            ],
            &[
                ("type", "checkout.session.completed"),
                ("outcome", "duplicate"),
            ],
        ],
    ),
    (
        "stripe_manager_webhook_events_rejected_total",
        // sm_stripe::webhook::Rejection::code, then the intake's own refusals.
        &[
            &[("reason", "missing_signature")],
            &[("reason", "malformed_signature")],
            &[("reason", "no_v1_signature")],
            &[("reason", "timestamp_outside_tolerance")],
            &[("reason", "signature_mismatch")],
            &[("reason", "body_not_json")],
            &[("reason", "body_not_event")],
            &[("reason", "webhooks_not_configured")],
            &[("reason", "source_not_allowed")],
            &[("reason", "body_too_large")],
            &[("reason", "not_stored")],
        ],
    ),
    ("stripe_manager_change_listener_losses_total", &[&[]]),
    (
        "stripe_manager_webhook_events_processed_total",
        &[&[
            ("type", "checkout.session.completed"),
            ("outcome", "processed"),
        ]],
    ),
    (
        "stripe_manager_webhook_events_retried_total",
        &[&[("type", "checkout.session.completed")]],
    ),
    (
        "stripe_manager_webhook_events_parked_total",
        // The invoice that waits for its checkout.
        &[&[("type", "invoice.paid")]],
    ),
    (
        "stripe_manager_webhook_events_failed_total",
        &[&[("type", "checkout.session.completed")]],
    ),
    ("stripe_manager_webhook_events_reconciled_total", &[&[]]),
    (
        "stripe_manager_credit_grants_total",
        // The sources of lots granted through this counter's two call sites (an
        // operator's grant, source `admin`, is an adjustment and is not counted here).
        &[
            &[("source", "purchase")],
            &[("source", "subscription")],
            &[("source", "promotional")],
        ],
    ),
    ("stripe_manager_credit_consumptions_total", &[&[]]),
    (
        "stripe_manager_credit_holds_total",
        &[&[("outcome", "held")], &[("outcome", "refused")]],
    ),
    (
        "stripe_manager_credit_hold_captures_total",
        &[&[("outcome", "captured")], &[("outcome", "refused")]],
    ),
    (
        "stripe_manager_credit_hold_releases_total",
        &[&[("how", "released")], &[("how", "expired")]],
    ),
    (
        "stripe_manager_entitlement_checks_total",
        &[&[("entitled", "true")], &[("entitled", "false")]],
    ),
    ("stripe_manager_entitlement_changes_total", &[&[]]),
    (
        "stripe_manager_top_ups_total",
        &[
            &[("outcome", "queued")],
            &[("outcome", "skipped")],
            &[("outcome", "paid")],
            &[("outcome", "succeeded")],
            &[("outcome", "failed")],
        ],
    ),
    (
        "stripe_manager_app_events_emitted_total",
        // outbox::TYPES
        &[
            &[("type", "credits.granted")],
            &[("type", "credits.taken_back")],
            &[("type", "credits.expired")],
            &[("type", "credits.low")],
            &[("type", "credits.depleted")],
            &[("type", "credits.hold_expired")],
            &[("type", "subscription.updated")],
            &[("type", "entitlements.updated")],
            &[("type", "top_up.succeeded")],
            &[("type", "top_up.failed")],
        ],
    ),
    (
        "stripe_manager_app_event_deliveries_total",
        &[
            &[("outcome", "delivered")],
            &[("outcome", "retry")],
            &[("outcome", "failed")],
        ],
    ),
];

/// Registers every series of [`COUNTER_SERIES`] on `recorder`, at 0. On the recorder
/// itself, not through the facade, like [`describe_metrics`]: the series must render on
/// our handle even when another recorder is the global one.
pub fn register_counters(recorder: &impl Recorder) {
    static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
    for (name, series) in COUNTER_SERIES {
        for labels in *series {
            let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, *v)).collect();
            recorder
                .register_counter(&Key::from_parts(*name, labels), &METADATA)
                .absolute(0);
        }
    }
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every few seconds. The recorder
/// keeps every sample until this runs (or `/metrics` is scraped): without it a service
/// nobody scrapes grew by some 40 bytes per webhook event, for ever.
pub fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}
