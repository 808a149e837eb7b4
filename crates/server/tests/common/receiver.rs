//! The app's side of events to the app, for tests: an HTTP endpoint that records every
//! request (headers and body) and answers what the test sets (a status, or nothing for
//! a while).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// A Standard Webhooks secret (`whsec_` + base64 of 32 bytes).
pub const APP_SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// One request as the endpoint got it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Delivery {
    pub fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }

    pub fn account(&self) -> String {
        self.json()["data"]["account"].as_str().unwrap().to_owned()
    }
}

#[derive(Debug, Default)]
struct Inner {
    got: Vec<Delivery>,
    status: u16,
    /// Answer after this long (a hung endpoint).
    hang: Option<Duration>,
    /// A `Location` to send with a 3xx.
    location: Option<String>,
}

/// The endpoint; cheap to clone.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

async fn record(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (status, hang, location) = {
        let mut inner = r.inner.lock().unwrap();
        inner.got.push(Delivery {
            path: uri.path().to_owned(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (inner.status, inner.hang, inner.location.clone())
    };
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    let status = StatusCode::from_u16(status).unwrap();
    match location {
        Some(l) if status.is_redirection() => (status, [("location", l)]).into_response(),
        _ => status.into_response(),
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let r = Receiver {
            base,
            inner: Arc::new(Mutex::new(Inner {
                status: 200,
                ..Default::default()
            })),
        };
        let app = Router::new()
            .route("/hooks", post(record))
            .route("/other", post(record))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    /// The endpoint URL the service is given.
    pub fn url(&self) -> String {
        format!("{}/hooks", self.base)
    }

    /// The settings that send events here.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("APP_WEBHOOK_URL".into(), self.url()),
            ("APP_WEBHOOK_SECRET".into(), APP_SECRET.into()),
            ("APP_WEBHOOK_ALLOW_PRIVATE".into(), "true".into()),
        ]
    }

    pub fn answer(&self, status: u16) {
        self.inner.lock().unwrap().status = status;
    }

    pub fn hang(&self, d: Option<Duration>) {
        self.inner.lock().unwrap().hang = d;
    }

    pub fn redirect_to(&self, location: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.status = 307;
        inner.location = Some(location.to_owned());
    }

    pub fn got(&self) -> Vec<Delivery> {
        self.inner.lock().unwrap().got.clone()
    }

    /// Waits until `done` holds for what was received (at most `secs`).
    pub async fn wait_for(
        &self,
        secs: u64,
        what: &str,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.got();
            if done(&got) {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited {secs} s for {what}; got {:?}",
                got.iter().map(|d| d.body.clone()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The event types received for `account`, in arrival order.
    pub fn kinds_of(&self, account: &str) -> Vec<String> {
        self.got()
            .iter()
            .filter(|d| d.path == "/hooks" && d.account() == account)
            .map(Delivery::kind)
            .collect()
    }
}
