//! The statements of a consumption group (`Tx::lock_accounts` … `insert_consumptions`),
//! called directly on both backends: on PostgreSQL they run over arrays and planned per
//! execution, on SQLite over lists of `$n`, and the consumer falls back to the single
//! path when a group fails, so only a test of the statements themselves shows that they
//! work. NULLs (lot, description, actor), a key asked twice, a lot named twice, a key
//! recorded twice and the journal's order are covered.

use sm_store::credits::{NewConsumption, NewEntry, NewLot};
use sm_store::testing::TestDb;
use sm_store::{Store, StoreError};

sm_store::contract_tests!(
    a_groups_statements_read_and_write_each_row_as_given,
    a_lot_named_twice_or_missing_is_refused,
);

const NOW: i64 = 1_700_000_000;

async fn grant(store: &Store, account: &str, amount: i64) -> i64 {
    let mut tx = store.begin().await.unwrap();
    tx.lock_account(account, NOW).await.unwrap();
    let lot = NewLot {
        account: account.into(),
        source_ref: format!("test:{account}"),
        amount,
        ..Default::default()
    };
    let id = tx.insert_lot(&lot, NOW).await.unwrap().expect("a new lot");
    tx.commit().await.unwrap();
    id
}

async fn a_groups_statements_read_and_write_each_row_as_given(db: TestDb) {
    let s = &db.store;
    let lot_a = grant(s, "acct_a", 100).await;
    let lot_b = grant(s, "acct_b", 50).await;

    let mut tx = s.begin().await.unwrap();
    tx.plan_each_statement().await.unwrap();
    // Existing accounts are locked, a missing one created (and reported).
    let created = tx
        .lock_accounts(&["acct_b", "acct_a", "acct_new"], NOW)
        .await
        .unwrap();
    assert_eq!(created, vec!["acct_new".to_owned()]);
    tx.forget_new_accounts(&["acct_new"]).await.unwrap();
    // A key asked twice that nobody recorded: nothing.
    assert!(
        tx.find_consumptions(&[("acct_a", "k1"), ("acct_a", "k1")])
            .await
            .unwrap()
            .is_empty()
    );
    let lots = tx.open_lots_of(&["acct_a", "acct_b"]).await.unwrap();
    assert_eq!(
        lots.iter().map(|l| (l.id, l.remaining)).collect::<Vec<_>>(),
        vec![(lot_a, 100), (lot_b, 50)]
    );
    tx.take_from_lots(&[(lot_a, 30), (lot_b, 5)]).await.unwrap();
    let entries = [
        NewEntry {
            account: "acct_a",
            lot: Some(lot_a),
            kind: "consume",
            amount: -30,
            reference: "k1",
            description: Some("first"),
            ..Default::default()
        },
        NewEntry {
            account: "acct_b",
            lot: Some(lot_b),
            kind: "consume",
            amount: -5,
            reference: "k2",
            ..Default::default()
        },
        // A free consumption: no lot.
        NewEntry {
            account: "acct_b",
            kind: "consume",
            reference: "k3",
            actor: Some("someone"),
            ..Default::default()
        },
    ];
    tx.insert_entries(&entries, NOW).await.unwrap();
    let records = [
        NewConsumption {
            account: "acct_a",
            key: "k1",
            request_hash: "h1",
            amount: 30,
            description: Some("first"),
            balance_after: 70,
        },
        NewConsumption {
            account: "acct_b",
            key: "k2",
            request_hash: "h2",
            amount: 5,
            description: None,
            balance_after: 45,
        },
    ];
    assert_eq!(tx.insert_consumptions(&records, NOW).await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert!(s.account("acct_new").await.unwrap().is_none());

    let mut tx = s.begin().await.unwrap();
    tx.plan_each_statement().await.unwrap();
    // Recorded keys come back with their rows; an unknown key is not an error.
    let mut found = tx
        .find_consumptions(&[("acct_a", "k1"), ("acct_b", "k2"), ("acct_b", "nope")])
        .await
        .unwrap();
    found.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    let found: Vec<_> = found
        .into_iter()
        .map(|(a, k, r)| {
            (
                a,
                k,
                r.request_hash,
                r.amount,
                r.description,
                r.balance_after,
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "acct_a".into(),
                "k1".into(),
                "h1".into(),
                30,
                Some("first".into()),
                70
            ),
            ("acct_b".into(), "k2".into(), "h2".into(), 5, None, 45),
        ]
    );
    // A key recorded before is left as it was and not counted.
    let again = [NewConsumption {
        request_hash: "other",
        ..records[0].clone()
    }];
    assert_eq!(tx.insert_consumptions(&again, NOW).await.unwrap(), 0);
    let lots = tx.open_lots_of(&["acct_a", "acct_b"]).await.unwrap();
    assert_eq!(
        lots.iter().map(|l| l.remaining).collect::<Vec<_>>(),
        vec![70, 45]
    );
    drop(tx);

    // The journal, in the group's order, NULLs kept.
    let b = s.credit_entries("acct_b", 10).await.unwrap();
    let b: Vec<_> = b
        .iter()
        .filter(|e| e.kind == "consume")
        .map(|e| {
            (
                e.lot,
                e.amount,
                e.reference.as_str(),
                e.description.as_deref(),
                e.actor.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        b,
        vec![
            (None, 0, "k3", None, Some("someone")),
            (Some(lot_b), -5, "k2", None, None),
        ]
    );
    let a = s.credit_entries("acct_a", 10).await.unwrap();
    assert_eq!(a[0].description.as_deref(), Some("first"));
}

async fn a_lot_named_twice_or_missing_is_refused(db: TestDb) {
    let s = &db.store;
    let lot = grant(s, "acct_t", 10).await;
    for takes in [vec![(lot, 1), (lot, 1)], vec![(lot, 1), (lot + 1000, 1)]] {
        let mut tx = s.begin().await.unwrap();
        tx.plan_each_statement().await.unwrap();
        tx.lock_accounts(&["acct_t"], NOW).await.unwrap();
        let err = tx.take_from_lots(&takes).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{takes:?}: {err}");
        // Dropped: rolled back.
    }
    let mut tx = s.begin().await.unwrap();
    // More than a lot holds: the database's check refuses it.
    assert!(tx.take_from_lots(&[(lot, 11)]).await.is_err());
    drop(tx);
    let lots = s
        .begin()
        .await
        .unwrap()
        .open_lots_of(&["acct_t"])
        .await
        .unwrap();
    assert_eq!(lots[0].remaining, 10);
}
