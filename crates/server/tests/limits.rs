//! What a client without credentials can hold of the service (issue #15, item 2): the
//! real `Application` over real sockets, with small limits so the tests are quick.

mod common;

use std::time::Duration;

use common::*;
use sm_store::testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

sm_store::contract_tests!(
    made_up_methods_and_event_types_do_not_grow_the_metrics,
    a_webhook_without_a_usable_signature_is_refused_before_its_body,
    a_stalled_body_is_cut_off_by_the_request_timeout,
    idle_connections_are_closed_and_the_connection_cap_holds,
);

async fn app_with(db: &TestDb, extra: &[(&str, &str)]) -> TestApp {
    let mut env = env_for(None, db);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestApp::start(config_from(&env)).await
}

/// Sends `request` on a new connection and reads what comes back until the server
/// closes it or `wait` passes.
async fn raw(app: &TestApp, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn metrics_text(app: &TestApp) -> String {
    http()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// 300 requests with made-up 4 KB methods, and signed events of made-up types: the
/// metrics page names none of them and stays small.
async fn made_up_methods_and_event_types_do_not_grow_the_metrics(db: TestDb) {
    let app = app_with(&db, &[]).await;
    let before = metrics_text(&app).await.len();
    for i in 0..300 {
        let method = format!("M{i}{}", "X".repeat(4096));
        let req =
            format!("{method} /api/v1/products HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw(&app, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 4"),
            "{}",
            &answer[..answer.len().min(80)]
        );
    }
    for i in 0..50 {
        let body = serde_json::json!({"id": format!("evt_madeup{i}"), "object": "event",
            "type": format!("made.up.type{i}"), "created": unix_now(), "livemode": false,
            "data": {"object": {"id": "x"}}})
        .to_string();
        assert_eq!(app.deliver_signed(&body).await, 200);
    }
    let text = metrics_text(&app).await;
    assert!(!text.contains("XXXX"), "a made-up method is a label");
    assert!(!text.contains("made.up"), "a made-up event type is a label");
    assert!(text.contains(r#"method="other""#));
    assert!(text.contains(r#"type="other""#));
    assert!(
        text.len() < before + 20_000,
        "the metrics grew from {before} to {} bytes",
        text.len()
    );
}

/// No signature header, or a stale one, with a 1 MB body announced and never sent: the
/// answer is 400 at once, without waiting for the body.
async fn a_webhook_without_a_usable_signature_is_refused_before_its_body(db: TestDb) {
    let app = app_with(&db, &[]).await;
    for signature in ["", "Stripe-Signature: t=1,v1=00\r\n"] {
        let req = format!(
            "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n{signature}Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{"
        );
        let started = std::time::Instant::now();
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer before the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

/// A well-formed, fresh signature header and a body that stalls: 408 after
/// `HTTP_REQUEST_TIMEOUT`, and the connection is let go.
async fn a_stalled_body_is_cut_off_by_the_request_timeout(db: TestDb) {
    let app = app_with(&db, &[("HTTP_REQUEST_TIMEOUT", "1")]).await;
    let header = format!("t={},v1={}", unix_now(), "0".repeat(64));
    let req = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: {header}\r\nContent-Length: 1000000\r\n\r\n{{\"id\":"
    );
    let answer = raw(&app, req.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Idle connections are closed after `HTTP_HEADER_TIMEOUT`; beyond
/// `HTTP_MAX_CONNECTIONS` a connection is closed at once; a real request gets through
/// once the idle ones are gone.
async fn idle_connections_are_closed_and_the_connection_cap_holds(db: TestDb) {
    let app = app_with(
        &db,
        &[("HTTP_HEADER_TIMEOUT", "1"), ("HTTP_MAX_CONNECTIONS", "8")],
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // Let the server accept all eight, then one more is over the cap: closed at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_millis(800), extra.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the ninth connection is closed"
    );
    // The idle ones are closed by the header timeout.
    for stream in &mut idle {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("closed within the header timeout");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
    let (status, _) = get_json(&app.url("/healthz")).await;
    assert_eq!(status, 200);
    assert!(
        metrics_text(&app)
            .await
            .contains("stripe_manager_http_connections_refused_total")
    );
}
