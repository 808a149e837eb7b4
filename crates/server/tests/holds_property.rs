//! A property of holds, checked against the real store on SQLite and PostgreSQL: for
//! random sequences of grants (some expiring), holds, captures, releases, consumptions
//! (keys reused on purpose), the passing of time and the releaser's passes on one
//! account, every debit (hold, capture, consumption) succeeds exactly when `available −
//! held` (other holds, for a capture) covers it, so a debit never takes that below
//! zero; the store's `held` is what the model says is open; the journal sums to the
//! lots; each idempotency key is applied once; and once time passes every `expires_at`
//! and the releaser runs, no hold is left open.

use std::collections::HashMap;

use proptest::prelude::*;
use sm_domain::credits::{Credits, LotState, available};
use sm_store::Backend;
use sm_store::testing::TestDb;
use stripe_manager::credits::holds::{CaptureRequest, HoldRequest, release_due};
use stripe_manager::credits::{
    AdjustRequest, Adjustment, ConsumeRequest, Ledger, LedgerError, PromotionalRequest,
};

const ACCOUNT: &str = "acct_hold_prop";

#[derive(Debug, Clone)]
enum Op {
    Grant { amount: i64 },
    ExpiringGrant { amount: i64, lasts: i64 },
    Hold { amount: i64, ttl: i64, key: u8 },
    Capture { pick: usize, percent: Option<i64> },
    Release { pick: usize },
    Consume { amount: i64, key: u8 },
    Wait { secs: i64 },
    Releaser,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..20_000).prop_map(|amount| Op::Grant { amount }),
        (1i64..20_000, 1i64..200).prop_map(|(amount, lasts)| Op::ExpiringGrant { amount, lasts }),
        (1i64..15_000, 1i64..300, 0u8..6).prop_map(|(amount, ttl, key)| Op::Hold {
            amount,
            ttl,
            key
        }),
        (0usize..8, prop::option::of(0i64..=100))
            .prop_map(|(pick, percent)| Op::Capture { pick, percent }),
        (0usize..8).prop_map(|pick| Op::Release { pick }),
        (0i64..15_000, 0u8..6).prop_map(|(amount, key)| Op::Consume { amount, key }),
        (1i64..120).prop_map(|secs| Op::Wait { secs }),
        Just(Op::Releaser),
    ]
}

/// A hold as the model knows it.
#[derive(Debug, Clone)]
struct Model {
    id: String,
    amount: i64,
    expires_at: i64,
    /// `held`, `captured`, `released` (expiry is judged by time).
    status: &'static str,
    captured: i64,
}

impl Model {
    fn open(&self, now: i64) -> bool {
        self.status == "held" && self.expires_at > now
    }
}

async fn states(db: &TestDb) -> Vec<LotState> {
    db.store
        .credit_lots(ACCOUNT)
        .await
        .unwrap()
        .iter()
        .map(|l| l.state())
        .collect()
}

fn held(holds: &[Model], now: i64, except: Option<&str>) -> i64 {
    holds
        .iter()
        .filter(|h| h.open(now) && Some(h.id.as_str()) != except)
        .map(|h| h.amount)
        .sum()
}

async fn run(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let Some(db) = TestDb::new(backend).await else {
        return Ok(());
    };
    let ledger = Ledger::new(db.store.clone());
    let mut now = 1_000_000i64;
    let mut holds: Vec<Model> = Vec::new();
    // Hold keys → (id, body); consumption keys → amount.
    let mut hold_keys: HashMap<u8, (String, i64, i64)> = HashMap::new();
    let mut consumed: HashMap<u8, i64> = HashMap::new();
    for (n, op) in ops.into_iter().enumerate() {
        let free = available(&states(&db).await, now);
        match op {
            Op::Grant { amount } => {
                let req = AdjustRequest {
                    kind: Adjustment::Grant,
                    amount: Credits(amount),
                    reason: "prop",
                    actor: "test",
                    origin: "test",
                };
                ledger.adjust(ACCOUNT, &req, now).await.unwrap();
            }
            Op::ExpiringGrant { amount, lasts } => {
                let req = PromotionalRequest {
                    amount: Credits(amount),
                    idempotency_key: format!("g{n}"),
                    reason: "prop".into(),
                    expires_at: Some(now + lasts),
                };
                ledger
                    .grant_promotional(ACCOUNT, &req, "test", now)
                    .await
                    .unwrap();
            }
            Op::Hold { amount, ttl, key } => {
                let req = HoldRequest {
                    amount: Credits(amount),
                    idempotency_key: format!("h{key}"),
                    ttl_seconds: Some(ttl),
                    description: None,
                };
                let answer = ledger.hold(ACCOUNT, &req, now).await;
                match hold_keys.get(&key) {
                    Some((id, a, t)) if (*a, *t) == (amount, ttl) => {
                        let h = answer.unwrap();
                        prop_assert!(h.replayed);
                        prop_assert_eq!(&h.id, id);
                    }
                    Some(_) => {
                        prop_assert!(
                            matches!(answer, Err(LedgerError::KeyReused(_))),
                            "{answer:?}"
                        );
                    }
                    None => {
                        let spendable = free - held(&holds, now, None);
                        match answer {
                            Ok(h) => {
                                prop_assert!(amount <= spendable, "held {amount} of {spendable}");
                                prop_assert!(!h.replayed);
                                hold_keys.insert(key, (h.id.clone(), amount, ttl));
                                holds.push(Model {
                                    id: h.id,
                                    amount,
                                    expires_at: now + ttl,
                                    status: "held",
                                    captured: 0,
                                });
                            }
                            Err(LedgerError::Insufficient { shortfall, .. }) => {
                                prop_assert!(amount > spendable);
                                prop_assert_eq!(shortfall, Credits(amount - spendable.max(0)));
                            }
                            Err(e) => prop_assert!(false, "hold: {e}"),
                        }
                    }
                }
            }
            Op::Capture { pick, percent } => {
                let Some(h) = (!holds.is_empty()).then(|| holds[pick % holds.len()].clone()) else {
                    continue;
                };
                let amount = percent.map_or(h.amount, |p| h.amount * p / 100);
                let req = CaptureRequest {
                    amount: percent.map(|_| Credits(amount)),
                };
                let answer = ledger.capture(ACCOUNT, &h.id, &req, now).await;
                match (h.status, h.open(now), answer) {
                    ("captured", _, Ok(c)) => {
                        prop_assert!(c.replayed);
                        prop_assert_eq!(c.captured, Some(Credits(h.captured)));
                    }
                    ("held", true, Ok(c)) => {
                        let spendable = free - held(&holds, now, Some(&h.id));
                        prop_assert!(
                            amount == 0 || amount <= spendable,
                            "captured {amount} of {spendable}"
                        );
                        prop_assert_eq!(c.captured, Some(Credits(amount)));
                        prop_assert_eq!(c.balance, Some(Credits(free - amount)));
                        let model = holds.iter_mut().find(|m| m.id == h.id).unwrap();
                        model.status = "captured";
                        model.captured = amount;
                    }
                    ("held", true, Err(LedgerError::Insufficient { .. })) => {
                        let spendable = free - held(&holds, now, Some(&h.id));
                        prop_assert!(amount > 0 && amount > spendable);
                    }
                    ("held", false, Err(LedgerError::HoldSettled { status, .. })) => {
                        prop_assert_eq!(status, "expired");
                    }
                    ("released", _, Err(LedgerError::HoldSettled { status, .. })) => {
                        prop_assert_eq!(status, "released");
                    }
                    (status, open, answer) => {
                        prop_assert!(
                            false,
                            "capture of a {status} hold (open: {open}): {answer:?}"
                        )
                    }
                }
            }
            Op::Release { pick } => {
                let Some(h) = (!holds.is_empty()).then(|| holds[pick % holds.len()].clone()) else {
                    continue;
                };
                let answer = ledger.release(ACCOUNT, &h.id, now).await;
                match (h.status, h.open(now), answer) {
                    ("held", true, Ok(r)) => {
                        prop_assert!(!r.replayed);
                        prop_assert_eq!(r.status, "released");
                        let model = holds.iter_mut().find(|m| m.id == h.id).unwrap();
                        model.status = "released";
                    }
                    ("held", false, Ok(r)) | ("released", _, Ok(r)) => prop_assert!(r.replayed),
                    ("captured", _, Err(LedgerError::HoldSettled { status, .. })) => {
                        prop_assert_eq!(status, "captured");
                    }
                    (status, open, answer) => {
                        prop_assert!(
                            false,
                            "release of a {status} hold (open: {open}): {answer:?}"
                        )
                    }
                }
            }
            Op::Consume { amount, key } => {
                let req = ConsumeRequest {
                    amount: Credits(amount),
                    idempotency_key: format!("c{key}"),
                    description: None,
                };
                let answer = ledger.consume(ACCOUNT, &req, now).await;
                match consumed.get(&key) {
                    Some(a) if *a == amount => prop_assert!(answer.unwrap().replayed),
                    Some(_) => prop_assert!(matches!(answer, Err(LedgerError::KeyReused(_)))),
                    None => {
                        let spendable = free - held(&holds, now, None);
                        match answer {
                            Ok(c) => {
                                prop_assert!(
                                    amount == 0 || amount <= spendable,
                                    "spent {amount} of {spendable}"
                                );
                                prop_assert_eq!(c.balance, Credits(free - amount));
                                consumed.insert(key, amount);
                            }
                            Err(LedgerError::Insufficient { .. }) => {
                                prop_assert!(amount > 0 && amount > spendable)
                            }
                            Err(e) => prop_assert!(false, "consume: {e}"),
                        }
                    }
                }
            }
            Op::Wait { secs } => now += secs,
            Op::Releaser => {
                release_due(&db.store, now).await.unwrap();
            }
        }
        // After every step: the store holds what the model holds, the journal sums to
        // the lots, no lot is negative.
        prop_assert_eq!(
            db.store.held(ACCOUNT, now).await.unwrap(),
            held(&holds, now, None)
        );
        let (journal, lots, _) = db.store.credit_totals(ACCOUNT).await.unwrap();
        prop_assert_eq!(journal, lots);
        // The account's count of holds in `held` (what lets consumption groups skip
        // reading holds) agrees with the holds.
        let counted: Option<i64> = sm_store::on_pool!(db.store, pool => sqlx::query_scalar(
            "SELECT open_holds FROM credit_accounts WHERE id = $1"
        )
        .bind(ACCOUNT)
        .fetch_optional(pool)
        .await
        .unwrap());
        let held_rows = db.store.holds_of(ACCOUNT, false, now, 100).await.unwrap();
        let open_rows = held_rows.iter().filter(|r| r.status == "held").count() as i64;
        prop_assert_eq!(counted.unwrap_or(0), open_rows);
        prop_assert!(states(&db).await.iter().all(|l| l.remaining >= 0));
    }
    // Every capture is in the journal once, under its hold's id.
    let entries = db.store.credit_entries(ACCOUNT, 10_000).await.unwrap();
    for h in &holds {
        let spent: i64 = entries
            .iter()
            .filter(|e| e.reference == h.id)
            .map(|e| -e.amount)
            .sum();
        prop_assert_eq!(spent, h.captured, "hold {}", h.id);
    }
    // No hold leaks: past every expiry the releaser settles all that are left.
    let later = now + 301;
    release_due(&db.store, later).await.unwrap();
    let rows = db.store.holds_of(ACCOUNT, false, later, 100).await.unwrap();
    prop_assert!(rows.iter().all(|r| r.status != "held"), "{rows:?}");
    for r in &rows {
        let model = holds.iter().find(|m| m.id == r.id).unwrap();
        let expected = if model.status == "held" {
            "expired"
        } else {
            model.status
        };
        prop_assert_eq!(r.status.as_str(), expected);
    }
    prop_assert_eq!(db.store.held(ACCOUNT, later).await.unwrap(), 0);
    Ok(())
}

fn check(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in prop::collection::vec(op(), 1..40))| {
        rt.block_on(run(backend, ops))?;
    });
}

#[test]
fn sqlite_holds_never_overspend_leak_or_apply_twice() {
    check(Backend::Sqlite);
}

#[test]
fn postgres_holds_never_overspend_leak_or_apply_twice() {
    check(Backend::Postgres);
}
