//! The HTTP side: accept loop, request recording, rate limit, faults, auth,
//! idempotent replay, routing, and the `/_fake/…` control routes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::api::{Answer, ApiError, Ctx, State, new_id};
use crate::faults::{Fault, FaultKind};
use crate::form;
use crate::{RecordedRequest, Shared, lock};

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault: connection dropped")
    }
}

impl std::error::Error for DropConnection {}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

fn respond(status: u16, body: &Value, extra: &[(&str, String)]) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", "application/json");
    for (k, v) in extra {
        builder = builder.header(*k, v);
    }
    builder
        .body(Body::from(
            serde_json::to_vec_pretty(body).unwrap_or_default(),
        ))
        .expect("valid response")
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), 4 << 20).await else {
        return Err(DropConnection);
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let idempotency_key = header(&parts.headers, "idempotency-key");
    let version = header(&parts.headers, "stripe-version");
    let auth = header(&parts.headers, "authorization");
    lock(&shared.log).push(RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        idempotency_key: idempotency_key.clone(),
        stripe_version: version.clone(),
        authorized: auth.is_some(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });

    if path.starts_with("/_fake/") {
        return Ok(control(&shared, &method, &path, &bytes));
    }

    let request_id = format!("req_{}", &new_id("x")[2..16]);
    let echo_version = version
        .clone()
        .unwrap_or_else(|| lock(&shared.state).api_version.clone());
    let mut extra = vec![
        ("Request-Id", request_id.clone()),
        ("Stripe-Version", echo_version),
    ];
    if let Some(key) = &idempotency_key {
        extra.push(("Idempotency-Key", key.clone()));
    }

    if let Some(rate) = lock(&shared.rate).as_mut()
        && !rate.admit()
    {
        extra.push(("Stripe-Rate-Limited-Reason", "global-rate".into()));
        let body = json!({"error": {"type": "invalid_request_error", "code": "rate_limit",
                "message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."}});
        return Ok(respond(429, &body, &extra));
    }

    let fault = lock(&shared.faults).take(method.as_str(), &path);
    match fault {
        Some(FaultKind::Drop) => return Err(DropConnection),
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::Status {
            status,
            retry_after,
            should_retry,
        }) => {
            if let Some(after) = retry_after {
                extra.push(("Retry-After", after.to_string()));
            }
            if let Some(flag) = should_retry {
                extra.push(("Stripe-Should-Retry", flag.to_string()));
            }
            let kind = if status >= 500 {
                "api_error"
            } else {
                "invalid_request_error"
            };
            let body = json!({"error": {"type": kind, "message": format!("Injected fault: HTTP {status}")}});
            return Ok(respond(status, &body, &extra));
        }
        None => {}
    }

    if let Err(e) = authorize(&shared, auth.as_deref()) {
        return Ok(respond(e.status, &e.body(), &extra));
    }

    let params = form::decode(if method == Method::GET {
        query.as_bytes()
    } else {
        &bytes
    });
    let fingerprint = format!("{method} {path} {}", String::from_utf8_lossy(&bytes));
    if method == Method::POST
        && let Some(key) = &idempotency_key
        && let Some((seen, status, body)) = lock(&shared.idempotency).get(key).cloned()
    {
        if seen != fingerprint {
            let body = json!({"error": {"type": "idempotency_error", "message": format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request.")}});
            return Ok(respond(400, &body, &extra));
        }
        extra.push(("Idempotent-Replayed", "true".into()));
        return Ok(respond(status, &body, &extra));
    }

    let ctx = Ctx {
        request_id: Some(request_id),
        idempotency_key: idempotency_key.clone(),
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (answer, events) = {
        let mut state = lock(&shared.state);
        let answer = crate::api::route(&mut state, method.as_str(), &segments, &params, &ctx);
        (answer, std::mem::take(&mut state.outbox))
    };
    shared.webhooks.dispatch(events);
    let (status, body) = answer.unwrap_or_else(|e| (e.status, e.body()));
    // Stripe saves a result only once an endpoint started executing: a request refused
    // by parameter validation (400, 404 for a missing object) is not saved, so a retry
    // with the same key and corrected parameters runs. Every refusal here happens before
    // any change, so only successes (and 402 card errors, were the fake to make them)
    // are saved.
    if method == Method::POST
        && (status < 400 || status == 402)
        && let Some(key) = idempotency_key
    {
        lock(&shared.idempotency).insert(key, (fingerprint, status, body.clone()));
    }
    Ok(respond(status, &body, &extra))
}

fn authorize(shared: &Shared, auth: Option<&str>) -> Result<(), ApiError> {
    let unauthorized = |message: String| ApiError {
        status: 401,
        kind: "invalid_request_error",
        code: None,
        message,
        param: None,
        detail: None,
    };
    let basic = auth
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(basic_user);
    let Some(key) = auth
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or(basic)
    else {
        return Err(unauthorized(
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').".into(),
        ));
    };
    let well_formed = key.starts_with("sk_") || key.starts_with("rk_");
    let key = key.as_str();
    let accepted = match lock(&shared.required_key).as_deref() {
        Some(required) => key == required,
        None => well_formed,
    };
    if accepted {
        return Ok(());
    }
    // Stripe quotes the start and end of the key it refused; so do we, which is why the
    // client scrubs key-shaped text from every error message.
    let shown = if key.len() > 12 {
        format!(
            "{}{}{}",
            &key[..8],
            "*".repeat(key.len() - 12),
            &key[key.len() - 4..]
        )
    } else {
        key.to_owned()
    };
    Err(unauthorized(format!("Invalid API Key provided: {shown}")))
}

/// `/_fake/…`: drive the standalone fake from curl or another language. Bodies are JSON.
fn control(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Response<Body> {
    let b: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let answer: Answer = match (method.as_str(), &seg[1..]) {
        ("GET", ["requests"]) => Ok((200, json!(*lock(&shared.log)))),
        ("GET", ["stats"]) => {
            let requests = lock(&shared.log)
                .iter()
                .filter(|r| !r.path.starts_with("/_fake/"))
                .count();
            let rate_limited = lock(&shared.rate).as_ref().map_or(0, |r| r.rejected);
            Ok((
                200,
                json!({"requests": requests, "rate_limited": rate_limited}),
            ))
        }
        ("DELETE", ["requests"]) => {
            lock(&shared.log).clear();
            Ok((200, json!({"cleared": true})))
        }
        ("POST", ["faults"]) => parse_fault(&b).map(|f| {
            lock(&shared.faults).add(f);
            (200, json!({"added": true}))
        }),
        ("DELETE", ["faults"]) => {
            lock(&shared.faults).clear();
            Ok((200, json!({"cleared": true})))
        }
        ("POST", ["rate_limit"]) => {
            let rps = b["per_second"].as_u64().map(|n| n as u32);
            *lock(&shared.rate) = rps.map(crate::faults::RateWindow::new);
            Ok((200, json!({"per_second": rps})))
        }
        ("POST", ["webhooks"]) => match (b["url"].as_str(), b["secret"].as_str()) {
            (Some(url), Some(secret)) => {
                shared.webhooks.set_target(url, secret);
                Ok((200, json!({"url": url})))
            }
            _ => Err(ApiError::required("url and secret")),
        },
        ("GET", ["deliveries"]) => Ok((200, json!(shared.webhooks.deliveries()))),
        ("POST", ["clock"]) => {
            let mut st = lock(&shared.state);
            st.advance_clock(b["advance"].as_i64().unwrap_or(0));
            Ok((200, json!({"now": st.now()})))
        }
        // `{"paid": false}` completes unpaid; `{"card": "declines"}` pays with a card
        // that is saved and behaves so later (`State::complete_session_with_card`).
        ("POST", ["checkout", "sessions", id, "complete"]) => {
            with_events(shared, |s| match b["card"].as_str() {
                Some(card) => s.complete_session_with_card(id, card),
                None => s.complete_session(id, b["paid"].as_bool().unwrap_or(true)),
            })
        }
        // `{"behavior": "succeeds" | "declines" | "requires_authentication", "default": true}`:
        // a saved card (`State::attach_card`), optionally the customer's default for invoices.
        ("POST", ["customers", id, "payment_methods"]) => with_events(shared, |s| {
            let pm = s.attach_card(id, b["behavior"].as_str().unwrap_or("succeeds"))?;
            if b["default"].as_bool().unwrap_or(false) {
                let update = json!({"invoice_settings": {"default_payment_method": pm}});
                s.update_customer(id, &update, &Ctx::default())?;
            }
            s.retrieve("payment_method", &pm)
        }),
        ("POST", ["checkout", "sessions", id, "settle"]) => with_events(shared, |s| {
            s.settle_async_payment(id, b["succeeded"].as_bool().unwrap_or(true))
        }),
        ("POST", ["subscriptions", id, "renew"]) => {
            with_events(shared, |s| s.renew_subscription(id))
        }
        ("POST", ["subscriptions", id, "cancel"]) => with_events(shared, |s| {
            s.cancel_subscription(id, b["at_period_end"].as_bool().unwrap_or(false))
        }),
        ("POST", ["subscriptions", id, "renew_unpaid"]) => {
            with_events(shared, |s| s.renew_subscription_unpaid(id))
        }
        ("POST", ["invoices", id, "pay"]) => with_events(shared, |s| s.pay_invoice(id)),
        ("POST", ["invoices", id, "pay_in_parts"]) => with_events(shared, |s| {
            let parts: Vec<i64> = b["parts"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            s.pay_invoice_in_parts(id, &parts)
        }),
        ("POST", ["refunds", id, "fail"]) => with_events(shared, |s| s.fail_refund(id)),
        ("POST", ["refunds", id, "settle"]) => with_events(shared, |s| {
            s.settle_refund(id, b["succeeded"].as_bool().unwrap_or(true))
        }),
        ("POST", ["refund_start_status"]) => with_events(shared, |s| {
            s.refund_start_status = b["status"].as_str().unwrap_or("succeeded").to_owned();
            Ok((200, json!({"status": s.refund_start_status})))
        }),
        ("POST", ["charges", id, "dispute"]) => with_events(shared, |s| {
            s.create_dispute(
                id,
                b["amount"].as_i64(),
                b["inquiry"].as_bool().unwrap_or(false),
            )
        }),
        ("POST", ["disputes", id, "close"]) => with_events(shared, |s| {
            s.close_dispute(id, b["won"].as_bool().unwrap_or(false))
        }),
        // Fake-only: Stripe's API cannot delete prices (see `State::delete_price`).
        ("DELETE", ["prices", id]) => with_events(shared, |s| s.delete_price(id, &Ctx::default())),
        _ => Err(ApiError::missing("control route", path)),
    };
    let (status, body) = answer.unwrap_or_else(|e| (e.status, e.body()));
    respond(status, &body, &[])
}

fn with_events(shared: &Shared, f: impl FnOnce(&mut State) -> Answer) -> Answer {
    let (answer, events) = {
        let mut st = lock(&shared.state);
        let a = f(&mut st);
        (a, std::mem::take(&mut st.outbox))
    };
    shared.webhooks.dispatch(events);
    answer
}

fn parse_fault(b: &Value) -> Result<Fault, ApiError> {
    let kind = match b["kind"].as_str().unwrap_or("status") {
        "status" => FaultKind::Status {
            status: b["status"].as_u64().unwrap_or(500) as u16,
            retry_after: b["retry_after"].as_u64(),
            should_retry: b["should_retry"].as_bool(),
        },
        "delay" => FaultKind::Delay(Duration::from_millis(
            b["delay_ms"].as_u64().unwrap_or(1000),
        )),
        "drop" => FaultKind::Drop,
        other => {
            return Err(ApiError::invalid(
                "kind",
                format!("unknown fault kind {other:?}; use status, delay or drop"),
            ));
        }
    };
    Ok(Fault {
        kind,
        path_prefix: b["path_prefix"].as_str().map(str::to_owned),
        method: b["method"].as_str().map(str::to_owned),
        skip: b["skip"].as_u64().unwrap_or(0) as u32,
        times: b["times"].as_u64().map(|t| t as u32),
    })
}

/// The user part of HTTP Basic credentials (`curl -u sk_test_…:`), as Stripe accepts.
fn basic_user(encoded: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in encoded.trim().bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_owned())
}
