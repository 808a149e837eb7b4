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

/// A fact Stripe reports about an account's money: grants, and what reverses them.
#[derive(Debug, Clone)]
enum Fact {
    Purchase {
        credits: i64,
        paid: i64,
    },
    /// A paid subscription period (a plan of its own price).
    Plan {
        credits: i64,
        paid: i64,
    },
    /// A refund of `percent` of what purchase/plan `pick` paid, which may later fail.
    Refund {
        pick: usize,
        percent: i64,
        fails: bool,
    },
    /// A chargeback of `percent`, which may later be won.
    Dispute {
        pick: usize,
        percent: i64,
        won: bool,
    },
    /// A plan change taking back `percent` of plan `pick`'s credits.
    Proration {
        pick: usize,
        percent: i64,
    },
    /// A plan change invoiced at once: `percent` of plan `pick`'s credits taken back and
    /// `credits` of the new plan granted by the same invoice, which paid `paid` (0: a
    /// downgrade credited to the balance; more: an upgrade, refundable, whose refund
    /// gives its take-back's share back).
    Change {
        pick: usize,
        percent: i64,
        credits: i64,
        paid: i64,
    },
    /// Prorations paid after their period, settled net with a renewal: `percent` of
    /// plan `pick`'s credits granted for the new period (positive) or taken back from it
    /// (negative).
    Deferred {
        pick: usize,
        percent: i64,
    },
    /// A post-payment credit note on grant `pick`: `percent` of its money given back, of
    /// which `refunded` percent refunded (reported by the note and again by the refund's
    /// own event), the rest to the balance; maybe voided later (only without a refund).
    CreditNote {
        pick: usize,
        percent: i64,
        refunded: i64,
        voided: bool,
    },
}

fn fact() -> impl Strategy<Value = Fact> {
    prop_oneof![
        (1i64..100_000, 1i64..10_000).prop_map(|(credits, paid)| Fact::Purchase { credits, paid }),
        (1i64..100_000, 0i64..10_000).prop_map(|(credits, paid)| Fact::Plan { credits, paid }),
        (0usize..6, 1i64..=100, any::<bool>()).prop_map(|(pick, percent, fails)| Fact::Refund {
            pick,
            percent,
            fails
        }),
        (0usize..6, 1i64..=100, any::<bool>()).prop_map(|(pick, percent, won)| Fact::Dispute {
            pick,
            percent,
            won
        }),
        (0usize..6, 1i64..=100).prop_map(|(pick, percent)| Fact::Proration { pick, percent }),
        (
            0usize..6,
            1i64..=100,
            1i64..100_000,
            prop_oneof![Just(0i64), 1i64..10_000]
        )
            .prop_map(|(pick, percent, credits, paid)| Fact::Change {
                pick,
                percent,
                credits,
                paid
            }),
        (0usize..6, prop_oneof![-100i64..=-1, 1i64..=100])
            .prop_map(|(pick, percent)| Fact::Deferred { pick, percent }),
        (
            0usize..6,
            1i64..=100,
            prop_oneof![Just(0i64), Just(100i64), 1i64..100],
            any::<bool>()
        )
            .prop_map(|(pick, percent, refunded, voided)| Fact::CreditNote {
                pick,
                percent,
                refunded,
                voided
            }),
    ]
}

/// One delivery: a grant, or a reversal as it stands in that event.
#[derive(Debug, Clone)]
enum Delivery {
    Grant(Box<Grant>),
    Reversal(Reversal),
}

const PERIOD_END: i64 = 9_000_000;

/// The deliveries the facts produce for `account`, in the facts' own order.
fn deliveries(account: &str, facts: &[Fact]) -> Vec<Delivery> {
    use stripe_manager::credits::TakeBack;
    let mut out = Vec::new();
    // (payment, paid, plan price if a plan, credits, origin)
    let mut grants: Vec<(String, i64, Option<String>, i64, String)> = Vec::new();
    for (n, f) in facts.iter().enumerate() {
        match f {
            Fact::Purchase { credits, paid } | Fact::Plan { credits, paid } => {
                let plan = matches!(f, Fact::Plan { .. });
                let source = Some(if plan {
                    LotSource::Subscription
                } else {
                    LotSource::Purchase
                });
                let origin = format!("{account}_o{n}");
                let payment = format!("{account}_pi{n}");
                let price = plan.then(|| format!("price_{n}"));
                out.push(Delivery::Grant(Box::new(Grant {
                    origin: NewOrigin {
                        id: origin.clone(),
                        account: account.into(),
                        source,
                        paid_amount: *paid,
                        currency: None,
                    },
                    payments: vec![payment.clone()],
                    lots: vec![NewLot {
                        account: account.into(),
                        source,
                        source_ref: format!("{origin}/line"),
                        amount: *credits,
                        expires_at: plan.then_some(PERIOD_END),
                        payment_ref: Some(payment.clone()),
                        paid_amount: Some(*paid),
                        origin: Some(origin.clone()),
                        subscription: plan.then(|| format!("{account}_sub")),
                        price: price.clone(),
                        period_end: plan.then_some(PERIOD_END),
                        ..Default::default()
                    }],
                    take_backs: Vec::new(),
                })));
                grants.push((payment, *paid, price, *credits, origin));
            }
            Fact::Refund {
                pick,
                percent,
                fails,
            }
            | Fact::Dispute {
                pick,
                percent,
                won: fails,
            } => {
                let Some((payment, paid, _, _, _)) =
                    grants.get(pick % grants.len().max(1)).cloned()
                else {
                    continue;
                };
                let dispute = matches!(f, Fact::Dispute { .. });
                let r = Reversal {
                    id: format!("{account}_r{n}"),
                    kind: if dispute {
                        ReversalKind::Dispute
                    } else {
                        ReversalKind::Refund
                    },
                    link: payment,
                    amount: paid * percent / 100,
                    active: true,
                };
                out.push(Delivery::Reversal(r.clone()));
                if *fails {
                    out.push(Delivery::Reversal(Reversal { active: false, ..r }));
                }
            }
            Fact::Proration { pick, percent } => {
                let plans: Vec<_> = grants.iter().filter(|g| g.2.is_some()).collect();
                let Some((_, _, Some(price), credits, _)) =
                    plans.get(pick % plans.len().max(1)).map(|g| (*g).clone())
                else {
                    continue;
                };
                let origin = format!("{account}_change{n}");
                out.push(Delivery::Grant(Box::new(Grant {
                    origin: NewOrigin {
                        id: origin.clone(),
                        account: account.into(),
                        source: Some(LotSource::Subscription),
                        paid_amount: 0,
                        currency: None,
                    },
                    payments: Vec::new(),
                    lots: Vec::new(),
                    take_backs: vec![TakeBack {
                        id: format!("{origin}/line"),
                        subscription: format!("{account}_sub"),
                        price,
                        period_end: PERIOD_END,
                        credits: credits * percent / 100,
                        credited: None,
                    }],
                })));
            }
            Fact::Change {
                pick,
                percent,
                credits: new_credits,
                paid: change_paid,
            } => {
                let plans: Vec<_> = grants.iter().filter(|g| g.2.is_some()).collect();
                let Some((_, _, Some(price), credits, _)) =
                    plans.get(pick % plans.len().max(1)).map(|g| (*g).clone())
                else {
                    continue;
                };
                let origin = format!("{account}_change{n}");
                let payment = format!("{account}_pi{n}");
                let payments = if *change_paid > 0 {
                    vec![payment.clone()]
                } else {
                    Vec::new()
                };
                out.push(Delivery::Grant(Box::new(Grant {
                    origin: NewOrigin {
                        id: origin.clone(),
                        account: account.into(),
                        source: Some(LotSource::Subscription),
                        paid_amount: *change_paid,
                        currency: None,
                    },
                    payments,
                    lots: vec![NewLot {
                        account: account.into(),
                        source: Some(LotSource::Subscription),
                        source_ref: format!("{origin}/new"),
                        amount: *new_credits,
                        expires_at: Some(PERIOD_END),
                        payment_ref: (*change_paid > 0).then(|| payment.clone()),
                        paid_amount: Some(*change_paid),
                        origin: Some(origin.clone()),
                        subscription: Some(format!("{account}_sub")),
                        price: Some(format!("price_new{n}")),
                        period_end: Some(PERIOD_END),
                        ..Default::default()
                    }],
                    take_backs: vec![TakeBack {
                        id: format!("{origin}/old"),
                        subscription: format!("{account}_sub"),
                        price,
                        period_end: PERIOD_END,
                        credits: credits * percent / 100,
                        credited: None,
                    }],
                })));
                if *change_paid > 0 {
                    grants.push((payment, *change_paid, None, *new_credits, origin));
                }
            }
            Fact::Deferred { pick, percent } => {
                let plans: Vec<_> = grants.iter().filter(|g| g.2.is_some()).collect();
                let Some((_, _, Some(price), credits, _)) =
                    plans.get(pick % plans.len().max(1)).map(|g| (*g).clone())
                else {
                    continue;
                };
                let origin = format!("{account}_net{n}");
                let net = credits * percent.abs() / 100;
                if net == 0 {
                    continue;
                }
                let (lots, take_backs) = if *percent > 0 {
                    (
                        vec![NewLot {
                            account: account.into(),
                            source: Some(LotSource::Subscription),
                            source_ref: format!("{origin}/prorations"),
                            amount: net,
                            expires_at: Some(PERIOD_END),
                            paid_amount: Some(0),
                            origin: Some(origin.clone()),
                            subscription: Some(format!("{account}_sub")),
                            price: Some(price),
                            ..Default::default()
                        }],
                        Vec::new(),
                    )
                } else {
                    (
                        Vec::new(),
                        vec![TakeBack {
                            id: format!("{origin}/prorations"),
                            subscription: format!("{account}_sub"),
                            price,
                            period_end: PERIOD_END,
                            credits: net,
                            credited: None,
                        }],
                    )
                };
                out.push(Delivery::Grant(Box::new(Grant {
                    origin: NewOrigin {
                        id: origin,
                        account: account.into(),
                        source: Some(LotSource::Subscription),
                        paid_amount: 0,
                        currency: None,
                    },
                    payments: Vec::new(),
                    lots,
                    take_backs,
                })));
            }
            Fact::CreditNote {
                pick,
                percent,
                refunded,
                voided,
            } => {
                let Some((payment, paid, _, _, origin)) =
                    grants.get(pick % grants.len().max(1)).cloned()
                else {
                    continue;
                };
                let money = paid * percent / 100;
                let refund = money * refunded / 100;
                let note = Reversal {
                    id: format!("{account}_cn{n}"),
                    kind: ReversalKind::CreditNote,
                    link: origin.clone(),
                    amount: money - refund,
                    active: true,
                };
                if refund > 0 {
                    let r = Reversal {
                        id: format!("{account}_cnre{n}"),
                        kind: ReversalKind::Refund,
                        link: origin,
                        amount: refund,
                        active: true,
                    };
                    // The note reports it, and so does the refund's own event.
                    out.push(Delivery::Reversal(r.clone()));
                    out.push(Delivery::Reversal(Reversal { link: payment, ..r }));
                }
                out.push(Delivery::Reversal(note.clone()));
                if *voided && refund == 0 {
                    out.push(Delivery::Reversal(Reversal {
                        active: false,
                        ..note
                    }));
                }
            }
        }
    }
    out
}

async fn deliver(db: &TestDb, d: &Delivery, now: i64) {
    let mut tx = db.store.begin().await.unwrap();
    match d {
        Delivery::Grant(g) => {
            grant_in(&mut tx, g, now).await.unwrap();
        }
        Delivery::Reversal(r) => reverse_in(&mut tx, r, now).await.unwrap(),
    }
    tx.commit().await.unwrap();
}

/// `(available, debt, remaining of each lot by its reference without the account)`.
async fn outcome(db: &TestDb, account: &str, now: i64) -> (i64, i64, Vec<(String, i64)>) {
    let lots = db.store.credit_lots(account).await.unwrap();
    let (journal, held, debt) = db.store.credit_totals(account).await.unwrap();
    assert_eq!(journal, held, "journal and lots disagree for {account}");
    let states: Vec<LotState> = lots.iter().map(|l| l.state()).collect();
    let mut per_lot: Vec<(String, i64)> = lots
        .iter()
        .map(|l| {
            (
                l.source_ref.trim_start_matches(account).to_owned(),
                l.remaining,
            )
        })
        .collect();
    per_lot.sort();
    (available(&states, now), debt, per_lot)
}

/// Applies the grants in their own order, spends `spend` percent of what is available,
/// then applies the rest (refunds, failures, disputes, take-backs): in their own order
/// to one account, shuffled by `keys` (each delivery twice) to the other.
async fn same_in_any_order(
    backend: Backend,
    facts: Vec<Fact>,
    spend: i64,
    keys: Vec<u32>,
) -> Result<(), TestCaseError> {
    let Some(db) = TestDb::new(backend).await else {
        return Ok(());
    };
    let now = 1_000_000;
    let ledger = Ledger::new(db.store.clone());
    for (account, shuffle) in [("acct_a", false), ("acct_b", true)] {
        let (grants, mut rest): (Vec<Delivery>, Vec<Delivery>) = deliveries(account, &facts)
            .into_iter()
            .partition(|d| {
                matches!(d, Delivery::Grant(g)
                    if !g.lots.is_empty() && g.take_backs.is_empty() && !g.origin.id.contains("_net"))
            });
        for d in &grants {
            deliver(&db, d, now).await;
        }
        let free = available(&states_of(&db, account).await, now);
        if free * spend / 100 > 0 {
            let req = ConsumeRequest {
                amount: Credits(free * spend / 100),
                idempotency_key: "spend".into(),
                description: None,
            };
            ledger.consume(account, &req, now).await.unwrap();
        }
        if shuffle {
            let mut keyed: Vec<(u32, Delivery)> = rest
                .into_iter()
                .enumerate()
                .map(|(i, d)| (keys.get(i).copied().unwrap_or(i as u32), d))
                .collect();
            keyed.sort_by_key(|(k, _)| *k);
            rest = keyed.into_iter().map(|(_, d)| d).collect();
        }
        for d in &rest {
            deliver(&db, d, now).await;
            if shuffle {
                // And every delivery twice: nothing changes.
                deliver(&db, d, now).await;
            }
        }
    }
    let a = outcome(&db, "acct_a", now).await;
    let b = outcome(&db, "acct_b", now).await;
    if spend == 0 && !overflows(&facts) {
        prop_assert_eq!(a, b);
    } else {
        // After a consumption, or when a plan's take-backs add up to more than it
        // granted, take-backs spill to other lots: which lot or debt one lands on may
        // differ, not what the account is worth.
        prop_assert_eq!(a.0 - a.1, b.0 - b.1, "{:?} {:?}", a, b);
    }
    Ok(())
}

/// Whether the take-backs of some plan's lot add up to more than the lot granted.
fn overflows(facts: &[Fact]) -> bool {
    deliveries("acct", facts).iter().any(|d| {
        let Delivery::Grant(g) = d else { return false };
        g.lots.iter().any(|lot| {
            let taken: i64 = deliveries("acct", facts)
                .iter()
                .filter_map(|d| match d {
                    Delivery::Grant(o) => Some(o.take_backs.iter()),
                    Delivery::Reversal(_) => None,
                })
                .flatten()
                .filter(|t| lot.price.as_deref() == Some(t.price.as_str()))
                .map(|t| t.credits)
                .sum();
            taken > lot.amount
        })
    })
}

async fn states_of(db: &TestDb, account: &str) -> Vec<LotState> {
    db.store
        .credit_lots(account)
        .await
        .unwrap()
        .iter()
        .map(|l| l.state())
        .collect()
}

fn check_order(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(facts in prop::collection::vec(fact(), 1..16), spend in prop_oneof![Just(0i64), 1i64..=100], keys in prop::collection::vec(any::<u32>(), 40))| {
        rt.block_on(same_in_any_order(backend, facts, spend, keys))?;
    });
}

/// Grants, then (sometimes) a consumption, then refunds (some failing later), disputes
/// (some won), proration take-backs, plan changes invoiced at once (downgrades and
/// refundable upgrades, each a grant and a take-back), deferred prorations settled net
/// (a grant or a take-back) and credit notes (some refunding, reported twice; some
/// voided), delivered in their own order to one account and in a
/// random order (each twice) to another: both ledgers end the same.
#[test]
fn sqlite_the_ledger_does_not_depend_on_the_arrival_order() {
    check_order(Backend::Sqlite);
}

#[test]
fn postgres_the_ledger_does_not_depend_on_the_arrival_order() {
    check_order(Backend::Postgres);
}

#[test]
fn sqlite_ledger_sums_match_and_nothing_goes_negative() {
    check(Backend::Sqlite);
}

#[test]
fn postgres_ledger_sums_match_and_nothing_goes_negative() {
    check(Backend::Postgres);
}

sm_store::contract_tests!(a_take_back_recorded_before_migration_15_keeps_its_old_rule);

/// Upgrades do not rewrite history: a proration take-back recorded before migration 15
/// (marked `waived` by it) is still waived where its lot cannot give it, while a new one
/// spills into debt. A plan lot of 1,000 (paid $10), a take-back of 500 attached, the
/// other 500 spent, then half of the $10 refunded: the refund takes 250 of the lot, which
/// leaves 250 for the take-back: the old one waives the other 250, the new one makes them
/// debt.
async fn a_take_back_recorded_before_migration_15_keeps_its_old_rule(db: TestDb) {
    use stripe_manager::credits::TakeBack;
    let now = 1_000_000;
    let ledger = Ledger::new(db.store.clone());
    for (account, legacy, debt) in [("acct_legacy", true, 0), ("acct_new", false, 25_000)] {
        let take_back = Grant {
            origin: NewOrigin {
                id: format!("in_{account}_change"),
                account: account.into(),
                source: Some(LotSource::Subscription),
                paid_amount: 0,
                currency: None,
            },
            take_backs: vec![TakeBack {
                id: format!("in_{account}_change/il_old"),
                subscription: format!("sub_{account}"),
                price: "price_a".into(),
                period_end: PERIOD_END,
                credits: 50_000,
                credited: None,
            }],
            ..Default::default()
        };
        deliver(&db, &Delivery::Grant(Box::new(take_back)), now).await;
        if legacy {
            let id = format!("in_{account}_change/il_old");
            sm_store::on_pool!(&db.store, pool => sqlx::query(
                "UPDATE credit_reversals SET waived = TRUE WHERE id = $1"
            )
            .bind(&id)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
        }
        let origin = format!("in_{account}_period");
        let payment = format!("pi_{account}");
        deliver(
            &db,
            &Delivery::Grant(Box::new(Grant {
                origin: NewOrigin {
                    id: origin.clone(),
                    account: account.into(),
                    source: Some(LotSource::Subscription),
                    paid_amount: 1000,
                    currency: None,
                },
                payments: vec![payment.clone()],
                lots: vec![NewLot {
                    account: account.into(),
                    source: Some(LotSource::Subscription),
                    source_ref: format!("{origin}/il_1"),
                    amount: 100_000,
                    expires_at: Some(PERIOD_END),
                    paid_amount: Some(1000),
                    origin: Some(origin.clone()),
                    subscription: Some(format!("sub_{account}")),
                    price: Some("price_a".into()),
                    period_end: Some(PERIOD_END),
                    ..Default::default()
                }],
                take_backs: Vec::new(),
            })),
            now,
        )
        .await;
        let req = ConsumeRequest {
            amount: Credits(50_000),
            idempotency_key: "spend".into(),
            description: None,
        };
        ledger.consume(account, &req, now).await.unwrap();
        let refund = Reversal {
            id: format!("re_{account}"),
            kind: ReversalKind::Refund,
            link: payment,
            amount: 500,
            active: true,
        };
        deliver(&db, &Delivery::Reversal(refund), now).await;
        let (available, owed, _) = outcome(&db, account, now).await;
        assert_eq!((available, owed), (0, debt), "{account}");
    }
}
