//! Accounts (issue #11): customers, subscriptions and invoices mirrored from Stripe by
//! events and by `sync --objects`, and the account endpoints answering from them — the
//! real Application and binary against the fake Stripe, on SQLite and PostgreSQL.

mod common;

use common::*;
use fake_stripe::{Ctx, FakeStripe};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sm_store::objects::{CUSTOMERS, INVOICES};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    mirrors_follow_shuffled_and_duplicated_events_and_the_account_answers_locally,
    sync_objects_lists_each_type_in_pages_of_100,
    the_account_endpoints_need_their_scope_and_check_their_input,
    events_reconcile_fills_the_mirrors_when_webhooks_were_missed,
    two_instances_apply_shuffled_duplicated_mirror_events_once_and_agree_with_stripe,
    a_subscription_that_names_an_account_wins_over_its_customers,
    a_one_time_checkout_shows_its_receipt,
);

/// A monthly plan with credits, a customer created outside the service (linked by
/// `metadata.account`), a subscription paid once and then a renewal that fails.
fn plan_history(fake: &FakeStripe, account: &str) -> (String, String) {
    fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, product) = s
            .create_product(
                &json!({"name": "Pro", "metadata": {"credit_amount": "100"}}),
                &ctx,
            )
            .unwrap();
        let (_, price) = s
            .create_price(
                &json!({"product": product["id"], "unit_amount": "1000", "currency": "usd",
                        "recurring": {"interval": "month"}}),
                &ctx,
            )
            .unwrap();
        let (_, customer) = s
            .create_customer(
                &json!({"email": "ada@example.com", "name": "Ada", "metadata": {"account": account}}),
                &ctx,
            )
            .unwrap();
        let (_, sub) = s
            .create_subscription(
                &json!({"customer": customer["id"], "items": [{"price": price["id"]}]}),
                &ctx,
            )
            .unwrap();
        let sub = sub["id"].as_str().unwrap().to_owned();
        s.advance_clock(31 * 86_400);
        s.renew_subscription_unpaid(&sub).unwrap();
        (customer["id"].as_str().unwrap().to_owned(), sub)
    })
}

/// A product with `credits` per unit and one USD price (monthly or one-time), synced into
/// `app`; the fake's events so far are dropped. Returns the price id.
async fn synced_price(
    fake: &FakeStripe,
    app: &TestApp,
    name: &str,
    credits: &str,
    cents: &str,
    monthly: bool,
) -> String {
    let price = fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, product) = s
            .create_product(
                &json!({"name": name, "metadata": {"credit_amount": credits}}),
                &ctx,
            )
            .unwrap();
        let mut params = json!({"product": product["id"], "unit_amount": cents, "currency": "usd"});
        if monthly {
            params["recurring"] = json!({"interval": "month"});
        }
        let (_, price) = s.create_price(&params, &ctx).unwrap();
        price["id"].as_str().unwrap().to_owned()
    });
    let (status, r) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{r}");
    take_fake_events(fake, &[]);
    price
}

fn mirror_events(fake: &FakeStripe) -> Vec<Value> {
    take_fake_events(fake, &[])
        .into_iter()
        .filter(|e| {
            let t = e["type"].as_str().unwrap_or_default();
            t.starts_with("customer.") || t.starts_with("invoice.")
        })
        .collect()
}

async fn mirrors_follow_shuffled_and_duplicated_events_and_the_account_answers_locally(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let account = "acct_mirror";
    let (customer, sub) = plan_history(&fake, account);
    let (status, r) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{r}");
    let mut events = mirror_events(&fake);
    assert!(events.len() >= 6, "{}", events.len());
    let again = events.clone();
    events.extend(again);
    fastrand::shuffle(&mut events);
    for e in &events {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;

    // Whatever the order, each mirror holds Stripe's current state.
    let stripe = fake.with_state(|s| {
        let invoices: Vec<Value> = s
            .invoices
            .values()
            .filter(|i| i["customer"] == json!(customer))
            .cloned()
            .collect();
        (s.customers.get(&customer).cloned().unwrap(), invoices)
    });
    let stored = app
        .state
        .store
        .get_object(&CUSTOMERS, &customer)
        .await
        .unwrap()
        .unwrap();
    let stored: Value = serde_json::from_str(&stored.raw).unwrap();
    assert_eq!(stored["metadata"]["account"], account);
    assert_eq!(stored["email"], stripe.0["email"]);
    assert_eq!(stripe.1.len(), 2, "the first invoice and the renewal");
    for invoice in &stripe.1 {
        let id = invoice["id"].as_str().unwrap();
        let row = app
            .state
            .store
            .get_object(&INVOICES, id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} mirrored"));
        let raw: Value = serde_json::from_str(&row.raw).unwrap();
        assert_eq!(
            (&raw["status"], &raw["amount_paid"]),
            (&invoice["status"], &invoice["amount_paid"]),
            "{id}"
        );
    }

    // The account, answered locally: Stripe could be down.
    let (status, a) = get_json(&app.url(&format!("/api/v1/accounts/{account}"))).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["customer"]["id"], customer, "{a}");
    assert_eq!(a["customer"]["email"], "ada@example.com");
    let subs = a["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{a}");
    assert_eq!(subs[0]["id"], sub);
    assert_eq!(subs[0]["status"], "past_due", "{a}");
    assert_eq!(subs[0]["cancel_at_period_end"], false);
    // A renewal declined a moment ago: still entitled, within the grace period.
    assert_eq!(a["entitlement"]["active"], true, "{a}");
    assert_eq!(a["entitlement"]["status"], "past_due");
    assert!(a["entitlement"]["grace_until"].as_i64().is_some(), "{a}");
    assert_eq!(a["credits"]["account"], account);
    // The customer was made outside this service: its `metadata.account` is the link
    // the paid invoice's credits follow (100 credits, in hundredths).
    assert_eq!(
        app.state.store.credit_totals(account).await.unwrap().0,
        100 * 100
    );

    // Payments: newest first, one per page with a cursor.
    let url = app.url(&format!("/api/v1/accounts/{account}/payments?limit=1"));
    let (status, p1) = get_json(&url).await;
    assert_eq!(status, 200, "{p1}");
    assert_eq!(p1["has_more"], true, "{p1}");
    let first = &p1["data"][0];
    assert_eq!(first["kind"], "invoice");
    assert_eq!(first["status"], "open", "the declined renewal: {p1}");
    assert!(
        first["url"].as_str().unwrap().starts_with("https://"),
        "{p1}"
    );
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = get_json(&format!("{url}&cursor={cursor}")).await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 1, "{p2}");
    assert_eq!(p2["data"][0]["status"], "paid", "{p2}");
    assert_eq!(p2["data"][0]["amount_paid"], 1000);
    assert_eq!(p2["has_more"], false);
    assert!(first["created"].as_i64() >= p2["data"][0]["created"].as_i64());
}

/// 250 customers, 120 subscriptions (one canceled), 120 invoices: `sync --objects all`
/// asks ⌈n/100⌉ pages per type, and a customer created elsewhere with
/// `metadata.account` is then the account's customer.
async fn sync_objects_lists_each_type_in_pages_of_100(db: TestDb) {
    let fake = FakeStripe::start().await;
    let env = env_for(Some(&fake.url()), &db);
    let first = fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, product) = s
            .create_product(&json!({"name": "Team", "metadata": {"credit_amount": "5"}}), &ctx)
            .unwrap();
        let (_, price) = s
            .create_price(
                &json!({"product": product["id"], "unit_amount": "500", "currency": "usd",
                        "recurring": {"interval": "month"}}),
                &ctx,
            )
            .unwrap();
        let mut first = String::new();
        for i in 0..250 {
            let (_, c) = s
                .create_customer(
                    &json!({"email": format!("u{i}@example.com"), "metadata": {"account": format!("acct_s{i}")}}),
                    &ctx,
                )
                .unwrap();
            if i < 120 {
                let (_, sub) = s
                    .create_subscription(
                        &json!({"customer": c["id"], "items": [{"price": price["id"]}]}),
                        &ctx,
                    )
                    .unwrap();
                if i == 0 {
                    first = sub["id"].as_str().unwrap().to_owned();
                }
            }
        }
        s.cancel_subscription(&first, false).unwrap();
        first
    });
    fake.clear_requests();
    let (code, out, err) = run_cli(&env, &["migrate"]).await;
    assert_eq!(code, 0, "{out}{err}");
    // Customer 1 checked out through us once: its account row names it, and its
    // subscription (whose metadata names no account) is linked to that account.
    let second_customer = fake.with_state(|s| {
        s.subscriptions
            .values()
            .find(|v| v["id"] != json!(first))
            .map(|v| v["customer"].as_str().unwrap().to_owned())
            .unwrap()
    });
    db.store
        .ensure_account("acct_linked", Some(&second_customer), unix_now())
        .await
        .unwrap();
    let (code, out, err) = run_cli(
        &env,
        &[
            "sync",
            "--objects",
            "customers,subscriptions,invoices",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            &r["customers"]["requests"],
            &r["subscriptions"]["requests"],
            &r["invoices"]["requests"]
        ),
        (&json!(3), &json!(2), &json!(2)),
        "{r}"
    );
    assert_eq!(r["customers"]["created"], 250, "{r}");
    assert_eq!(r["invoices"]["created"], 120, "{r}");
    assert_eq!(
        r["subscriptions"]["created"], 120,
        "status=all lists the canceled one: {r}"
    );
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.iter().all(|p| !p.contains("/v1/customers/")),
        "lists only, no retrieve per object: {paths:?}"
    );

    let linked: Vec<_> = db
        .store
        .account_subscriptions("acct_linked")
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.account.as_deref() == Some("acct_linked"))
        .collect();
    assert_eq!(linked.len(), 1, "the page's account lookup linked it");

    // Read back through the API.
    let app = TestApp::start(config_from(&env)).await;
    let (status, a) = get_json(&app.url("/api/v1/accounts/acct_s0")).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["customer"]["email"], "u0@example.com", "{a}");
    assert_eq!(a["subscriptions"][0]["id"], first);
    assert_eq!(a["entitlement"]["active"], false, "canceled: {a}");
    assert_eq!(a["entitlement"]["status"], "canceled");
    let (_, a) = get_json(&app.url("/api/v1/accounts/acct_s1")).await;
    assert_eq!(a["entitlement"]["active"], true, "{a}");
    assert_eq!(a["entitlement"]["status"], "active");
    let (_, a) = get_json(&app.url("/api/v1/accounts/acct_s200")).await;
    assert_eq!(
        (&a["entitlement"]["active"], &a["entitlement"]["status"]),
        (&json!(false), &json!("none")),
        "{a}"
    );

    // A second run writes nothing new.
    let (code, out, _) = run_cli(&env, &["sync", "--objects", "customers", "--json"]).await;
    assert_eq!(code, 0);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["customers"]["unchanged"], 250, "{r}");
    let (code, _, err) = run_cli(&env, &["sync", "--objects", "disputes"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("unknown object \"disputes\""), "{err}");
}

async fn the_account_endpoints_need_their_scope_and_check_their_input(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let token = grant_token(&app.state.store, "credits-only", "credits:read").await;
    let r = http()
        .get(app.url("/api/v1/accounts/acct_x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, body) = get_json(&app.url("/api/v1/accounts/acct_x/payments?cursor=nope")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_cursor")),
        "{body}"
    );
    let (status, body) =
        get_json(&app.url("/api/v1/accounts/acct_x/payments?limit=5&color=red")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_query")),
        "{body}"
    );
    let (status, body) = get_json(&app.url("/api/v1/accounts/acct%20x")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_account")),
        "{body}"
    );
    let (status, body) = get_json(&app.url("/api/v1/accounts/acct_x/payments")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([]));
}

/// No webhook delivered: `events reconcile` lists Stripe's events, and the worker fills
/// the mirrors from them as it would from deliveries.
async fn events_reconcile_fills_the_mirrors_when_webhooks_were_missed(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let env = env_for(Some(&fake.url()), &db);
    let account = "acct_missed";
    let (customer, sub) = plan_history(&fake, account);
    let (code, out, err) = run_cli(&env, &["events", "reconcile", "--since", "30d"]).await;
    assert_eq!(code, 0, "{out}{err}");
    app.drain_inbox().await;
    assert!(
        app.state
            .store
            .get_object(&CUSTOMERS, &customer)
            .await
            .unwrap()
            .is_some(),
        "the customer is mirrored"
    );
    let (_, a) = get_json(&app.url(&format!("/api/v1/accounts/{account}"))).await;
    assert_eq!(a["customer"]["id"], customer, "{a}");
    assert_eq!(a["subscriptions"][0]["id"], sub, "{a}");
    let (_, p) = get_json(&app.url(&format!("/api/v1/accounts/{account}/payments"))).await;
    assert_eq!(p["data"].as_array().unwrap().len(), 2, "{p}");
}

/// PostgreSQL with a language collation (ICU's root collation orders `in_a` before
/// `in_B`, bytes the other way): payments sharing a `created` second still page through
/// each exactly once, because ids compare byte by byte in the query, the cursor and the
/// merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_page_by_bytes_under_a_language_collation() {
    use sm_store::objects::{Cell, ObjectWrite};
    let Some(db) = TestDb::new(sm_store::Backend::Postgres).await else {
        eprintln!("!!! SKIPPED: no PostgreSQL (SM_SKIP_POSTGRES)");
        return;
    };
    if let sm_store::Pool::Postgres(pool) = db.store.pool() {
        sqlx::query(r#"ALTER TABLE invoices ALTER COLUMN id TYPE TEXT COLLATE "und-x-icu""#)
            .execute(pool)
            .await
            .expect("an ICU collation (PostgreSQL built with ICU)");
    }
    let customer = ObjectWrite {
        id: "cus_coll".into(),
        version: 1,
        deleted: false,
        cells: vec![
            Cell::Text(Some("acct_coll".into())),
            Cell::Text(None),
            Cell::Text(None),
            Cell::Bool(false),
            Cell::Int(Some(1)),
        ],
        raw: "{}".into(),
    };
    let ties = sm_store::catalog::Ties::Refresh;
    db.store
        .upsert_objects(&CUSTOMERS, &[customer], ties, 1)
        .await
        .unwrap();
    let ids = ["in_a", "in_B", "in_c", "in_D", "in_e", "in_F"];
    let invoices: Vec<ObjectWrite> = ids
        .iter()
        .map(|id| ObjectWrite {
            id: (*id).into(),
            version: 1,
            deleted: false,
            cells: vec![
                Cell::Text(Some("cus_coll".into())),
                Cell::Text(None),
                Cell::Text(Some("paid".into())),
                Cell::Text(Some("usd".into())),
                Cell::Int(Some(100)),
                Cell::Int(Some(100)),
                Cell::Int(Some(100)),
                Cell::Int(Some(0)),
                Cell::Text(None),
                Cell::Text(None),
                Cell::Text(None),
                Cell::Text(None),
                Cell::Bool(false),
                Cell::Int(Some(1_700_000_000)),
            ],
            raw: "{}".into(),
        })
        .collect();
    db.store
        .upsert_objects(&INVOICES, &invoices, ties, 1)
        .await
        .unwrap();
    let accounts = stripe_manager::accounts::Accounts::new(
        db.store.clone(),
        std::time::Duration::from_secs(0),
    );
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = accounts
            .payments("acct_coll", cursor.as_deref(), 1)
            .await
            .unwrap();
        seen.extend(page.data.iter().map(|p| p.id.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    want.reverse();
    assert_eq!(seen, want, "each payment once, newest first, ids by bytes");
}

/// Two instances on one database take the same shuffled, duplicated stream of customer,
/// subscription and invoice events, half each, 16 in flight. Many events of one object
/// share a second with other content, so both instances meet ties at once and refetch.
/// Every mirror ends as Stripe holds it, every event is applied, and each paid invoice
/// grants its credits once.
async fn two_instances_apply_shuffled_duplicated_mirror_events_once_and_agree_with_stripe(
    db: TestDb,
) {
    let fake = FakeStripe::start().await;
    let a = quiet_app(&fake, &db).await;
    let b = quiet_app(&fake, &db).await;
    let price = synced_price(&fake, &a, "Team", "100", "1000", true).await;

    const ACCOUNTS: usize = 12;
    let subs: Vec<(String, String, String)> = fake.with_state(|s| {
        let ctx = Ctx::default();
        let mut subs = Vec::new();
        for i in 0..ACCOUNTS {
            let account = format!("acct_two{i:02}");
            let (_, customer) = s
                .create_customer(
                    &json!({"email": format!("{i}@example.com"), "metadata": {"account": account}}),
                    &ctx,
                )
                .unwrap();
            let customer = customer["id"].as_str().unwrap().to_owned();
            let (_, sub) = s
                .create_subscription(
                    &json!({"customer": customer, "items": [{"price": price}]}),
                    &ctx,
                )
                .unwrap();
            let sub = sub["id"].as_str().unwrap().to_owned();
            // Same second, other content: cancel at period end, then resume.
            s.cancel_subscription(&sub, true).unwrap();
            s.update_subscription(&sub, &json!({"cancel_at_period_end": "false"}), &ctx)
                .unwrap();
            // The customer changes twice within that second too.
            for email in [format!("{i}-b@example.com"), format!("{i}-c@example.com")] {
                let c = s.customers.get_mut(&customer).unwrap();
                c["email"] = json!(email);
                let c = c.clone();
                s.emit("customer.updated", &c, None, &ctx);
            }
            subs.push((account, customer, sub));
        }
        s.advance_clock(31 * 86_400);
        for (_, _, sub) in &subs {
            s.renew_subscription(sub).unwrap();
        }
        subs
    });
    let mut events: Vec<Value> = take_fake_events(&fake, &[])
        .into_iter()
        .filter(|e| {
            let t = e["type"].as_str().unwrap_or_default();
            t.starts_with("customer.") || t.starts_with("invoice.")
        })
        .collect();
    let distinct = events.len();
    assert!(distinct >= ACCOUNTS * 8, "{distinct} events");
    let again = events.clone();
    events.extend(again);
    fastrand::shuffle(&mut events);
    let sends = events.iter().enumerate().map(|(i, e)| {
        let app = if i % 2 == 0 { &a } else { &b };
        let body = e.to_string();
        async move { app.deliver_signed(&body).await }
    });
    let statuses: Vec<u16> = futures_util::stream::iter(sends)
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    a.drain_inbox().await;
    b.drain_inbox().await;

    let stored = a
        .state
        .store
        .list_events(&sm_store::inbox::EventFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), distinct, "each event stored once");
    assert!(
        stored.iter().all(|e| e.status == "processed"),
        "every event applied"
    );

    let (customers, subscriptions, invoices) = fake.with_state(|s| {
        (
            s.customers.values().cloned().collect::<Vec<_>>(),
            s.subscriptions.values().cloned().collect::<Vec<_>>(),
            s.invoices.values().cloned().collect::<Vec<_>>(),
        )
    });
    for c in &customers {
        let id = c["id"].as_str().unwrap();
        let row = b.state.store.get_object(&CUSTOMERS, id).await.unwrap();
        let raw: Value = serde_json::from_str(&row.expect("mirrored").raw).unwrap();
        assert_eq!(raw["email"], c["email"], "{id}: the latest email");
    }
    for sub in &subscriptions {
        let id = sub["id"].as_str().unwrap();
        let row = a.state.store.subscription(id).await.unwrap().expect(id);
        assert_eq!(
            (row.status.as_str(), row.cancel_at_period_end),
            (
                sub["status"].as_str().unwrap(),
                sub["cancel_at_period_end"].as_bool().unwrap()
            ),
            "{id}"
        );
        assert!(row.account.is_some(), "{id} linked to its account");
    }
    for inv in &invoices {
        let id = inv["id"].as_str().unwrap();
        let row = a.state.store.get_object(&INVOICES, id).await.unwrap();
        let raw: Value = serde_json::from_str(&row.expect("mirrored").raw).unwrap();
        assert_eq!(raw["status"], inv["status"], "{id}");
    }
    for (account, customer, _) in &subs {
        let paid = invoices
            .iter()
            .filter(|i| i["customer"] == json!(customer) && i["status"] == "paid")
            .count() as i64;
        assert_eq!(paid, 2, "{account}: the first invoice and the renewal");
        // In hundredths of a credit: 100 credits per paid invoice.
        let (journal, lots, _) = a.state.store.credit_totals(account).await.unwrap();
        assert_eq!(
            (journal, lots),
            (100 * 100 * paid, 100 * 100 * paid),
            "{account}: each paid invoice granted once"
        );
    }
}

/// A subscription created outside this service with `metadata.account` on a customer
/// whose own `metadata.account` names another account: the invoice's credits go to the
/// subscription's account, even when the customer is mirrored and the subscription's
/// own event has not arrived.
async fn a_subscription_that_names_an_account_wins_over_its_customers(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let price = synced_price(&fake, &app, "Solo", "100", "1000", true).await;
    fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, customer) = s
            .create_customer(&json!({"metadata": {"account": "acct_of_customer"}}), &ctx)
            .unwrap();
        s.create_subscription(
            &json!({"customer": customer["id"], "items": [{"price": price}],
                    "metadata": {"account": "acct_of_subscription"}}),
            &ctx,
        )
        .unwrap();
    });
    let events = take_fake_events(&fake, &[]);
    let kinds = |prefix: &str| {
        events
            .iter()
            .filter(|e| e["type"].as_str().unwrap_or_default().starts_with(prefix))
            .cloned()
            .collect::<Vec<_>>()
    };
    // The customer first (mirrored with its account), then the invoices only.
    for e in kinds("customer.").iter().filter(|e| {
        !e["type"]
            .as_str()
            .unwrap_or_default()
            .starts_with("customer.subscription")
    }) {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;
    for e in kinds("invoice.") {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;
    let store = &app.state.store;
    assert_eq!(
        store.credit_totals("acct_of_subscription").await.unwrap().0,
        100 * 100,
        "the subscription's account gets the credits"
    );
    assert_eq!(store.credit_totals("acct_of_customer").await.unwrap().0, 0);
}

/// A one-time pack bought through `POST /api/v1/checkout`: the payment history shows it
/// with the receipt of its charge, mirrored from `charge.succeeded`.
async fn a_one_time_checkout_shows_its_receipt(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let price = synced_price(&fake, &app, "Pack", "10", "500", false).await;
    let (status, session) = post_json(
        &app.url("/api/v1/checkout"),
        json!({"account": "acct_pack", "price": price, "quantity": 1,
               "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let sid = session["id"].as_str().unwrap().to_owned();
    fake.with_state(|s| s.complete_session(&sid, true).unwrap());
    let events = take_fake_events(&fake, &[]);
    assert!(
        events.iter().any(|e| e["type"] == "charge.succeeded"),
        "the fake charges the card"
    );
    for e in &events {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;
    let (status, p) = get_json(&app.url("/api/v1/accounts/acct_pack/payments")).await;
    assert_eq!(status, 200, "{p}");
    let payment = &p["data"][0];
    assert_eq!(
        (&payment["kind"], &payment["id"], &payment["amount_paid"]),
        (&json!("checkout"), &json!(sid), &json!(500)),
        "{p}"
    );
    let receipt = fake.with_state(|s| {
        s.charges
            .values()
            .next()
            .map(|c| c["receipt_url"].as_str().unwrap_or_default().to_owned())
            .unwrap()
    });
    assert!(
        receipt.starts_with("https://pay.stripe.com/receipts/"),
        "{receipt}"
    );
    assert_eq!(payment["url"], receipt, "{p}");
}
