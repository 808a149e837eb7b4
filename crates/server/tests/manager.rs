//! The Stripe manager's promises, which the old system claimed and did not keep, as
//! tests against the fake Stripe over real HTTP.

mod common;

use std::time::Duration;

use common::*;
use fake_stripe::{FakeStripe, Fault};
use sm_store::Backend;
use sm_store::testing::TestDb;
use stripe_manager::{AppState, StripeManager, Unavailable};

async fn sqlite() -> TestDb {
    TestDb::new(Backend::Sqlite).await.unwrap()
}

#[tokio::test]
async fn the_shared_handle_is_one_instance_built_once() {
    let fake = FakeStripe::start().await;
    let db = sqlite().await;
    let state = AppState::build(
        config_from(&env_for(Some(&fake.url()), &db)),
        &Default::default(),
    )
    .await
    .unwrap();
    let clone = state.clone();
    assert!(StripeManager::same_instance(&state.stripe, &clone.stripe));
    let moved_to_task = tokio::spawn({
        let s = state.clone();
        async move { s.stripe.clone() }
    })
    .await
    .unwrap();
    assert!(StripeManager::same_instance(&state.stripe, &moved_to_task));
    assert!(sm_stripe::Client::same_instance(
        state.stripe.client().unwrap(),
        moved_to_task.client().unwrap()
    ));
    // Building it made no call to Stripe.
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test]
async fn disabled_stripe_is_a_configuration_error_naming_the_cause() {
    let m = StripeManager::new(
        &config(&[("STRIPE_SECRET_KEY", KEY), ("STRIPE_ENABLED", "false")]).stripe,
    )
    .unwrap();
    let err = m.client().unwrap_err();
    assert_eq!(
        err,
        Unavailable::Disabled {
            reason: "STRIPE_ENABLED is false".into()
        }
    );
    assert!(!m.is_available());
    assert_eq!(m.ensure_available().unwrap_err().code(), "disabled");

    let m = StripeManager::new(&config(&[]).stripe).unwrap();
    assert_eq!(
        m.client().unwrap_err().to_string(),
        "Stripe is disabled: STRIPE_SECRET_KEY is not set"
    );
}

#[tokio::test]
async fn the_client_is_available_when_configured() {
    let fake = FakeStripe::start().await;
    let m = StripeManager::new(
        &config(&[("STRIPE_SECRET_KEY", KEY), ("STRIPE_API_BASE", &fake.url())]).stripe,
    )
    .unwrap();
    assert!(m.client().is_ok());
    assert!(m.is_available(), "optimistic before any call");
    assert!(m.ensure_available().is_ok());
}

#[tokio::test]
async fn connectivity_is_true_on_success_and_false_with_a_reason_on_failure() {
    let fake = FakeStripe::start().await;
    let ok = StripeManager::new(
        &config(&[("STRIPE_SECRET_KEY", KEY), ("STRIPE_API_BASE", &fake.url())]).stripe,
    )
    .unwrap();
    assert!(ok.check_connectivity().await.is_ok());
    assert!(ok.status().last_success_at.is_some());

    let dead = format!("http://127.0.0.1:{}", dead_port());
    let down = StripeManager::new(
        &config(&[
            ("STRIPE_SECRET_KEY", KEY),
            ("STRIPE_API_BASE", &dead),
            ("STRIPE_TIMEOUT", "2"),
        ])
        .stripe,
    )
    .unwrap();
    let err = down.check_connectivity().await.unwrap_err();
    assert_eq!(err.code(), "network", "{err}");
    assert!(err.to_string().contains("could not reach Stripe"), "{err}");
    assert!(!down.is_available());

    fake.require_key(Some("sk_test_someoneElsesKey0000"));
    let refused = ok.check_connectivity().await.unwrap_err();
    assert_eq!(refused.code(), "auth");
    assert!(
        !refused.to_string().contains("IntegrationSecretKey"),
        "{refused}"
    );
    assert!(matches!(ok.availability(), Err(Unavailable::Auth { .. })));
}

#[tokio::test]
async fn ensure_available_fails_only_while_stripe_is_unavailable() {
    let fake = FakeStripe::start().await;
    let m = StripeManager::new(
        &config(&[
            ("STRIPE_SECRET_KEY", KEY),
            ("STRIPE_API_BASE", &fake.url()),
            ("STRIPE_MAX_RETRIES", "0"),
            ("STRIPE_BREAKER_THRESHOLD", "3"),
        ])
        .stripe,
    )
    .unwrap();
    assert!(m.ensure_available().is_ok());
    fake.inject(Fault::next(1, Fault::status(503)));
    assert!(m.check_connectivity().await.is_err());
    assert_eq!(m.ensure_available().unwrap_err().code(), "network");
    assert!(m.check_connectivity().await.is_ok());
    assert!(m.ensure_available().is_ok(), "a success clears the failure");

    fake.inject(Fault::next(3, Fault::status(500)));
    for _ in 0..3 {
        let _ = m.check_connectivity().await;
    }
    let err = m.ensure_available().unwrap_err();
    assert_eq!(err.code(), "circuit_open", "{err}");
}

#[tokio::test]
async fn start_up_continues_when_stripe_is_down() {
    let db = sqlite().await;
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let app = TestApp::start(config_from(&env_for(Some(&dead), &db))).await;
    let http = http();
    let health = http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The background probe fails and is reported; readiness does not depend on it.
    let mut ready = serde_json::Value::Null;
    for _ in 0..50 {
        ready = http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["stripe"]["last_error"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["stripe"]["available"], false, "{ready}");
    assert_eq!(ready["stripe"]["last_error"]["kind"], "network", "{ready}");
    app.stop().await;
}

#[tokio::test]
async fn start_up_makes_no_stripe_call_when_the_probe_is_disabled() {
    let fake = FakeStripe::start().await;
    let db = sqlite().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    let app = TestApp::start(config_from(&env)).await;
    let health = http().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.request_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn the_start_up_probe_reaches_stripe_in_the_background() {
    let fake = FakeStripe::start().await;
    let db = sqlite().await;
    let app = TestApp::start(config_from(&env_for(Some(&fake.url()), &db))).await;
    for _ in 0..50 {
        if fake.request_count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/products");
    assert_eq!(
        reqs[0].stripe_version.as_deref(),
        Some(sm_stripe::PINNED_API_VERSION)
    );
    app.stop().await;
}

#[tokio::test]
async fn start_up_with_stripe_disabled_serves_and_reports_why() {
    let db = sqlite().await;
    let app = TestApp::start(config_from(&env_for(None, &db))).await;
    let ready: serde_json::Value = http()
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["stripe"]["enabled"], false);
    assert_eq!(
        ready["stripe"]["reason"],
        "Stripe is disabled: STRIPE_SECRET_KEY is not set"
    );
    app.stop().await;
}
