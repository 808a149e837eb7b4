//! Driving the admin UI over real HTTP as a browser would: sign-in with its CSRF
//! cookie, a session cookie, forms with the session's CSRF token, redirects by hand.

use sm_store::testing::TestDb;

use super::*;

pub const EMAIL: &str = "ops@example.com";
pub const PASSWORD: &str = "a long enough passphrase";

/// A client that neither follows redirects nor keeps cookies: the test handles both.
pub fn browser() -> reqwest::Client {
    sm_stripe::client::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Creates an admin with the real binary, the password on its standard input.
pub async fn create_admin(db: &TestDb, email: &str, password: &str) -> (i32, String) {
    let env = env_for(None, db);
    let (code, out, err) = run_cli_with_stdin(
        &env,
        &["admin", "create-user", email],
        &format!("{password}\n"),
    )
    .await;
    (code, out + &err)
}

pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

pub fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| {
        c.split(';')
            .next()?
            .strip_prefix(&format!("{name}="))
            .map(str::to_owned)
    })
}

pub fn hidden_csrf(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[start..start + 64].to_owned()
}

/// Opens the sign-in page: `(csrf, cookie header for the sign-in POST)`.
pub async fn login_form(app: &TestApp) -> (String, String) {
    let r = browser().get(app.url("/admin/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(&r);
    let csrf = cookie_value(&cookies, "sm_login_csrf").unwrap();
    assert_eq!(hidden_csrf(&r.text().await.unwrap()), csrf);
    (csrf.clone(), format!("sm_login_csrf={csrf}"))
}

pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let (csrf, cookie) = login_form(app).await;
    post_login(app, email, password, &csrf, Some(&cookie), &[]).await
}

/// Sends the sign-in form with exactly the given CSRF field, cookie and extra headers.
pub async fn post_login(
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

/// GETs `path` with the session cookie `cookie`, following no redirect.
pub async fn get_with(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    browser()
        .get(app.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}

pub fn location(r: &reqwest::Response) -> &str {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

/// A signed-in browser: its cookie and the session's CSRF token.
pub struct Operator {
    pub cookie: String,
    pub csrf: String,
}

impl Operator {
    pub async fn sign_in(app: &TestApp, db: &TestDb) -> Self {
        assert_eq!(create_admin(db, EMAIL, PASSWORD).await.0, 0);
        let r = sign_in(app, EMAIL, PASSWORD).await;
        let cookie = format!(
            "sm_session={}",
            cookie_value(&set_cookies(&r), "sm_session").unwrap()
        );
        let html = get_with(app, "/admin", &cookie).await.text().await.unwrap();
        Self {
            csrf: hidden_csrf(&html),
            cookie,
        }
    }

    pub async fn page(&self, app: &TestApp, path: &str) -> String {
        let r = get_with(app, path, &self.cookie).await;
        assert_eq!(r.status(), 200, "GET {path}");
        let html = r.text().await.unwrap();
        for secret in [KEY, WEBHOOK_SECRET] {
            assert!(!html.contains(secret), "{path} rendered a secret");
        }
        html
    }

    /// Submits a form with the CSRF token; returns where it redirected.
    pub async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> String {
        let mut form: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let r = browser()
            .post(app.url(path))
            .header("Cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "POST {path}");
        location(&r).to_owned()
    }
}

pub fn flash(html: &str) -> Option<String> {
    let (_, rest) = html.split_once(r#"class="flash "#)?;
    let text = rest.split_once('>')?.1.split('<').next()?;
    Some(text.replace("&#39;", "'").replace("&#34;", "\""))
}
