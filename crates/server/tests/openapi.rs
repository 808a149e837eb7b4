//! The OpenAPI document matches the API: the same routes with the same scopes, served
//! without a token, and real answers carry every property its schemas require.

mod common;

use common::*;
use serde_json::{Value, json};
use sm_store::testing::TestDb;
use stripe_manager::auth::{API_ROUTES, PUBLIC_API_ROUTES};

sm_store::contract_tests!(the_document_describes_every_route_and_real_answers_fit_it);

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

/// Every property the schema requires is present in `value`.
fn assert_fits(doc: &Value, name: &str, value: &Value) {
    for key in schema(doc, name)["required"].as_array().unwrap() {
        let key = key.as_str().unwrap();
        assert!(
            value.get(key).is_some(),
            "{name} requires {key}, missing in {value}"
        );
    }
}

async fn the_document_describes_every_route_and_real_answers_fit_it(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    seed_catalog(&fake, 2, 2);
    let app = quiet_app(&fake, &db).await;
    // Public, and identical to the embedded file.
    let r = http()
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let embedded: Value = serde_json::from_str(stripe_manager::http::openapi::DOCUMENT).unwrap();
    assert_eq!(doc, embedded);

    // The same routes and scopes as the router enforces, no more, no less.
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let scopes = op["security"][0]["token"].clone();
            documented.push((method.to_uppercase(), path.clone(), scopes));
        }
    }
    documented.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut routed: Vec<(String, String, Value)> = API_ROUTES
        .iter()
        .map(|(m, p, s)| (m.to_string(), p.to_string(), json!([s.as_str()])))
        .collect();
    routed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(documented, routed);
    assert!(PUBLIC_API_ROUTES.contains(&("GET", "/api/v1/openapi.json")));

    // Real answers carry what the schemas require.
    let (status, _) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    let (_, list) = get_json(&app.url("/api/v1/products")).await;
    let product = &list["data"][0];
    assert_fits(&doc, "Product", product);
    assert_fits(&doc, "Price", &product["default_price"]);
    let id = product["id"].as_str().unwrap();
    let (_, one) = get_json(&app.url(&format!("/api/v1/products/{id}"))).await;
    assert_fits(&doc, "Product", &one);
    grant_credits(&app, "acct_doc", 5).await;
    let (_, consumed) = post_json(
        &app.url("/api/v1/accounts/acct_doc/credits/consume"),
        json!({"amount": "1", "idempotency_key": "doc"}),
    )
    .await;
    assert_fits(&doc, "Consumption", &consumed);
    let (_, balance) = get_json(&app.url("/api/v1/accounts/acct_doc/credits")).await;
    assert_fits(&doc, "Balance", &balance);
    assert_fits(&doc, "Lot", &balance["lots"][0]);
    let (_, history) = get_json(&app.url("/api/v1/accounts/acct_doc/credits/history")).await;
    assert_fits(&doc, "Entry", &history["data"][0]);
    let (_, refused) = post_json(
        &app.url("/api/v1/accounts/acct_doc/credits/consume"),
        json!({"amount": "100", "idempotency_key": "doc-2"}),
    )
    .await;
    assert_fits(&doc, "Error", &refused);
}
