//! What a client without credentials can hold of the service (issue #15, item 2): the
//! real `Application` over real sockets, with small limits so the tests are quick.

mod common;

use std::time::Duration;

use common::*;
use sm_store::testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

sm_store::contract_tests!(
    made_up_methods_and_event_types_do_not_grow_the_metrics,
    a_webhook_without_a_usable_signature_is_refused_before_its_body,
    a_stalled_body_is_cut_off_by_the_request_timeout,
    idle_connections_are_closed_and_the_connection_cap_holds,
    one_address_holds_only_its_share_while_another_is_served,
    a_trusted_proxy_is_not_held_to_the_per_address_cap,
    health_answers_on_its_own_listener_when_the_main_one_is_full,
    an_oversized_request_head_is_refused_not_buffered,
    a_client_that_stops_reading_loses_its_connection,
);

/// Issue #27 (found by its review): a client that asks for large answers and reads
/// none (a tiny receive window) held its connection for ever — hyper has no write
/// timeout — so a few addresses could pin the table. Now a write that makes no progress
/// for `HTTP_REQUEST_TIMEOUT` ends the connection: with a share of one connection,
/// 127.0.0.2 gets a new one served soon after.
async fn a_client_that_stops_reading_loses_its_connection(db: TestDb) {
    let app = app_with(
        &db,
        &[
            ("HTTP_HEADER_TIMEOUT", "60"),
            ("HTTP_REQUEST_TIMEOUT", "1"),
            ("HTTP_MAX_CONNECTIONS", "12"),
            ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "1"),
        ],
    )
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut reader = socket.connect(app.addr).await.unwrap();
    // Hundreds of answers of the API document (~170 KB each, no token needed): far more
    // than the kernel buffers between us, and nothing read.
    let ask = "GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300);
    reader.write_all(ask.as_bytes()).await.unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let served = loop {
        let mut next = connect_from("127.0.0.2", app.addr).await;
        let _ = next
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut answer = String::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(2), next.read_to_string(&mut answer)).await;
        if status_of(&answer) == "200" {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        served,
        "the stalled connection still held 127.0.0.2's only slot"
    );
    drop(reader);
}

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

/// A client whose connections come from `source` (any of 127.0.0.0/8 is this machine).
fn http_from(source: &str) -> reqwest::Client {
    sm_stripe::client::install_tls_provider();
    reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// A connection to `to` from the address `source`.
async fn connect_from(source: &str, to: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// The body of `GET url` through `client`.
async fn text_of(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The status code of a raw HTTP/1.1 answer ("" when none came).
fn status_of(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

/// The value of one series on a metrics page (`name{labels}`), if it is there.
fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits until `series` on `url` reaches `want` (the server closes refused connections
/// as it accepts them, a moment after they connected).
async fn wait_for_series(client: &reqwest::Client, url: &str, series: &str, want: f64) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = series_value(&text_of(client, url).await, series).unwrap_or(-1.0);
        if value >= want || std::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the server closed `stream` (rather than leaving it open and idle).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

const PER_ADDRESS_REFUSED: &str =
    r#"stripe_manager_http_connections_refused_total{limit="per_address"}"#;

/// Issue #27: 127.0.0.2 opens as many idle connections as the whole table holds; it
/// keeps its share (4), the rest are closed at once and counted, and 127.0.0.3 is still
/// served health and the API. (127.0.0.1 itself, where a local proxy connects from, is
/// exempt: see the next test.)
async fn one_address_holds_only_its_share_while_another_is_served(db: TestDb) {
    let app = app_with(
        &db,
        &[
            ("HTTP_HEADER_TIMEOUT", "30"),
            ("HTTP_MAX_CONNECTIONS", "12"),
            ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "4"),
        ],
    )
    .await;
    let other = http_from("127.0.0.3");
    let metrics_url = app.url("/metrics");
    let before = series_value(&text_of(&other, &metrics_url).await, PER_ADDRESS_REFUSED);
    assert_eq!(before, Some(0.0), "exported at 0 from start-up");

    let mut flood = Vec::new();
    for _ in 0..12 {
        flood.push(connect_from("127.0.0.2", app.addr).await);
    }
    let refused = wait_for_series(&other, &metrics_url, PER_ADDRESS_REFUSED, 8.0).await;
    assert_eq!(refused, 8.0, "eight connections over the share are counted");
    let mut open = 0;
    for stream in &mut flood {
        if !closed(stream).await {
            open += 1;
        }
    }
    assert_eq!(open, 4, "127.0.0.2 keeps exactly its share");

    // Another address gets in while 127.0.0.2 holds its whole share.
    let health = other.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let api = other
        .get(app.url("/api/v1/products"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    // And 127.0.0.2 is still refused one more.
    let mut extra = connect_from("127.0.0.2", app.addr).await;
    assert_eq!(
        wait_for_series(&other, &metrics_url, PER_ADDRESS_REFUSED, 9.0).await,
        9.0
    );
    assert!(
        closed(&mut extra).await,
        "a thirteenth connection is closed"
    );
    let mut still_open = 0;
    for stream in &mut flood {
        if !closed(stream).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 4, "the share is still held");
}

/// Behind a proxy every client shares its address: a peer in `TRUSTED_PROXIES`, and
/// 127.0.0.1 (a proxy or app on the same machine), are held to the total cap only.
async fn a_trusted_proxy_is_not_held_to_the_per_address_cap(db: TestDb) {
    let app = app_with(
        &db,
        &[
            ("HTTP_HEADER_TIMEOUT", "30"),
            ("HTTP_MAX_CONNECTIONS", "16"),
            ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "2"),
            ("TRUSTED_PROXIES", "127.0.0.2"),
        ],
    )
    .await;
    let mut proxied = Vec::new();
    for source in ["127.0.0.2", "127.0.0.1"] {
        for _ in 0..6 {
            proxied.push(connect_from(source, app.addr).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for stream in &mut proxied {
        assert!(!closed(stream).await, "the proxies' connections stay open");
    }
    let text = text_of(&http_from("127.0.0.3"), &app.url("/metrics")).await;
    assert_eq!(series_value(&text, PER_ADDRESS_REFUSED), Some(0.0));
}

/// `HEALTH_BIND`: with every slot of the main listener taken, `/healthz`, `/readyz` and
/// `/metrics` answer on the health listener, which serves nothing else.
async fn health_answers_on_its_own_listener_when_the_main_one_is_full(db: TestDb) {
    let app = app_with(
        &db,
        &[
            ("HTTP_HEADER_TIMEOUT", "30"),
            ("HTTP_MAX_CONNECTIONS", "4"),
            ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "4"),
            ("HEALTH_BIND", "127.0.0.1:0"),
        ],
    )
    .await;
    let health = app.health_addr.expect("HEALTH_BIND is listening");
    let mut full = Vec::new();
    for _ in 0..4 {
        full.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let client = http_from("127.0.0.1");
    let total_refused = r#"stripe_manager_http_connections_refused_total{limit="total"}"#;
    let metrics_url = format!("http://{health}/metrics");
    // Every slot is held (connections are accepted in order): a fifth is closed.
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(
        wait_for_series(&client, &metrics_url, total_refused, 1.0).await,
        1.0
    );
    assert!(closed(&mut extra).await, "a fifth connection is closed");
    assert!(
        client.get(app.url("/healthz")).send().await.is_err(),
        "the main listener is full"
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = client
            .get(format!("http://{health}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = client
        .get(format!("http://{health}/api/v1/products"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the health listener serves health only");
    drop(full);
}

/// A request head over `HTTP_MAX_HEADER_BYTES` (32 KiB by default) is answered `431`
/// at once, not buffered until the header timeout; one under it is served.
async fn an_oversized_request_head_is_refused_not_buffered(db: TestDb) {
    let app = app_with(&db, &[("HTTP_HEADER_TIMEOUT", "30")]).await;
    let started = std::time::Instant::now();
    // Never finished: without the bound it would sit in a buffer for 30 s.
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}",
        "a".repeat(34 * 1024)
    );
    let answer = raw(&app, head.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), "431", "{answer:.80}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let fine = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: c={}\r\nConnection: close\r\n\r\n",
        "b".repeat(16 * 1024)
    );
    let answer = raw(&app, fine.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), "200", "{answer:.80}");
}
