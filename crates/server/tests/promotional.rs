//! Promotional grants from the app (issue #23, item 2), on SQLite and PostgreSQL through
//! the real HTTP API: `POST /api/v1/accounts/{account}/credits/grants` (scope
//! `credits:grant`), spent before paid credits of the same or a later expiry, never
//! taken back by a refund, once per idempotency key; and `credits grant --promotional
//! --expires` in the CLI.

mod common;

use common::shop::*;
use common::*;
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    promotional_credits_are_spent_first_and_never_refunded,
    a_promotional_grant_happens_once_per_key_and_needs_its_scope,
    the_cli_grants_promotional_credits_that_expire,
    two_instances_grant_each_key_once,
);

async fn grant(shop: &Shop, account: &str, body: Value) -> (u16, Value) {
    post_json(
        &shop
            .app
            .url(&format!("/api/v1/accounts/{account}/credits/grants")),
        body,
    )
    .await
}

/// 50 promotional credits and a pack of 100: a consumption of 30 takes the promotional
/// ones first; the pack refunded in full takes back its own 100 and leaves the 20
/// promotional ones (a refund never takes them, and made no debt here).
async fn promotional_credits_are_spent_first_and_never_refunded(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_promo";
    let (status, granted) = grant(
        &shop,
        account,
        json!({"amount": "50", "idempotency_key": "signup", "reason": "sign-up bonus",
               "expires_at": now() + 10 * DAY}),
    )
    .await;
    assert_eq!(status, 201, "{granted}");
    assert_eq!(granted["balance"], "50.00");
    assert_eq!(granted["replayed"], false);
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    shop.deliver_all().await;
    shop.consume(account, "30").await;
    let b = shop.balance(account).await;
    assert_eq!(b["promotional"], "20.00", "{b}");
    assert_eq!(b["pay_as_you_go"], "100.00", "{b}");
    shop.refund(&pi, 1000);
    shop.deliver_all().await;
    let b = shop.balance(account).await;
    assert_eq!(
        (
            b["available"].as_str(),
            b["debt"].as_str(),
            b["promotional"].as_str()
        ),
        (Some("20.00"), Some("0.00"), Some("20.00")),
        "{b}"
    );
    // Spent past the pack: the refund's take-back becomes debt, the promotional lot
    // stays whole.
    let account = "acct_promo_spent";
    grant(
        &shop,
        account,
        json!({"amount": "50", "idempotency_key": "signup", "reason": "sign-up bonus"}),
    )
    .await;
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    shop.deliver_all().await;
    shop.consume(account, "120").await;
    shop.refund(&pi, 1000);
    shop.deliver_all().await;
    let b = shop.balance(account).await;
    assert_eq!(
        (b["available"].as_str(), b["debt"].as_str()),
        (Some("0.00"), Some("70.00")),
        "{b}"
    );
    shop.assert_balanced(account).await;
}

/// The same key with the same body answers the first grant (200, `replayed`); with
/// another amount it is `409 idempotency_key_reused`; a token without `credits:grant`
/// (one that may spend, `credits:write`) is refused; a past expiry is a 400.
async fn a_promotional_grant_happens_once_per_key_and_needs_its_scope(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_promo_once";
    let body = json!({"amount": "25", "idempotency_key": "campaign-7", "reason": "campaign 7"});
    let (status, first) = grant(&shop, account, body.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = grant(&shop, account, body.clone()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["replayed"], true);
    assert_eq!(again["lot"], first["lot"]);
    let (status, other) = grant(
        &shop,
        account,
        json!({"amount": "26", "idempotency_key": "campaign-7", "reason": "campaign 7"}),
    )
    .await;
    assert_eq!(status, 409, "{other}");
    assert_eq!(other["error"]["code"], "idempotency_key_reused");
    assert_eq!(shop.balance(account).await["available"], "25.00");
    for bad in [
        json!({"amount": "5", "idempotency_key": "k", "reason": "r", "expires_at": now() - 1}),
        json!({"amount": "0", "idempotency_key": "k", "reason": "r"}),
        json!({"amount": "5", "idempotency_key": "k", "reason": " "}),
        json!({"amount": 5, "idempotency_key": "k", "reason": "r"}),
    ] {
        let (status, answer) = grant(&shop, account, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    let spender = grant_token(&shop.app.state.store, "spender", "credits:write").await;
    let status = http()
        .post(
            shop.app
                .url(&format!("/api/v1/accounts/{account}/credits/grants")),
        )
        .bearer_auth(&spender)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 403);
    let granter = grant_token(&shop.app.state.store, "granter", "credits:grant").await;
    let status = http()
        .post(
            shop.app
                .url(&format!("/api/v1/accounts/{account}/credits/grants")),
        )
        .bearer_auth(&granter)
        .json(&json!({"amount": "5", "idempotency_key": "by-granter", "reason": "r"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 201);
}

/// `credits grant --promotional --expires DATE`: a promotional lot that expires then;
/// `--expires` alone is refused (operator grants never expire).
async fn the_cli_grants_promotional_credits_that_expire(db: TestDb) {
    let env = env_for(None, &db);
    let (code, out, err) = run_cli(
        &env,
        &[
            "credits",
            "grant",
            "acct_cli_promo",
            "15",
            "--reason",
            "apology",
            "--promotional",
            "--expires",
            "2030-01-31",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["amount"], "15.00", "{done}");
    assert_eq!(done["expires_at"], 1_896_048_000_i64, "{done}");
    let lots = db.store.credit_lots("acct_cli_promo").await.unwrap();
    assert_eq!(lots.len(), 1);
    assert_eq!(lots[0].source, "promotional");
    let (code, _, err) = run_cli(
        &env,
        &[
            "credits",
            "grant",
            "acct_cli_promo",
            "15",
            "--reason",
            "x",
            "--expires",
            "2099-01-31",
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_cli(
        &env,
        &[
            "credits",
            "grant",
            "acct_cli_promo",
            "15",
            "--reason",
            "x",
            "--promotional",
            "--expires",
            "someday",
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("someday"), "{err}");
}

/// Exactly once on any number of instances: 20 keys, each sent three times to each of
/// two servers on one database at once: 20 lots, 20 × 5 credits, every answer naming
/// its key's one lot.
async fn two_instances_grant_each_key_once(db: TestDb) {
    let shop = shop(&db).await;
    let other = quiet_app(&shop.fake, &db).await;
    let account = "acct_promo_race";
    let requests = (0..20).flat_map(|k| {
        [&shop.app, &other, &shop.app, &other, &shop.app, &other].map(|app| (app, k))
    });
    let answers = futures_util::future::join_all(requests.map(|(app, k)| async move {
        let (status, body) = post_json(
            &app.url(&format!("/api/v1/accounts/{account}/credits/grants")),
            json!({"amount": "5", "idempotency_key": format!("k{k}"), "reason": "race"}),
        )
        .await;
        assert!(status == 201 || status == 200, "{status}: {body}");
        (k, body["lot"].as_i64().unwrap())
    }))
    .await;
    for k in 0..20 {
        let lots: std::collections::HashSet<i64> = answers
            .iter()
            .filter(|(key, _)| *key == k)
            .map(|(_, lot)| *lot)
            .collect();
        assert_eq!(lots.len(), 1, "key k{k}: {lots:?}");
    }
    let b = shop.balance(account).await;
    assert_eq!(b["promotional"], "100.00", "{b}");
    assert_eq!(b["lots"].as_array().unwrap().len(), 20);
    shop.assert_balanced(account).await;
    other.stop().await;
}
