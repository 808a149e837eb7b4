//! The admin sign-in over real HTTP on SQLite and PostgreSQL: sessions in the database,
//! cookie flags, CSRF on every POST, redirects for strangers, throttling that slows down
//! and then locks without revealing whether an email exists, and the audit log.

mod common;

use common::*;
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    an_admin_signs_in_sees_the_dashboard_and_signs_out,
    strangers_are_redirected_and_forms_need_their_csrf_token,
    failed_sign_ins_slow_down_then_lock_and_never_reveal_the_email,
);

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "a long enough passphrase";

/// A client that neither follows redirects nor keeps cookies: the test handles both.
fn browser() -> reqwest::Client {
    sm_stripe::client::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn create_admin(db: &TestDb, email: &str, password: &str) -> (i32, String) {
    use tokio::io::AsyncWriteExt;
    let env = env_for(None, db);
    let mut child = command(&env)
        .args(["admin", "create-user", email])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| {
        c.split(';')
            .next()?
            .strip_prefix(&format!("{name}="))
            .map(str::to_owned)
    })
}

fn hidden_csrf(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[start..start + 64].to_owned()
}

/// Opens the sign-in page: `(csrf, cookie header for the sign-in POST)`.
async fn login_form(app: &TestApp) -> (String, String) {
    let r = browser().get(app.url("/admin/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(&r);
    let csrf = cookie_value(&cookies, "sm_login_csrf").unwrap();
    assert_eq!(hidden_csrf(&r.text().await.unwrap()), csrf);
    (csrf.clone(), format!("sm_login_csrf={csrf}"))
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let (csrf, cookie) = login_form(app).await;
    post_login(app, email, password, &csrf, Some(&cookie), &[]).await
}

/// Sends the sign-in form with exactly the given CSRF field, cookie and extra headers.
async fn post_login(
    app: &TestApp,
    email: &str,
    password: &str,
    csrf: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = browser().post(app.url("/admin/login"));
    if let Some(c) = cookie {
        request = request.header("Cookie", c);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request
        .form(&[("email", email), ("password", password), ("csrf", csrf)])
        .send()
        .await
        .unwrap()
}

fn location(r: &reqwest::Response) -> &str {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

async fn an_admin_signs_in_sees_the_dashboard_and_signs_out(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let (code, out) = create_admin(&db, EMAIL, PASSWORD).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = create_admin(&db, EMAIL, PASSWORD).await;
    assert_eq!((code, out.contains("exists")), (2, true), "{out}");
    let (code, out) = create_admin(&db, "short@example.com", "too short").await;
    assert_eq!((code, out.contains("at least 12")), (2, true), "{out}");

    let r = sign_in(&app, "OPS@example.com ", PASSWORD).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/admin"));
    let cookies = set_cookies(&r);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("sm_session="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/admin"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: no Secure flag");
    let cookie = format!(
        "sm_session={}",
        cookie_value(&cookies, "sm_session").unwrap()
    );
    // The database keeps only a hash of the cookie.
    let token = cookie_value(&cookies, "sm_session").unwrap();
    assert!(
        db.store
            .live_session(&token, i64::MAX / 2, i64::MAX / 4, i64::MAX / 4)
            .await
            .unwrap()
            .is_none()
    );

    let r = browser()
        .get(app.url("/admin"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    for expected in [
        "Dashboard",
        EMAIL,
        "Webhook queue",
        "Last sync",
        "2025-03-31.basil",
    ] {
        assert!(html.contains(expected), "{expected} in the dashboard");
    }
    for secret in [KEY, WEBHOOK_SECRET] {
        assert!(!html.contains(secret), "a secret was rendered");
    }
    let csrf = hidden_csrf(&html);

    let r = browser()
        .post(app.url("/admin/logout"))
        .header("Cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/admin/login"));
    assert!(
        set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("sm_session=;") && c.contains("Max-Age=0"))
    );
    let r = browser()
        .get(app.url("/admin"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), location(&r)),
        (303, "/admin/login"),
        "the session ended"
    );

    let audit = db.store.audit_log(None, 10).await.unwrap();
    let actions: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.result.as_str(), a.actor.as_str()))
        .collect();
    assert_eq!(
        actions[..2],
        [("logout", "ok", EMAIL), ("login", "ok", EMAIL)]
    );
    assert!(audit.iter().all(|a| a.origin.is_some()));
}

async fn strangers_are_redirected_and_forms_need_their_csrf_token(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    env.push(("TRUSTED_PROXIES".into(), "127.0.0.1".into()));
    let app = TestApp::start(config_from(&env)).await;
    assert_eq!(create_admin(&db, EMAIL, PASSWORD).await.0, 0);
    // No session: every admin URL, GET or POST, sends to the sign-in page.
    for (method, path) in [
        ("GET", "/admin"),
        ("POST", "/admin/logout"),
        ("GET", "/admin/anything"),
        ("POST", "/admin/anything"),
    ] {
        let request = match method {
            "GET" => browser().get(app.url(path)),
            _ => browser().post(app.url(path)).form(&[("csrf", "x")]),
        };
        let r = request.send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), location(&r)),
            (303, "/admin/login"),
            "{method} {path}"
        );
    }
    // The sign-in form without its cookie, or with another token: refused, no session.
    let (csrf, _) = login_form(&app).await;
    let r = post_login(&app, EMAIL, PASSWORD, &csrf, None, &[]).await;
    assert_eq!(r.status(), 403);
    assert!(
        set_cookies(&r)
            .iter()
            .all(|c| !c.starts_with("sm_session="))
    );
    // Through a trusted proxy that terminated HTTPS the cookie is Secure.
    let (csrf, cookie) = login_form(&app).await;
    let https = [("X-Forwarded-Proto", "https")];
    let r = post_login(&app, EMAIL, PASSWORD, &csrf, Some(&cookie), &https).await;
    assert_eq!(r.status(), 303);
    let cookies = set_cookies(&r);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("sm_session=") && c.contains("; Secure"))
    );
    let cookie = format!(
        "sm_session={}",
        cookie_value(&cookies, "sm_session").unwrap()
    );
    // Signed in: a POST without the session's CSRF token is 403 and changes nothing.
    for form in [vec![], vec![("csrf", "0".repeat(64))]] {
        let r = browser()
            .post(app.url("/admin/logout"))
            .header("Cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    let r = browser()
        .get(app.url("/admin"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "still signed in");
    let r = browser()
        .get(app.url("/admin/nope"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

async fn failed_sign_ins_slow_down_then_lock_and_never_reveal_the_email(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    assert_eq!(create_admin(&db, EMAIL, PASSWORD).await.0, 0);
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let html = r.text().await.unwrap();
        let message = html
            .split(r#"role="alert">"#)
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or("")
            .to_owned();
        (status, message)
    };
    let unknown = answer(sign_in(&app, "nobody@example.com", "whatever it is").await).await;
    let wrong = answer(sign_in(&app, EMAIL, "not the password").await).await;
    assert_eq!(
        unknown, wrong,
        "an unknown email and a wrong password look the same"
    );
    assert_eq!(wrong, (401, "Invalid email or password.".to_owned()));
    let started = std::time::Instant::now();
    for _ in 0..(stripe_manager::admin::LOCK_AFTER - 2) {
        let (status, _) = answer(sign_in(&app, EMAIL, "not the password").await).await;
        assert_eq!(status, 401);
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "later attempts were slowed down"
    );
    let (status, message) = answer(sign_in(&app, EMAIL, PASSWORD).await).await;
    assert_eq!(status, 429, "locked even with the right password");
    assert!(
        message.starts_with("Too many failed sign-in attempts"),
        "{message}"
    );
    let audit = db.store.audit_log(Some("login"), 20).await.unwrap();
    assert_eq!(audit[0].result, "locked");
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.result == "invalid_credentials")
            .count() as i64,
        stripe_manager::admin::LOCK_AFTER
    );
}
