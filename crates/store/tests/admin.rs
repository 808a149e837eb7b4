//! Admin sessions end after the idle time or the absolute lifetime, and flash messages
//! are read once; on both backends.

use sm_store::testing::TestDb;

sm_store::contract_tests!(
    sessions_expire_when_idle_or_too_old,
    a_flash_message_is_read_once,
    parallel_failed_sign_ins_are_all_counted_then_lock_and_the_lock_ends,
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
