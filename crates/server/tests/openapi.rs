//! The OpenAPI document is the one the code makes (`openapi/v1.json` equal to what is
//! served), names every route with the scope the router enforces, and every answer it
//! lists is given and fits its schema (each checked by `common::conformance`, which also
//! checks every answer of every other test that goes through the JSON helpers).

mod common;

use common::shop::*;
use common::*;
use serde_json::{Value, json};
use sm_store::testing::TestDb;
use stripe_manager::auth::{API_ROUTES, PUBLIC_API_ROUTES};

sm_store::contract_tests!(
    the_document_is_made_by_the_code_and_names_every_route_with_its_scope,
    every_documented_answer_is_given_and_fits_the_document
);

async fn the_document_is_made_by_the_code_and_names_every_route_with_its_scope(db: TestDb) {
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
    let served = r.text().await.unwrap();
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../openapi/v1.json"
    ))
    .unwrap();
    assert!(
        served == file,
        "openapi/v1.json differs from the document the code makes: regenerate it with \
         `cargo run -q -- openapi > openapi/v1.json` and review the diff"
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Doc comments of API types are its descriptions: no Rust links for API readers.
    for rust in ["[`crate::", "](crate::", "](super::", "[`super::"] {
        assert!(
            !served.contains(rust),
            "a description carries a Rust link ({rust}…): write it for API readers"
        );
    }

    // The same routes and scopes as the router enforces, no more, no less.
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op.get("security").is_none() {
                continue;
            }
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
}

/// One request, checked against the document: `token` `None` sends none.
async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut r = http().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b);
    }
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    conformance::check(method, url, status, &body);
    (status, body)
}

/// Expects `status` from a request with the app's token.
async fn expect(app: &TestApp, status: u16, method: &str, path: &str, body: Value) -> Value {
    let body = (method != "GET" && method != "DELETE").then(|| body.to_string().into_bytes());
    let (got, answer) = call(method, &app.url(path), Some(&app.token), body, &[]).await;
    assert_eq!(got, status, "{method} {path}: {answer}");
    answer
}

/// Runs `(status, method, path, body)` steps in order.
async fn steps(app: &TestApp, steps: &[(u16, &str, &str, Value)]) {
    for (status, method, path, body) in steps {
        expect(app, *status, method, path, body.clone()).await;
    }
}

/// A 304 for a repeat of `path` with the `ETag` of its first answer.
async fn revalidates(app: &TestApp, path: &str) {
    let url = app.url(path);
    let r = http()
        .get(&url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let token = Some(app.token.as_str());
    let (status, _) = call("GET", &url, token, None, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304, "{path}");
}

/// Makes the fake refuse the next `method` request under `path` with a 400 (what the
/// service reports as `stripe_error`).
fn refuse_once(fake: &fake_stripe::FakeStripe, method: &str, path: &str) {
    fake.inject(fake_stripe::Fault {
        kind: fake_stripe::FaultKind::Status {
            status: 400,
            retry_after: None,
            should_retry: None,
        },
        path_prefix: Some(path.into()),
        method: Some(method.into()),
        skip: 0,
        times: Some(1),
    });
}

/// Calls every operation for its success and for each error the document lists, and
/// fails when one listed answer was never produced (but those in `NOT_PRODUCED`, each
/// with the reason). Every answer is checked against its schema by `conformance`.
async fn every_documented_answer_is_given_and_fits_the_document(db: TestDb) {
    let shop = shop(&db).await;
    let app = &shop.app;
    let doc = &*conformance::DOCUMENT;
    let acct = "acct_walk";
    let a = |rest: &str| format!("/api/v1/accounts/{acct}{rest}");
    let bad = |rest: &str| format!("/api/v1/accounts/a%20b{rest}");
    let none = |rest: &str| format!("/api/v1/accounts/acct_none{rest}");
    let null = || json!(null);

    // Public.
    let (status, _) = call("GET", &app.url("/api/v1/openapi.json"), None, None, &[]).await;
    assert_eq!(status, 200);

    // Catalog and sync.
    let product = format!("/api/v1/products/{}", shop.pack.product);
    steps(
        app,
        &[
            (200, "GET", "/api/v1/products", null()),
            (400, "GET", "/api/v1/products?active=maybe", null()),
            (200, "GET", &product, null()),
            (404, "GET", "/api/v1/products/prod_nope", null()),
            (200, "POST", "/api/v1/sync", json!({})),
            (400, "POST", "/api/v1/sync", json!({"products": []})),
        ],
    )
    .await;
    revalidates(app, "/api/v1/products").await;
    revalidates(app, &product).await;
    refuse_once(&shop.fake, "GET", "/v1/products");
    let failed = expect(app, 502, "POST", "/api/v1/sync", json!({})).await;
    assert_eq!(failed["report"]["status"], "failed");

    // Credits.
    grant_credits(app, acct, 50).await;
    let consume = a("/credits/consume");
    let grants = a("/credits/grants");
    let threshold = a("/credits/low-threshold");
    let grant = json!({"amount": "5", "idempotency_key": "g1", "reason": "sign-up"});
    steps(
        app,
        &[
            (200, "GET", &a("/credits"), null()),
            (400, "GET", &bad("/credits"), null()),
            (
                200,
                "POST",
                &consume,
                json!({"amount": "1", "idempotency_key": "w1"}),
            ),
            (
                402,
                "POST",
                &consume,
                json!({"amount": "1000", "idempotency_key": "w2"}),
            ),
            (
                409,
                "POST",
                &consume,
                json!({"amount": "2", "idempotency_key": "w1"}),
            ),
            (400, "POST", &consume, json!({"amount": "x"})),
            (201, "POST", &grants, grant.clone()),
            (200, "POST", &grants, grant),
            (
                409,
                "POST",
                &grants,
                json!({"amount": "6", "idempotency_key": "g1", "reason": "x"}),
            ),
            (400, "POST", &grants, json!({"amount": "5"})),
            (200, "GET", &threshold, null()),
            (400, "GET", &bad("/credits/low-threshold"), null()),
            (200, "PUT", &threshold, json!({"below": "10"})),
            (400, "PUT", &threshold, json!({"below": -1})),
            (200, "GET", &a("/credits/history"), null()),
            (400, "GET", &a("/credits/history?limit=x"), null()),
        ],
    )
    .await;
    let again = expect(
        app,
        200,
        "POST",
        &consume,
        json!({"amount": "1", "idempotency_key": "w1"}),
    )
    .await;
    assert_eq!(again["replayed"], true);

    // Holds.
    let holds = a("/credits/holds");
    let hold = |key: &str, amount: &str| json!({"amount": amount, "idempotency_key": key});
    let h1 = expect(app, 201, "POST", &holds, hold("h1", "3")).await;
    let h1 = format!("{holds}/{}", h1["id"].as_str().unwrap());
    let h2 = expect(app, 201, "POST", &holds, hold("h4", "1")).await;
    let h2 = format!("{holds}/{}", h2["id"].as_str().unwrap());
    let nope = format!("{holds}/hold_nope");
    steps(
        app,
        &[
            (200, "POST", &holds, hold("h1", "3")),
            (402, "POST", &holds, hold("h2", "999")),
            (409, "POST", &holds, hold("h1", "4")),
            (
                400,
                "POST",
                &holds,
                json!({"amount": "3", "idempotency_key": "h3", "ttl_seconds": 0}),
            ),
            (200, "GET", &holds, null()),
            (400, "GET", &format!("{holds}?status=open"), null()),
            (200, "GET", &h1, null()),
            (404, "GET", &nope, null()),
            (400, "GET", &bad("/credits/holds/hold_x"), null()),
            (
                400,
                "POST",
                &format!("{h1}/capture"),
                json!({"amount": "4"}),
            ),
            (
                200,
                "POST",
                &format!("{h1}/capture"),
                json!({"amount": "2"}),
            ),
            (409, "POST", &format!("{h1}/release"), null()),
            (404, "POST", &format!("{nope}/capture"), json!({})),
            (404, "POST", &format!("{nope}/release"), null()),
            (400, "POST", &bad("/credits/holds/hold_x/release"), null()),
            (200, "POST", &format!("{h2}/release"), null()),
            (409, "POST", &format!("{h2}/capture"), json!({})),
        ],
    )
    .await;

    // Checkout, accounts, billing.
    let checkout = "/api/v1/checkout";
    let buy = |price: &str| {
        json!({"account": acct, "price": price, "quantity": 1,
               "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"})
    };
    let back = json!({"return_url": "https://app.example/"});
    steps(
        app,
        &[
            (200, "POST", checkout, buy(&shop.pack.price)),
            (400, "POST", checkout, json!({"account": acct})),
            (422, "POST", checkout, buy(&shop.plain.price)),
            (404, "POST", &none("/portal"), back.clone()),
            (404, "POST", &none("/subscription/cancel"), json!({})),
            (404, "POST", &none("/subscription/resume"), json!({})),
            (
                404,
                "POST",
                &none("/subscription/change"),
                json!({"price": shop.plan_a.price}),
            ),
            (404, "DELETE", &none("/subscription/change"), null()),
            (400, "POST", &bad("/portal"), back.clone()),
            (400, "POST", &bad("/subscription/cancel"), json!({})),
            (400, "POST", &bad("/subscription/resume"), json!({})),
            (
                400,
                "POST",
                &bad("/subscription/change"),
                json!({"price": shop.plan_a.price}),
            ),
            (400, "DELETE", &bad("/subscription/change"), null()),
        ],
    )
    .await;
    subscribe(&shop, acct).await;
    let change = a("/subscription/change");
    steps(
        app,
        &[
            (409, "POST", checkout, buy(&shop.plan_b.price)),
            (200, "GET", &a(""), null()),
            (400, "GET", &bad(""), null()),
            (200, "GET", &a("/payments"), null()),
            (400, "GET", &a("/payments?cursor=nope"), null()),
            (200, "POST", &a("/portal"), back.clone()),
            (400, "POST", &a("/portal"), json!({})),
            (409, "POST", &a("/subscription/resume"), json!({})),
            (400, "POST", &a("/subscription/resume"), json!({"x": 1})),
            (200, "POST", &a("/subscription/cancel"), json!({})),
            (
                400,
                "POST",
                &a("/subscription/cancel"),
                json!({"immediately": "no"}),
            ),
        ],
    )
    .await;
    refuse_once(&shop.fake, "POST", "/v1/subscriptions");
    expect(app, 502, "POST", &a("/subscription/resume"), json!({})).await;
    refuse_once(&shop.fake, "POST", "/v1/billing_portal/sessions");
    expect(app, 502, "POST", &a("/portal"), back).await;
    refuse_once(&shop.fake, "POST", "/v1/checkout/sessions");
    expect(app, 502, "POST", checkout, buy(&shop.pack.price)).await;
    steps(
        app,
        &[
            (200, "POST", &a("/subscription/resume"), json!({})),
            (409, "POST", &change, json!({"price": shop.plan_a.price})),
            (400, "POST", &change, json!({"when": "soon"})),
            (409, "DELETE", &change, null()),
            (200, "POST", &change, json!({"price": shop.plan_b.price})),
        ],
    )
    .await;
    shop.deliver_all().await;
    steps(
        app,
        &[
            (200, "POST", &change, json!({"price": shop.plan_a.price})),
            (200, "DELETE", &change, null()),
        ],
    )
    .await;
    refuse_once(&shop.fake, "POST", "/v1/subscriptions");
    expect(app, 502, "POST", &a("/subscription/cancel"), json!({})).await;

    // Entitlements and top-ups.
    let top_up = a("/top-up");
    let pack = json!({"below": "5", "price": shop.pack.price});
    steps(
        app,
        &[
            (200, "GET", &a("/entitlements"), null()),
            (400, "GET", &bad("/entitlements"), null()),
            (200, "GET", &a("/entitlements/feature_x"), null()),
            (
                400,
                "GET",
                &a(&format!("/entitlements/{}", "k".repeat(201))),
                null(),
            ),
            (404, "GET", &top_up, null()),
            (404, "DELETE", &top_up, null()),
            (
                400,
                "PUT",
                &top_up,
                json!({"below": "5", "price": shop.plan_a.price}),
            ),
            (200, "PUT", &top_up, pack.clone()),
            (200, "GET", &top_up, null()),
            (200, "DELETE", &top_up, null()),
            (400, "GET", &bad("/top-up"), null()),
            (400, "PUT", &bad("/top-up"), pack.clone()),
            (400, "DELETE", &bad("/top-up"), null()),
        ],
    )
    .await;

    // What every operation shares: no token, the wrong scope, a NUL, a body too large.
    let narrow = grant_token(&db.store, "narrow", "entitlements:read").await;
    let other = grant_token(&db.store, "other", "catalog:read").await;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{account}", acct)
            .replace("{hold}", "hold_x")
            .replace("{id}", "prod_x")
            .replace("{lookup_key}", "k");
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            // The NUL check reads every POST and PUT body, whether the operation takes one.
            let has_body = method == "POST" || method == "PUT";
            let url = app.url(&concrete);
            if let Some(security) = op.get("security") {
                let (status, _) = call(&method, &url, None, None, &[]).await;
                assert_eq!(status, 401, "{method} {path}");
                let scope = &security[0]["token"][0];
                let token = if scope == "entitlements:read" {
                    &other
                } else {
                    &narrow
                };
                let (status, _) = call(&method, &url, Some(token), None, &[]).await;
                assert_eq!(status, 403, "{method} {path}");
            }
            let (status, _) = call(
                &method,
                &format!("{url}?x=%00"),
                Some(&app.token),
                None,
                &[],
            )
            .await;
            assert_eq!(status, 400, "{method} {path}");
            // A path parameter that is not UTF-8 once decoded: the JSON error, not axum's
            // text/plain refusal.
            if path.contains("{account}") || path.contains("{id}") {
                let odd = app.url(
                    &path
                        .replace("{account}", "%FF")
                        .replace("{hold}", "hold_x")
                        .replace("{id}", "%C3%28")
                        .replace("{lookup_key}", "k"),
                );
                let (status, body) = call(&method, &odd, Some(&app.token), None, &[]).await;
                assert_eq!(
                    (status, &body["error"]["code"]),
                    (400, &json!("invalid_path")),
                    "{method} {path}"
                );
            }
            if has_body {
                let big = vec![b' '; (1 << 20) + 1];
                let (status, _) = call(&method, &url, Some(&app.token), Some(big), &[]).await;
                assert_eq!(status, 413, "{method} {path}");
            }
        }
    }

    // Every documented answer was seen.
    let seen = conformance::SEEN.lock().unwrap().clone();
    let mut missing = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for status in op["responses"].as_object().unwrap().keys() {
                let key = format!("{} {path} {status}", method.to_uppercase());
                if !seen.contains(&key) && !NOT_PRODUCED.iter().any(|(k, _)| key.ends_with(k)) {
                    missing.push(key);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented but never produced here: {missing:#?}"
    );
}

/// Answers the walk does not produce, by the end of `METHOD path status`, and why.
const NOT_PRODUCED: &[(&str, &str)] = &[
    (" 500", "a failure on the service's side"),
    (
        " 408",
        "a request slower than HTTP_REQUEST_TIMEOUT (tests/hardening.rs)",
    ),
    (
        " 503",
        "Stripe disabled or unreachable (tests/manager.rs, tests/faults.rs check them against the document)",
    ),
    (
        "/api/v1/sync 409",
        "a second full sync during one (tests/sync.rs)",
    ),
    (
        "/holds/{hold}/capture 402",
        "a lot expiring while held (tests/holds.rs)",
    ),
    (
        "/subscription/change 502",
        "Stripe refusing a plan change (tests/plan_changes.rs)",
    ),
    (
        "DELETE /api/v1/accounts/{account}/subscription/change 502",
        "Stripe refusing a release",
    ),
];
