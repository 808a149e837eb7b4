//! Operations: every metric the service exports has `# HELP` text, and the alert rules
//! (`deploy/prometheus/alerts.yml`) and the Grafana dashboard
//! (`deploy/grafana/stripe-manager.json`) name only metrics it exports, used as their
//! type allows; every counter is exported, at 0, from start-up, with the series its
//! call sites name. The real Application against the fake Stripe, on SQLite and
//! PostgreSQL, plus checks of the sources and the deploy files that need no server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use fake_stripe::{FakeStripe, Fault};
use serde_json::{Value, json};
use sm_store::testing::TestDb;
use stripe_manager::telemetry::{COUNTER_SERIES, METRICS, MetricDef, MetricKind};

sm_store::contract_tests!(
    a_fresh_service_exports_every_counter_and_its_known_series,
    after_real_traffic_every_scraped_metric_is_described_and_the_deploy_files_match_it,
    the_last_full_sync_gauges_follow_the_recorded_runs,
);

/// The recorder is process-global, and the sync gauges are set from the scraping app's
/// own database: two tests scraping at once (SQLite and PostgreSQL run in parallel)
/// would overwrite each other's values between set and render.
static SCRAPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_root().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn described(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

// ---------------------------------------------------------------------------------------
// The scrape

/// What one scrape says: `# TYPE` and `# HELP` by name, and sample lines.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
    samples: Vec<(String, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut s = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                s.types.insert(name.to_owned(), kind.to_owned());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                s.helps.insert(name.to_owned(), help.to_owned());
            } else if !line.trim().is_empty() && !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("series value");
                s.samples
                    .push((series.to_owned(), value.parse().expect("a number")));
            }
        }
        s
    }

    /// The value of a series written exactly as `series` (name and labels).
    fn value(&self, series: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
    }

    /// Whether a series of `name` has exactly these labels, in any order.
    fn has_series(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let wanted: BTreeSet<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        self.samples.iter().any(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            let got: BTreeSet<String> = rest
                .trim_end_matches('}')
                .split(",")
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            n == name && got == wanted
        })
    }

    fn has_series_starting(&self, prefix: &str) -> bool {
        self.samples.iter().any(|(s, _)| s.starts_with(prefix))
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let r = http()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    Scrape::parse(&r.text().await.expect("text"))
}

// ---------------------------------------------------------------------------------------
// PromQL, alerts.yml and the dashboard, read without a YAML or PromQL library

/// Words that PromQL uses as operators, modifiers or aggregations (which may be
/// followed by `by (…)` rather than their parenthesis) rather than metric names.
const PROMQL_KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "atan2",
    "inf",
    "nan",
    "start",
    "end",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// The metric names an expression selects: identifiers left once strings, label
/// matchers, ranges, label lists (`by (…)`, `on (…)`), function calls and Grafana
/// variables are set aside. Rough, but errs towards reporting a name, never towards
/// silently dropping one.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let skip_to = |j: usize, close: char| {
        let mut k = j + 1;
        while k < chars.len() && chars[k] != close {
            if chars[k] == '\\' {
                k += 1;
            }
            k += 1;
        }
        k + 1
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_to(i, c),
            '{' => i = skip_to(i, '}'),
            '[' => i = skip_to(i, ']'),
            '$' => {
                // `$job`, `${job}`, `$__rate_interval`: dashboard variables.
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_to(i, '}');
                }
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers, durations (`5m`) and exponents.
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = skip_ws(i);
                let opens = chars.get(next) == Some(&'(');
                if matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    if opens {
                        i = skip_to(next, ')');
                    }
                } else if !opens && !PROMQL_KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// One rule of alerts.yml: its name, expression and annotation keys with values.
#[derive(Debug)]
struct Rule {
    alert: String,
    expr: String,
    annotations: BTreeMap<String, String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The rules of alerts.yml, from the layout the file uses: `- alert:` items whose
/// `expr:` is inline or a block scalar (`>-`, `|`), and an `annotations:` map.
fn alert_rules(yaml: &str) -> Vec<Rule> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut rules: Vec<Rule> = Vec::new();
    let mut i = 0;
    let mut in_annotations: Option<usize> = None;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            rules.push(Rule {
                alert: name.trim().to_owned(),
                expr: String::new(),
                annotations: BTreeMap::new(),
            });
            in_annotations = None;
        } else if let Some(rule) = rules.last_mut() {
            if let Some(level) = in_annotations {
                if indent(line) > level && !trimmed.is_empty() {
                    if let Some((k, v)) = trimmed.split_once(':') {
                        rule.annotations
                            .insert(k.trim().to_owned(), v.trim().to_owned());
                    }
                    i += 1;
                    continue;
                }
                in_annotations = None;
            }
            if trimmed == "annotations:" {
                in_annotations = Some(indent(line));
            } else if let Some(value) = trimmed.strip_prefix("expr:") {
                let value = value.trim();
                if matches!(value, ">" | ">-" | "|" | "|-") {
                    let level = indent(line);
                    let mut block = Vec::new();
                    while i + 1 < lines.len()
                        && (lines[i + 1].trim().is_empty() || indent(lines[i + 1]) > level)
                    {
                        i += 1;
                        block.push(lines[i].trim());
                    }
                    rule.expr = block.join(" ");
                } else {
                    rule.expr = value.trim_matches(['"', '\'']).to_owned();
                }
            }
        }
        i += 1;
    }
    rules
}

/// Every `expr` in the dashboard, and the metric of every `label_values(metric, …)`
/// variable query.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        ("query" | "definition", Value::String(q))
                            if q.starts_with("label_values(") =>
                        {
                            let inner = &q["label_values(".len()..];
                            let metric = inner.split([',', ')']).next().unwrap_or_default();
                            out.push(metric.trim().to_owned());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// Every metric name the deploy files use, with where it is used.
fn deploy_metric_names() -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let rules = alert_rules(&read("deploy/prometheus/alerts.yml"));
    for rule in &rules {
        let found = promql_metric_names(&rule.expr);
        assert!(
            !found.is_empty(),
            "alert {} selects no metric: {:?}",
            rule.alert,
            rule.expr
        );
        for n in found {
            names.insert(n, format!("alert {}", rule.alert));
        }
    }
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/stripe-manager.json"))
        .expect("the dashboard is JSON");
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 20, "too few dashboard queries: {exprs:?}");
    for e in &exprs {
        let found = promql_metric_names(e);
        assert!(
            !found.is_empty(),
            "dashboard query selects no metric: {e:?}"
        );
        for n in found {
            names.entry(n).or_insert_with(|| "the dashboard".to_owned());
        }
    }
    names
}

/// What a name used in a query refers to: the metric the service exports and the type
/// the query's use of it requires. Histograms are queried through `_bucket`, `_sum` and
/// `_count`, never by their bare name.
fn resolve(name: &str) -> Result<&'static MetricDef, String> {
    if let Some(m) = described(name) {
        return match m.kind {
            MetricKind::Histogram => Err(format!(
                "{name} is a histogram: query {name}_bucket, _sum or _count"
            )),
            _ => Ok(m),
        };
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(m) = described(base)
        {
            return match m.kind {
                MetricKind::Histogram => Ok(m),
                other => Err(format!(
                    "{name}: {base} is a {}, which has no {suffix} series",
                    other.as_str()
                )),
            };
        }
    }
    Err(format!(
        "{name} is not a metric the service exports (telemetry::METRICS)"
    ))
}

// ---------------------------------------------------------------------------------------
// Tests that need no server

#[test]
fn the_name_extractor_reports_every_metric_and_nothing_else() {
    let expr = r#"histogram_quantile(0.95, sum by (le, route) (rate(stripe_manager_http_request_duration_seconds_bucket{job=~"$job",route="/webhooks/stripe"}[$__rate_interval])))
        / on (job) group_left max without (instance) (bogus_metric offset 5m) > 2 * 3600
        and time() - max by (job) (stripe_manager_sync_last_success_timestamp_seconds) > 1e3 unless absent(other_one)"#;
    assert_eq!(
        promql_metric_names(expr),
        BTreeSet::from(
            [
                "stripe_manager_http_request_duration_seconds_bucket",
                "bogus_metric",
                "stripe_manager_sync_last_success_timestamp_seconds",
                "other_one"
            ]
            .map(String::from)
        )
    );
    // An unknown name, and a histogram or counter misused, are refused.
    assert!(resolve("bogus_metric").is_err());
    assert!(resolve("stripe_manager_http_request_duration_seconds").is_err());
    assert!(resolve("stripe_manager_http_requests_total_bucket").is_err());
    assert!(resolve("stripe_manager_webhook_processing_latency_seconds_count").is_ok());
    assert!(resolve("stripe_manager_webhook_queue_depth").is_ok());
}

/// The check the deploy files depend on: a rule or panel naming a metric the service
/// does not export (a typo, a rename) fails here, not silently in production.
#[test]
fn the_alerts_and_the_dashboard_name_only_exported_metrics() {
    let names = deploy_metric_names();
    let bad: Vec<String> = names
        .iter()
        .filter_map(|(n, used)| resolve(n).err().map(|e| format!("{used}: {e}")))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    // The alerts' and the dashboard's core signals are really there.
    for core in [
        "stripe_manager_webhook_queue_depth",
        "stripe_manager_webhook_oldest_pending_seconds",
        "stripe_manager_stripe_circuit_open",
        "stripe_manager_sync_last_run_failed",
        "stripe_manager_sync_last_success_timestamp_seconds",
        "stripe_manager_webhook_events_rejected_total",
        "stripe_manager_http_requests_total",
        "stripe_manager_http_request_duration_seconds_bucket",
        "stripe_manager_webhook_events_received_total",
        "stripe_manager_webhook_events_processed_total",
        "stripe_manager_stripe_api_requests_total",
        "stripe_manager_credit_grants_total",
        "stripe_manager_credit_consumptions_total",
    ] {
        assert!(names.contains_key(core), "{core} is not used: {names:?}");
    }
}

#[test]
fn every_alert_has_a_summary_a_description_and_a_runbook_section() {
    let rules = alert_rules(&read("deploy/prometheus/alerts.yml"));
    let declared = read("deploy/prometheus/alerts.yml")
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert_eq!(rules.len(), declared);
    assert!(rules.len() >= 7, "{rules:?}");
    let guide = read("docs/USER_GUIDE.md");
    // GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
    let anchors: BTreeSet<String> = guide
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    for rule in &rules {
        assert!(!rule.expr.is_empty(), "{} has no expr", rule.alert);
        for key in ["summary", "description", "runbook"] {
            assert!(
                rule.annotations.get(key).is_some_and(|v| !v.is_empty()),
                "{} has no {key} annotation: {:?}",
                rule.alert,
                rule.annotations
            );
        }
        let runbook = &rule.annotations["runbook"];
        let anchor = runbook
            .strip_prefix("docs/USER_GUIDE.md#")
            .unwrap_or_else(|| panic!("{}: runbook {runbook} is not in the guide", rule.alert));
        assert_eq!(
            anchor,
            format!("alert-{}", rule.alert.to_lowercase()),
            "{}'s runbook is named after it",
            rule.alert
        );
        assert!(
            anchors.contains(anchor),
            "docs/USER_GUIDE.md has no heading for #{anchor}"
        );
    }
}

/// The code's metric calls (`counter!`, `gauge!`, `histogram!` with a literal name) in
/// every crate's sources, with where each is.
fn emitted_in_sources() -> Vec<(String, MetricKind, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for krate in std::fs::read_dir(repo_root().join("crates")).expect("crates/") {
        let src = krate.expect("entry").path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (macro_name, kind) in [
            ("counter!(", MetricKind::Counter),
            ("gauge!(", MetricKind::Gauge),
            ("histogram!(", MetricKind::Histogram),
        ] {
            for (at, _) in text.match_indices(macro_name) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // describe_counter!, or another macro
                }
                let place = format!(
                    "{}:{}",
                    file.strip_prefix(repo_root()).unwrap_or(&file).display(),
                    text[..at].lines().count()
                );
                let rest = text[at + macro_name.len()..].trim_start();
                let Some(literal) = rest.strip_prefix('"') else {
                    panic!("{place}: metric names must be string literals, so they can be checked");
                };
                let name = literal.split('"').next().unwrap_or_default().to_owned();
                found.push((name, kind, place));
            }
        }
    }
    found
}

/// One `counter!` call: its name, its labels in order (a value is `Some` when it is a
/// string literal), and where it is.
#[derive(Debug)]
struct CounterCall {
    name: String,
    labels: Vec<(String, Option<String>)>,
    place: String,
}

/// The top-level, comma-separated arguments of the macro call whose text starts just
/// after its opening parenthesis, read up to the matching one.
fn macro_arguments(text: &str) -> Vec<String> {
    let mut args = vec![String::new()];
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in text.chars() {
        if in_string {
            in_string = c != '"' || escaped;
            escaped = c == '\\' && !escaped;
        } else {
            match c {
                '"' => in_string = true,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth == 0 => break,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    args.push(String::new());
                    continue;
                }
                _ => {}
            }
        }
        args.last_mut().expect("one").push(c);
    }
    args.into_iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

/// Every `counter!` call in the sources, with its labels.
fn counter_calls() -> Vec<CounterCall> {
    let mut calls = Vec::new();
    for (name, kind, place) in emitted_in_sources() {
        if kind != MetricKind::Counter {
            continue;
        }
        let (file, line) = place.rsplit_once(':').expect("file:line");
        let text = read(file);
        let line: usize = line.parse().expect("a line number");
        // The call starts on `line` (1-based); find its `counter!(` there.
        let offset: usize = text.lines().take(line - 1).map(|l| l.len() + 1).sum();
        let at = offset + text[offset..].find("counter!(").expect("the call");
        let args = macro_arguments(&text[at + "counter!(".len()..]);
        let labels = args[1..]
            .iter()
            .map(|a| {
                let (k, v) = a
                    .split_once("=>")
                    .unwrap_or_else(|| panic!("{place}: a label is `\"key\" => value`: {a}"));
                let key = k.trim().trim_matches('"').to_owned();
                let v = v.trim();
                let literal = (v.len() >= 2
                    && v.starts_with('"')
                    && v.ends_with('"')
                    && !v[1..v.len() - 1].contains('"'))
                .then(|| v[1..v.len() - 1].to_owned());
                (key, literal)
            })
            .collect();
        calls.push(CounterCall {
            name,
            labels,
            place,
        });
    }
    calls
}

#[test]
fn every_counter_is_registered_at_start_up_with_the_series_its_call_sites_use() {
    let calls = counter_calls();
    assert!(calls.len() >= 30, "too few counter calls found: {calls:?}");
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for (name, series) in COUNTER_SERIES {
        if !listed.insert(*name) {
            problems.push(format!("{name} is listed twice in COUNTER_SERIES"));
        }
        if described(name).is_none_or(|m| m.kind != MetricKind::Counter) {
            problems.push(format!(
                "{name} is in COUNTER_SERIES but is not a counter in METRICS"
            ));
        }
        if series.is_empty() {
            problems.push(format!("{name} has no series to register"));
        }
    }
    for m in METRICS.iter().filter(|m| m.kind == MetricKind::Counter) {
        if !listed.contains(m.name) {
            problems.push(format!(
                "{} has no entry in COUNTER_SERIES: it would appear only with its first event",
                m.name
            ));
        }
    }
    for call in &calls {
        let Some((_, series)) = COUNTER_SERIES.iter().find(|(n, _)| *n == call.name) else {
            continue; // reported above
        };
        let keys: Vec<&str> = call.labels.iter().map(|(k, _)| k.as_str()).collect();
        // Every series registered has the label names every call site writes.
        for labels in *series {
            let registered: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
            if registered != keys {
                problems.push(format!(
                    "{}: {} is labelled {keys:?} here but registered as {registered:?}",
                    call.place, call.name
                ));
            }
        }
        // A label set written in literals is registered.
        let literal: Option<Vec<(&str, &str)>> = call
            .labels
            .iter()
            .map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
            .collect();
        if let Some(literal) = literal
            && !series.iter().any(|labels| labels.to_vec() == literal)
        {
            problems.push(format!(
                "{}: {} {literal:?} is not in COUNTER_SERIES",
                call.place, call.name
            ));
        }
    }
    // Closed sets the code spells out of literals, registered whole.
    let series_of = |name: &str, key: &str| -> BTreeSet<String> {
        COUNTER_SERIES
            .iter()
            .filter(|(n, _)| *n == name)
            .flat_map(|(_, s)| s.iter())
            .flat_map(|labels| {
                labels
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| (*v).to_owned())
            })
            .collect()
    };
    let tables: BTreeSet<String> = sm_store::retention::Target::ALL
        .iter()
        .map(|t| t.table().to_owned())
        .collect();
    assert_eq!(
        series_of("stripe_manager_retention_pruned_rows_total", "table"),
        tables
    );
    let app_events: BTreeSet<String> = stripe_manager::outbox::TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    assert_eq!(
        series_of("stripe_manager_app_events_emitted_total", "type"),
        app_events
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_metric_the_code_emits_is_described_with_its_type_and_every_description_is_used() {
    let emitted = emitted_in_sources();
    assert!(
        emitted.len() >= 30,
        "too few metric calls found: {emitted:?}"
    );
    let mut problems = Vec::new();
    for (name, kind, place) in &emitted {
        match described(name) {
            None => problems.push(format!(
                "{place}: {name} has no entry in telemetry::METRICS (no # HELP)"
            )),
            Some(m) if m.kind != *kind => problems.push(format!(
                "{place}: {name} is emitted as a {} but described as a {}",
                kind.as_str(),
                m.kind.as_str()
            )),
            Some(_) => {}
        }
    }
    for m in METRICS {
        if !emitted.iter().any(|(n, _, _)| n == m.name) {
            problems.push(format!(
                "{} is described but never emitted: remove it",
                m.name
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn metric_names_are_unique_and_carry_their_units() {
    let mut seen = BTreeSet::new();
    for m in METRICS {
        assert!(seen.insert(m.name), "{} is listed twice", m.name);
        assert!(!m.help.trim().is_empty(), "{} has no help", m.name);
        let counter = m.kind == MetricKind::Counter;
        assert_eq!(
            counter,
            m.name.ends_with("_total"),
            "{}: counters, and only counters, end in _total",
            m.name
        );
        let seconds = m.unit == Some(metrics::Unit::Seconds);
        assert_eq!(
            seconds,
            m.name.ends_with("_seconds"),
            "{}: a duration or time in seconds ends in _seconds and has Unit::Seconds",
            m.name
        );
        assert!(
            m.unit.is_none() || seconds,
            "{}: a unit other than seconds needs its own name check here",
            m.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tests against the real service

/// Another app on the same fake and database, without a webhook secret: it refuses
/// every delivery with `webhooks_not_configured`.
async fn app_without_webhook_secret(fake: &FakeStripe, db: &TestDb) -> TestApp {
    let mut env = env_for(Some(&fake.url()), db);
    env.retain(|(k, _)| k != "STRIPE_WEBHOOK_SECRET");
    env.push(("STRIPE_CONNECTIVITY_TEST".to_owned(), "false".to_owned()));
    TestApp::start(config_from(&env)).await
}

async fn deliver_with(app: &TestApp, body: &str, header: &str) -> u16 {
    http()
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", header)
        .body(body.to_owned())
        .send()
        .await
        .expect("delivery")
        .status()
        .as_u16()
}

fn product_event(id: &str, product: &str) -> String {
    let t = unix_now();
    json!({
        "id": id, "object": "event", "type": "product.created", "created": t,
        "livemode": false, "api_version": "2025-03-31.basil", "pending_webhooks": 1,
        "data": {"object": {
            "id": product, "object": "product", "active": true, "name": "Ops pack",
            "description": null, "metadata": {"credit_amount": "10"}, "default_price": null,
            "created": 1, "updated": t, "livemode": false
        }}
    })
    .to_string()
}

/// Before any traffic, every counter is in the scrape with every series
/// `COUNTER_SERIES` names: `rate()` and absence alerts have a series from the start
/// (the dashboard's consumptions, auth failures and cache rebuilds were missing).
/// Values are not asserted: under `cargo test` other tests share the process's recorder.
async fn a_fresh_service_exports_every_counter_and_its_known_series(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let scrape = scrape(&app).await;
    let mut problems = Vec::new();
    for m in METRICS.iter().filter(|m| m.kind == MetricKind::Counter) {
        if scrape.types.get(m.name).map(String::as_str) != Some("counter") {
            problems.push(format!("{} is not in a fresh scrape", m.name));
        }
    }
    for (name, series) in COUNTER_SERIES {
        for labels in *series {
            if !scrape.has_series(name, labels) {
                problems.push(format!("{name}{labels:?} is not in a fresh scrape"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for name in [
        "stripe_manager_credit_consumptions_total",
        "stripe_manager_api_auth_failures_total",
        "stripe_manager_catalog_cache_rebuilds_total",
    ] {
        assert!(scrape.has_series_starting(name), "{name}");
    }
    app.stop().await;
}

async fn after_real_traffic_every_scraped_metric_is_described_and_the_deploy_files_match_it(
    db: TestDb,
) {
    let _serial = SCRAPING.lock().await;
    let fake = FakeStripe::start().await;
    seed_catalog(&fake, 3, 3);
    let app = quiet_app(&fake, &db).await;
    let event_id = |n: u64| format!("evt_ops_{}_{n}", db.store.backend().as_str());

    // A full sync (Stripe requests, a run), API reads and a consumption.
    let (status, body) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get_json(&app.url("/api/v1/products")).await;
    assert_eq!(status, 200);
    grant_credits(&app, "acct_ops", 5).await;
    let (status, body) = post_json(
        &app.url("/api/v1/accounts/acct_ops/credits/consume"),
        json!({"amount": "1", "idempotency_key": "ops-1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A request without a token.
    let unauthorized = http()
        .get(app.url("/api/v1/products"))
        .send()
        .await
        .expect("answer");
    assert_eq!(unauthorized.status(), 401);

    // Webhooks: one applied, and refusals for each reason the signature alert watches.
    assert_eq!(
        app.deliver_signed(&product_event(&event_id(1), "prod_ops1"))
            .await,
        200
    );
    app.drain_inbox().await;
    let body = product_event(&event_id(2), "prod_ops2");
    let wrong = fake_stripe::sign("whsec_not_ours", unix_now(), body.as_bytes());
    assert_eq!(deliver_with(&app, &body, &wrong).await, 400);
    let stale = fake_stripe::sign(WEBHOOK_SECRET, unix_now() - 3600, body.as_bytes());
    assert_eq!(deliver_with(&app, &body, &stale).await, 400);
    let unconfigured = app_without_webhook_secret(&fake, &db).await;
    let signed = fake_stripe::sign(WEBHOOK_SECRET, unix_now(), body.as_bytes());
    assert_eq!(deliver_with(&unconfigured, &body, &signed).await, 400);
    unconfigured.stop().await;

    let scrape = scrape(&app).await;

    // (a) Every metric in the scrape has # HELP and is the type METRICS says.
    let mut problems = Vec::new();
    for (name, kind) in &scrape.types {
        if scrape.helps.get(name).is_none_or(|h| h.trim().is_empty()) {
            problems.push(format!("{name} ({kind}) has no # HELP"));
        }
        match described(name) {
            None => problems.push(format!("{name} is not in telemetry::METRICS")),
            Some(m) if m.kind.as_str() != kind => problems.push(format!(
                "{name} is scraped as a {kind} but described as a {}",
                m.kind.as_str()
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The traffic above reached these, so the check covered them.
    for expected in [
        "stripe_manager_http_requests_total",
        "stripe_manager_http_request_duration_seconds",
        "stripe_manager_api_auth_failures_total",
        "stripe_manager_stripe_api_requests_total",
        "stripe_manager_stripe_api_request_duration_seconds",
        "stripe_manager_stripe_circuit_open",
        "stripe_manager_stripe_enabled",
        "stripe_manager_sync_runs_total",
        "stripe_manager_sync_last_success_timestamp_seconds",
        "stripe_manager_sync_last_run_failed",
        "stripe_manager_webhook_events_received_total",
        "stripe_manager_webhook_events_rejected_total",
        "stripe_manager_webhook_intake_batch_size",
        "stripe_manager_webhook_events_processed_total",
        "stripe_manager_webhook_processing_latency_seconds",
        "stripe_manager_webhook_queue_depth",
        "stripe_manager_webhook_oldest_pending_seconds",
        "stripe_manager_credit_consumptions_total",
    ] {
        assert!(
            scrape.types.contains_key(expected),
            "{expected} is not in the scrape: {:?}",
            scrape.types.keys()
        );
    }

    // (b) Every metric the deploy files name is exported, and where the scrape has it,
    // it is of the type their use of it needs.
    let names = deploy_metric_names();
    let mut problems = Vec::new();
    for (name, used) in &names {
        match resolve(name) {
            Err(e) => problems.push(format!("{used}: {e}")),
            Ok(m) => {
                if let Some(kind) = scrape.types.get(m.name)
                    && kind != m.kind.as_str()
                {
                    problems.push(format!(
                        "{used}: {name} is scraped as a {kind}, used as a {}",
                        m.kind.as_str()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let scraped_and_used = names
        .keys()
        .filter_map(|n| resolve(n).ok())
        .filter(|m| scrape.types.contains_key(m.name))
        .count();
    assert!(
        scraped_and_used >= 15,
        "only {scraped_and_used} of the deploy files' metrics were scraped"
    );

    // The reasons the signature alert matches are the ones the service counts.
    let alerts = read("deploy/prometheus/alerts.yml");
    let rule = alert_rules(&alerts)
        .into_iter()
        .find(|r| r.alert == "WebhookSignatureFailures")
        .expect("the signature alert");
    let reasons = rule
        .expr
        .split("reason=~\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a reason matcher");
    for reason in reasons.split('|') {
        let series = format!("stripe_manager_webhook_events_rejected_total{{reason=\"{reason}\"}}");
        assert!(
            scrape.has_series_starting(&series),
            "the alert matches reason {reason}, which the deliveries above did not produce"
        );
    }
    // The webhook route is labelled as the dashboard's latency panel selects it.
    assert!(scrape.has_series_starting(
        "stripe_manager_http_request_duration_seconds_bucket{route=\"/webhooks/stripe\""
    ));
    app.stop().await;
}

async fn the_last_full_sync_gauges_follow_the_recorded_runs(db: TestDb) {
    let _serial = SCRAPING.lock().await;
    let fake = FakeStripe::start().await;
    let products = seed_catalog(&fake, 3, 3);
    let app = quiet_app(&fake, &db).await;
    let gauges = |s: &Scrape| {
        (
            s.value("stripe_manager_sync_last_success_timestamp_seconds")
                .expect("the last success gauge"),
            s.value("stripe_manager_sync_last_run_failed")
                .expect("the last run gauge"),
        )
    };

    assert_eq!(gauges(&scrape(&app).await), (0.0, 0.0), "never synced");

    let before = unix_now();
    let (status, body) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (succeeded_at, failed) = gauges(&scrape(&app).await);
    assert!(
        (before as f64..=unix_now() as f64).contains(&succeeded_at),
        "{succeeded_at} not within the sync"
    );
    assert_eq!(failed, 0.0);

    // A failed full run: the last success stays, the failure shows.
    fake.inject(Fault::on_path("/v1/products", Fault::status(503)));
    let (status, body) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(gauges(&scrape(&app).await), (succeeded_at, 1.0));

    // A selected sync does not count as a full one.
    fake.clear_faults();
    let (status, body) =
        post_json(&app.url("/api/v1/sync"), json!({"products": [products[0]]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gauges(&scrape(&app).await), (succeeded_at, 1.0));

    // The next full run that succeeds clears it.
    let (status, body) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (again, failed) = gauges(&scrape(&app).await);
    assert!(again >= succeeded_at);
    assert_eq!(failed, 0.0);
    app.stop().await;
}
