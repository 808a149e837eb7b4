//! The admin pages as people read them, over real HTTP on SQLite and PostgreSQL: every
//! list pages with a cursor in a stable order and keeps its filters in the URL, no page
//! prints a raw Unix timestamp, the activity charts count what the database holds, and
//! the tokens and users pages do what they say, audited.

mod common;

use std::collections::HashSet;

use common::admin::*;
use common::*;
use serde_json::json;
use sm_store::credits::NewAudit;
use sm_store::inbox::NewEvent;
use sm_store::testing::TestDb;
use stripe_manager::sync::{NoProgress, Origin};

sm_store::contract_tests!(
    every_list_pages_with_a_cursor_and_keeps_its_filters,
    no_admin_page_prints_a_raw_unix_timestamp,
    the_activity_charts_count_what_the_database_holds,
    tokens_are_created_shown_once_and_revoked_from_the_admin,
    admins_are_added_reset_disabled_and_unlocked_from_the_admin,
);

/// The `href` of the "Next page" link, unescaped.
fn next_link(html: &str) -> Option<String> {
    let at = html.find(r#"rel="next""#)?;
    let start = html[..at].rfind("href=\"")? + 6;
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

/// The `data-id`s of the rows of the table `table`, in order.
fn row_ids(html: &str, table: &str) -> Vec<String> {
    let start = html
        .find(&format!("<table id=\"{table}\""))
        .unwrap_or_else(|| panic!("no table {table}"));
    let end = start + html[start..].find("</table>").unwrap();
    html[start..end]
        .split("data-id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

/// Follows "Next page" from `first` to the end: every row id, in order, none twice. Each
/// next link must keep `keep` (the filters) in its query.
async fn walk(
    op: &Operator,
    app: &TestApp,
    first: &str,
    table: &str,
    keep: &[&str],
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = first.to_owned();
    let mut pages = 0;
    loop {
        let html = op.page(app, &path).await;
        let rows = row_ids(&html, table);
        assert!(rows.len() <= 50, "{path}: {} rows on a page", rows.len());
        ids.extend(rows);
        pages += 1;
        assert!(pages < 100, "{first}: the pages never end");
        let Some(next) = next_link(&html) else { break };
        for k in keep {
            assert!(next.contains(k), "{next} lost the filter {k}");
        }
        assert!(
            html.contains("First page") || pages == 1,
            "{path}: no way back to the first page"
        );
        path = next;
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{first}: a row shown twice");
    ids
}

/// A fake Stripe with `products` credit products synced into a fresh app, and an
/// operator signed in to it.
async fn synced_app(db: &TestDb, products: usize) -> (fake_stripe::FakeStripe, TestApp, Operator) {
    let fake = fake_stripe::FakeStripe::start().await;
    seed_catalog(&fake, products, products);
    let app = quiet_app(&fake, db).await;
    app.state
        .syncer
        .sync_all(Origin::Cli, &NoProgress)
        .await
        .unwrap();
    let op = Operator::sign_in(&app, db).await;
    (fake, app, op)
}

async fn every_list_pages_with_a_cursor_and_keeps_its_filters(db: TestDb) {
    let (_fake, app, op) = synced_app(&db, 120).await;
    let store = &app.state.store;

    // Products: 120 in the catalog's order, 50 a page.
    let ids = walk(
        &op,
        &app,
        "/admin/products?status=all",
        "products",
        &["status=all"],
    )
    .await;
    assert_eq!(ids.len(), 120);
    let listed = app
        .state
        .catalog
        .list(sm_store::catalog::ProductFilter::All)
        .await
        .unwrap();
    assert_eq!(
        ids,
        listed.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        "the catalog's order"
    );
    let first = op.page(&app, "/admin/products?status=all").await;
    assert!(
        first.contains("120 products match; 50 on this page."),
        "{first}"
    );

    // Events: 130 in batches received at the same millisecond (ties broken by id), two
    // types; filtered by type, only that type, all of it.
    for batch in 0..13 {
        let events: Vec<NewEvent> = (0..10)
            .map(|i| NewEvent {
                id: format!("evt_page_{batch:02}_{i}"),
                kind: if i % 2 == 0 {
                    "price.updated"
                } else {
                    "customer.updated"
                }
                .into(),
                created: 1,
                livemode: false,
                api_version: None,
                payload: "{}".into(),
                source: "webhook",
            })
            .collect();
        // Far in the future, so the worker never claims them while the test reads.
        store
            .insert_events(&events, 4_000_000_000_000 + batch)
            .await
            .unwrap();
    }
    let mut all = walk(
        &op,
        &app,
        "/admin/events?status=pending",
        "events",
        &["status=pending"],
    )
    .await;
    all.retain(|id| id.starts_with("evt_page_"));
    assert_eq!(all.len(), 130);
    let mut expected: Vec<String> = (0..13)
        .flat_map(|b| (0..10).map(move |i| format!("evt_page_{b:02}_{i}")))
        .collect();
    expected.reverse();
    assert_eq!(all, expected, "newest first, then by id");
    let prices = walk(
        &op,
        &app,
        "/admin/events?type=price.updated",
        "events",
        &["type=price.updated"],
    )
    .await;
    assert_eq!(prices.len(), 65);
    assert!(
        prices
            .iter()
            .all(|id| id.ends_with(['0', '2', '4', '6', '8']))
    );

    // Accounts: 70, created in threes at the same second.
    for i in 0..70 {
        store
            .ensure_account(&format!("acct_page_{i:02}"), None, 1_700_000_000 + i / 3)
            .await
            .unwrap();
    }
    let accounts = walk(&op, &app, "/admin/credits", "accounts", &[]).await;
    assert_eq!(accounts.len(), 70);
    assert_eq!(accounts.first().unwrap(), "acct_page_69");

    // Audit log: 60 entries of one action among others.
    for i in 0..60 {
        let target = format!("t{i}");
        store
            .audit(
                &NewAudit {
                    actor: "test",
                    action: "test.page",
                    target: Some(&target),
                    detail: None,
                    origin: None,
                    result: "ok",
                },
                1_700_000_000,
            )
            .await
            .unwrap();
    }
    let audit = walk(
        &op,
        &app,
        "/admin/audit?action=test.page",
        "audit",
        &["action=test.page"],
    )
    .await;
    assert_eq!(audit.len(), 60);

    // Sync runs: 55 more after the one above.
    for _ in 0..55 {
        store
            .start_sync_run("selected", "cli", 1_700_000_000)
            .await
            .unwrap();
    }
    let runs = walk(&op, &app, "/admin/sync-runs", "runs", &[]).await;
    assert_eq!(runs.len(), 56);

    // A cursor from nowhere (or whose row is gone) is a clear 400 with a way back, not
    // a panic, an empty page or the first page again (a crawler would loop).
    for path in [
        "/admin/sync-runs?cursor=abc",
        "/admin/audit?cursor=1e9",
        "/admin/events?cursor=evt_without_time",
        "/admin/credits?cursor=x",
        "/admin/products?cursor=prod_gone",
    ] {
        let r = get_with(&app, path, &op.cookie).await;
        assert_eq!(r.status(), 400, "{path}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Start from the first page"),
            "{path}"
        );
    }
    // Huge and negative numbers are just cursors before everything or nothing.
    for path in [
        "/admin/audit?cursor=-5",
        "/admin/sync-runs?cursor=99999999999999999",
    ] {
        assert_eq!(
            get_with(&app, path, &op.cookie).await.status(),
            200,
            "{path}"
        );
    }
}

/// Runs of 10 digits (Unix seconds from 2001 to 2096) or 13 (milliseconds) standing
/// alone, outside `<pre>` (Stripe's own JSON, shown as Stripe sent it).
fn raw_timestamps(html: &str) -> Vec<String> {
    let mut text = String::new();
    let mut rest = html;
    while let Some(at) = rest.find("<pre") {
        text.push_str(&rest[..at]);
        rest = rest[at..].split_once("</pre>").map_or("", |(_, r)| r);
    }
    text.push_str(rest);
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !word(bytes[i - 1])) {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            let run = &text[i..j];
            let standalone = j == bytes.len() || !word(bytes[j]);
            let value: u64 = run.parse().unwrap_or(0);
            let seconds = run.len() == 10 && (1_000_000_000..4_000_000_000).contains(&value);
            let millis = run.len() == 13 && (1_000_000_000_000..4_000_000_000_000).contains(&value);
            if standalone && (seconds || millis) {
                found.push(run.to_owned());
            }
            i = j;
        } else {
            i += 1;
        }
    }
    found
}

async fn no_admin_page_prints_a_raw_unix_timestamp(db: TestDb) {
    let (_fake, app, op) = synced_app(&db, 3).await;
    let products: Vec<String> = app
        .state
        .catalog
        .list(sm_store::catalog::ProductFilter::All)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    let now = unix_now();
    app.state
        .ledger
        .adjust(
            "acct_times",
            &stripe_manager::credits::AdjustRequest {
                kind: stripe_manager::credits::Adjustment::Grant,
                amount: sm_domain::credits::Credits::whole(5),
                reason: "times",
                actor: "test",
                origin: "test",
            },
            now,
        )
        .await
        .unwrap();
    let body = json!({"id": "evt_times", "object": "event", "type": "balance.available", "created": now,
        "livemode": false, "data": {"object": {"object": "balance", "livemode": false}}});
    assert_eq!(app.deliver_signed(&body.to_string()).await, 200);
    app.drain_inbox().await;
    grant_token(&app.state.store, "times", "catalog:read").await;
    let pages = [
        "/admin".to_owned(),
        "/admin/activity".to_owned(),
        "/admin/products?status=all".to_owned(),
        format!("/admin/products/{}", products[0]),
        "/admin/sync-runs".to_owned(),
        "/admin/events".to_owned(),
        "/admin/events/evt_times".to_owned(),
        "/admin/credits".to_owned(),
        "/admin/credits/account?account=acct_times".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/tokens".to_owned(),
        "/admin/users".to_owned(),
    ];
    for path in &pages {
        let html = op.page(&app, path).await;
        assert_eq!(
            raw_timestamps(&html),
            Vec::<String>::new(),
            "{path} prints raw timestamps"
        );
        assert!(html.contains(" UTC"), "{path} shows no readable time");
        // A time in a table keeps to one line (`2026-12-02 10:48 UTC · 3 min ago` wrapped
        // into four in a narrow column).
        let unwrapped: Vec<&str> = html
            .match_indices("<td><small>")
            .map(|(at, _)| &html[at..at + html[at..].find("</td>").unwrap()])
            .filter(|cell| cell.contains(" UTC"))
            .collect();
        assert_eq!(
            unwrapped,
            Vec::<&str>::new(),
            "{path}: time cells are <td class=\"when\">"
        );
        assert!(
            html.contains("<title>") && html.contains("· stripe-manager</title>"),
            "{path}"
        );
        assert!(html.contains("<h1>"), "{path} has no heading");
        assert!(html.contains("rel=\"icon\""), "{path} has no favicon");
    }
    let account = op
        .page(&app, "/admin/credits/account?account=acct_times")
        .await;
    assert!(
        account.contains("<td class=\"when\"><small>")
            && account.contains("td.when{white-space:nowrap}"),
        "{account}"
    );
    // The check itself finds what it looks for.
    assert_eq!(
        raw_timestamps(&format!("<td>{now}</td><pre>{now}</pre>")),
        vec![now.to_string()]
    );
    assert!(raw_timestamps("prod_1700000000 1700000000x").is_empty());
}

/// Sets when an event was received (the store only ever writes "now").
async fn received_at(store: &sm_store::Store, id: &str, ms: i64) {
    let sql = "UPDATE webhook_events SET received_at = $1 WHERE id = $2";
    let n = match store.pool() {
        sm_store::Pool::Sqlite(p) => sqlx::query(sql)
            .bind(ms)
            .bind(id)
            .execute(p)
            .await
            .unwrap()
            .rows_affected(),
        sm_store::Pool::Postgres(p) => sqlx::query(sql)
            .bind(ms)
            .bind(id)
            .execute(p)
            .await
            .unwrap()
            .rows_affected(),
    };
    assert_eq!(n, 1, "{id}");
}

/// The number after `label: ` in a chart's legend.
fn legend_total(html: &str, chart: &str, label: &str) -> String {
    let start = html
        .find(&format!("id=\"{chart}\""))
        .unwrap_or_else(|| panic!("no {chart}"));
    let figure = &html[start..start + html[start..].find("</figure>").unwrap()];
    let at = figure
        .find(&format!("{label}: "))
        .unwrap_or_else(|| panic!("{chart} has no {label}: {figure}"));
    figure[at + label.len() + 2..]
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

async fn the_activity_charts_count_what_the_database_holds(db: TestDb) {
    let (fake, app, op) = synced_app(&db, 2).await;
    let now = unix_now();
    // Six events applied by the worker, one in the dead letter, two still waiting.
    for i in 0..6 {
        let body = json!({"id": format!("evt_chart_{i}"), "object": "event", "type": "balance.available",
            "created": now, "livemode": false, "data": {"object": {"object": "balance", "livemode": false}}});
        assert_eq!(app.deliver_signed(&body.to_string()).await, 200);
    }
    app.drain_inbox().await;
    let store = &app.state.store;
    let now_ms = now * 1000;
    let event = |id: &str| NewEvent {
        id: id.into(),
        kind: "customer.updated".into(),
        created: now,
        livemode: false,
        api_version: None,
        payload: "{}".into(),
        source: "webhook",
    };
    // Stored "in an hour" so the worker leaves them alone, then dated back to now.
    let later = now_ms + 3_600_000;
    store
        .insert_events(&[event("evt_chart_dead")], later)
        .await
        .unwrap();
    let claimed = store.claim_events("test", 10, later, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .release_event("evt_chart_dead", "test", "boom", now_ms, true)
        .await
        .unwrap();
    store
        .insert_events(&[event("evt_chart_w1"), event("evt_chart_w2")], later)
        .await
        .unwrap();
    for id in ["evt_chart_dead", "evt_chart_w1", "evt_chart_w2"] {
        received_at(store, id, now_ms).await;
    }
    // Credits: 12 granted, 2.50 consumed, 3 deducted.
    let ledger = &app.state.ledger;
    let adjust = |kind, whole| stripe_manager::credits::AdjustRequest {
        kind,
        amount: sm_domain::credits::Credits::whole(whole),
        reason: "chart",
        actor: "test",
        origin: "test",
    };
    use stripe_manager::credits::Adjustment;
    ledger
        .adjust("acct_chart", &adjust(Adjustment::Grant, 12), now)
        .await
        .unwrap();
    ledger
        .consume(
            "acct_chart",
            &stripe_manager::credits::ConsumeRequest {
                amount: sm_domain::credits::Credits::parse("2.50").unwrap(),
                idempotency_key: "chart-1".into(),
                description: None,
            },
            now,
        )
        .await
        .unwrap();
    ledger
        .adjust("acct_chart", &adjust(Adjustment::Deduct, 3), now)
        .await
        .unwrap();

    let html = op.page(&app, "/admin/activity").await;
    assert_eq!(legend_total(&html, "chart-events", "applied"), "6");
    assert_eq!(legend_total(&html, "chart-events", "failed"), "1");
    assert_eq!(legend_total(&html, "chart-events", "waiting"), "2");
    assert_eq!(legend_total(&html, "chart-credits", "granted"), "12");
    assert_eq!(legend_total(&html, "chart-credits", "consumed"), "2.50");
    assert_eq!(legend_total(&html, "chart-credits", "taken back"), "3");
    let synced: f64 = legend_total(&html, "chart-syncs", "succeeded")
        .parse()
        .unwrap();
    assert!(synced > 0.0, "the sync above is drawn");
    assert!(html.contains("id=\"chart-syncs\"") && html.contains("<rect"));
    // The queue is two deep now (the waiting ones); the depth line ends there.
    let queue = &html[html.find("id=\"chart-queue\"").unwrap()..];
    let queue = &queue[..queue.find("</figure>").unwrap()];
    assert!(queue.contains("peak 2 events"), "{queue}");
    for id in [
        "chart-events",
        "chart-queue",
        "chart-credits",
        "chart-syncs",
    ] {
        assert!(
            html.contains(&format!("aria-labelledby=\"{id}-t {id}-d\"")),
            "{id} is not labelled"
        );
    }
    // Charts come from the tables: a second instance on the same database draws the same.
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".to_owned(), "false".to_owned()));
    let other = TestApp::start(config_from(&env)).await;
    let html = op.page(&other, "/admin/activity").await;
    assert_eq!(legend_total(&html, "chart-events", "applied"), "6");
    assert_eq!(legend_total(&html, "chart-credits", "granted"), "12");
    other.stop().await;
}

/// POSTs a form with the CSRF token; the answer as is.
/// The token a creation page shows, once.
fn shown_token(html: &str) -> String {
    let at = html.find("id=\"token\"").expect("the new token is shown");
    html[at..]
        .split('>')
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned()
}

async fn post_form(
    op: &Operator,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![("csrf", op.csrf.as_str())];
    form.extend_from_slice(fields);
    browser()
        .post(app.url(path))
        .header("Cookie", &op.cookie)
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn tokens_are_created_shown_once_and_revoked_from_the_admin(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let op = Operator::sign_in(&app, &db).await;
    let r = post_form(
        &op,
        &app,
        "/admin/tokens",
        &[
            ("name", "web-app"),
            ("scope", "catalog:read"),
            ("scope", "credits:read"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let token = shown_token(&html);
    assert!(token.starts_with("smt_") && token.len() == 68, "{token}");
    assert!(html.contains("catalog:read, credits:read"));
    // The token works, is shown only that once, and the list names it without it.
    let api = |token: String| {
        let url = app.url("/api/v1/products");
        async move { get_status(&url, &token).await }
    };
    assert_eq!(api(token.clone()).await, 200);
    let list = op.page(&app, "/admin/tokens").await;
    assert!(!list.contains(&token) && list.contains("data-name=\"web-app\""));
    assert!(list.contains(&token[..12]), "the prefix identifies it");
    // Refusals say why and create nothing.
    for (fields, why) in [
        (
            vec![("name", "web-app"), ("scope", "catalog:read")],
            "exists",
        ),
        (vec![("name", "other"), ("scope", "root")], "is not a scope"),
        (vec![("name", "other")], "at least one scope"),
        (vec![("name", " "), ("scope", "all")], "1 to 100 characters"),
    ] {
        let r = post_form(&op, &app, "/admin/tokens", &fields).await;
        assert_eq!(r.status(), 400, "{fields:?}");
        assert!(r.text().await.unwrap().contains(why), "{fields:?}: {why}");
    }
    let names: Vec<String> = app
        .state
        .store
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !n.starts_with("tests-"))
        .collect();
    assert_eq!(names, ["web-app"]);
    // Revoked: refused at once.
    let r = post_form(&op, &app, "/admin/tokens/revoke", &[("name", "web-app")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(api(token).await, 401);
    let list = op.page(&app, "/admin/tokens").await;
    assert!(flash(&list).unwrap().starts_with("Token"), "{list}");
    let row = &list[list.find("data-name=\"web-app\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("revoked 2") && !row.contains("Revoke</button>"),
        "{row}"
    );
    let audit = app.state.store.audit_log(None, 100).await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.result.as_str()))
        .collect();
    assert!(actions.contains(&("token.create", "ok")) && actions.contains(&("token.revoke", "ok")));
    assert!(
        actions.contains(&("token.create", "error")),
        "refusals are audited"
    );
    assert!(
        audit
            .iter()
            .all(|a| !a.detail.as_deref().unwrap_or("").contains("smt_")),
        "no token in the audit log"
    );
}

async fn admins_are_added_reset_disabled_and_unlocked_from_the_admin(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let op = Operator::sign_in(&app, &db).await;
    let other = "second@example.com";
    let first_password = "first password of two";
    let r = post_form(
        &op,
        &app,
        "/admin/users",
        &[("email", other), ("password", first_password)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        sign_in(&app, other, first_password).await.status(),
        303,
        "the new admin signs in"
    );
    // Too short, taken, not an email: refused with the reason.
    for (email, password, why) in [
        ("third@example.com", "short", "at least 12 characters"),
        (other, "long enough password", "exists"),
        (
            "not-an-email",
            "long enough password",
            "is not an email address",
        ),
    ] {
        post_form(
            &op,
            &app,
            "/admin/users",
            &[("email", email), ("password", password)],
        )
        .await;
        let html = op.page(&app, "/admin/users").await;
        assert!(html.contains(why), "{email}: {why}");
    }
    assert_eq!(app.state.store.list_admins().await.unwrap().len(), 2);

    // Their session ends when their password is reset; only the new one works.
    let theirs = sign_in(&app, other, first_password).await;
    let their_cookie = format!(
        "sm_session={}",
        cookie_value(&set_cookies(&theirs), "sm_session").unwrap()
    );
    assert_eq!(get_with(&app, "/admin", &their_cookie).await.status(), 200);
    let new_password = "second password of two";
    post_form(
        &op,
        &app,
        "/admin/users/password",
        &[("email", other), ("password", new_password)],
    )
    .await;
    assert_eq!(
        get_with(&app, "/admin", &their_cookie).await.status(),
        303,
        "signed out everywhere"
    );
    assert_eq!(sign_in(&app, other, first_password).await.status(), 401);
    assert_eq!(sign_in(&app, other, new_password).await.status(), 303);

    // Locked after failures: the page says so, unlock lifts it.
    for _ in 0..8 {
        sign_in(&app, other, "wrong wrong wrong").await;
    }
    assert_eq!(sign_in(&app, other, new_password).await.status(), 429);
    let html = op.page(&app, "/admin/users").await;
    assert!(html.contains("locked until"), "{html}");
    post_form(&op, &app, "/admin/users/unlock", &[("email", other)]).await;
    assert_eq!(sign_in(&app, other, new_password).await.status(), 303);
    // It lifted the address they had signed in from (the form locks it too), and says so.
    let unlocks = app
        .state
        .store
        .audit_log(Some("admin.unlock"), 10)
        .await
        .unwrap();
    assert_eq!(unlocks[0].detail.as_deref(), Some("addresses 127.0.0.1"));

    // Disabled: no sign-in, no session; enabled again: back. Nobody disables themselves.
    let theirs = sign_in(&app, other, new_password).await;
    let their_cookie = format!(
        "sm_session={}",
        cookie_value(&set_cookies(&theirs), "sm_session").unwrap()
    );
    // A token they create works until they are disabled, and the list says whose it is.
    let them = Operator {
        csrf: hidden_csrf(
            &get_with(&app, "/admin/tokens", &their_cookie)
                .await
                .text()
                .await
                .unwrap(),
        ),
        cookie: their_cookie.clone(),
    };
    let html = post_form(
        &them,
        &app,
        "/admin/tokens",
        &[("name", "theirs"), ("scope", "catalog:read")],
    )
    .await
    .text()
    .await
    .unwrap();
    let their_token = shown_token(&html);
    let products = app.url("/api/v1/products");
    assert_eq!(get_status(&products, &their_token).await, 200);
    let mine = grant_token(&app.state.store, "mine", "catalog:read").await;
    let list = op.page(&app, "/admin/tokens").await;
    let row = list
        .split("data-name=\"theirs\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains(other), "{row}");
    post_form(&op, &app, "/admin/users/disable", &[("email", other)]).await;
    assert_eq!(
        get_status(&products, &their_token).await,
        401,
        "a disabled admin's tokens are revoked with them"
    );
    assert_eq!(get_status(&products, &mine).await, 200, "no one else's");
    let html = op.page(&app, "/admin/users").await;
    assert!(
        html.contains("1 API token(s) they created were revoked"),
        "{html}"
    );
    assert_eq!(get_with(&app, "/admin", &their_cookie).await.status(), 303);
    assert_eq!(
        sign_in(&app, other, new_password).await.status(),
        401,
        "same answer as a wrong password"
    );
    post_form(&op, &app, "/admin/users/enable", &[("email", other)]).await;
    assert_eq!(sign_in(&app, other, new_password).await.status(), 303);
    post_form(&op, &app, "/admin/users/disable", &[("email", EMAIL)]).await;
    let html = op.page(&app, "/admin/users").await;
    assert!(html.contains("cannot disable yourself"), "{html}");

    let audit = app.state.store.audit_log(None, 200).await.unwrap();
    for action in [
        "admin.create_user",
        "admin.reset_password",
        "admin.unlock",
        "admin.disable",
        "admin.enable",
    ] {
        assert!(
            audit
                .iter()
                .any(|a| a.action == action && a.result == "ok" && a.actor == EMAIL),
            "{action} audited"
        );
    }
    assert!(
        audit
            .iter()
            .any(|a| a.action == "admin.disable" && a.result == "error")
    );
    assert!(audit.iter().all(|a| {
        !a.detail
            .as_deref()
            .unwrap_or("")
            .contains("password of two")
    }));
}
