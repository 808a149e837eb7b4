//! The generic object pipeline under two writers at once (two instances on PostgreSQL;
//! on SQLite the second waits for the first's write lock): what the guard and the
//! account link promise when transactions overlap.

use std::time::Duration;

use sm_store::catalog::Ties;
use sm_store::credits::SubscriptionRow;
use sm_store::objects::{CUSTOMERS, Cell, ObjectWrite};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    a_new_id_written_by_two_transactions_at_one_version_is_a_tie_for_the_later,
    a_subscription_and_its_customer_written_at_once_end_linked,
    an_erasure_racing_a_mirror_write_leaves_no_personal_data,
);

/// Issue #27 (found by its review): a mirror write that looked its customer up before an
/// erasure committed stored its personal data after it (PostgreSQL, READ COMMITTED).
/// The erasure now waits for such a writer (an advisory lock per customer; on SQLite,
/// the write lock) and then redacts what it wrote.
async fn an_erasure_racing_a_mirror_write_leaves_no_personal_data(db: TestDb) {
    let store = db.store.clone();
    let mut writer = store.begin().await.unwrap();
    writer
        .upsert_objects(
            &CUSTOMERS,
            &[customer("cus_erase_race", 100, "person@example.com", None)],
            Ties::Reject,
            1,
        )
        .await
        .unwrap();
    let eraser = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let erasure = sm_store::privacy::Erasure {
                by: "cli:test",
                reason: "erase",
                deleted_at: None,
                now: 2,
            };
            tx.erase_customers(&["cus_erase_race".to_owned()], None, erasure)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        })
    };
    // The erasure starts while the write is still open, then the write commits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.commit().await.unwrap();
    eraser.await.unwrap();
    let stored = store
        .get_object(&CUSTOMERS, "cus_erase_race")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored.raw.contains("person@example.com"),
        "the racing write kept its personal data: {}",
        stored.raw
    );
}

fn customer(id: &str, version: i64, email: &str, account: Option<&str>) -> ObjectWrite {
    ObjectWrite {
        id: id.into(),
        version,
        deleted: false,
        cells: vec![
            Cell::Text(account.map(str::to_owned)),
            Cell::Text(Some(email.into())),
            Cell::Text(None),
            Cell::Bool(false),
            Cell::Int(Some(version)),
        ],
        raw: format!(r#"{{"id":"{id}","email":"{email}"}}"#),
    }
}

/// Neither transaction sees the other's row when it reads; the later insert meets the
/// earlier one in `ON CONFLICT`, whose guard refuses it — and it must be reported as a
/// tie (so the event is refetched), not as created.
async fn a_new_id_written_by_two_transactions_at_one_version_is_a_tie_for_the_later(db: TestDb) {
    let store = db.store.clone();
    let mut first = store.begin().await.unwrap();
    let c = first
        .upsert_objects(
            &CUSTOMERS,
            &[customer("cus_race", 100, "a@example.com", None)],
            Ties::Reject,
            1,
        )
        .await
        .unwrap();
    assert_eq!(c.created, 1);
    let second = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let c = tx
                .upsert_objects(
                    &CUSTOMERS,
                    &[customer("cus_race", 100, "b@example.com", None)],
                    Ties::Reject,
                    2,
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
            c
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.commit().await.unwrap();
    let c = second.await.unwrap();
    assert_eq!(
        (c.created, c.ties),
        (0, 1),
        "the later write is a tie to settle: {c:?}"
    );
    let stored = store
        .get_object(&CUSTOMERS, "cus_race")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.raw.contains("a@example.com"),
        "the first stays until a refetch"
    );
}

fn subscription(id: &str, customer: &str) -> SubscriptionRow {
    SubscriptionRow {
        id: id.into(),
        account: None,
        customer: customer.into(),
        status: "active".into(),
        price: None,
        product: None,
        quantity: Some(1),
        current_period_start: Some(1),
        current_period_end: Some(2),
        cancel_at_period_end: false,
        canceled_at: None,
        event_created: 100,
        raw: format!(r#"{{"id":"{id}"}}"#),
        updated_at: 1,
    }
}

/// A subscription without an account and its customer (whose `metadata.account` names
/// one) written in overlapping transactions, in both orders: the subscription ends
/// linked either way.
async fn a_subscription_and_its_customer_written_at_once_end_linked(db: TestDb) {
    let store = db.store.clone();
    for (n, subscription_first) in [(1, true), (2, false)] {
        let (cus, sub) = (format!("cus_link{n}"), format!("sub_link{n}"));
        let mut first = store.begin().await.unwrap();
        if subscription_first {
            first
                .upsert_subscriptions(&[subscription(&sub, &cus)], Ties::Reject)
                .await
                .unwrap();
        } else {
            first
                .upsert_objects(
                    &CUSTOMERS,
                    &[customer(&cus, 100, "c@example.com", Some("acct_linked"))],
                    Ties::Reject,
                    1,
                )
                .await
                .unwrap();
            first.adopt_subscriptions(&[cus.as_str()]).await.unwrap();
        }
        let second = {
            let (store, cus, sub) = (store.clone(), cus.clone(), sub.clone());
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                if subscription_first {
                    tx.upsert_objects(
                        &CUSTOMERS,
                        &[customer(&cus, 100, "c@example.com", Some("acct_linked"))],
                        Ties::Reject,
                        1,
                    )
                    .await
                    .unwrap();
                    tx.adopt_subscriptions(&[cus.as_str()]).await.unwrap();
                } else {
                    tx.upsert_subscriptions(&[subscription(&sub, &cus)], Ties::Reject)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.commit().await.unwrap();
        second.await.unwrap();
        let row = store.subscription(&sub).await.unwrap().unwrap();
        assert_eq!(
            row.account.as_deref(),
            Some("acct_linked"),
            "subscription first: {subscription_first}"
        );
    }
}
