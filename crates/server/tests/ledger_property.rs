//! A property of the ledger, checked against the real store on SQLite and PostgreSQL:
//! for random sequences of grants (purchases, expiring subscription periods, admin),
//! consumptions, deductions, refunds and the passing of time, the journal always sums
//! to what the lots hold, no lot goes negative, a debit succeeds exactly when the
//! available balance covers it, and expired lots are never spent.

use proptest::prelude::*;
use sm_domain::credits::{Credits, LotSource, LotState, available};
use sm_store::Backend;
use sm_store::credits::{NewLot, NewOrigin, ReversalKind};
use sm_store::testing::TestDb;
use stripe_manager::credits::{
    AdjustRequest, Adjustment, ConsumeRequest, Grant, Ledger, LedgerError, Reversal, grant_in,
    reverse_in,
};

#[derive(Debug, Clone)]
enum Op {
    Purchase { amount: i64, paid: i64 },
    Subscription { amount: i64, lasts: i64 },
    Admin { amount: i64 },
    Consume { amount: i64 },
    Deduct { amount: i64 },
    Refund { pick: usize, percent: i64 },
    Wait { secs: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..100_000, 100i64..10_000).prop_map(|(amount, paid)| Op::Purchase { amount, paid }),
        (1i64..100_000, 1i64..400).prop_map(|(amount, lasts)| Op::Subscription { amount, lasts }),
        (1i64..50_000).prop_map(|amount| Op::Admin { amount }),
        (0i64..80_000).prop_map(|amount| Op::Consume { amount }),
        (1i64..30_000).prop_map(|amount| Op::Deduct { amount }),
        (0usize..8, 1i64..=100).prop_map(|(pick, percent)| Op::Refund { pick, percent }),
        (1i64..300).prop_map(|secs| Op::Wait { secs }),
    ]
}

const ACCOUNT: &str = "acct_prop";

enum OpKind {
    Refund,
    Other,
}

fn adjustment(kind: Adjustment, amount: i64) -> AdjustRequest<'static> {
    AdjustRequest {
        kind,
        amount: Credits(amount),
        reason: "prop",
        actor: "test",
        origin: "test",
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

async fn run(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let Some(db) = TestDb::new(backend).await else {
        return Ok(());
    };
    let ledger = Ledger::new(db.store.clone());
    let mut now = 1_000_000i64;
    let mut purchases: Vec<(String, i64)> = Vec::new();
    for (n, op) in ops.into_iter().enumerate() {
        let before = states(&db).await;
        let free = available(&before, now);
        let op_kind = if matches!(op, Op::Refund { .. }) {
            OpKind::Refund
        } else {
            OpKind::Other
        };
        match op {
            Op::Purchase { amount, paid }
            | Op::Subscription {
                amount,
                lasts: paid,
            } => {
                let subscription = matches!(op, Op::Subscription { .. });
                let payment = format!("pi_{n}");
                let mut tx = db.store.begin().await.unwrap();
                let source = Some(if subscription {
                    LotSource::Subscription
                } else {
                    LotSource::Purchase
                });
                let paid = if subscription { 5_000 } else { paid };
                let grant = Grant {
                    origin: NewOrigin {
                        id: format!("src_{n}"),
                        account: ACCOUNT.into(),
                        source,
                        paid_amount: paid,
                        currency: None,
                    },
                    payments: vec![payment.clone()],
                    lots: vec![NewLot {
                        account: ACCOUNT.into(),
                        source,
                        source_ref: format!("src_{n}"),
                        amount,
                        expires_at: subscription.then_some(now + paid),
                        payment_ref: Some(payment.clone()),
                        paid_amount: Some(paid),
                        origin: Some(format!("src_{n}")),
                        ..Default::default()
                    }],
                    take_backs: Vec::new(),
                };
                prop_assert!(grant_in(&mut tx, &grant, now).await.unwrap());
                // The same grant again in the same transaction: no second lot.
                prop_assert!(!grant_in(&mut tx, &grant, now).await.unwrap());
                tx.commit().await.unwrap();
                purchases.push((payment, paid));
            }
            Op::Admin { amount } => {
                ledger
                    .adjust(ACCOUNT, &adjustment(Adjustment::Grant, amount), now)
                    .await
                    .unwrap();
            }
            Op::Consume { amount } => {
                let req = ConsumeRequest {
                    amount: Credits(amount),
                    idempotency_key: format!("k{n}"),
                    description: None,
                };
                match ledger.consume(ACCOUNT, &req, now).await {
                    Ok(c) => {
                        prop_assert!(amount <= free);
                        prop_assert_eq!(c.balance, Credits(free - amount));
                    }
                    Err(LedgerError::Insufficient { shortfall, .. }) => {
                        prop_assert_eq!(shortfall, Credits(amount - free));
                    }
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
            Op::Deduct { amount } => {
                let r = ledger
                    .adjust(ACCOUNT, &adjustment(Adjustment::Deduct, amount), now)
                    .await;
                prop_assert_eq!(r.is_ok(), amount <= free);
            }
            Op::Refund { pick, percent } => {
                if let Some((payment, paid)) = purchases.get(pick % purchases.len().max(1)).cloned()
                {
                    let refund = Reversal {
                        id: format!("re_{n}"),
                        kind: ReversalKind::Refund,
                        link: payment,
                        amount: paid * percent / 100,
                        active: true,
                    };
                    for _ in 0..2 {
                        let mut tx = db.store.begin().await.unwrap();
                        reverse_in(&mut tx, &refund, now).await.unwrap();
                        tx.commit().await.unwrap();
                    }
                }
            }
            Op::Wait { secs } => now += secs,
        }
        let after = states(&db).await;
        let (journal, lots, _) = db.store.credit_totals(ACCOUNT).await.unwrap();
        prop_assert_eq!(journal, lots, "journal and lots disagree after op {}", n);
        prop_assert!(after.iter().all(|l| l.remaining >= 0));
        // Expired lots were not touched by this step (a refund may empty its own
        // expired lot: its remainder was never spendable).
        for l in before
            .iter()
            .filter(|l| l.expired(now) && !matches!(op_kind, OpKind::Refund))
        {
            let a = after
                .iter()
                .find(|a| a.id == l.id)
                .map_or(0, |a| a.remaining);
            prop_assert_eq!(a, l.remaining, "expired lot {} was spent", l.id);
        }
    }
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
    proptest!(config, |(ops in prop::collection::vec(op(), 1..30))| {
        rt.block_on(run(backend, ops))?;
    });
}

#[test]
fn sqlite_ledger_sums_match_and_nothing_goes_negative() {
    check(Backend::Sqlite);
}

#[test]
fn postgres_ledger_sums_match_and_nothing_goes_negative() {
    check(Backend::Postgres);
}
