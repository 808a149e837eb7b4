//! Catalog sync end to end: the real Application (and binary) over HTTP against the fake
//! Stripe, on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use fake_stripe::{Ctx, FakeStripe, Fault, FaultKind};
use serde_json::json;
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    a_large_catalog_syncs_completely_with_the_optimal_number_of_requests,
    deleted_products_and_prices_become_tombstones_and_archived_ones_inactive,
    invalid_credit_amounts_are_stored_flagged_and_never_sellable,
    odd_but_valid_shapes_are_mapped_not_crashed_on,
    a_500_on_page_7_is_retried_and_the_sync_completes,
    a_permanent_failure_keeps_committed_pages_and_records_a_failed_run,
    two_concurrent_full_syncs_one_runs_the_other_is_refused,
    selected_sync_fetches_just_those_products_and_tombstones_the_missing,
    a_selected_sync_batches_products_by_ids_and_prices_by_the_cheaper_list,
    a_sync_never_overwrites_newer_local_data,
    the_catalog_api_serves_local_data_when_stripe_is_down,
    catalog_reads_answer_304_until_the_catalog_changes,
    the_catalog_list_is_sent_compressed_when_the_client_accepts_it,
    the_cli_sync_reports_invalid_products_with_exit_1,
    a_catalog_change_is_served_by_every_instance,
);

/// Renames a product in Stripe and syncs it with the CLI: a catalog write by another
/// process than the app's.
async fn rename_and_sync_with_the_cli(fake: &FakeStripe, db: &TestDb, id: &str, name: &str) {
    fake.with_state(|s| {
        s.update_product(id, &json!({ "name": name }), &Ctx::default())
            .unwrap()
    });
    let out = command(&env_for(Some(&fake.url()), db))
        .args(["sync", id])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

async fn sync_all(app: &TestApp) -> (u16, serde_json::Value) {
    post_json(&app.url("/api/v1/sync"), json!({})).await
}

async fn a_large_catalog_syncs_completely_with_the_optimal_number_of_requests(db: TestDb) {
    let fake = FakeStripe::start().await;
    seed_catalog(&fake, 1234, 3000);
    // 150 prices archived (none a default price): Stripe lists them only with active=false.
    fake.with_state(|s| {
        let defaults: std::collections::HashSet<String> = s
            .products
            .values()
            .filter_map(|p| p["default_price"].as_str().map(str::to_owned))
            .collect();
        let archive: Vec<String> = s
            .prices
            .values()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .filter(|id| !defaults.contains(id))
            .take(150)
            .collect();
        for id in archive {
            s.update_price(&id, &json!({"active": false}), &Ctx::default())
                .unwrap();
        }
    });
    fake.clear_requests();
    let app = quiet_app(&fake, &db).await;

    let (status, r) = sync_all(&app).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["products"]["created"], 1234);
    assert_eq!(r["prices"]["created"], 3000);
    assert_eq!(r["products"]["invalid"], 0);
    // ⌈1234/100⌉ + ⌈2850 active/100⌉ + ⌈150 archived/100⌉ = 13 + 29 + 2, and the two
    // (empty) lists of entitlement features, active and archived: with no feature in
    // the account, no product's features are asked for.
    assert_eq!(r["requests"], 46);
    assert_eq!(fake.request_count(), 46);
    assert!(
        fake.requests()
            .iter()
            .all(|q| q.query.contains("limit=100"))
    );

    let (_, all) = get_json(&app.url("/api/v1/products?all=true")).await;
    let data = all["data"].as_array().unwrap();
    assert_eq!(data.len(), 1234);
    let prices: usize = data
        .iter()
        .map(|p| p["prices"].as_array().unwrap().len())
        .sum();
    assert_eq!(prices, 3000);
    assert!(
        data.iter()
            .all(|p| p["default_price"].is_object() && p["valid"] == true)
    );

    let (status, again) = sync_all(&app).await;
    assert_eq!(status, 200);
    assert_eq!(again["products"]["unchanged"], 1234, "{again}");
    assert_eq!(again["prices"]["unchanged"], 3000);
    for k in ["created", "updated", "tombstoned"] {
        assert_eq!(again["products"][k], 0, "{k}");
        assert_eq!(again["prices"][k], 0, "{k}");
    }
    let runs = app.state.store.list_sync_runs(5).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[1].requests, runs[1].counts.products_created),
        (46, 1234)
    );
    assert!(catalog_writes(&fake).is_empty());
}

/// A deleted product becomes a tombstone; an archived product or price stays, inactive
/// (Stripe lists archived prices only when asked with `active=false`, and the sync asks);
/// a price gone from Stripe (only possible through the fake's own hook: Stripe's API
/// cannot delete prices) is not tombstoned for being absent from a list, only when
/// retrieving it answers 404.
async fn deleted_products_and_prices_become_tombstones_and_archived_ones_inactive(db: TestDb) {
    let fake = FakeStripe::start().await;
    let ids = seed_catalog(&fake, 5, 10);
    let app = quiet_app(&fake, &db).await;
    assert_eq!(sync_all(&app).await.0, 200);

    let gone_price = fake.with_state(|s| {
        let ctx = Ctx::default();
        // A product with no prices can be deleted in Stripe; archive another.
        let (_, lonely) = s
            .create_product(
                &json!({"name": "Lonely", "metadata": {"credit_amount": "1"}}),
                &ctx,
            )
            .unwrap();
        s.update_product(&ids[1], &json!({"active": false}), &ctx)
            .unwrap();
        let lonely = lonely["id"].as_str().unwrap().to_owned();
        let price = s
            .prices
            .values()
            .find(|p| {
                p["product"] == json!(ids[2])
                    && p["id"] != s.products.get(&ids[2]).unwrap()["default_price"]
            })
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.delete_price(&price, &ctx).unwrap();
        // And one price archived: listed only with active=false.
        let archived = s
            .prices
            .values()
            .find(|p| {
                p["product"] == json!(ids[3])
                    && p["id"] != s.products.get(&ids[3]).unwrap()["default_price"]
            })
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.update_price(&archived, &json!({"active": false}), &ctx)
            .unwrap();
        (lonely, price, archived)
    });
    let (_, r) = sync_all(&app).await;
    assert_eq!(
        r["prices"]["tombstoned"], 0,
        "absence from a list is not a deletion: {r}"
    );
    fake.with_state(|s| s.delete_product(&gone_price.0, &Ctx::default()).unwrap());
    let (_, r) = sync_all(&app).await;
    assert_eq!(r["products"]["tombstoned"], 1, "{r}");
    assert_eq!(r["prices"]["tombstoned"], 0, "{r}");
    let (_, p3) = get_json(&app.url(&format!("/api/v1/products/{}", ids[3]))).await;
    let archived_price = p3["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == json!(gone_price.2))
        .unwrap();
    assert_eq!(
        (
            archived_price["active"].clone(),
            archived_price["deleted"].clone()
        ),
        (json!(false), json!(false))
    );
    // Syncing the product asks Stripe for the price no list returned: a 404 tombstones it.
    let (status, r) = post_json(&app.url("/api/v1/sync"), json!({"products": [ids[2]]})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["prices"]["tombstoned"], 1, "{r}");

    let (_, lonely) = get_json(&app.url(&format!("/api/v1/products/{}", gone_price.0))).await;
    assert_eq!(
        (lonely["deleted"].clone(), lonely["active"].clone()),
        (json!(true), json!(false))
    );
    let (_, archived) = get_json(&app.url(&format!("/api/v1/products/{}", ids[1]))).await;
    assert_eq!(
        (archived["active"].clone(), archived["deleted"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(archived["sellable"], false);
    let (_, p2) = get_json(&app.url(&format!("/api/v1/products/{}", ids[2]))).await;
    let price = p2["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == json!(gone_price.1))
        .unwrap();
    assert_eq!(
        (price["deleted"].clone(), price["active"].clone()),
        (json!(true), json!(false))
    );

    let (_, active) = get_json(&app.url("/api/v1/products")).await;
    let active_ids: Vec<_> = active["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!active_ids.contains(&ids[1]) && !active_ids.contains(&gone_price.0));
    let (_, inactive) = get_json(&app.url("/api/v1/products?active=false")).await;
    assert_eq!(inactive["data"].as_array().unwrap().len(), 1);
    assert!(
        catalog_writes(&fake).is_empty(),
        "{:?}",
        catalog_writes(&fake)
    );
}

async fn invalid_credit_amounts_are_stored_flagged_and_never_sellable(db: TestDb) {
    let fake = FakeStripe::start().await;
    let bad = ["10.0", "+5", " 5", "1e3", "0", "-1", "abc", ""];
    fake.with_state(|s| {
        let ctx = Ctx::default();
        for raw in bad {
            s.create_product(&json!({"name": format!("bad {raw:?}"), "metadata": {"credit_amount": raw}}), &ctx).unwrap();
        }
        s.create_product(&json!({"name": "missing"}), &ctx).unwrap();
        s.create_product(&json!({"name": "good", "metadata": {"credit_amount": "25"}, "default_price_data": {"currency": "usd", "unit_amount": 500}}), &ctx).unwrap();
    });
    let app = quiet_app(&fake, &db).await;
    let (status, r) = sync_all(&app).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["products"]["created"], 10);
    assert_eq!(r["products"]["invalid"], 9);
    let (_, all) = get_json(&app.url("/api/v1/products?all=true")).await;
    for p in all["data"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if name == "good" {
            assert_eq!(
                (
                    p["valid"].clone(),
                    p["sellable"].clone(),
                    p["credit_amount"].clone()
                ),
                (json!(true), json!(true), json!(25))
            );
            assert_eq!(
                p["price_per_credit"],
                json!({"amount": "0.2000", "currency": "usd"})
            );
            continue;
        }
        assert_eq!(p["valid"], false, "{p}");
        assert_eq!(p["sellable"], false, "{p}");
        assert_eq!(p["active"], true, "stored exactly as Stripe has it");
        // Stripe drops a metadata key set to "", so that one arrives as missing.
        let raw = name
            .strip_prefix("bad ")
            .map(|q| serde_json::from_str::<String>(q).unwrap())
            .filter(|r| !r.is_empty());
        let want = match raw {
            Some(raw) => format!("metadata credit_amount {raw:?} is not a positive whole number"),
            None => "metadata credit_amount is missing".to_owned(),
        };
        assert_eq!(p["validation_error"], json!(want));
    }
    let listed: Vec<_> = r["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["error"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        listed
            .contains(&"metadata credit_amount \"10.0\" is not a positive whole number".to_owned())
    );
}

async fn odd_but_valid_shapes_are_mapped_not_crashed_on(db: TestDb) {
    let fake = FakeStripe::start().await;
    let id = fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, p) = s.create_product(&json!({"name": "Odd", "metadata": {"credit_amount": "7"}}), &ctx).unwrap();
        let id = p["id"].as_str().unwrap().to_owned();
        s.create_price(&json!({"id": "price_jpy", "product": id, "currency": "JPY", "unit_amount": 500}), &ctx).unwrap();
        s.create_price(&json!({"id": "price_weekly", "product": id, "currency": "eur", "unit_amount": 300, "recurring": {"interval": "week", "interval_count": 2}}), &ctx).unwrap();
        s.create_price(&json!({"id": "price_tiered", "product": id, "currency": "usd", "billing_scheme": "tiered", "tiers_mode": "volume"}), &ctx).unwrap();
        s.update_product(&id, &json!({"default_price": "price_jpy"}), &ctx).unwrap();
        id
    });
    let app = quiet_app(&fake, &db).await;
    assert_eq!(sync_all(&app).await.0, 200);
    let (_, p) = get_json(&app.url(&format!("/api/v1/products/{id}"))).await;
    assert_eq!(p["description"], json!(null));
    assert_eq!(p["default_price"]["id"], "price_jpy");
    assert_eq!(p["default_price"]["unit_amount"], 500);
    assert_eq!(p["default_price"]["currency"], "jpy");
    assert_eq!(
        p["price_per_credit"],
        json!({"amount": "71.43", "currency": "jpy"})
    );
    let by_id = |pid: &str| {
        p["prices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == json!(pid))
            .unwrap()
            .clone()
    };
    let weekly = by_id("price_weekly");
    assert_eq!(
        (
            weekly["type"].clone(),
            weekly["interval"].clone(),
            weekly["interval_count"].clone()
        ),
        (json!("recurring"), json!("week"), json!(2))
    );
    let tiered = by_id("price_tiered");
    assert_eq!(
        (tiered["unit_amount"].clone(), tiered["amount_kind"].clone()),
        (json!(null), json!("tiered"))
    );
    assert_eq!(
        p["credit_type"], "payg",
        "derived from the one-time default price"
    );
}

async fn a_500_on_page_7_is_retried_and_the_sync_completes(db: TestDb) {
    let fake = FakeStripe::start().await;
    seed_catalog(&fake, 900, 900);
    let app = quiet_app(&fake, &db).await;
    fake.inject(
        Fault::on_path("/v1/products", Fault::status(500))
            .after(6)
            .times(1),
    );
    let (status, r) = sync_all(&app).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["products"]["created"], 900);
    // Products, active prices, the (empty) list of archived prices, one retry, the two
    // (empty) lists of features.
    assert_eq!(r["requests"], 9 + 9 + 1 + 1 + 2, "one retry");
}

async fn a_permanent_failure_keeps_committed_pages_and_records_a_failed_run(db: TestDb) {
    let fake = FakeStripe::start().await;
    seed_catalog(&fake, 500, 500);
    let app = quiet_app(&fake, &db).await;
    fake.inject(Fault::on_path("/v1/products", Fault::status(503)).after(3));
    let (status, body) = sync_all(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "stripe_unavailable");
    let report = &body["report"];
    assert_eq!(report["status"], "failed");
    assert_eq!(report["products"]["created"], 300, "three pages committed");
    assert_eq!(
        report["products"]["tombstoned"], 0,
        "an incomplete listing tombstones nothing"
    );
    assert_eq!(app.state.store.catalog_counts().await.unwrap().active, 300);
    let run = app.state.store.list_sync_runs(1).await.unwrap().remove(0);
    assert_eq!(run.status, "failed");
    assert!(
        run.report["errors"][0]
            .as_str()
            .unwrap()
            .contains("listing products"),
        "{:?}",
        run.report
    );

    // The CLI says the same with exit code 3.
    let out = command(&env_for(Some(&fake.url()), &db))
        .args(["sync"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Stripe unavailable: network"));
}

async fn two_concurrent_full_syncs_one_runs_the_other_is_refused(db: TestDb) {
    let fake = FakeStripe::start().await;
    seed_catalog(&fake, 10, 10);
    let app = quiet_app(&fake, &db).await;
    // A second instance on the same database.
    let other = quiet_app(&fake, &db).await;
    fake.inject(
        Fault::on_path("/v1/prices", FaultKind::Delay(Duration::from_millis(1500))).times(1),
    );
    let first = tokio::spawn({
        let url = app.url("/api/v1/sync");
        async move { post_json(&url, json!({})).await }
    });
    // Wait until the first holds the lock (it is listing prices).
    for _ in 0..100 {
        if fake.requests().iter().any(|r| r.path == "/v1/prices") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = sync_all(&other).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "sync_already_running");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("a full sync is already running")
    );
    let (status, body) = sync_all(&app).await;
    assert_eq!(status, 409, "{body}");
    let (status, r) = first.await.unwrap();
    assert_eq!((status, r["products"]["created"].clone()), (200, json!(10)));
    // Free again afterwards.
    assert_eq!(sync_all(&other).await.0, 200);
}

async fn selected_sync_fetches_just_those_products_and_tombstones_the_missing(db: TestDb) {
    let fake = FakeStripe::start().await;
    let ids = seed_catalog(&fake, 3, 6);
    let app = quiet_app(&fake, &db).await;
    let (status, r) = post_json(
        &app.url("/api/v1/sync"),
        json!({"products": [ids[0], ids[1]]}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (
            r["scope"].clone(),
            r["products"]["created"].clone(),
            r["prices"]["created"].clone()
        ),
        (json!("selected"), json!(2), json!(4))
    );
    assert_eq!(
        fake.request_count(),
        3,
        "one ids[] list for both products, then the whole price list (active, archived): \
         with nothing held locally it is fewer pages than two lists per product"
    );
    let (s3, _) = get_json(&app.url(&format!("/api/v1/products/{}", ids[2]))).await;
    assert_eq!(s3, 404);

    // Deleted in Stripe (prices first, as Stripe requires): a tombstone, not a stale row.
    fake.with_state(|s| {
        let prices: Vec<String> = s
            .prices
            .values()
            .filter(|p| p["product"] == json!(ids[0]))
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        for p in prices {
            s.delete_price(&p, &Ctx::default()).unwrap();
        }
        s.delete_product(&ids[0], &Ctx::default()).unwrap();
    });
    let (status, r) = post_json(&app.url("/api/v1/sync"), json!({"products": [ids[0]]})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["products"]["tombstoned"], 1);
    let (_, p) = get_json(&app.url(&format!("/api/v1/products/{}", ids[0]))).await;
    assert_eq!(
        (
            p["deleted"].clone(),
            p["active"].clone(),
            p["sellable"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );

    // An id Stripe never had is an error, and nothing is stored for it.
    let (status, body) = post_json(
        &app.url("/api/v1/sync"),
        json!({"products": ["prod_neverexisted"]}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prod_neverexisted does not exist in Stripe")
    );
    assert_eq!(
        get_json(&app.url("/api/v1/products/prod_neverexisted"))
            .await
            .0,
        404
    );

    let (status, body) =
        post_json(&app.url("/api/v1/sync"), json!({"products": ["price_123"]})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_product_id"))
    );
    let (status, body) = post_json(&app.url("/api/v1/sync"), json!({"prods": []})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_body"))
    );
    assert!(catalog_writes(&fake).is_empty());
}

/// 150 products in a catalog of 300: two `ids[]` requests, not 150 retrieves; prices by
/// the whole list while little is held locally, by two lists per product once the held
/// catalog says that is fewer pages.
async fn a_selected_sync_batches_products_by_ids_and_prices_by_the_cheaper_list(db: TestDb) {
    use stripe_manager::sync::{NoProgress, Origin};
    let fake = FakeStripe::start().await;
    let ids = seed_catalog(&fake, 300, 600);
    let app = quiet_app(&fake, &db).await;
    fake.clear_requests();
    let wanted: Vec<sm_domain::ProductId> = ids[..150]
        .iter()
        .chain(ids[..10].iter()) // repeated ids are synced once
        .map(|id| id.parse().unwrap())
        .collect();
    let report = app
        .state
        .syncer
        .sync_products(&wanted, Origin::Cli, &NoProgress)
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!((report.products.created, report.prices.created), (150, 300));
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    let product_calls = paths
        .iter()
        .filter(|p| p.starts_with("/v1/products"))
        .count();
    assert_eq!(product_calls, 2, "100 + 50 ids per list request: {paths:?}");
    // Each chunk read the whole price list: 600 active prices (6 pages) + archived (1).
    assert_eq!(paths.len(), 2 + 2 * 7, "{paths:?}");

    // With the whole catalog held, two products are cheaper by their own lists.
    assert_eq!(sync_all(&app).await.0, 200);
    fake.clear_requests();
    let two: Vec<sm_domain::ProductId> = ids[..2].iter().map(|id| id.parse().unwrap()).collect();
    let report = app
        .state
        .syncer
        .sync_products(&two, Origin::Cli, &NoProgress)
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        fake.request_count(),
        1 + 2 * 2,
        "one ids[] list, then active and archived prices of each product"
    );
}

async fn a_sync_never_overwrites_newer_local_data(db: TestDb) {
    let fake = FakeStripe::start().await;
    let ids = seed_catalog(&fake, 1, 1);
    let app = quiet_app(&fake, &db).await;
    assert_eq!(sync_all(&app).await.0, 200);
    // A webhook wrote a newer state of the product (Stripe's `updated` is later) while
    // the listing that the next sync reads still shows the older one.
    let mut newer = app.state.store.get_product(&ids[0]).await.unwrap().unwrap();
    newer.name = "Renamed by a webhook".into();
    let product = sm_domain::catalog::CatalogProduct {
        id: newer.id.clone(),
        name: newer.name.clone(),
        description: None,
        active: true,
        deleted: false,
        credit_amount: sm_domain::catalog::CreditAmount::parse("1").ok(),
        credit_type: None,
        display_order: None,
        valid: true,
        validation_error: None,
        default_price: newer.default_price_id.clone(),
        metadata: newer.metadata.clone(),
        created: newer.stripe_created,
        updated: newer.stripe_updated + 100,
        livemode: false,
    };
    app.state
        .store
        .upsert_products(
            &[sm_store::catalog::ProductWrite {
                product,
                raw: "{}".into(),
            }],
            None,
            1,
        )
        .await
        .unwrap();
    let (_, r) = sync_all(&app).await;
    assert_eq!(r["products"]["stale"], 1, "{r}");
    assert_eq!(r["products"]["tombstoned"], 0);
    let (_, p) = get_json(&app.url(&format!("/api/v1/products/{}", ids[0]))).await;
    assert_eq!(p["name"], "Renamed by a webhook");
}

async fn the_catalog_api_serves_local_data_when_stripe_is_down(db: TestDb) {
    let fake = FakeStripe::start().await;
    let ids = seed_catalog(&fake, 3, 3);
    let app = quiet_app(&fake, &db).await;
    assert_eq!(sync_all(&app).await.0, 200);
    let (_, before) = get_json(&app.url("/api/v1/products")).await;
    fake.inject(Fault::on_path("/", FaultKind::Drop));
    let before_requests = fake.request_count();
    let (status, during) = get_json(&app.url("/api/v1/products")).await;
    assert_eq!(status, 200);
    assert_eq!(during, before);
    let (status, _) = get_json(&app.url(&format!("/api/v1/products/{}", ids[1]))).await;
    assert_eq!(status, 200);
    assert_eq!(
        fake.request_count(),
        before_requests,
        "reads never call Stripe"
    );
    // A sync now fails cleanly and the catalog is untouched.
    let (status, body) = sync_all(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(get_json(&app.url("/api/v1/products")).await.1, before);
    let (status, body) = get_json(&app.url("/api/v1/products?active=maybe")).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_query"))
    );

    // A write by another process (the CLI) shows up in the API at once.
    fake.clear_faults();
    rename_and_sync_with_the_cli(&fake, &db, &ids[0], "Renamed in Stripe").await;
    let (_, p) = get_json(&app.url(&format!("/api/v1/products/{}", ids[0]))).await;
    assert_eq!(p["name"], "Renamed in Stripe");
}

async fn the_cli_sync_reports_invalid_products_with_exit_1(db: TestDb) {
    let fake = FakeStripe::start().await;
    seed_catalog(&fake, 2, 2);
    fake.with_state(|s| {
        s.create_product(
            &json!({"name": "Decimal", "metadata": {"credit_amount": "10.0"}}),
            &Ctx::default(),
        )
        .unwrap()
    });
    let env = env_for(Some(&fake.url()), &db);
    let out = command(&env).args(["sync"]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("1 invalid product(s), stored but never offered for checkout"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\"Decimal\": metadata credit_amount \"10.0\" is not a positive whole number"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("synced a page of 3 products"),
        "plain progress lines when not a terminal: {stderr}"
    );
    // The report is the output: no log line repeats it (on a terminal it landed between
    // the progress bar and the table). RUST_LOG still brings it back.
    assert!(!stderr.contains("sync finished"), "{stderr}");
    let mut verbose = env.clone();
    verbose.push(("RUST_LOG".into(), "info".into()));
    let out = command(&verbose).args(["sync"]).output().await.unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sync finished"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = command(&env)
        .args(["sync", "--json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(r["products"]["unchanged"], 3);

    let out = command(&env)
        .args(["products", "--json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["data"].as_array().unwrap().len(), 3);
    let out = command(&env).args(["products"]).output().await.unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("PER CREDIT") && table.contains("1.00 USD"),
        "{table}"
    );

    let out = command(&env)
        .args(["sync", "price_1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("product id \"price_1\" must start with \"prod_\"")
    );
    assert!(catalog_writes(&fake).is_empty());
}

#[tokio::test]
async fn sync_is_refused_cleanly_when_stripe_is_disabled() {
    let db = TestDb::new(sm_store::Backend::Sqlite).await.unwrap();
    let env = env_for(None, &db);
    let out = command(&env).args(["sync"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: Stripe is disabled: STRIPE_SECRET_KEY is not set"
    );
    assert!(
        db.store.list_sync_runs(1).await.unwrap().is_empty(),
        "no run was started"
    );

    let app = TestApp::start(config_from(&env)).await;
    let (status, body) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (503, json!("stripe_disabled"))
    );
}

async fn catalog_reads_answer_304_until_the_catalog_changes(db: TestDb) {
    let fake = FakeStripe::start().await;
    let ids = seed_catalog(&fake, 3, 3);
    let app = quiet_app(&fake, &db).await;
    assert_eq!(sync_all(&app).await.0, 200);
    let token = grant_token(&app.state.store, "etag", "catalog:read").await;
    let get = |path: String, tag: Option<String>, bearer: &str| {
        let mut r = http().get(app.url(&path)).bearer_auth(bearer);
        if let Some(t) = tag {
            r = r.header("If-None-Match", t);
        }
        async move { r.send().await.unwrap() }
    };
    let one = format!("/api/v1/products/{}", ids[0]);
    let mut tags = Vec::new();
    for path in [
        "/api/v1/products",
        "/api/v1/products?all=true",
        one.as_str(),
    ] {
        let r = get(path.to_owned(), None, &token).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "private, no-cache", "{path}");
        let tag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert!(
            tag.trim_start_matches("W/").starts_with("\"catalog-"),
            "{tag}"
        );
        // Sent back: 304, no body, the same tag; weak and strong forms and lists match.
        let strong = tag.trim_start_matches("W/").to_owned();
        for sent in [
            tag.clone(),
            strong.clone(),
            format!("W/{strong}"),
            format!("\"other\", {tag}"),
            "*".to_owned(),
        ] {
            let r = get(path.to_owned(), Some(sent.clone()), &token).await;
            assert_eq!(r.status(), 304, "{path} with {sent}");
            assert_eq!(r.headers()["etag"].to_str().unwrap(), tag);
            assert!(r.bytes().await.unwrap().is_empty());
        }
        let r = get(path.to_owned(), Some("\"catalog-0-x\"".into()), &token).await;
        assert_eq!(r.status(), 200, "{path}: another tag gets the body");
        // The token is still checked first: no 304 for a stranger.
        assert_eq!(
            get(path.to_owned(), Some(tag.clone()), "smt_wrong")
                .await
                .status(),
            401
        );
        tags.push(tag);
    }
    assert_ne!(tags[0], tags[1], "each filter has its own tag");
    // A catalog write (from another process: the CLI) changes every tag.
    rename_and_sync_with_the_cli(&fake, &db, &ids[0], "Changed").await;
    for (path, old) in [
        "/api/v1/products",
        "/api/v1/products?all=true",
        one.as_str(),
    ]
    .into_iter()
    .zip(&tags)
    {
        let r = get(path.to_owned(), Some(old.clone()), &token).await;
        assert_eq!(r.status(), 200, "{path} changed");
        assert_ne!(r.headers()["etag"].to_str().unwrap(), old);
        assert!(r.text().await.unwrap().contains("Changed"));
    }
}

async fn the_catalog_list_is_sent_compressed_when_the_client_accepts_it(db: TestDb) {
    use std::io::Read;
    let fake = FakeStripe::start().await;
    seed_catalog(&fake, 100, 100);
    let app = quiet_app(&fake, &db).await;
    assert_eq!(sync_all(&app).await.0, 200);
    let token = grant_token(&app.state.store, "gzip", "catalog:read").await;
    let get = |accept: &str| {
        let r = http()
            .get(app.url("/api/v1/products"))
            .bearer_auth(&token)
            .header("Accept-Encoding", accept);
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let coding = r
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(r.headers()["vary"], "accept-encoding");
            let tag = r.headers()["etag"].to_str().unwrap().to_owned();
            (coding, tag, r.bytes().await.unwrap().to_vec())
        }
    };
    let (coding, plain_tag, plain) = get("identity").await;
    assert_eq!(coding, None);
    let (coding, gzip_tag, gz) = get("gzip").await;
    assert_eq!(coding.as_deref(), Some("gzip"));
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain, "gzip holds the same bytes");
    let (coding, br_tag, br) = get("gzip, deflate, br").await;
    assert_eq!(coding.as_deref(), Some("br"));
    let mut unbrotli = Vec::new();
    brotli::Decompressor::new(&br[..], 4096)
        .read_to_end(&mut unbrotli)
        .unwrap();
    assert_eq!(unbrotli, plain, "brotli holds the same bytes");
    assert!(
        gz.len() * 4 < plain.len() && br.len() < gz.len(),
        "{} {} {}",
        plain.len(),
        gz.len(),
        br.len()
    );
    assert!(
        plain_tag == gzip_tag && gzip_tag == br_tag && plain_tag.starts_with("W/"),
        "one weak tag"
    );
    eprintln!(
        "100 products: {} bytes, gzip {} bytes, brotli {} bytes",
        plain.len(),
        gz.len(),
        br.len()
    );
    // A 304 to a compressed client too.
    let r = http()
        .get(app.url("/api/v1/products"))
        .bearer_auth(&token)
        .header("Accept-Encoding", "br")
        .header("If-None-Match", &br_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
}

/// The catalog of each instance is kept in memory with its version, and on PostgreSQL
/// even the version is not read again until a change is announced: so this checks that
/// a catalog write by one instance, by another process, or by the webhook worker of
/// either, is served by every instance — and by the writing instance on its very next
/// read, without waiting for its own announcement.
async fn a_catalog_change_is_served_by_every_instance(db: TestDb) {
    let fake = FakeStripe::start().await;
    let ids = seed_catalog(&fake, 3, 3);
    let a = quiet_app(&fake, &db).await;
    let b = quiet_app(&fake, &db).await;
    let name_on = |app: &TestApp| {
        let url = app.url(&format!("/api/v1/products/{}", ids[0]));
        async move {
            let (status, body) = get_json(&url).await;
            assert!(status == 200 || status == 404, "{status} {body}");
            body["name"].as_str().map(str::to_owned)
        }
    };
    // Served before anything is synced (a 404, kept), then a sync by `a`.
    assert_eq!(name_on(&b).await, None);
    assert_eq!(name_on(&a).await, None);
    assert_eq!(sync_all(&a).await.0, 200);
    let first = name_on(&a)
        .await
        .expect("the writing instance serves its write at once");
    let served_by = |app: &TestApp, name: &str| {
        let name = name.to_owned();
        let app_url = app.url(&format!("/api/v1/products/{}", ids[0]));
        async move {
            for _ in 0..1000 {
                let (_, body) = get_json(&app_url).await;
                if body["name"] == name {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{app_url} never served {name:?}");
        }
    };
    served_by(&b, &first).await;
    // Another process (the CLI) writes: both instances serve it.
    rename_and_sync_with_the_cli(&fake, &db, &ids[0], "By the CLI").await;
    served_by(&a, "By the CLI").await;
    served_by(&b, "By the CLI").await;
    // `b` writes: `b` serves it on the next read, `a` soon after.
    fake.with_state(|s| {
        s.update_product(&ids[0], &json!({ "name": "By b" }), &Ctx::default())
            .unwrap()
    });
    let (status, _) = post_json(
        &b.url("/api/v1/sync"),
        json!({ "products": [ids[0].clone()] }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(name_on(&b).await.as_deref(), Some("By b"));
    served_by(&a, "By b").await;
}
