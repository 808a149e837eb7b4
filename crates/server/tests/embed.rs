//! `examples/embed.rs`, built with the tests and run as a process: a host axum app with
//! its own routes and stripe-manager nested under `/billing`. Its API needs a token under
//! the prefix too, its webhooks are applied (the background work runs without the
//! service's own listener), its metrics carry the `stripe_manager_` prefix, its admin UI
//! works under the prefix (sign-in, cookies, redirects and every link of every page), and
//! it stops cleanly on SIGTERM.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::admin::{
    EMAIL, PASSWORD, browser, cookie_value, create_admin, hidden_csrf, location, set_cookies,
};
use common::*;
use serde_json::{Value, json};
use sm_store::testing::TestDb;
use tokio::io::{AsyncBufReadExt, BufReader};

sm_store::contract_tests!(
    an_app_that_embeds_the_library_serves_it_under_a_prefix_with_its_background_work
);

/// The example's binary: `scripts/test` builds it before the tests (`cargo build
/// --workspace --example embed`); built here when missing (a bare `cargo nextest run`).
fn example() -> PathBuf {
    static BUILT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let path = bin().parent().unwrap().join("examples").join("embed");
    let _one_at_a_time = BUILT.lock().unwrap();
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--example", "embed"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --example embed failed");
    }
    path
}

async fn an_app_that_embeds_the_library_serves_it_under_a_prefix_with_its_background_work(
    db: TestDb,
) {
    let fake = fake_stripe::FakeStripe::start().await;
    let product = fake.with_state(|s| s.seed_catalog(1, 1))[0].clone();
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("EMBED_BIND".into(), "127.0.0.1:0".into()));
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    let mut child = tokio::process::Command::new(example())
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
        .envs(env)
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs: {e}", example().display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the example starts in time")
        .unwrap()
        .expect("it prints its address");
    let addr = first
        .strip_prefix("listening on ")
        .expect("listening on ADDR");
    let url = |path: &str| format!("http://{addr}{path}");

    // The host's routes, and the service's beside them.
    let home = http().get(url("/")).send().await.unwrap();
    assert_eq!(
        home.text().await.unwrap(),
        "my app: billing is under /billing"
    );
    assert_eq!(
        http()
            .get(url("/billing/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Under the prefix the API still needs a token, with the right scope.
    let credits = url("/billing/api/v1/accounts/acct_embed/credits");
    assert_eq!(http().get(&credits).send().await.unwrap().status(), 401);
    let narrow = grant_token(&db.store, "embed-narrow", "catalog:read").await;
    let r = http()
        .get(&credits)
        .bearer_auth(&narrow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let token = grant_token(&db.store, "embed", "all").await;
    let r = http()
        .post(url("/billing/api/v1/sync"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .get(url(&format!("/billing/api/v1/products/{product}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let price = r.json::<Value>().await.unwrap()["default_price"]["id"].clone();

    // A checkout paid in the fake: its webhook reaches /billing/webhooks/stripe and the
    // background worker applies it.
    fake.deliver_webhooks_to(&url("/billing/webhooks/stripe"), WEBHOOK_SECRET);
    let r = http()
        .post(url("/billing/api/v1/checkout"))
        .bearer_auth(&token)
        .json(&json!({"account": "acct_embed", "price": price,
                       "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let session: Value = r.json().await.unwrap();
    fake.with_state(|s| s.complete_session(session["id"].as_str().unwrap(), true))
        .unwrap();
    let mut available = Value::Null;
    for _ in 0..200 {
        let b: Value = http()
            .get(&credits)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        available = b["available"].clone();
        if available != "0.00" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(
        available,
        "0.00",
        "the webhook was applied: {:?}",
        fake.deliveries()
    );

    // Metrics a host can scrape beside its own: every series is the service's.
    let metrics = http().get(url("/billing/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("stripe_manager_"), "{line}");
    }

    admin_under_the_prefix(&db, &url).await;

    // SIGTERM: the host's server drains, the background work stops, the process exits 0.
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await;
    assert!(killed.unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("it stops in time")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Every `href` and form `action` of a page that points into this site.
fn local_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attribute in ["href=\"", "action=\""] {
        for (i, _) in html.match_indices(attribute) {
            let rest = &html[i + attribute.len()..];
            let link = &rest[..rest.find('"').unwrap()];
            if link.starts_with('/') {
                links.push(link.replace("&amp;", "&").replace("&#38;", "&"));
            }
        }
    }
    links
}

/// The admin nested at `/billing/admin`: a stranger is sent to the sign-in page under the
/// prefix, the cookies are scoped to it, an action redirects under it, and every link and
/// form of every page reached from the dashboard stays under it (none leads to the
/// host's own `/admin`) and answers.
async fn admin_under_the_prefix(db: &TestDb, url: &impl Fn(&str) -> String) {
    let r = browser().get(url("/billing/admin")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/billing/admin/login");
    let r = browser()
        .get(url("/billing/admin/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(&r);
    assert!(
        cookies[0].contains("Path=/billing/admin/login;"),
        "{cookies:?}"
    );
    let login_csrf = cookie_value(&cookies, "sm_login_csrf").unwrap();
    let html = r.text().await.unwrap();
    assert_eq!(local_links(&html), ["/billing/admin/login"], "{html}");

    assert_eq!(create_admin(db, EMAIL, PASSWORD).await.0, 0);
    let r = browser()
        .post(url("/billing/admin/login"))
        .header("Cookie", format!("sm_login_csrf={login_csrf}"))
        .form(&[
            ("email", EMAIL),
            ("password", PASSWORD),
            ("csrf", &login_csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/billing/admin");
    let cookies = set_cookies(&r);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("sm_session="))
        .unwrap();
    assert!(session.contains("Path=/billing/admin;"), "{session}");
    let cookie = format!(
        "sm_session={}",
        cookie_value(&cookies, "sm_session").unwrap()
    );
    let get = |path: String| {
        let cookie = cookie.clone();
        async move {
            let r = browser()
                .get(url(&path))
                .header("Cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "GET {path}");
            r.text().await.unwrap()
        }
    };

    // Two levels of links from the dashboard: the menu's pages and what they link to.
    let dashboard = get("/billing/admin".into()).await;
    let csrf = hidden_csrf(&dashboard);
    let mut seen = BTreeSet::new();
    let mut pages = vec![dashboard];
    for _ in 0..2 {
        let mut next = Vec::new();
        for html in &pages {
            for link in local_links(html) {
                assert!(
                    link.starts_with("/billing/admin"),
                    "{link} leaves the prefix"
                );
                let is_form = html.contains(&format!("action=\"{link}\""));
                if !is_form && seen.insert(link.clone()) {
                    next.push(get(link).await);
                }
            }
        }
        pages = next;
    }
    assert!(seen.len() >= 10, "the menu's pages were reached: {seen:?}");

    // An action's redirect, and a page that does not exist, stay under the prefix.
    let r = browser()
        .post(url("/billing/admin/tokens/revoke"))
        .header("Cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("name", "embed-narrow")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/billing/admin/tokens");
    let r = browser()
        .get(url("/billing/admin/no-such-page"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(local_links(&r.text().await.unwrap()), ["/billing/admin"]);
    // The host's own `/admin` is not the service's.
    let r = browser().get(url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
