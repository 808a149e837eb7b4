//! What this instance may keep in memory between requests, and for how long: until
//! another process announces a change (PostgreSQL `NOTIFY`, see `sm_store::changes`).
//!
//! Readers take a *stamp* before they read the database and keep what they read with
//! it; what they kept is good while [`Changes::current`] still gives the same stamp.
//! Every announcement of a topic gives the topic a new stamp. So a write that commits
//! after a reader's query can never be hidden by the reader's copy: its announcement
//! arrives after the commit and changes the stamp, whether the copy was stored before
//! or after.
//!
//! Nothing is kept unless the listening connection is known to work: there is no stamp
//! before the first `LISTEN`, after the connection breaks (until a new one listens), on
//! SQLite (no channel: every request asks the database), and when the connection has not
//! heard its own ping for [`DEAF_AFTER`] (a silent network failure would otherwise let
//! this instance serve a revoked token without end). The worst case for a change made
//! by another instance is therefore the notification's delivery time, and at most
//! [`DEAF_AFTER`] when the network drops the notification silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sm_store::Store;
use sm_store::changes::Change;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often the listener pings itself through the pool.
pub const PING_EVERY: Duration = Duration::from_millis(500);

/// Without a ping heard for this long, the listener counts as deaf.
pub const DEAF_AFTER: Duration = Duration::from_secs(2);

/// What readers keep copies of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// The catalog (products and prices): the API's catalog cache.
    Catalog,
    /// API tokens: the token cache, so a revocation counts on every instance.
    Tokens,
    /// Stripe's active entitlements per customer: the feature gate's cache.
    Entitlements,
}

/// A topic's state when a copy was read; the copy is good while [`Changes::current`]
/// gives an equal stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Announcements heard (renewed on every announcement of the topic and every
    /// reconnection).
    heard: u64,
    /// This process's own commits of the topic (see `Store::local_catalog_commits`): they
    /// must count at once, not only when their announcement comes back.
    local: u64,
}

/// The stamps, shared by every reader of this instance. Deaf until [`listen`] has a
/// working connection: no stamps, so nothing is kept.
#[derive(Debug)]
pub struct Changes {
    store: Store,
    /// Per topic; 0 while deaf.
    heard: [AtomicU64; 3],
    next: AtomicU64,
    /// When the last ping came back, in ms since `epoch`.
    heard_ms: AtomicI64,
    epoch: Instant,
}

impl Changes {
    /// Deaf until [`listen`] connects: no stamps, so nothing is kept.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            heard: Default::default(),
            next: AtomicU64::new(1),
            heard_ms: AtomicI64::new(i64::MIN / 2),
            epoch: Instant::now(),
        }
    }

    /// The topic's stamp now; `None` when nothing may be kept (deaf, or SQLite).
    pub fn current(&self, topic: Topic) -> Option<Stamp> {
        let heard = self.heard[topic as usize].load(Ordering::Acquire);
        let since = self.ms() - self.heard_ms.load(Ordering::Acquire);
        if heard == 0 || since > DEAF_AFTER.as_millis() as i64 {
            return None;
        }
        let local = match topic {
            Topic::Catalog => self.store.local_catalog_commits(),
            Topic::Tokens => self.store.local_token_commits(),
            Topic::Entitlements => self.store.local_entitlement_commits(),
        };
        Some(Stamp { heard, local })
    }

    /// Whether a copy stamped `stamp` (from [`Changes::current`]) is still good.
    pub fn still(&self, topic: Topic, stamp: Option<Stamp>) -> bool {
        stamp.is_some() && self.current(topic) == stamp
    }

    /// Another process changed `topic`.
    fn announced(&self, topic: Topic) {
        let n = self.next.fetch_add(1, Ordering::AcqRel);
        // Only a live topic gets a new stamp: a deaf one stays deaf (0).
        let _ = self.heard[topic as usize].fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
            (s != 0).then_some(n)
        });
    }

    fn ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    fn hear(&self) {
        self.heard_ms.store(self.ms(), Ordering::Release);
    }

    /// Listening (again): every topic gets a new stamp, so nothing kept before counts.
    fn live(&self) {
        self.hear();
        for heard in &self.heard {
            heard.store(self.next.fetch_add(1, Ordering::AcqRel), Ordering::Release);
        }
    }

    fn deaf(&self) {
        for heard in &self.heard {
            heard.store(0, Ordering::Release);
        }
        metrics::counter!("stripe_manager_change_listener_losses_total").increment(1);
    }
}

/// Listens for announcements until the runtime stops: updates `changes`, and wakes the
/// webhook worker (`inbox`) when events are announced. Reconnects a second after the
/// connection breaks or goes quiet, and then wakes the worker once for what may have
/// been announced meanwhile. Returns at once on SQLite.
pub fn listen(store: Store, changes: Arc<Changes>, inbox: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let word = uuid::Uuid::new_v4().simple().to_string();
        loop {
            match store.change_listener().await {
                Ok(None) => return,
                Ok(Some(mut listener)) => {
                    changes.live();
                    inbox.notify_one();
                    let pinger = tokio::spawn(ping(store.clone(), word.clone()));
                    loop {
                        if changes.ms() - changes.heard_ms.load(Ordering::Acquire)
                            > DEAF_AFTER.as_millis() as i64
                        {
                            tracing::warn!(
                                "the LISTEN connection stopped hearing its own pings; asking the database on every request until a new one does"
                            );
                            break;
                        }
                        let next = tokio::time::timeout(DEAF_AFTER, listener.next()).await;
                        match next {
                            Ok(Ok(Some(Change::Inbox))) => inbox.notify_one(),
                            Ok(Ok(Some(Change::Catalog))) => changes.announced(Topic::Catalog),
                            Ok(Ok(Some(Change::Tokens))) => changes.announced(Topic::Tokens),
                            Ok(Ok(Some(Change::Entitlements))) => {
                                changes.announced(Topic::Entitlements)
                            }
                            Ok(Ok(Some(Change::Ping(w)))) => {
                                if w == word {
                                    changes.hear();
                                }
                            }
                            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                                let why = match next {
                                    Err(_) => "no ping came back".to_owned(),
                                    Ok(Err(e)) => e.to_string(),
                                    _ => "the connection closed".to_owned(),
                                };
                                tracing::warn!(reason = %why, "lost the LISTEN connection; asking the database on every request until it is back");
                                break;
                            }
                        }
                    }
                    pinger.abort();
                    changes.deaf();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for changes; asking the database on every request until it can")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn ping(store: Store, word: String) {
    let mut every = tokio::time::interval(PING_EVERY);
    loop {
        every.tick().await;
        if let Err(e) = store.ping_listener(&word).await {
            tracing::debug!(error = %e, "could not ping the change listener");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn changes() -> (Changes, sm_store::testing::TestDb) {
        let db = sm_store::testing::TestDb::new(sm_store::Backend::Sqlite)
            .await
            .expect("SQLite is always there");
        (Changes::new(db.store.clone()), db)
    }

    #[tokio::test]
    async fn nothing_is_kept_until_listening_and_every_change_renews_the_stamp() {
        let (c, _db) = changes().await;
        assert_eq!(c.current(Topic::Tokens), None);
        c.announced(Topic::Tokens);
        assert_eq!(c.current(Topic::Tokens), None, "a deaf topic stays deaf");
        c.live();
        let s = c.current(Topic::Tokens);
        assert!(s.is_some() && c.still(Topic::Tokens, s));
        let catalog = c.current(Topic::Catalog);
        c.announced(Topic::Tokens);
        assert!(!c.still(Topic::Tokens, s));
        assert!(c.still(Topic::Catalog, catalog), "topics are separate");
        c.deaf();
        assert_eq!(c.current(Topic::Catalog), None);
        assert!(!c.still(Topic::Catalog, catalog));
        c.live();
        assert!(
            !c.still(Topic::Catalog, catalog),
            "a copy from before a loss stays stale"
        );
    }

    #[tokio::test]
    async fn a_listener_that_has_not_heard_its_ping_is_deaf() {
        let (c, _db) = changes().await;
        c.live();
        assert!(c.current(Topic::Catalog).is_some());
        c.heard_ms.store(
            c.ms() - DEAF_AFTER.as_millis() as i64 - 1,
            Ordering::Release,
        );
        assert_eq!(c.current(Topic::Catalog), None);
    }

    #[tokio::test]
    async fn this_process_sees_its_own_token_change_before_the_announcement() {
        let (c, _db) = changes().await;
        c.live();
        let before = c.current(Topic::Tokens);
        c.store
            .revoke_token("nobody", 1)
            .await
            .expect("revoking on an empty table");
        assert!(!c.still(Topic::Tokens, before));
    }
}
