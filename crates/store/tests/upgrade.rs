//! Upgrades: a database of the previous release's schema (version 8, built from the
//! embedded migrations, which are never edited once released) holding the data of
//! `fixtures/schema-8-data.sql` migrates to the current schema with every row intact,
//! readable and writable by the current code — on SQLite and PostgreSQL.

use sm_store::catalog::{ProductFilter, Ties};
use sm_store::objects::{CUSTOMERS, INVOICES};
use sm_store::testing::TestDb;

sm_store::contract_tests!(a_release_8_database_migrates_with_its_data_intact);

/// The last migration of the previous release.
const PREVIOUS: i64 = 8;

const FIXTURE: &str = include_str!("fixtures/schema-8-data.sql");

/// The fixture's statements: blank-line separated, comments dropped.
fn statements() -> Vec<String> {
    FIXTURE
        .split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| s.trim().trim_end_matches(';').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

async fn a_release_8_database_migrates_with_its_data_intact(_migrated: TestDb) {
    let db = TestDb::create(_migrated.store.backend(), false)
        .await
        .expect("a second database of the same backend");
    let s = &db.store;
    let applied = s.migrate_to(PREVIOUS).await.unwrap();
    assert_eq!(applied, (1..=PREVIOUS).collect::<Vec<_>>());
    for sql in statements() {
        sm_store::on_pool!(s, pool => sqlx::query(&sql)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap_or_else(|e| panic!("fixture statement failed: {e}\n{sql}")));
    }
    let pending: Vec<i64> = s
        .migration_status()
        .await
        .unwrap()
        .iter()
        .filter(|m| m.applied_at.is_none())
        .map(|m| m.version)
        .collect();
    assert!(!pending.is_empty(), "this release adds migrations");

    let applied = s.migrate().await.unwrap();
    assert_eq!(applied, pending, "exactly the pending ones, in order");
    assert!(s.is_migrated().await.unwrap());

    // The catalog, read as the API reads it.
    let all = s.list_products(ProductFilter::All).await.unwrap();
    assert_eq!(all.len(), 2);
    let pack = s.get_product("prod_fix").await.unwrap().expect("prod_fix");
    assert_eq!(
        (
            pack.name.as_str(),
            pack.credit_amount,
            pack.valid,
            pack.active
        ),
        ("Fixture pack", Some(10), true, true)
    );
    assert_eq!(
        pack.metadata.get("credit_amount").map(String::as_str),
        Some("10")
    );
    let price = pack.default_price().expect("its default price");
    assert_eq!(
        (price.unit_amount, price.currency.as_str()),
        (Some(500), "usd")
    );
    assert!(s.get_product("prod_gone").await.unwrap().unwrap().deleted);
    assert_eq!(s.catalog_version().await.unwrap(), 3);

    // Webhook events: the processed one and the dead letter, untouched.
    let failed = s.get_event("evt_fix_failed").await.unwrap().unwrap();
    assert_eq!((failed.status.as_str(), failed.attempts), ("failed", 8));
    assert_eq!(
        s.get_event("evt_fix_done").await.unwrap().unwrap().status,
        "processed"
    );

    // The ledger balances and says what it said.
    assert_eq!(s.credit_totals("acct_fix").await.unwrap(), (700, 700, 0));
    let entries = s.credit_entries("acct_fix", 10).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        s.account_for_customer("cus_fix").await.unwrap().as_deref(),
        Some("acct_fix")
    );
    assert_eq!(
        s.checkout("cs_fix").await.unwrap().unwrap().status,
        "complete"
    );

    // Mirrors, including the subscription that migration 9 gave a frame.
    let sub = s.subscription("sub_fix").await.unwrap().unwrap();
    assert_eq!(
        (sub.status.as_str(), sub.account.as_deref()),
        ("active", Some("acct_fix"))
    );
    assert!(s.get_object(&CUSTOMERS, "cus_fix").await.unwrap().is_some());
    assert_eq!(
        s.get_object(&INVOICES, "in_fix")
            .await
            .unwrap()
            .unwrap()
            .version,
        1_700_000_100
    );

    // Operators, tokens, the audit log.
    let admin = s.admin_by_email("ops@example.com").await.unwrap();
    assert_eq!(
        admin.map(|a| a.disabled_at),
        Some(None),
        "an admin from before disabling existed is active"
    );
    assert_eq!(
        s.token_by_hash("hash-fix").await.unwrap().unwrap().name,
        "fixture"
    );
    assert_eq!(s.audit_log(None, 10).await.unwrap().len(), 1);

    // And the current writer works on the migrated rows: a newer subscription state
    // keeps the account it had.
    let mut newer = sub.clone();
    newer.status = "past_due".into();
    newer.account = None;
    newer.event_created += 10;
    newer.raw = r#"{"id":"sub_fix","status":"past_due"}"#.into();
    let mut tx = s.begin().await.unwrap();
    let counts = tx
        .upsert_subscriptions(std::slice::from_ref(&newer), Ties::Reject)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counts.updated, 1);
    let sub = s.subscription("sub_fix").await.unwrap().unwrap();
    assert_eq!(
        (sub.status.as_str(), sub.account.as_deref()),
        ("past_due", Some("acct_fix"))
    );
}
