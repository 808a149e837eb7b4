//! The admin sign-in over real HTTP on SQLite and PostgreSQL: sessions in the database,
//! cookie flags, CSRF on every POST, redirects for strangers, throttling that slows down
//! and then locks without revealing whether an email exists, and the audit log.

mod common;

use common::admin::*;
use common::*;
use fake_stripe::Ctx;
use serde_json::json;
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    an_admin_signs_in_sees_the_dashboard_and_signs_out,
    strangers_are_redirected_and_forms_need_their_csrf_token,
    failed_sign_ins_slow_down_then_lock_and_never_reveal_the_email,
    an_operator_syncs_replays_adjusts_and_finds_it_all_in_the_audit_log,
    every_admin_action_needs_a_session_its_csrf_token_and_a_post,
    parallel_guesses_are_counted_before_any_password_is_checked,
    every_admin_answer_carries_the_security_headers_and_gets_change_nothing,
);

/// Every state-changing admin route (POST only; the last two share their URL with a
/// page, so a GET there shows the page).
const ACTIONS: [&str; 17] = [
    "/admin/logout",
    "/admin/products/sync",
    "/admin/products/prod_x/sync",
    "/admin/sync-all",
    "/admin/events/replay-failed",
    "/admin/events/reconcile",
    "/admin/events/evt_x/replay",
    "/admin/credits/adjust",
    "/admin/credits/refund",
    "/admin/credits/erase",
    "/admin/tokens/revoke",
    "/admin/users/password",
    "/admin/users/disable",
    "/admin/users/enable",
    "/admin/users/unlock",
    "/admin/tokens",
    "/admin/users",
];

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

    let r = get_with(&app, "/admin", &cookie).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    for expected in [
        "Dashboard",
        EMAIL,
        "Webhook queue",
        "Last sync",
        "2025-03-31.basil",
        "0 received, 0 applied, 0 failed",
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
    let r = get_with(&app, "/admin", &cookie).await;
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
    let r = get_with(&app, "/admin", &cookie).await;
    assert_eq!(r.status(), 200, "still signed in");
    let r = get_with(&app, "/admin/nope", &cookie).await;
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
    // The address has tried twice; its LOCK_AFTER-th attempt is counted before any
    // password check and refused.
    for i in 0..(stripe_manager::admin::LOCK_AFTER - 2) {
        let (status, _) = answer(sign_in(&app, EMAIL, "not the password").await).await;
        let last = i == stripe_manager::admin::LOCK_AFTER - 3;
        assert_eq!(status, if last { 429 } else { 401 }, "attempt {}", i + 3);
    }
    // Both keys were counted: the email's attempts are being slowed down, the address
    // (which also tried the unknown email) is locked.
    let now = stripe_manager::clock::unix_now();
    let by_email = db.store.throttle(&format!("email:{EMAIL}")).await.unwrap();
    assert_eq!(by_email.failures, stripe_manager::admin::LOCK_AFTER - 1);
    assert!(matches!(
        stripe_manager::admin::gate(&by_email, now),
        stripe_manager::admin::Gate::Slow(_)
    ));
    let by_address = db.store.throttle("ip:127.0.0.1").await.unwrap();
    assert_eq!(by_address.failures, stripe_manager::admin::LOCK_AFTER);
    assert!(matches!(
        stripe_manager::admin::gate(&by_address, now),
        stripe_manager::admin::Gate::Locked(_)
    ));
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
        stripe_manager::admin::LOCK_AFTER - 1
    );
}

/// 40 wrong guesses in parallel, then the right password: at most `LOCK_AFTER − 1`
/// passwords are checked (the others are counted first and refused), and the right one
/// arrives locked out.
async fn parallel_guesses_are_counted_before_any_password_is_checked(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    assert_eq!(create_admin(&db, EMAIL, PASSWORD).await.0, 0);
    let (csrf, cookie) = login_form(&app).await;
    let guesses = (0..40).map(|i| {
        let (app, csrf, cookie) = (&app, &csrf, &cookie);
        async move {
            post_login(app, EMAIL, &format!("guess {i}"), csrf, Some(cookie), &[])
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count() as i64;
    assert!(
        checked < stripe_manager::admin::LOCK_AFTER,
        "{checked} passwords were checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let r = sign_in(&app, EMAIL, PASSWORD).await;
    assert_eq!(r.status(), 429, "the right password arrives locked out");
}

async fn an_operator_syncs_replays_adjusts_and_finds_it_all_in_the_audit_log(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let (good, bad) = fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, g) = s
            .create_product(
                &json!({"name": "Good pack", "metadata": {"credit_amount": "10"}}),
                &ctx,
            )
            .unwrap();
        let (_, b) = s
            .create_product(
                &json!({"name": "Broken pack", "metadata": {"credit_amount": "ten"}}),
                &ctx,
            )
            .unwrap();
        (
            g["id"].as_str().unwrap().to_owned(),
            b["id"].as_str().unwrap().to_owned(),
        )
    });
    let app = quiet_app(&fake, &db).await;
    let op = Operator::sign_in(&app, &db).await;

    // Sync all, with progress on the sync runs page, then the products table.
    assert_eq!(
        op.post(&app, "/admin/sync-all", &[]).await,
        "/admin/sync-runs"
    );
    let mut runs = String::new();
    for _ in 0..200 {
        runs = op.page(&app, "/admin/sync-runs").await;
        if !runs.contains(r#"id="live""#) && runs.contains("Full sync") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        flash(&runs)
            .unwrap()
            .starts_with("Full sync: synced 2 products"),
        "{runs}"
    );
    // The page that showed the flash may have listed the runs just before the run's row
    // was finished (the sync writes its row, then ends, then flashes): read it again.
    let runs = op.page(&app, "/admin/sync-runs").await;
    assert!(
        runs.contains("admin") && runs.contains("succeeded"),
        "{runs}"
    );
    let html = op.page(&app, "/admin/products").await;
    assert!(html.contains("Good pack") && html.contains("Broken pack"));
    let invalid_only = op.page(&app, "/admin/products?valid=invalid").await;
    assert!(invalid_only.contains("Broken pack") && !invalid_only.contains("Good pack"));
    let searched = op.page(&app, "/admin/products?q=good").await;
    assert!(searched.contains("Good pack") && !searched.contains("Broken pack"));

    // A GET on an action URL does nothing.
    for path in ["/admin/sync-all", &format!("/admin/products/{good}/sync")] {
        let r = get_with(&app, path, &op.cookie).await;
        assert_eq!(r.status(), 405, "GET {path}");
    }

    // Sync one product after a change in Stripe: the message and the row say so.
    fake.with_state(|s| {
        s.clock_offset = 5;
        s.update_product(&good, &json!({"name": "Good pack v2"}), &Ctx::default())
            .unwrap()
    });
    let back = op
        .post(&app, &format!("/admin/products/{good}/sync"), &[])
        .await;
    assert_eq!(back, format!("/admin/products/{good}"));
    let html = op.page(&app, &back).await;
    assert_eq!(flash(&html).as_deref(), Some("Synced 1 product: 1 updated"));
    assert!(html.contains("Good pack v2") && html.contains("dashboard.stripe.com/test/products/"));
    // Selected products, one invalid: the message names the reason.
    op.post(
        &app,
        "/admin/products/sync",
        &[("ids", good.as_str()), ("ids", bad.as_str())],
    )
    .await;
    let html = op.page(&app, "/admin/products").await;
    let message = flash(&html).unwrap();
    assert!(
        message.starts_with("Synced 2 products:") && message.contains("1 invalid"),
        "{message}"
    );
    assert!(
        message.contains(&bad) && message.contains("credit_amount"),
        "{message}"
    );
    // The message is shown once.
    assert_eq!(flash(&op.page(&app, "/admin/products").await), None);

    // A failed event replayed from the events page.
    let body = json!({"id": "evt_ui_failed", "object": "event", "type": "product.updated", "created": 1,
        "livemode": false, "data": {"object": {"id": "prod_ui", "object": "product", "active": true,
        "name": "From a replay", "metadata": {"credit_amount": "3"}, "created": 1, "updated": 1, "livemode": false}}});
    let store = &app.state.store;
    store
        .insert_events(
            &[sm_store::inbox::NewEvent {
                id: "evt_ui_failed".into(),
                kind: "product.updated".into(),
                created: 1,
                livemode: false,
                api_version: None,
                payload: body.to_string(),
                source: "webhook",
            }],
            i64::MAX / 4,
        )
        .await
        .unwrap();
    let failed_at = i64::MAX / 4;
    let claimed = store.claim_events("test", 10, failed_at, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .release_event("evt_ui_failed", "test", "boom", failed_at, true)
        .await
        .unwrap();
    let html = op.page(&app, "/admin/events?status=failed").await;
    assert!(html.contains("evt_ui_failed") && html.contains("boom"));
    let back = op
        .post(&app, "/admin/events/evt_ui_failed/replay", &[])
        .await;
    let html = op.page(&app, &back).await;
    assert!(flash(&html).unwrap().contains("queued again"), "{html}");
    for _ in 0..200 {
        if store
            .get_event("evt_ui_failed")
            .await
            .unwrap()
            .unwrap()
            .status
            == "processed"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        store
            .get_event("evt_ui_failed")
            .await
            .unwrap()
            .unwrap()
            .status,
        "processed"
    );
    assert!(
        op.page(&app, "/admin/events/evt_ui_failed")
            .await
            .contains("From a replay")
    );

    // Credits: a grant, a refused deduction, a missing reason.
    let account_page = "/admin/credits/account?account=acct_ui";
    let grant = [
        ("account", "acct_ui"),
        ("amount", "10"),
        ("reason", "welcome"),
        ("action", "grant"),
    ];
    assert_eq!(
        op.post(&app, "/admin/credits/adjust", &grant).await,
        account_page
    );
    let html = op.page(&app, account_page).await;
    assert_eq!(
        flash(&html).as_deref(),
        Some("Granted 10.00 credits to acct_ui; balance 10.00.")
    );
    // No subscription, no payments: a sentence each, not a table of headers alone.
    assert!(html.contains("No subscription.") && !html.contains("id=\"subscriptions\""));
    assert!(html.contains("No payments.") && !html.contains("id=\"payments\""));
    let deduct = [
        ("account", "acct_ui"),
        ("amount", "50"),
        ("reason", "oops"),
        ("action", "deduct"),
    ];
    op.post(&app, "/admin/credits/adjust", &deduct).await;
    let message = flash(&op.page(&app, account_page).await).unwrap();
    assert!(
        message.starts_with("Nothing changed: insufficient credits"),
        "{message}"
    );
    let no_reason = [
        ("account", "acct_ui"),
        ("amount", "1"),
        ("reason", " "),
        ("action", "grant"),
    ];
    op.post(&app, "/admin/credits/adjust", &no_reason).await;
    assert!(
        flash(&op.page(&app, account_page).await)
            .unwrap()
            .contains("reason is required")
    );
    assert_eq!(
        app.state
            .ledger
            .balance("acct_ui", 0)
            .await
            .unwrap()
            .available
            .to_string(),
        "10.00"
    );
    assert!(op.page(&app, "/admin/credits").await.contains("acct_ui"));

    // Everything is in the audit log, filterable.
    let html = op.page(&app, "/admin/audit").await;
    for action in [
        "login",
        "sync.full",
        "sync.selected",
        "events.replay",
        "credits.grant",
        "credits.deduct",
    ] {
        assert!(
            html.contains(&format!("<td>{action}</td>")),
            "{action} in the audit log"
        );
    }
    let grants = op.page(&app, "/admin/audit?action=credits.grant").await;
    assert!(grants.contains("welcome") && !grants.contains("<td>sync.full</td>"));
}

async fn every_admin_action_needs_a_session_its_csrf_token_and_a_post(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    seed_catalog(&fake, 1, 1);
    let app = quiet_app(&fake, &db).await;
    let op = Operator::sign_in(&app, &db).await;
    let before = db.store.audit_log(None, 100).await.unwrap().len();
    let form = [
        ("account", "acct_x"),
        ("amount", "5"),
        ("reason", "x"),
        ("action", "grant"),
        ("hours", "1"),
        ("ids", "prod_x"),
        ("name", "x"),
        ("scope", "all"),
        ("email", EMAIL),
        ("password", "a new password that is long"),
        ("payment", "cs_x"),
    ];
    for path in ACTIONS {
        // No session: sent to sign in.
        let r = browser()
            .post(app.url(path))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), location(&r)),
            (303, "/admin/login"),
            "{path}"
        );
        // A session but no token, or another session's token: 403.
        for csrf in [None, Some("f".repeat(64))] {
            let mut fields: Vec<(&str, &str)> = form.to_vec();
            if let Some(c) = &csrf {
                fields.push(("csrf", c));
            }
            let r = browser()
                .post(app.url(path))
                .header("Cookie", &op.cookie)
                .form(&fields)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path} with {csrf:?}");
        }
        // GET does nothing.
        let r = get_with(&app, path, &op.cookie).await;
        let page = ["/admin/tokens", "/admin/users"].contains(&path);
        assert_eq!(r.status(), if page { 200 } else { 405 }, "GET {path}");
    }
    assert_eq!(
        db.store.audit_log(None, 100).await.unwrap().len(),
        before,
        "nothing was done"
    );
    assert!(db.store.credit_lots("acct_x").await.unwrap().is_empty());
    assert!(db.store.list_sync_runs(10).await.unwrap().is_empty());
    // Still signed in: the refused logout did not end the session.
    assert!(op.page(&app, "/admin").await.contains("Dashboard"));
}

/// Every admin answer (sign-in page, pages, redirects, errors) carries the security
/// headers; a GET that meets an error shows it without writing the audit log.
async fn every_admin_answer_carries_the_security_headers_and_gets_change_nothing(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let operator = Operator::sign_in(&app, &db).await;
    let mut answers = vec![
        browser().get(app.url("/admin/login")).send().await.unwrap(),
        browser().get(app.url("/admin")).send().await.unwrap(),
    ];
    for path in ["/admin", "/admin/credits", "/admin/nothing-here"] {
        answers.push(get_with(&app, path, &operator.cookie).await);
    }
    for r in &answers {
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{}: {csp}", r.url());
        assert_eq!(h["x-content-type-options"], "nosniff", "{}", r.url());
        assert_eq!(h["referrer-policy"], "same-origin", "{}", r.url());
        assert_eq!(h["cache-control"], "no-store", "{}", r.url());
    }
    let audited = db.store.audit_log(None, 100).await.unwrap().len();
    let r = get_with(
        &app,
        "/admin/credits/account?account=not%20an%20account",
        &operator.cookie,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not an account reference"));
    assert_eq!(
        db.store.audit_log(None, 100).await.unwrap().len(),
        audited,
        "a GET wrote the audit log"
    );
}
