//! The catalog tables' contract on SQLite and PostgreSQL: page writes with counts, the
//! ordering guard, tombstones, and reads with prices.

use std::collections::BTreeMap;

use sm_domain::catalog::{StripePrice, StripeProduct, map_price, map_product};
use sm_store::catalog::{PriceWrite, ProductFilter, ProductWrite, WriteCounts};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    pages_report_created_updated_unchanged,
    older_data_never_overwrites_newer,
    tombstones_are_not_resurrected_by_late_or_tied_updates,
    unseen_rows_are_tombstoned_after_a_full_run_but_not_rows_written_during_it,
    listing_filters_orders_and_attaches_prices,
    the_catalog_version_moves_only_on_writes,
    prices_follow_the_same_guard,
);

fn product(id: &str, name: &str, updated: i64, meta: &[(&str, &str)]) -> ProductWrite {
    let p = StripeProduct {
        id: id.into(),
        name: name.into(),
        description: None,
        active: true,
        metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        default_price: None,
        created: 1,
        updated,
        livemode: false,
    };
    ProductWrite {
        raw: format!(r#"{{"id":"{id}","name":"{name}","updated":{updated},"meta":{meta:?}}}"#),
        product: map_product(&p),
    }
}

fn price(id: &str, product: &str, amount: i64, observed_at: i64) -> PriceWrite {
    let p = StripePrice {
        id: id.into(),
        product: product.into(),
        active: true,
        currency: "usd".into(),
        unit_amount: Some(amount),
        unit_amount_decimal: Some(amount.to_string()),
        kind: "one_time".into(),
        interval: None,
        interval_count: None,
        billing_scheme: Some("per_unit".into()),
        custom_unit_amount: false,
        nickname: None,
        lookup_key: None,
        metadata: BTreeMap::new(),
        created: 1,
        livemode: false,
    };
    PriceWrite {
        price: map_price(&p),
        raw: format!(r#"{{"id":"{id}","unit_amount":{amount}}}"#),
        observed_at,
    }
}

async fn pages_report_created_updated_unchanged(db: TestDb) {
    let s = &db.store;
    let page = vec![
        product("prod_a", "A", 10, &[("credit_amount", "5")]),
        product("prod_b", "B", 10, &[]),
    ];
    let c = s.upsert_products(&page, None, 100).await.unwrap();
    assert_eq!(
        c,
        WriteCounts {
            created: 2,
            ..Default::default()
        }
    );
    let c = s.upsert_products(&page, None, 101).await.unwrap();
    assert_eq!(
        c,
        WriteCounts {
            unchanged: 2,
            ..Default::default()
        }
    );
    let c = s
        .upsert_products(
            &[product("prod_a", "A2", 11, &[("credit_amount", "5")])],
            None,
            102,
        )
        .await
        .unwrap();
    assert_eq!(
        c,
        WriteCounts {
            updated: 1,
            ..Default::default()
        }
    );
    let a = s.get_product("prod_a").await.unwrap().unwrap();
    assert_eq!(
        (a.name.as_str(), a.stripe_updated, a.valid, a.credit_amount),
        ("A2", 11, true, Some(5))
    );
    let b = s.get_product("prod_b").await.unwrap().unwrap();
    assert!(!b.valid);
    assert_eq!(
        b.validation_error.as_deref(),
        Some("metadata credit_amount is missing")
    );
}

async fn older_data_never_overwrites_newer(db: TestDb) {
    let s = &db.store;
    s.upsert_products(&[product("prod_a", "new", 20, &[])], None, 100)
        .await
        .unwrap();
    let c = s
        .upsert_products(&[product("prod_a", "old", 19, &[])], None, 101)
        .await
        .unwrap();
    assert_eq!(
        c,
        WriteCounts {
            stale: 1,
            ..Default::default()
        }
    );
    assert_eq!(s.get_product("prod_a").await.unwrap().unwrap().name, "new");
}

async fn tombstones_are_not_resurrected_by_late_or_tied_updates(db: TestDb) {
    let s = &db.store;
    s.upsert_products(&[product("prod_a", "A", 10, &[])], None, 100)
        .await
        .unwrap();
    assert!(s.tombstone_product("prod_a", None, 15, 101).await.unwrap());
    assert!(
        !s.tombstone_product("prod_a", None, 16, 102).await.unwrap(),
        "already a tombstone"
    );
    for updated in [12, 15] {
        let c = s
            .upsert_products(&[product("prod_a", "late", updated, &[])], None, 103)
            .await
            .unwrap();
        assert_eq!(c.stale, 1, "updated={updated}");
    }
    let a = s.get_product("prod_a").await.unwrap().unwrap();
    assert!(a.deleted && !a.active);
    assert_eq!(a.name, "A");
    // A product we never saw gets a tombstone too, so its late `updated` cannot create it.
    assert!(
        s.tombstone_product("prod_ghost", Some("Ghost"), 50, 104)
            .await
            .unwrap()
    );
    let c = s
        .upsert_products(&[product("prod_ghost", "Ghost", 49, &[])], None, 105)
        .await
        .unwrap();
    assert_eq!(c.stale, 1);
    assert!(s.get_product("prod_ghost").await.unwrap().unwrap().deleted);
}

/// Unseen products are tombstoned; unseen prices never are (Stripe's price list leaves
/// archived prices out unless asked: absence from a list is not a deletion).
async fn unseen_rows_are_tombstoned_after_a_full_run_but_not_rows_written_during_it(db: TestDb) {
    let s = &db.store;
    let run1 = [
        product("prod_a", "A", 10, &[]),
        product("prod_gone", "G", 10, &[]),
    ];
    s.upsert_products(&run1, Some(1), 100).await.unwrap();
    let prices1 = [
        price("price_a", "prod_a", 100, 100),
        price("price_gone", "prod_a", 5, 100),
    ];
    s.upsert_prices(&prices1, Some(1), 100).await.unwrap();
    // Run 2 starts (in the same second: ordering is by write, not by clock) and sees
    // only prod_a / price_a; meanwhile a webhook writes prod_new.
    let start = s.catalog_version().await.unwrap();
    s.upsert_products(&[product("prod_a", "A", 10, &[])], Some(2), 100)
        .await
        .unwrap();
    s.upsert_prices(&[price("price_a", "prod_a", 100, 100)], Some(2), 100)
        .await
        .unwrap();
    s.upsert_products(&[product("prod_new", "N", 240, &[])], None, 100)
        .await
        .unwrap();
    let (products, prices) = s.tombstone_unseen(2, start, 100).await.unwrap();
    assert_eq!((products, prices), (1, 0));
    assert!(s.get_product("prod_gone").await.unwrap().unwrap().deleted);
    assert!(!s.get_product("prod_new").await.unwrap().unwrap().deleted);
    assert!(!s.get_product("prod_a").await.unwrap().unwrap().deleted);
    assert_eq!(
        s.live_price_ids("prod_a").await.unwrap(),
        vec!["price_a".to_owned(), "price_gone".to_owned()]
    );
    assert_eq!(
        s.tombstone_unseen(2, start, 100).await.unwrap(),
        (0, 0),
        "idempotent"
    );
}

async fn listing_filters_orders_and_attaches_prices(db: TestDb) {
    let s = &db.store;
    let mut archived = product("prod_c", "C", 10, &[("credit_amount", "1")]);
    archived.product.active = false;
    s.upsert_products(
        &[
            product(
                "prod_b",
                "B",
                10,
                &[("credit_amount", "1"), ("display_order", "2")],
            ),
            product("prod_a", "A", 10, &[("credit_amount", "1")]),
            product(
                "prod_z",
                "Z",
                10,
                &[("credit_amount", "1"), ("display_order", "1")],
            ),
            archived,
        ],
        None,
        100,
    )
    .await
    .unwrap();
    s.tombstone_product("prod_d", Some("D"), 10, 100)
        .await
        .unwrap();
    s.upsert_prices(
        &[
            price("price_2", "prod_b", 200, 100),
            price("price_1", "prod_b", 100, 100),
        ],
        None,
        100,
    )
    .await
    .unwrap();
    let active = s.list_products(ProductFilter::Active).await.unwrap();
    let ids: Vec<_> = active.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["prod_z", "prod_b", "prod_a"],
        "display order first, then name"
    );
    assert_eq!(active[1].prices.len(), 2);
    let inactive = s.list_products(ProductFilter::Inactive).await.unwrap();
    assert_eq!(
        inactive.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["prod_c"]
    );
    assert_eq!(s.list_products(ProductFilter::All).await.unwrap().len(), 5);
    let counts = s.catalog_counts().await.unwrap();
    assert_eq!(
        (
            counts.active,
            counts.archived,
            counts.deleted,
            counts.prices
        ),
        (3, 1, 1, 2)
    );
}

async fn the_catalog_version_moves_only_on_writes(db: TestDb) {
    let s = &db.store;
    let v0 = s.catalog_version().await.unwrap();
    let page = vec![product("prod_a", "A", 10, &[])];
    s.upsert_products(&page, None, 100).await.unwrap();
    let v1 = s.catalog_version().await.unwrap();
    assert!(v1 > v0);
    s.upsert_products(&page, Some(1), 101).await.unwrap();
    assert_eq!(
        s.catalog_version().await.unwrap(),
        v1,
        "unchanged rows are not a change"
    );
    s.tombstone_product("prod_a", None, 20, 102).await.unwrap();
    assert!(s.catalog_version().await.unwrap() > v1);
}

async fn prices_follow_the_same_guard(db: TestDb) {
    let s = &db.store;
    let c = s
        .upsert_prices(&[price("price_a", "prod_a", 100, 50)], None, 100)
        .await
        .unwrap();
    assert_eq!(c.created, 1);
    let c = s
        .upsert_prices(&[price("price_a", "prod_a", 999, 40)], None, 101)
        .await
        .unwrap();
    assert_eq!(c.stale, 1);
    assert!(
        s.tombstone_price("price_a", "prod_a", 60, 102)
            .await
            .unwrap()
    );
    let c = s
        .upsert_prices(&[price("price_a", "prod_a", 100, 60)], None, 103)
        .await
        .unwrap();
    assert_eq!(c.stale, 1, "a tie never resurrects");
    let p = s.get_product("prod_a").await;
    assert!(
        p.unwrap().is_none(),
        "prices without a product row are stored but no product appears"
    );
}

/// Two writers of the same version of one new product with different content: the one
/// that commits second must see the first's row and report a tie (the webhook worker
/// then refetches), not overwrite it from a read made before the other committed.
#[tokio::test]
async fn postgres_concurrent_same_version_writes_end_in_a_tie_not_a_silent_overwrite() {
    let Some(db) = TestDb::new(sm_store::Backend::Postgres).await else {
        return;
    };
    use sm_store::catalog::Ties;
    let store = db.store.clone();
    let mut first = store.begin().await.unwrap();
    let a = product("prod_race", "From A", 5, &[("credit_amount", "1")]);
    let counts = first
        .upsert_products(&[a], None, 1, Ties::Reject)
        .await
        .unwrap();
    assert_eq!(counts.created, 1);
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let b = product("prod_race", "From B", 5, &[("credit_amount", "1")]);
            let counts = tx
                .upsert_products(&[b], None, 2, Ties::Reject)
                .await
                .unwrap();
            if counts.ties > 0 {
                tx.rollback().await.unwrap();
            } else {
                tx.commit().await.unwrap();
            }
            counts
        }
    });
    // Let the second writer get as far as it can while the first holds its transaction.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.commit().await.unwrap();
    let counts = second.await.unwrap();
    assert_eq!(counts.ties, 1, "{counts:?}");
    let stored = store.get_product("prod_race").await.unwrap().unwrap();
    assert_eq!(stored.name, "From A");
}
