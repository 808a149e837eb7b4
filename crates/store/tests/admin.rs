//! Admin sessions end after the idle time or the absolute lifetime, flash messages are
//! read once, failed sign-ins lock; an operator lists admins, resets a password (which
//! signs the admin out everywhere), disables and enables a login, and lifts a lock; on
//! both backends.

use sm_store::Store;
use sm_store::credits::NewAudit;
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    sessions_expire_when_idle_or_too_old,
    a_flash_message_is_read_once,
    parallel_failed_sign_ins_are_all_counted_then_lock_and_the_lock_ends,
    admins_are_listed_by_email_with_who_is_disabled,
    a_password_reset_replaces_the_hash_ends_every_session_and_lifts_the_lock,
    a_disabled_admin_has_no_live_session_until_enabled_and_signs_in_anew,
    unlock_lifts_the_email_lock_and_leaves_address_locks,
    an_unknown_email_changes_nothing_and_writes_no_audit,
    a_session_opens_only_for_the_password_checked_and_an_enabled_admin,
    an_unlock_finds_only_addresses_that_signed_in_before,
);

const IDLE: i64 = 1800;
const ABSOLUTE: i64 = 43_200;

async fn sessions_expire_when_idle_or_too_old(db: TestDb) {
    let s = &db.store;
    let user = s
        .create_admin("a@example.com", "$argon2id$x", None, 0)
        .await
        .unwrap()
        .unwrap();
    s.create_session("idle", user, "c1", "127.0.0.1", 1_000)
        .await
        .unwrap();
    assert!(
        s.live_session("idle", 1_000 + IDLE - 1, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_some()
    );
    // That request counted as activity (more than a minute after the last one).
    assert!(
        s.live_session("idle", 1_000 + 2 * IDLE - 2, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.live_session("idle", 1_000 + 3 * IDLE, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_none()
    );

    s.create_session("old", user, "c2", "127.0.0.1", 10_000)
        .await
        .unwrap();
    let mut now = 10_000;
    while now + IDLE / 2 < 10_000 + ABSOLUTE {
        now += IDLE / 2;
        assert!(
            s.live_session("old", now, IDLE, ABSOLUTE)
                .await
                .unwrap()
                .is_some()
        );
    }
    now += IDLE / 2;
    assert!(
        s.live_session("old", now, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_none(),
        "active all along, but older than the absolute lifetime"
    );
    s.delete_session("idle").await.unwrap();
    assert!(
        s.live_session("idle", 1_001, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_flash_message_is_read_once(db: TestDb) {
    let s = &db.store;
    let user = s
        .create_admin("b@example.com", "$argon2id$x", None, 0)
        .await
        .unwrap()
        .unwrap();
    s.create_session("sess", user, "c", "127.0.0.1", 0)
        .await
        .unwrap();
    assert_eq!(s.take_flash("sess").await.unwrap(), None);
    s.set_flash("sess", "ok:Synced").await.unwrap();
    assert_eq!(
        s.take_flash("sess").await.unwrap().as_deref(),
        Some("ok:Synced")
    );
    assert_eq!(s.take_flash("sess").await.unwrap(), None);
}

async fn parallel_failed_sign_ins_are_all_counted_then_lock_and_the_lock_ends(db: TestDb) {
    let s = db.store.clone();
    let (window, lock_after, lock_for) = (900, 8, 900);
    let attempts = (0..20).map(|_| {
        let s = s.clone();
        async move {
            s.record_login_attempt("ip:203.0.113.9", 1_000, window, lock_after, lock_for)
                .await
                .unwrap()
        }
    });
    futures_util::future::join_all(attempts).await;
    let t = s.throttle("ip:203.0.113.9").await.unwrap();
    assert_eq!(t.failures, 20, "no failure lost to a race");
    assert_eq!(t.locked_until, Some(1_000 + lock_for));
    // After the lock ends, counting starts over; so it does after a quiet window.
    let t = s
        .record_login_attempt(
            "ip:203.0.113.9",
            1_000 + lock_for,
            window,
            lock_after,
            lock_for,
        )
        .await
        .unwrap();
    assert_eq!(
        (t.failures, t.window_start, t.locked_until),
        (1, 1_900, None)
    );
    let t = s
        .record_login_attempt("ip:203.0.113.9", 1_901, window, lock_after, lock_for)
        .await
        .unwrap();
    assert_eq!(t.failures, 2);
    let t = s
        .record_login_attempt(
            "ip:203.0.113.9",
            1_900 + window,
            window,
            lock_after,
            lock_for,
        )
        .await
        .unwrap();
    assert_eq!((t.failures, t.window_start), (1, 1_900 + window));
    s.clear_throttle("ip:203.0.113.9").await.unwrap();
    assert_eq!(s.throttle("ip:203.0.113.9").await.unwrap().failures, 0);
}

/// Failed sign-ins as the service counts them: a 15-minute window, locked at 8 for 15
/// minutes (`stripe_manager::admin`).
const WINDOW: i64 = 900;
const LOCK_AFTER: i64 = 8;
const LOCK_FOR: i64 = 900;

async fn lock_out(s: &Store, key: &str, now: i64) {
    for _ in 0..LOCK_AFTER {
        s.record_login_attempt(key, now, WINDOW, LOCK_AFTER, LOCK_FOR)
            .await
            .unwrap();
    }
    assert_eq!(
        s.throttle(key).await.unwrap().locked_until,
        Some(now + LOCK_FOR)
    );
}

fn audit<'a>(action: &'a str, email: &'a str) -> NewAudit<'a> {
    NewAudit {
        actor: "cli:test",
        action,
        target: Some(email),
        detail: None,
        origin: Some("cli"),
        result: "ok",
    }
}

async fn admins_are_listed_by_email_with_who_is_disabled(db: TestDb) {
    let s = &db.store;
    assert!(s.list_admins().await.unwrap().is_empty());
    for (email, at) in [("zed@example.com", 10), ("amy@example.com", 20)] {
        s.create_admin(email, "$argon2id$x", None, at)
            .await
            .unwrap();
    }
    assert!(
        s.set_admin_disabled("zed@example.com", true, None, 30)
            .await
            .unwrap()
            .is_some()
    );
    let all: Vec<_> = s
        .list_admins()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.email, u.created_at, u.disabled_at))
        .collect();
    assert_eq!(
        all,
        [
            ("amy@example.com".to_owned(), 20, None),
            ("zed@example.com".to_owned(), 10, Some(30)),
        ]
    );
    let zed = s.admin_by_email("zed@example.com").await.unwrap().unwrap();
    assert_eq!(zed.disabled_at, Some(30));
}

async fn a_password_reset_replaces_the_hash_ends_every_session_and_lifts_the_lock(db: TestDb) {
    let s = &db.store;
    let email = "reset@example.com";
    let other = "other@example.com";
    let user = s
        .create_admin(email, "$argon2id$old", None, 0)
        .await
        .unwrap()
        .unwrap();
    let bystander = s
        .create_admin(other, "$argon2id$x", None, 0)
        .await
        .unwrap()
        .unwrap();
    for (id, u) in [("laptop", user), ("phone", user), ("theirs", bystander)] {
        s.create_session(id, u, "c", "127.0.0.1", 1_000)
            .await
            .unwrap();
    }
    lock_out(s, &format!("email:{email}"), 1_000).await;
    lock_out(s, &format!("email:{other}"), 1_000).await;

    let done = s
        .set_admin_password(
            email,
            "$argon2id$new",
            Some(&audit("admin.reset_password", email)),
            1_010,
        )
        .await
        .unwrap();
    assert!(done);
    let u = s.admin_by_email(email).await.unwrap().unwrap();
    assert_eq!(u.password_hash, "$argon2id$new");
    for id in ["laptop", "phone"] {
        assert!(
            s.live_session(id, 1_020, IDLE, ABSOLUTE)
                .await
                .unwrap()
                .is_none(),
            "{id}: a reset signs the admin out everywhere"
        );
    }
    assert!(
        s.live_session("theirs", 1_020, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.throttle(&format!("email:{email}")).await.unwrap(),
        Default::default(),
        "the new password works at once"
    );
    assert!(
        s.throttle(&format!("email:{other}"))
            .await
            .unwrap()
            .locked_until
            .is_some()
    );
    let log = s.audit_log(Some("admin.reset_password"), 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].at, log[0].target.as_deref()), (1_010, Some(email)));
}

async fn a_disabled_admin_has_no_live_session_until_enabled_and_signs_in_anew(db: TestDb) {
    let s = &db.store;
    let email = "off@example.com";
    let user = s
        .create_admin(email, "$argon2id$x", None, 0)
        .await
        .unwrap()
        .unwrap();
    s.create_session("before", user, "c", "127.0.0.1", 1_000)
        .await
        .unwrap();
    assert!(
        s.set_admin_disabled(email, true, Some(&audit("admin.disable", email)), 1_010)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.live_session("before", 1_020, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_none()
    );
    // A session that somehow exists (created by a sign-in racing the disable) is not
    // honoured either.
    s.create_session("racing", user, "c", "127.0.0.1", 1_011)
        .await
        .unwrap();
    assert!(
        s.live_session("racing", 1_020, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_none()
    );
    // Disabling again keeps the first time.
    assert!(
        s.set_admin_disabled(email, true, None, 2_000)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.admin_by_email(email).await.unwrap().unwrap().disabled_at,
        Some(1_010)
    );

    assert!(
        s.set_admin_disabled(email, false, Some(&audit("admin.enable", email)), 1_030)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.admin_by_email(email).await.unwrap().unwrap().disabled_at,
        None
    );
    assert!(
        s.live_session("before", 1_040, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_none(),
        "enabling does not bring back the sessions disabling ended"
    );
    s.create_session("after", user, "c", "127.0.0.1", 1_040)
        .await
        .unwrap();
    assert!(
        s.live_session("after", 1_050, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_some()
    );
    let actions: Vec<_> = s
        .audit_log(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, ["admin.enable", "admin.disable"]);
}

async fn unlock_lifts_the_email_lock_and_leaves_address_locks(db: TestDb) {
    let s = &db.store;
    let email = "locked@example.com";
    s.create_admin(email, "$argon2id$x", None, 0)
        .await
        .unwrap()
        .unwrap();
    let key = format!("email:{email}");
    lock_out(s, &key, 1_000).await;
    lock_out(s, "ip:203.0.113.7", 1_000).await;
    assert!(
        s.unlock_admin(email, Some(&audit("admin.unlock", email)), 1_001)
            .await
            .unwrap()
    );
    assert_eq!(s.throttle(&key).await.unwrap(), Default::default());
    assert!(
        s.throttle("ip:203.0.113.7")
            .await
            .unwrap()
            .locked_until
            .is_some()
    );
    // The count starts over: one more failure is one, not a lock.
    let t = s
        .record_login_attempt(&key, 1_002, WINDOW, LOCK_AFTER, LOCK_FOR)
        .await
        .unwrap();
    assert_eq!((t.failures, t.locked_until), (1, None));
    assert_eq!(
        s.audit_log(Some("admin.unlock"), 10).await.unwrap().len(),
        1
    );
    // Unlocking an admin who is not locked is fine (and audited).
    assert!(s.unlock_admin(email, None, 1_003).await.unwrap());
}

async fn an_unknown_email_changes_nothing_and_writes_no_audit(db: TestDb) {
    let s = &db.store;
    let ghost = "ghost@example.com";
    lock_out(s, &format!("email:{ghost}"), 1_000).await;
    let a = audit("admin.any", ghost);
    assert!(
        !s.set_admin_password(ghost, "$argon2id$x", Some(&a), 1_001)
            .await
            .unwrap()
    );
    assert!(
        s.set_admin_disabled(ghost, true, Some(&a), 1_001)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.set_admin_disabled(ghost, false, Some(&a), 1_001)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.unlock_admin(ghost, Some(&a), 1_001).await.unwrap());
    assert!(s.audit_log(None, 10).await.unwrap().is_empty());
    assert!(s.list_admins().await.unwrap().is_empty());
    assert!(
        s.throttle(&format!("email:{ghost}"))
            .await
            .unwrap()
            .locked_until
            .is_some(),
        "a lock on an email no admin has stays (someone is guessing)"
    );
}

async fn a_session_opens_only_for_the_password_checked_and_an_enabled_admin(db: TestDb) {
    let s = &db.store;
    let email = "race@example.com";
    let user = s
        .create_admin(email, "$argon2id$old", None, 0)
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.open_session("one", user, "$argon2id$old", "c", "127.0.0.1", 10)
            .await
            .unwrap()
    );
    // A reset commits while a sign-in checks the old password: no session for it.
    s.set_admin_password(email, "$argon2id$new", None, 20)
        .await
        .unwrap();
    assert!(
        !s.open_session("two", user, "$argon2id$old", "c", "127.0.0.1", 21)
            .await
            .unwrap()
    );
    assert!(
        s.live_session("two", 22, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_none()
    );
    // Likewise a disable: and enabling later does not bring such a session to life.
    s.set_admin_disabled(email, true, None, 30).await.unwrap();
    assert!(
        !s.open_session("three", user, "$argon2id$new", "c", "127.0.0.1", 31)
            .await
            .unwrap()
    );
    s.set_admin_disabled(email, false, None, 40).await.unwrap();
    assert!(
        s.live_session("three", 41, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.open_session("four", user, "$argon2id$new", "c", "127.0.0.1", 42)
            .await
            .unwrap()
    );
    assert!(
        s.live_session("four", 43, IDLE, ABSOLUTE)
            .await
            .unwrap()
            .is_some()
    );
}

async fn an_unlock_finds_only_addresses_that_signed_in_before(db: TestDb) {
    let s = &db.store;
    let email = "ops@example.com";
    let login = |origin: &'static str, result: &'static str, actor: &'static str| NewAudit {
        actor,
        action: "login",
        target: None,
        detail: None,
        origin: Some(origin),
        result,
    };
    // The operator's office signed in before, then failed; a guesser never got in; an
    // old failure from home is out of the window; another email's failures do not count.
    s.audit(&login("10.0.0.1", "ok", email), 100).await.unwrap();
    s.audit(&login("10.0.0.1", "invalid_credentials", email), 1_000)
        .await
        .unwrap();
    s.audit(&login("10.0.0.1", "locked", email), 1_001)
        .await
        .unwrap();
    s.audit(&login("203.0.113.9", "invalid_credentials", email), 1_002)
        .await
        .unwrap();
    s.audit(&login("10.0.0.2", "ok", email), 50).await.unwrap();
    s.audit(&login("10.0.0.2", "invalid_credentials", email), 60)
        .await
        .unwrap();
    s.audit(&login("10.0.0.3", "ok", "other@example.com"), 50)
        .await
        .unwrap();
    s.audit(
        &login("10.0.0.3", "invalid_credentials", "other@example.com"),
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(
        s.failed_login_addresses(email, 500).await.unwrap(),
        ["10.0.0.1"]
    );
    assert!(
        s.failed_login_addresses("nobody@example.com", 0)
            .await
            .unwrap()
            .is_empty()
    );
}
