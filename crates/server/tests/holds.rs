//! Holds (issue #23, item 1) on SQLite and PostgreSQL through the real HTTP API:
//! reserve, capture part and release the rest, release, expiry by the service, a lot
//! that expires while held, the refusals, and two instances capturing and releasing the
//! same holds at once.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    a_hold_reserves_credits_until_captured_in_part,
    released_and_expired_holds_free_their_credits,
    a_lot_that_expires_while_held_is_replaced_by_other_lots_or_refused,
    holds_check_their_input_keys_and_scopes,
    two_instances_capture_and_release_each_hold_once,
    grouped_consumptions_and_deductions_leave_what_is_held,
);

fn holds_url(app: &TestApp, account: &str) -> String {
    app.url(&format!("/api/v1/accounts/{account}/credits/holds"))
}

async fn hold(app: &TestApp, account: &str, body: Value) -> (u16, Value) {
    post_json(&holds_url(app, account), body).await
}

async fn act(app: &TestApp, account: &str, id: &str, action: &str, body: Value) -> (u16, Value) {
    post_json(&format!("{}/{id}/{action}", holds_url(app, account)), body).await
}

async fn consume(app: &TestApp, account: &str, amount: &str, key: &str) -> (u16, Value) {
    post_json(
        &app.url(&format!("/api/v1/accounts/{account}/credits/consume")),
        json!({"amount": amount, "idempotency_key": key}),
    )
    .await
}

async fn start(db: &TestDb) -> (fake_stripe::FakeStripe, TestApp) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, db).await;
    (fake, app)
}

/// 100 credits; a hold of 40 leaves 60 to spend: a consumption of 70 is refused (10
/// short), one of 60 goes through, another hold is refused. Capturing 25 spends 25 as
/// one consumption (the journal names the hold) and releases 15; a second capture
/// answers the first's result; a release after it is `409 hold_captured`.
async fn a_hold_reserves_credits_until_captured_in_part(db: TestDb) {
    let (_fake, app) = start(&db).await;
    let account = "acct_hold";
    grant_credits(&app, account, 100).await;
    let (status, h) = hold(
        &app,
        account,
        json!({"amount": "40", "idempotency_key": "job-1", "description": "render #1"}),
    )
    .await;
    assert_eq!(status, 201, "{h}");
    assert_eq!(
        (h["status"].as_str(), h["amount"].as_str()),
        (Some("held"), Some("40.00"))
    );
    let id = h["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("hold_"), "{id}");
    assert_eq!(
        h["expires_at"].as_i64().unwrap() - h["created_at"].as_i64().unwrap(),
        900,
        "{h}"
    );
    let b = app.credits(account).await;
    assert_eq!(
        (b["available"].as_str(), b["held"].as_str()),
        (Some("100.00"), Some("40.00")),
        "{b}"
    );

    let (status, refused) = consume(&app, account, "70", "c1").await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(refused["shortfall"], "10.00", "{refused}");
    let (status, done) = consume(&app, account, "60", "c2").await;
    assert_eq!(status, 200, "{done}");
    let (status, refused) = hold(
        &app,
        account,
        json!({"amount": "0.01", "idempotency_key": "job-2"}),
    )
    .await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(refused["error"]["code"], "insufficient_credits");

    let (status, captured) = act(&app, account, &id, "capture", json!({"amount": "25"})).await;
    assert_eq!(status, 200, "{captured}");
    assert_eq!(
        (
            captured["status"].as_str(),
            captured["captured"].as_str(),
            captured["balance"].as_str()
        ),
        (Some("captured"), Some("25.00"), Some("15.00")),
        "{captured}"
    );
    assert_eq!(captured["replayed"], false);
    let (status, again) = act(&app, account, &id, "capture", json!({})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["captured"].as_str(), again["replayed"].as_bool()),
        (Some("25.00"), Some(true))
    );
    let (status, late) = act(&app, account, &id, "release", json!({})).await;
    assert_eq!(status, 409, "{late}");
    assert_eq!(late["error"]["code"], "hold_captured");

    let b = app.credits(account).await;
    assert_eq!(
        (b["available"].as_str(), b["held"].as_str()),
        (Some("15.00"), Some("0.00")),
        "{b}"
    );
    let (_, history) =
        get_json(&app.url(&format!("/api/v1/accounts/{account}/credits/history"))).await;
    let spent: Vec<&Value> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ref"] == id.as_str())
        .collect();
    assert_eq!(spent.len(), 1, "{history}");
    assert_eq!(
        (spent[0]["kind"].as_str(), spent[0]["amount"].as_str()),
        (Some("consume"), Some("-25.00"))
    );
    assert_eq!(spent[0]["description"], "render #1");
    let (status, shown) = get_json(&format!("{}/{id}", holds_url(&app, account))).await;
    assert_eq!(
        (status, shown["status"].as_str()),
        (200, Some("captured")),
        "{shown}"
    );
    app.assert_ledger_balanced(account).await;

    // The operator's view: `credits holds ACCOUNT [--all]`.
    let env = env_for(None, &db);
    let (code, out, err) = run_cli(&env, &["credits", "holds", account, "--all"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&id) && out.contains("captured") && out.contains("25.00"),
        "{out}"
    );
    let (code, out, _) = run_cli(&env, &["credits", "holds", account]).await;
    assert_eq!((code, out.trim()), (0, "no open holds for acct_hold"));
    let (code, out, _) = run_cli(&env, &["credits", "balance", account]).await;
    assert!(code == 0 && out.contains("0.00 held"), "{out}");
}

/// A released hold frees its credits at once; a second release answers the first; a
/// capture after it is `409 hold_released`. A hold left alone is `expired` from its
/// `expires_at` on (its credits free, a capture `409 hold_expired`), and the service
/// records the expiry by itself. Unknown holds, and another account's, are `404`.
async fn released_and_expired_holds_free_their_credits(db: TestDb) {
    let (_fake, app) = start(&db).await;
    let account = "acct_hold_free";
    grant_credits(&app, account, 50).await;
    let (_, short) = hold(
        &app,
        account,
        json!({"amount": "30", "idempotency_key": "short", "ttl_seconds": 3}),
    )
    .await;
    let (_, long) = hold(
        &app,
        account,
        json!({"amount": "20", "idempotency_key": "long"}),
    )
    .await;
    let (short, long) = (short["id"].as_str().unwrap(), long["id"].as_str().unwrap());
    assert_eq!(app.credits(account).await["held"], "50.00");

    let (status, released) = act(&app, account, long, "release", json!({})).await;
    assert_eq!(
        (status, released["status"].as_str()),
        (200, Some("released")),
        "{released}"
    );
    let (status, again) = act(&app, account, long, "release", json!({})).await;
    assert_eq!(
        (status, again["replayed"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    let (status, late) = act(&app, account, long, "capture", json!({})).await;
    assert_eq!(
        (status, late["error"]["code"].as_str()),
        (409, Some("hold_released")),
        "{late}"
    );

    // The short hold expires: its credits are free from its expires_at on.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(app.credits(account).await["held"], "0.00");
    let (status, late) = act(&app, account, short, "capture", json!({})).await;
    assert_eq!(
        (status, late["error"]["code"].as_str()),
        (409, Some("hold_expired")),
        "{late}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = db.store.hold(account, short).await.unwrap().unwrap();
        if row.status == "expired" {
            assert!(row.settled_at.is_some());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service never expired {short}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, open) = get_json(&holds_url(&app, account)).await;
    assert_eq!(
        (status, open["data"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{open}"
    );
    let (_, all) = get_json(&format!("{}?status=all", holds_url(&app, account))).await;
    let mut statuses: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["expired", "released"], "{all}");
    let (status, c) = consume(&app, account, "50", "all").await;
    assert_eq!(status, 200, "{c}");

    let (status, missing) = act(&app, account, "hold_nope", "capture", json!({})).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("hold_not_found"))
    );
    let (status, _) = get_json(&format!("{}/{short}", holds_url(&app, "acct_someone_else"))).await;
    assert_eq!(status, 404);
    let (status, _) = act(&app, "acct_someone_else", short, "release", json!({})).await;
    assert_eq!(status, 404);
    app.assert_ledger_balanced(account).await;
}

/// 50 promotional credits expiring in two seconds and 20 of an operator's: a hold of 60
/// fits. After the promotional lot expires only 20 remain: capturing 60 is `402` (40
/// short) and leaves the hold open; capturing 20 takes them from the other lot.
async fn a_lot_that_expires_while_held_is_replaced_by_other_lots_or_refused(db: TestDb) {
    let (_fake, app) = start(&db).await;
    let account = "acct_hold_expiring_lot";
    let (status, g) = post_json(
        &app.url(&format!("/api/v1/accounts/{account}/credits/grants")),
        json!({"amount": "50", "idempotency_key": "promo", "reason": "trial",
               "expires_at": unix_now() + 2}),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    grant_credits(&app, account, 20).await;
    let (status, h) = hold(
        &app,
        account,
        json!({"amount": "60", "idempotency_key": "job"}),
    )
    .await;
    assert_eq!(status, 201, "{h}");
    let id = h["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, short) = act(&app, account, id, "capture", json!({})).await;
    assert_eq!(status, 402, "{short}");
    assert_eq!(short["shortfall"], "40.00", "{short}");
    let (_, shown) = get_json(&format!("{}/{id}", holds_url(&app, account))).await;
    assert_eq!(shown["status"], "held", "{shown}");
    let (status, captured) = act(&app, account, id, "capture", json!({"amount": "20"})).await;
    assert_eq!(status, 200, "{captured}");
    assert_eq!(captured["balance"], "0.00", "{captured}");
    let b = app.credits(account).await;
    assert_eq!(
        (b["available"].as_str(), b["expired"].as_str()),
        (Some("0.00"), Some("50.00")),
        "{b}"
    );
    app.assert_ledger_balanced(account).await;
}

/// Bad bodies are `400` naming the field and store nothing; the same key with the same
/// body answers the first hold (`200`, `replayed`), with another body `409`; a capture
/// above the held amount is `400`; a read-only token cannot hold.
async fn holds_check_their_input_keys_and_scopes(db: TestDb) {
    let (_fake, app) = start(&db).await;
    let account = "acct_hold_input";
    grant_credits(&app, account, 10).await;
    for (bad, names) in [
        (
            json!({"amount": "1", "idempotency_key": "k", "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            json!({"amount": "1", "idempotency_key": "k", "ttl_seconds": 86_401}),
            "ttl_seconds",
        ),
        (json!({"amount": "0", "idempotency_key": "k"}), "amount"),
        (json!({"amount": "-1", "idempotency_key": "k"}), "amount"),
        (
            json!({"amount": "1", "idempotency_key": ""}),
            "idempotency_key",
        ),
        (
            json!({"amount": "1", "idempotency_key": "k", "colour": "red"}),
            "colour",
        ),
        (json!({"amount": "1"}), "idempotency_key"),
    ] {
        let (status, answer) = hold(&app, account, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(names),
            "{bad}: {answer}"
        );
    }
    let (status, _) = hold(
        &app,
        "bad/account",
        json!({"amount": "1", "idempotency_key": "k"}),
    )
    .await;
    assert!(status == 400 || status == 404, "{status}");
    assert_eq!(app.credits(account).await["held"], "0.00");

    let body = json!({"amount": "4", "idempotency_key": "same", "ttl_seconds": 60});
    let (status, first) = hold(&app, account, body.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = hold(&app, account, body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["id"].clone(), again["replayed"].as_bool()),
        (first["id"].clone(), Some(true))
    );
    let (status, other) = hold(
        &app,
        account,
        json!({"amount": "5", "idempotency_key": "same", "ttl_seconds": 60}),
    )
    .await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused")),
        "{other}"
    );
    assert_eq!(app.credits(account).await["held"], "4.00");
    let id = first["id"].as_str().unwrap();
    let (status, over) = act(&app, account, id, "capture", json!({"amount": "4.01"})).await;
    assert_eq!(status, 400, "{over}");
    let (status, bad) = act(&app, account, id, "capture", json!({"amount": 4})).await;
    assert_eq!(status, 400, "{bad}");
    // No body at all captures everything.
    let done = http()
        .post(format!("{}/{id}/capture", holds_url(&app, account)))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["captured"], "4.00", "{done}");
    let (status, _) = get_json(&format!("{}?limit=0", holds_url(&app, account))).await;
    assert_eq!(status, 400);
    let (status, _) = get_json(&format!("{}?status=open", holds_url(&app, account))).await;
    assert_eq!(status, 400);

    let reader = grant_token(&app.state.store, "reader", "credits:read").await;
    let status = http()
        .post(holds_url(&app, account))
        .bearer_auth(&reader)
        .json(&json!({"amount": "1", "idempotency_key": "r"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 403);
    let status = get_status(&holds_url(&app, account), &reader).await;
    assert_eq!(status, 200);
}

/// Two servers on one database, 12 holds of 5 on an account of 100: each hold gets
/// captures (of 3) and releases from both servers at once, three of each. Every hold
/// ends captured or released, never both: when one capture won, every capture answered
/// 3 and every release `409`; when a release won, every capture `409`. The journal
/// spends 3 per captured hold, once.
async fn two_instances_capture_and_release_each_hold_once(db: TestDb) {
    let (fake, app) = start(&db).await;
    let other = quiet_app(&fake, &db).await;
    let account = "acct_hold_race";
    grant_credits(&app, account, 100).await;
    let mut ids = Vec::new();
    for k in 0..12 {
        let server = if k % 2 == 0 { &app } else { &other };
        let (status, h) = hold(
            server,
            account,
            json!({"amount": "5", "idempotency_key": format!("h{k}")}),
        )
        .await;
        assert_eq!(status, 201, "{h}");
        ids.push(h["id"].as_str().unwrap().to_owned());
    }
    let calls = ids.iter().flat_map(|id| {
        [
            (&app, "capture"),
            (&other, "release"),
            (&other, "capture"),
            (&app, "release"),
            (&app, "capture"),
            (&other, "release"),
        ]
        .map(move |(server, action)| (id.clone(), server, action))
    });
    let answers = futures_util::future::join_all(calls.map(|(id, server, action)| async move {
        let (status, body) = act(server, account, &id, action, json!({"amount": "3"})).await;
        (id, action, status, body)
    }))
    .await;
    let mut captured = 0;
    for id in &ids {
        let mine: Vec<_> = answers.iter().filter(|(i, ..)| i == id).collect();
        let captures_ok = mine
            .iter()
            .filter(|(_, a, s, _)| *a == "capture" && *s == 200)
            .count();
        let releases_ok = mine
            .iter()
            .filter(|(_, a, s, _)| *a == "release" && *s == 200)
            .count();
        assert!(
            (captures_ok == 3 && releases_ok == 0) || (captures_ok == 0 && releases_ok == 3),
            "{id}: {mine:?}"
        );
        for (_, action, status, body) in &mine {
            match (*action, *status) {
                ("capture", 200) => assert_eq!(body["captured"], "3.00", "{body}"),
                ("release", 200) => assert_eq!(body["status"], "released", "{body}"),
                (_, 409) => {}
                other => panic!("{id}: unexpected {other:?}: {body}"),
            }
        }
        let first_wins = mine
            .iter()
            .filter(|(_, _, s, b)| *s == 200 && b["replayed"] == false)
            .count();
        assert_eq!(first_wins, 1, "{id}: {mine:?}");
        if captures_ok == 3 {
            captured += 1;
        }
    }
    let b = app.credits(account).await;
    assert_eq!(b["held"], "0.00", "{b}");
    assert_eq!(b["available"], format!("{}.00", 100 - 3 * captured), "{b}");
    let entries = db.store.credit_entries(account, 1000).await.unwrap();
    for id in &ids {
        let spent: i64 = entries
            .iter()
            .filter(|e| &e.reference == id)
            .map(|e| e.amount)
            .sum();
        let row = db.store.hold(account, id).await.unwrap().unwrap();
        let expected = if row.status == "captured" { -300 } else { 0 };
        assert_eq!(spent, expected, "{id} is {}", row.status);
    }
    app.assert_ledger_balanced(account).await;
    other.stop().await;
}

/// 100 credits, 50 held: 30 consumptions of 5 sent at once to two servers (so they meet
/// in groups) spend exactly the 50 that are free — 10 go through, 20 are `402` — and an
/// operator's deduction is refused too; once the hold is released it goes through.
async fn grouped_consumptions_and_deductions_leave_what_is_held(db: TestDb) {
    let (fake, app) = start(&db).await;
    let other = quiet_app(&fake, &db).await;
    let account = "acct_hold_groups";
    grant_credits(&app, account, 100).await;
    let (status, h) = hold(
        &app,
        account,
        json!({"amount": "50", "idempotency_key": "big"}),
    )
    .await;
    assert_eq!(status, 201, "{h}");
    let answers = futures_util::future::join_all((0..30).map(|i| {
        let server = if i % 2 == 0 { &app } else { &other };
        async move { consume(server, account, "5", &format!("c{i}")).await }
    }))
    .await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused = answers.iter().filter(|(s, _)| *s == 402).count();
    assert_eq!((ok, refused), (10, 20), "{answers:?}");
    let b = app.credits(account).await;
    assert_eq!(
        (b["available"].as_str(), b["held"].as_str()),
        (Some("50.00"), Some("50.00")),
        "{b}"
    );
    let deduct = |amount: i64| {
        let ledger = app.state.ledger.clone();
        async move {
            ledger
                .adjust(
                    account,
                    &stripe_manager::credits::AdjustRequest {
                        kind: stripe_manager::credits::Adjustment::Deduct,
                        amount: sm_domain::credits::Credits::whole(amount),
                        reason: "test",
                        actor: "test",
                        origin: "test",
                    },
                    unix_now(),
                )
                .await
        }
    };
    assert!(matches!(
        deduct(1).await,
        Err(stripe_manager::credits::LedgerError::Insufficient { .. })
    ));
    let id = h["id"].as_str().unwrap();
    let (status, _) = act(&app, account, id, "release", json!({})).await;
    assert_eq!(status, 200);
    deduct(1)
        .await
        .expect("the released credits can be deducted");
    assert_eq!(app.credits(account).await["available"], "49.00");
    app.assert_ledger_balanced(account).await;
    other.stop().await;
}
