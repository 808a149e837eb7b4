//! Privacy (issue #27): `accounts erase` (CLI and the admin's button), `customer.deleted`,
//! the erasure remembered against later events and syncs, `MIRROR_RETENTION_DAYS`, and
//! `accounts export` — the real Application and binary against the fake Stripe, on
//! SQLite and PostgreSQL.

mod common;

use common::admin::{Operator, flash};
use common::*;
use fake_stripe::{Ctx, FakeStripe};
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    erase_redacts_every_mirror_and_keeps_the_balance,
    later_events_and_syncs_do_not_bring_erased_data_back,
    erase_with_stripe_deletes_the_customer_once_even_when_run_twice,
    the_admin_erase_button_needs_the_typed_account_id_and_is_audited,
    customer_deleted_redacts_and_mirror_retention_prunes_after_the_period,
    export_holds_everything_stored_about_the_account,
);

const EMAIL: &str = "ada.lovelace@example.com";
const NAME: &str = "Ada Lovelace";

/// A monthly plan (100 credits) sold to a customer created outside the service and
/// linked by `metadata.account`; its first invoice is paid (a charge with a receipt).
/// Every event is delivered and applied. Returns the customer and the subscription.
async fn customer_with_a_plan(fake: &FakeStripe, app: &TestApp, account: &str) -> (String, String) {
    let (customer, sub) = fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, price) = shop::product_with_price(
            s,
            json!({"name": "Pro", "metadata": {"credit_amount": "100"}}),
            json!({"unit_amount": "1000", "recurring": {"interval": "month"}}),
        );
        let (_, customer) = s
            .create_customer(
                &json!({"email": EMAIL, "name": NAME, "description": "met at the conference",
                        "metadata": {"account": account, "nickname": "Countess"}}),
                &ctx,
            )
            .unwrap();
        let (_, sub) = s
            .create_subscription(
                &json!({"customer": customer["id"], "items": [{"price": price}]}),
                &ctx,
            )
            .unwrap();
        (
            customer["id"].as_str().unwrap().to_owned(),
            sub["id"].as_str().unwrap().to_owned(),
        )
    });
    let (status, r) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{r}");
    deliver_all(fake, app).await;
    (customer, sub)
}

/// A fake Stripe, the app on it, and [`customer_with_a_plan`] for `account`.
async fn started(db: &TestDb, account: &str) -> (FakeStripe, TestApp, String, String) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, db).await;
    let (customer, sub) = customer_with_a_plan(&fake, &app, account).await;
    (fake, app, customer, sub)
}

/// Delivers every event the fake produced since the last call, and waits for them.
async fn deliver_all(fake: &FakeStripe, app: &TestApp) {
    for e in take_fake_events(fake, &[]) {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sm_store::on_pool!(app.state.store, pool => sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap())
}

/// Rows of `table` where `condition` holds.
async fn rows_where(app: &TestApp, table: &str, condition: &str) -> i64 {
    count(
        app,
        &format!("SELECT COUNT(*) FROM {table} WHERE {condition}"),
    )
    .await
}

/// Rows of every table that holds Stripe data whose text contains `needle`.
async fn traces(app: &TestApp, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (table, column) in [
        ("customers", "raw"),
        ("invoices", "raw"),
        ("charges", "raw"),
        ("subscriptions", "raw"),
        ("webhook_events", "payload"),
        ("customers", "email"),
        ("customers", "name"),
    ] {
        let n = rows_where(app, table, &format!("{column} LIKE '%{needle}%'")).await;
        if n > 0 {
            found.push(format!("{table}.{column}: {n}"));
        }
    }
    found
}

/// Personal data of `customer` still stored: its mirror rows with an e-mail, name or
/// link, and stored events naming it with its e-mail.
async fn customer_traces(app: &TestApp, customer: &str) -> i64 {
    count(
        app,
        &format!(
            "SELECT (SELECT COUNT(*) FROM customers WHERE id = '{customer}' \
               AND (email IS NOT NULL OR name IS NOT NULL OR raw LIKE '%{EMAIL}%')) \
             + (SELECT COUNT(*) FROM invoices WHERE customer = '{customer}' \
               AND (hosted_invoice_url IS NOT NULL OR raw LIKE '%{EMAIL}%')) \
             + (SELECT COUNT(*) FROM charges WHERE customer = '{customer}' AND receipt_url IS NOT NULL) \
             + (SELECT COUNT(*) FROM webhook_events WHERE payload LIKE '%{customer}%' \
               AND payload LIKE '%{EMAIL}%')"
        ),
    )
    .await
}

/// Links that show personal data, still stored in columns.
async fn links(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT (SELECT COUNT(*) FROM invoices WHERE hosted_invoice_url IS NOT NULL OR invoice_pdf IS NOT NULL) \
         + (SELECT COUNT(*) FROM charges WHERE receipt_url IS NOT NULL)",
    )
    .await
}

async fn ledger_rows(app: &TestApp, account: &str) -> (i64, i64) {
    let mine = format!("account = '{account}'");
    (
        rows_where(app, "credit_lots", &mine).await,
        rows_where(app, "credit_entries", &mine).await,
    )
}

fn cli_env(fake: &FakeStripe, db: &TestDb) -> Vec<(String, String)> {
    let mut env = env_for(Some(&fake.url()), db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    env.push(("USER".into(), "dpo".into()));
    env
}

async fn erase_json(env: &[(String, String)], args: &[&str]) -> Value {
    let (code, out, err) = run_cli(env, args).await;
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

async fn erase_redacts_every_mirror_and_keeps_the_balance(db: TestDb) {
    let account = "acct_erase";
    let (fake, app, customer, sub) = started(&db, account).await;
    let before = app.credits(account).await;
    assert_eq!(before["available"], "100.00", "{before}");
    let ledger = ledger_rows(&app, account).await;
    // What there is to erase: the e-mail and name in every mirror and stored event,
    // links to the receipt and the hosted invoice.
    let found = traces(&app, EMAIL).await;
    for table in [
        "customers.raw",
        "invoices.raw",
        "webhook_events.payload",
        "customers.email",
    ] {
        assert!(
            found.iter().any(|f| f.starts_with(table)),
            "{table}: {found:?}"
        );
    }
    assert!(links(&app).await >= 2, "a hosted invoice and a receipt");
    // Another account's customer is not touched.
    fake.with_state(|s| {
        s.create_customer(
            &json!({"email": "grace@example.com", "metadata": {"account": "acct_other"}}),
            &Ctx::default(),
        )
        .unwrap()
    });
    deliver_all(&fake, &app).await;

    let env = cli_env(&fake, &db);
    let r = erase_json(&env, &["accounts", "erase", account, "--json"]).await;
    assert_eq!(r["account"], account);
    assert_eq!(r["customers"], json!([customer]), "{r}");
    assert_eq!(r["stripe"], false);
    let redacted = &r["redacted"];
    assert_eq!(redacted["customers"], 1, "{r}");
    assert!(
        redacted["subscriptions"].is_u64(),
        "nothing personal in a subscription here: {r}"
    );
    assert!(redacted["invoices"].as_u64().unwrap() >= 1, "{r}");
    assert!(redacted["charges"].as_u64().unwrap() >= 1, "{r}");
    assert!(redacted["webhook_events"].as_u64().unwrap() >= 3, "{r}");

    for needle in [
        EMAIL,
        NAME,
        "Countess",
        "met at the conference",
        "pay.stripe.com",
    ] {
        assert_eq!(traces(&app, needle).await, Vec::<String>::new(), "{needle}");
    }
    assert_eq!(links(&app).await, 0, "receipt and invoice links are gone");
    assert_eq!(
        traces(&app, "grace@example.com").await.len(),
        3,
        "another account's customer keeps its data (raw, email, its event)"
    );
    // Ids, amounts, statuses and the account link stay: billing and credits go on.
    assert_eq!(
        rows_where(
            &app,
            "customers",
            &format!("id = '{customer}' AND account = '{account}'")
        )
        .await,
        1
    );
    assert_eq!(
        rows_where(
            &app,
            "invoices",
            &format!("customer = '{customer}' AND amount_paid = 1000 AND status = 'paid'")
        )
        .await,
        1
    );
    assert_eq!(
        rows_where(
            &app,
            "subscriptions",
            &format!("id = '{sub}' AND status = 'active' AND account = '{account}'")
        )
        .await,
        1
    );
    let after = app.credits(account).await;
    assert_eq!(after["available"], before["available"], "{after}");
    assert_eq!(
        ledger_rows(&app, account).await,
        ledger,
        "the ledger is not touched"
    );
    app.assert_ledger_balanced(account).await;
    let (status, a) = get_json(&app.url(&format!("/api/v1/accounts/{account}"))).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["customer"]["id"], customer.as_str());
    assert!(a["customer"]["email"].is_null(), "{a}");
    assert_eq!(a["entitlement"]["active"], true, "{a}");
    // Stripe keeps its customer: nothing was asked of it.
    assert!(fake.with_state(|s| s.customers.get(&customer).is_some()));
    assert!(fake.requests().iter().all(|q| q.method != "DELETE"));
    // Remembered and audited.
    let erased = app
        .state
        .store
        .erased_customer(&customer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            erased.account.as_deref(),
            erased.erased_by.as_str(),
            erased.reason.as_str(),
            erased.deleted_at
        ),
        (Some(account), "cli:dpo", "erase", None)
    );
    let audit = app.state.store.audit_log(None, 10).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.action == "accounts.erase")
        .expect("an audit entry");
    assert_eq!(
        (
            entry.target.as_deref(),
            entry.actor.as_str(),
            entry.result.as_str()
        ),
        (Some(account), "cli:dpo", "ok")
    );

    // Again, in words: nothing left to redact.
    let (code, out, err) = run_cli(&env, &["accounts", "erase", account]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("personal data redacted") && out.contains("webhook_events"),
        "{out}"
    );
    assert!(out.contains("kept (--stripe deletes them)"), "{out}");
    // An account nothing is known of is a usage error.
    let (code, _, err) = run_cli(&env, &["accounts", "erase", "acct_nobody"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nothing is stored about account acct_nobody"),
        "{err}"
    );
}

async fn later_events_and_syncs_do_not_bring_erased_data_back(db: TestDb) {
    let account = "acct_later";
    let (fake, app, customer, sub) = started(&db, account).await;
    let env = cli_env(&fake, &db);
    erase_json(&env, &["accounts", "erase", account, "--json"]).await;
    let invoices_before = count(&app, "SELECT COUNT(*) FROM invoices").await;

    // The customer changes in Stripe and the plan renews (paid): customer.updated,
    // invoice.*, charge.succeeded, customer.subscription.updated.
    fake.with_state(|s| {
        s.update_customer(
            &customer,
            &json!({"email": "ada.new@example.com", "name": "Ada King"}),
            &Ctx::default(),
        )
        .unwrap();
        s.advance_clock(31 * 86_400);
        s.renew_subscription(&sub).unwrap();
    });
    let events = take_fake_events(&fake, &[]);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for kind in [
        "customer.updated",
        "invoice.paid",
        "charge.succeeded",
        "customer.subscription.updated",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    for e in &events {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;
    for needle in [
        "ada.new@example.com",
        "Ada King",
        EMAIL,
        NAME,
        "pay.stripe.com",
    ] {
        assert_eq!(
            traces(&app, needle).await,
            Vec::<String>::new(),
            "{needle} after events"
        );
    }
    assert_eq!(links(&app).await, 0);
    // The renewal is mirrored (ids and amounts) and its credits granted.
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM invoices").await,
        invoices_before + 1
    );
    app.drain_inbox().await;
    assert_eq!(app.credits(account).await["available"], "200.00");

    // A full listing of every mirrored object reads the data from Stripe again.
    let (code, out, err) = run_cli(&env, &["sync", "--objects", "all", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    for needle in ["ada.new@example.com", "Ada King", "pay.stripe.com"] {
        assert_eq!(
            traces(&app, needle).await,
            Vec::<String>::new(),
            "{needle} after sync"
        );
    }
    assert_eq!(links(&app).await, 0);
    assert_eq!(
        rows_where(
            &app,
            "customers",
            &format!("id = '{customer}' AND account = '{account}' AND email IS NULL")
        )
        .await,
        1,
        "the account link stays"
    );
}

async fn erase_with_stripe_deletes_the_customer_once_even_when_run_twice(db: TestDb) {
    let account = "acct_gone";
    let (fake, app, customer, _) = started(&db, account).await;
    let env = cli_env(&fake, &db);
    let deletes = || {
        fake.requests()
            .into_iter()
            .filter(|r| r.method == "DELETE" && r.path == format!("/v1/customers/{customer}"))
            .collect::<Vec<_>>()
    };

    let first = erase_json(&env, &["accounts", "erase", account, "--stripe", "--json"]).await;
    assert_eq!(first["deleted_in_stripe"], json!([customer]), "{first}");
    assert_eq!(first["already_deleted_in_stripe"], json!([]));
    assert!(fake.with_state(
        |s| s.customers.get(&customer).is_none() && s.deleted_customers.contains(&customer)
    ));
    let sent = deletes();
    assert_eq!(sent.len(), 1);
    let key = sent[0].idempotency_key.clone().expect("an idempotency key");

    let second = erase_json(&env, &["accounts", "erase", account, "--stripe", "--json"]).await;
    assert_eq!(second["deleted_in_stripe"], json!([]), "{second}");
    assert_eq!(
        second["already_deleted_in_stripe"],
        json!([customer]),
        "{second}"
    );
    let sent = deletes();
    assert_eq!(sent.len(), 2, "asked again, answered 404: already gone");
    assert_eq!(
        sent[1].idempotency_key.as_deref(),
        Some(key.as_str()),
        "the same key"
    );
    // Stripe deleted it once: one customer.deleted.
    let deleted = take_fake_events(&fake, &["customer.deleted"]);
    assert_eq!(deleted.len(), 1);
    for e in &deleted {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;
    assert_eq!(traces(&app, EMAIL).await, Vec::<String>::new());
    let erased = app
        .state
        .store
        .erased_customer(&customer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(erased.reason, "erase", "the first record is kept");
    assert!(
        erased.deleted_at.is_some(),
        "the deletion starts MIRROR_RETENTION_DAYS"
    );
    let audit = app.state.store.audit_log(None, 20).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "accounts.erase.stripe" && e.result == "ok")
            .count(),
        2
    );

    // Without Stripe configured, --stripe is refused before anything is erased.
    let (code, _, err) = run_cli(
        &env_for(None, &db),
        &["accounts", "erase", account, "--stripe"],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Stripe is disabled"), "{err}");
}

async fn the_admin_erase_button_needs_the_typed_account_id_and_is_audited(db: TestDb) {
    let account = "acct_admin";
    let (fake, app, customer, _) = started(&db, account).await;
    let op = Operator::sign_in(&app, &db).await;
    let page_path = format!("/admin/credits/account?account={account}");
    let page = op.page(&app, &page_path).await;
    assert!(
        page.contains(r#"action="/admin/credits/erase""#),
        "the Erase form"
    );
    assert!(page.contains(r#"name="confirm""#));

    // Confirmed with something else (or nothing): refused, said why, audited.
    for typed in ["", "acct_admi", "acct_other"] {
        let to = op
            .post(
                &app,
                "/admin/credits/erase",
                &[("account", account), ("confirm", typed)],
            )
            .await;
        assert_eq!(to, page_path);
        let html = op.page(&app, &to).await;
        let message = flash(&html).unwrap_or_default();
        assert!(
            message.contains("Nothing erased: type the account id (acct_admin)"),
            "{message}"
        );
    }
    assert!(!traces(&app, EMAIL).await.is_empty(), "nothing erased");
    assert!(
        app.state
            .store
            .erased_customer(&customer)
            .await
            .unwrap()
            .is_none()
    );
    let audit = app.state.store.audit_log(None, 20).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "accounts.erase" && e.result == "error")
            .count(),
        3
    );

    let to = op
        .post(
            &app,
            "/admin/credits/erase",
            &[("account", account), ("confirm", account)],
        )
        .await;
    let html = op.page(&app, &to).await;
    let message = flash(&html).unwrap_or_default();
    assert!(
        message.contains("Personal data of acct_admin erased"),
        "{message}"
    );
    assert!(
        html.contains(&format!("{customer} (erased")),
        "the page says so"
    );
    assert_eq!(traces(&app, EMAIL).await, Vec::<String>::new());
    assert!(
        fake.with_state(|s| s.customers.get(&customer).is_some()),
        "kept in Stripe"
    );
    let audit = app.state.store.audit_log(None, 20).await.unwrap();
    let ok = audit
        .iter()
        .find(|e| e.action == "accounts.erase" && e.result == "ok")
        .expect("audited");
    assert_eq!(
        (
            ok.actor.as_str(),
            ok.target.as_deref(),
            ok.origin.as_deref().map(|o| !o.is_empty())
        ),
        ("admin:ops@example.com", Some(account), Some(true))
    );
}

async fn customer_deleted_redacts_and_mirror_retention_prunes_after_the_period(db: TestDb) {
    let account = "acct_deleted";
    let (fake, app, customer, sub) = started(&db, account).await;
    customer_with_a_plan(&fake, &app, "acct_stays").await;
    let balance = app.credits(account).await;
    let ledger = ledger_rows(&app, account).await;

    let kept_customer = app
        .state
        .store
        .account_customers("acct_stays")
        .await
        .unwrap()[0]
        .clone();
    assert!(
        customer_traces(&app, &customer).await > 0,
        "there is something to redact"
    );

    fake.with_state(|s| s.delete_customer(&customer, &Ctx::default()).unwrap());
    deliver_all(&fake, &app).await;
    assert_eq!(customer_traces(&app, &customer).await, 0, "redacted");
    assert!(
        customer_traces(&app, &kept_customer).await > 0,
        "another customer keeps its data"
    );
    let erased = app
        .state
        .store
        .erased_customer(&customer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (erased.reason.as_str(), erased.erased_by.as_str()),
        ("customer.deleted", "stripe")
    );
    assert_eq!(erased.account.as_deref(), Some(account));
    let deleted_at = erased.deleted_at.expect("the deletion's time");
    let rows_of = |c: &str| {
        format!(
            "SELECT (SELECT COUNT(*) FROM customers WHERE id = '{c}') \
             + (SELECT COUNT(*) FROM invoices WHERE customer = '{c}') \
             + (SELECT COUNT(*) FROM charges WHERE customer = '{c}') \
             + (SELECT COUNT(*) FROM subscriptions WHERE customer = '{c}')"
        )
    };
    let (mine, theirs) = (rows_of(&customer), rows_of(&kept_customer));
    let rows = count(&app, &mine).await;
    assert!(
        rows >= 4,
        "a customer, an invoice, a charge, a subscription: {rows}"
    );
    let others = count(&app, &theirs).await;
    assert_eq!(
        rows_where(
            &app,
            "subscriptions",
            &format!("id = '{sub}' AND status = 'canceled'")
        )
        .await,
        1
    );

    // MIRROR_RETENTION_DAYS: parsed and checked like the other retention settings.
    let mut env = env_for(None, &db);
    assert_eq!(config_from(&env).retention.mirror_days, 90, "the default");
    env.push(("MIRROR_RETENTION_DAYS".into(), "10".into()));
    let config = config_from(&env).retention;
    assert_eq!(config.mirror_days, 10);
    let mut bad = env_for(None, &db);
    bad.push(("MIRROR_RETENTION_DAYS".into(), "0".into()));
    let (code, _, err) = run_cli(&bad, &["prune", "--dry-run"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("MIRROR_RETENTION_DAYS"), "{err}");

    // Not before the period: nothing of the deleted customer goes.
    const DAY: i64 = 86_400;
    let store = &app.state.store;
    let pass = stripe_manager::retention::prune(store, &config, deleted_at + 9 * DAY, false)
        .await
        .unwrap();
    assert_eq!(pass.counts.mirrors(), 0, "{pass:?}");
    assert_eq!(count(&app, &mine).await, rows);
    let dry = stripe_manager::retention::prune(store, &config, deleted_at + 11 * DAY, true)
        .await
        .unwrap();
    assert_eq!(dry.counts.mirrors(), rows as u64, "{dry:?}");
    // After it: the mirrors go, the ledger and the other account's mirrors stay.
    let pass = stripe_manager::retention::prune(store, &config, deleted_at + 11 * DAY, false)
        .await
        .unwrap();
    assert_eq!(pass.counts.mirrors(), rows as u64, "{pass:?}");
    assert_eq!(
        (pass.counts.customers, pass.counts.subscriptions),
        (1, 1),
        "{pass:?}"
    );
    assert_eq!(count(&app, &mine).await, 0);
    assert_eq!(ledger_rows(&app, account).await, ledger);
    assert_eq!(
        app.credits(account).await["available"],
        balance["available"]
    );
    assert_eq!(
        count(&app, &theirs).await,
        others,
        "acct_stays's customer stays"
    );
    // The erasure is still remembered: a late event writes only the redacted form.
    assert!(
        app.state
            .store
            .erased_customer(&customer)
            .await
            .unwrap()
            .is_some()
    );
    let late = json!({"id": "evt_late_update", "object": "event", "type": "customer.updated",
        "created": deleted_at + 12 * DAY, "livemode": false, "api_version": "2025-03-31.basil",
        "data": {"object": {"id": customer, "object": "customer", "email": EMAIL, "name": NAME,
            "metadata": {"account": account}, "created": 1, "livemode": false}}});
    assert_eq!(app.deliver_signed(&late.to_string()).await, 200);
    app.drain_inbox().await;
    assert_eq!(
        rows_where(
            &app,
            "customers",
            &format!("id = '{customer}' AND email IS NULL AND raw NOT LIKE '%{EMAIL}%'")
        )
        .await,
        1
    );
    assert_eq!(
        rows_where(
            &app,
            "webhook_events",
            &format!("id = 'evt_late_update' AND payload LIKE '%{EMAIL}%'")
        )
        .await,
        0,
        "the stored event is redacted too"
    );
}

async fn export_holds_everything_stored_about_the_account(db: TestDb) {
    let account = "acct_export";
    let (fake, app, customer, sub) = started(&db, account).await;
    customer_with_a_plan(&fake, &app, "acct_someone_else").await;
    grant_credits(&app, account, 5).await;
    let (status, hold) = post_json(
        &app.url(&format!("/api/v1/accounts/{account}/credits/holds")),
        json!({"amount": "2.00", "idempotency_key": "k1", "ttl_seconds": 600}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let env = cli_env(&fake, &db);
    let (code, out, err) = run_cli(&env, &["accounts", "export", account, "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["account"], account);
    let t = &doc["tables"];
    assert_eq!(t["account"][0]["id"], account, "{doc}");
    assert_eq!(t["customers"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(t["customers"][0]["id"], customer.as_str());
    assert_eq!(t["customers"][0]["email"], EMAIL, "the subject's own data");
    assert_eq!(
        t["customers"][0]["raw"]["name"], NAME,
        "stored JSON embedded as JSON"
    );
    assert_eq!(t["subscriptions"][0]["id"], sub.as_str());
    assert_eq!(t["invoices"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(t["invoices"][0]["amount_paid"], 1000);
    assert_eq!(t["charges"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(
        t["credit_lots"].as_array().unwrap().len(),
        2,
        "the plan's and the grant"
    );
    assert!(t["credit_entries"].as_array().unwrap().len() >= 2, "{doc}");
    assert_eq!(t["credit_holds"][0]["id"], hold["id"], "{doc}");
    assert_eq!(t["credit_holds"][0]["status"], "held");
    assert!(
        !t["audit_log"].as_array().unwrap().is_empty(),
        "the grant was audited"
    );
    assert_eq!(doc["payments"][0]["kind"], "invoice", "{doc}");
    assert!(!out.contains("acct_someone_else"), "only this account");
    // In words: rows per table.
    let (code, out, err) = run_cli(&env, &["accounts", "export", account]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("credit_lots") && out.contains("invoices"),
        "{out}"
    );
    // After an erasure the export shows what is left: ids and amounts, no e-mail.
    erase_json(&env, &["accounts", "erase", account, "--json"]).await;
    let (_, out, _) = run_cli(&env, &["accounts", "export", account, "--json"]).await;
    assert!(!out.contains(EMAIL), "{out}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["tables"]["erased_customers"][0]["customer"],
        customer.as_str()
    );
    assert_eq!(doc["tables"]["invoices"][0]["amount_paid"], 1000);
}
