//! The fake's own promises: Stripe-shaped errors and headers, idempotent replay, the
//! checkout flow's events, and signed webhook delivery to a URL.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use fake_stripe::{FakeStripe, sign};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test]
async fn answers_like_stripe() {
    let fake = FakeStripe::start().await;
    let http = client();
    let r = http
        .get(format!("{}/v1/products/prod_nope", fake.url()))
        .bearer_auth("sk_test_x")
        .header("Stripe-Version", "2024-06-20")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["stripe-version"], "2024-06-20");
    assert!(
        r.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource_missing");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let r = http
        .get(format!("{}/v1/products", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/v1/products?limit=101", fake.url()))
        .basic_auth("sk_test_x", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "limit is 1..=100 and Basic auth works");
}

#[tokio::test]
async fn an_idempotency_key_replays_and_refuses_other_parameters() {
    let fake = FakeStripe::start().await;
    let http = client();
    let post = |name: &'static str| {
        http.post(format!("{}/v1/customers", fake.url()))
            .bearer_auth("sk_test_x")
            .header("Idempotency-Key", "k1")
            .form(&[("email", name)])
            .send()
    };
    let a: Value = post("a@x.io").await.unwrap().json().await.unwrap();
    let r = post("a@x.io").await.unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let b: Value = r.json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    let r = post("other@x.io").await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "idempotency_error");
    assert_eq!(fake.with_state(|s| s.customers.len()), 1);
}

#[tokio::test]
async fn events_are_delivered_signed_to_a_url() {
    let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let sink = axum::Router::new().route(
        "/hook",
        post({
            let received = received.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                received.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sink).await });

    let fake = FakeStripe::start().await;
    fake.deliver_webhooks_to(&format!("http://{addr}/hook"), "whsec_test_secret");
    let session = fake.with_state(|s| {
        let ctx = Default::default();
        let (_, p) = s
            .create_product(&json!({"name": "Plan", "default_price_data": {"currency": "usd", "unit_amount": 900, "recurring": {"interval": "month"}}}), &ctx)
            .unwrap();
        let (_, cs) = s
            .create_checkout_session(&json!({"mode": "subscription", "line_items": [{"price": p["default_price"], "quantity": "2"}]}), &ctx)
            .unwrap();
        cs["id"].as_str().unwrap().to_owned()
    });
    fake.with_state(|s| s.complete_session(&session, true))
        .unwrap();
    // product.created, price.created, product.updated, customer.created,
    // customer.subscription.created, charge.succeeded, invoice.paid, checkout.session.completed
    let deliveries = fake.wait_for_deliveries(8).await;
    assert!(
        deliveries.iter().all(|d| d.status == Some(200)),
        "{deliveries:?}"
    );
    let types: std::collections::HashSet<_> =
        deliveries.iter().map(|d| d.event_type.as_str()).collect();
    for t in [
        "checkout.session.completed",
        "invoice.paid",
        "customer.subscription.created",
    ] {
        assert!(types.contains(t), "{types:?}");
    }

    for (headers, body) in received.lock().unwrap().iter() {
        let header = headers["stripe-signature"].to_str().unwrap();
        let t: i64 = header
            .split(',')
            .find_map(|p| p.strip_prefix("t="))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sign("whsec_test_secret", t, body), header);
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["object"], "event");
        if event["type"] == "invoice.paid" {
            let invoice = &event["data"]["object"];
            assert_eq!(invoice["amount_paid"], 1800);
            assert!(
                invoice["parent"]["subscription_details"]["subscription"]
                    .as_str()
                    .unwrap()
                    .starts_with("sub_")
            );
        }
    }
}

/// The standalone binary starts with a demo catalog unless told otherwise (issue #13,
/// item 9): a first `sync` against it shows products, and one invalid one.
#[tokio::test]
async fn the_binary_starts_with_a_demo_catalog_or_empty() {
    use std::io::BufRead;
    for (args, expected) in [(&[][..], 5usize), (&["--empty"][..], 0)] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fake-stripe"))
            .args(["--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .expect("PORT n")
            .to_owned();
        let list: Value = client()
            .get(format!("http://127.0.0.1:{port}/v1/products?limit=100"))
            .bearer_auth("sk_test_x")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let products = list["data"].as_array().unwrap();
        assert_eq!(products.len(), expected, "{args:?}: {list}");
        if expected > 0 {
            assert!(
                products.iter().all(|p| p["default_price"].is_string()
                    && p["metadata"]["credit_amount"].is_string()),
                "{list}"
            );
            assert!(
                products
                    .iter()
                    .any(|p| p["metadata"]["credit_amount"] == "lots"),
                "one invalid product: {list}"
            );
        }
    }
}
