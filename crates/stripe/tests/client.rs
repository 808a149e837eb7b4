//! The client against the fake Stripe over real HTTP, with paused time: the fake runs in
//! the test's own single-threaded runtime, so time only jumps when everything (client
//! and server) is idle waiting for a timer.

use std::time::Duration;

use fake_stripe::{FakeStripe, Fault, FaultKind};
use serde_json::json;
use sm_stripe::{
    ApiKey, BreakerConfig, CircuitState, Client, ClientConfig, ErrorKind, Form, RetryPolicy,
    StripeError,
};
use tokio::time::Instant;

const KEY: &str = "sk_test_51ClientTestKeyAbCdEf";

fn config(fake: &FakeStripe) -> ClientConfig {
    ClientConfig {
        api_base: fake.url(),
        timeout: Duration::from_secs(2),
        max_rps: 0,
        retry: RetryPolicy {
            max_retries: 3,
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    }
}

fn client(fake: &FakeStripe) -> Client {
    Client::new(ApiKey::parse(KEY).unwrap(), config(fake)).unwrap()
}

fn seed_product(fake: &FakeStripe, name: &str) -> String {
    fake.with_state(|s| {
        let (_, p) = s
            .create_product(&json!({"name": name}), &Default::default())
            .unwrap();
        p["id"].as_str().unwrap().to_owned()
    })
}

#[tokio::test(start_paused = true)]
async fn three_500s_then_success_reuses_one_idempotency_key() {
    let fake = FakeStripe::start().await;
    let client = client(&fake);
    fake.inject(Fault::next(3, Fault::status(500)));

    let customer = client
        .create_customer(&Form::new().push("email", "a@example.com"), None)
        .await
        .expect("succeeds on the fourth attempt");
    assert_eq!(customer.email.as_deref(), Some("a@example.com"));

    let posts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 4);
    let key = posts[0].idempotency_key.clone().expect("POSTs carry a key");
    let parsed = uuid::Uuid::parse_str(&key).expect("a UUID");
    assert_eq!(parsed.get_version_num(), 4);
    assert!(
        posts
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some(key.as_str()))
    );
    // Exactly one customer was created.
    assert_eq!(fake.with_state(|s| s.customers.len()), 1);
    assert_eq!(client.health().retries, 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_for() {
    let fake = FakeStripe::start().await;
    let id = seed_product(&fake, "Pack");
    let client = client(&fake);
    fake.inject(Fault::next(
        1,
        FaultKind::Status {
            status: 429,
            retry_after: Some(1),
            should_retry: None,
        },
    ));
    let started = Instant::now();
    let product = client.retrieve_product(&id).await.unwrap();
    assert_eq!(product.name, "Pack");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_retried() {
    let fake = FakeStripe::start().await;
    let id = seed_product(&fake, "Slow");
    let client = client(&fake);
    fake.inject(Fault::next(1, FaultKind::Delay(Duration::from_secs(60))));
    let started = Instant::now();
    client
        .retrieve_product(&id)
        .await
        .expect("second attempt answers");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(60),
        "{elapsed:?}"
    );
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn timeouts_that_persist_end_in_a_timeout_error() {
    let fake = FakeStripe::start().await;
    let id = seed_product(&fake, "Slow");
    let client = client(&fake);
    fake.inject(Fault::on_path(
        "/v1/products",
        FaultKind::Delay(Duration::from_secs(60)),
    ));
    let err = client.retrieve_product(&id).await.unwrap_err();
    assert!(matches!(err, StripeError::Timeout { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Network);
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_is_retried() {
    let fake = FakeStripe::start().await;
    let id = seed_product(&fake, "Reset");
    let client = client(&fake);
    fake.inject(Fault::next(2, FaultKind::Drop));
    client
        .retrieve_product(&id)
        .await
        .expect("third attempt answers");
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn other_4xx_are_never_retried() {
    let fake = FakeStripe::start().await;
    let client = client(&fake);
    let err = client.retrieve_product("prod_missing").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.request_id().is_some_and(|r| r.starts_with("req_")));
    fake.inject(Fault::next(1, Fault::status(400)));
    let err = client.retrieve_product("prod_missing").await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn stripe_should_retry_false_stops_at_once() {
    let fake = FakeStripe::start().await;
    let client = client(&fake);
    fake.inject(Fault::next(
        5,
        FaultKind::Status {
            status: 503,
            retry_after: None,
            should_retry: Some(false),
        },
    ));
    let err = client.retrieve_product("prod_x").await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn ten_failures_open_the_breaker_and_then_calls_fail_fast() {
    let fake = FakeStripe::start().await;
    let id = seed_product(&fake, "Breaker");
    let cfg = ClientConfig {
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        breaker: BreakerConfig {
            failure_threshold: 10,
            open_for: Duration::from_secs(30),
        },
        ..config(&fake)
    };
    let client = Client::new(ApiKey::parse(KEY).unwrap(), cfg).unwrap();
    fake.inject(Fault::on_path("/v1/products", Fault::status(500)));
    for _ in 0..10 {
        assert_eq!(
            client.retrieve_product(&id).await.unwrap_err().status(),
            Some(500)
        );
    }
    assert_eq!(client.circuit_state(), CircuitState::Open);

    let started = Instant::now();
    let err = client.retrieve_product(&id).await.unwrap_err();
    assert!(
        matches!(err, StripeError::CircuitOpen { failures: 10, .. }),
        "{err}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "no waiting, no network");
    assert_eq!(fake.request_count(), 10, "the open circuit sent nothing");
    assert_eq!(client.health().last_error.unwrap().kind, "circuit_open");

    // After the open period one probe goes through; it succeeds and closes the circuit.
    fake.clear_faults();
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(client.circuit_state(), CircuitState::HalfOpen);
    client
        .retrieve_product(&id)
        .await
        .expect("the probe succeeds");
    assert_eq!(client.circuit_state(), CircuitState::Closed);
    assert_eq!(fake.request_count(), 11);
}

#[tokio::test(start_paused = true)]
async fn the_limiter_paces_requests_under_the_servers_limit() {
    let fake = FakeStripe::start().await;
    let id = seed_product(&fake, "Paced");
    fake.set_rate_limit(Some(5));
    let cfg = ClientConfig {
        max_rps: 5,
        ..config(&fake)
    };
    let client = Client::new(ApiKey::parse(KEY).unwrap(), cfg).unwrap();
    let started = Instant::now();
    for _ in 0..20 {
        client.retrieve_product(&id).await.unwrap();
    }
    let elapsed = started.elapsed();
    // One every 200 ms: the 20th leaves at 3.8 s.
    assert!(elapsed >= Duration::from_millis(3800), "{elapsed:?}");
    assert_eq!(fake.rate_limited_count(), 0);
    assert_eq!(fake.request_count(), 20);
}

#[tokio::test(start_paused = true)]
async fn without_the_limiter_the_fake_answers_429_and_the_client_backs_off() {
    let fake = FakeStripe::start().await;
    let id = seed_product(&fake, "Burst");
    fake.set_rate_limit(Some(5));
    // Backoff ceilings of 2 s, 4 s, 8 s…: with full jitter the chance that ten draws
    // all land inside the one-second window is negligible, so this cannot flake.
    let cfg = ClientConfig {
        retry: RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_secs(2),
            ..RetryPolicy::default()
        },
        ..config(&fake)
    };
    let client = Client::new(ApiKey::parse(KEY).unwrap(), cfg).unwrap();
    for _ in 0..8 {
        client
            .retrieve_product(&id)
            .await
            .expect("retries absorb the 429s");
    }
    assert!(fake.rate_limited_count() > 0);
}

#[tokio::test(start_paused = true)]
async fn every_request_carries_the_pinned_version_and_the_key() {
    let fake = FakeStripe::start().await;
    let id = seed_product(&fake, "Versioned");
    let client = client(&fake);
    client.retrieve_product(&id).await.unwrap();
    client.probe().await.unwrap();
    let _ = client.retrieve_price("price_nope").await;
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    for r in reqs {
        assert_eq!(
            r.stripe_version.as_deref(),
            Some(sm_stripe::PINNED_API_VERSION)
        );
        assert!(r.authorized);
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_key_is_an_auth_error_that_never_shows_the_key() {
    let fake = FakeStripe::start().await;
    fake.require_key(Some("sk_test_theOtherKey1234"));
    let client = client(&fake);
    let err = client.probe().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains("51ClientTestKey"), "{shown}");
    assert!(!shown.contains("AbCdEf"), "{shown}");
    assert_eq!(fake.request_count(), 1, "401 is not retried");
    assert_eq!(client.health().last_error.unwrap().kind, "auth");
}

#[tokio::test(start_paused = true)]
async fn pagination_streams_every_page_with_limit_100() {
    use futures_util::TryStreamExt;
    let fake = FakeStripe::start().await;
    fake.with_state(|s| {
        s.emit_events = false;
        for i in 0..250 {
            s.create_product(&json!({"name": format!("P{i}")}), &Default::default())
                .unwrap();
        }
    });
    let client = client(&fake);
    let pages: Vec<_> = client.product_pages().try_collect().await.unwrap();
    assert_eq!(
        pages.iter().map(|p| p.data.len()).collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
    let names: std::collections::HashSet<_> = pages
        .iter()
        .flat_map(|p| &p.data)
        .map(|p| p.value.name.clone())
        .collect();
    assert_eq!(names.len(), 250);
    // Newest first.
    assert_eq!(pages[0].data[0].value.name, "P249");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.query.contains("limit=100")));
    assert!(
        reqs[1]
            .query
            .contains(&format!("starting_after={}", pages[0].data[99].value.id))
    );
}

#[tokio::test(start_paused = true)]
async fn checkout_session_round_trip_with_line_items() {
    let fake = FakeStripe::start().await;
    let price = fake.with_state(|s| {
        let (_, p) = s
            .create_product(
                &json!({"name": "Credits", "default_price_data": {"currency": "jpy", "unit_amount": "500"}}),
                &Default::default(),
            )
            .unwrap();
        p["default_price"].as_str().unwrap().to_owned()
    });
    let client = client(&fake);
    let form = Form::new()
        .push("mode", "payment")
        .push("line_items[0][price]", price.clone())
        .push("line_items[0][quantity]", "3")
        .push("client_reference_id", "acct_42")
        .push_map("metadata", [("account", "acct_42")]);
    let session = client
        .create_checkout_session(&form, Some("checkout-acct_42-1".into()))
        .await
        .unwrap();
    assert_eq!(session.payment_status, "unpaid");
    assert_eq!(session.amount_total, Some(1500));
    assert_eq!(
        session.metadata.get("account").map(String::as_str),
        Some("acct_42")
    );
    let items = client
        .checkout_session_line_items(&session.id)
        .await
        .unwrap();
    assert_eq!(items.data[0].quantity, Some(3));
    assert_eq!(items.data[0].price.as_ref().unwrap().id, price);

    // The same idempotency key replays the same session instead of creating another.
    let again = client
        .create_checkout_session(&form, Some("checkout-acct_42-1".into()))
        .await
        .unwrap();
    assert_eq!(again.id, session.id);
    assert_eq!(fake.with_state(|s| s.sessions.len()), 1);

    fake.with_state(|s| s.complete_session(&session.id, true))
        .unwrap();
    let done = client.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!(done.payment_status, "paid");
}
