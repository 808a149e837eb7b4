//! Group commit for credit consumptions: requests hand their consumption to one writer
//! task per instance, which applies everything waiting in one transaction and then
//! answers every request.
//!
//! Why: a consumption holds its account's lock until its commit is on disk, so one hot
//! account could take only one consumption per fsync (~750/s on PostgreSQL here), and
//! each consumption cost about eight statements. In a group, the accounts are locked
//! once, their open lots and the idempotency keys are read once, and the lot updates,
//! journal entries and key records are written with one statement each, whatever the
//! group's size: at concurrency 1 nothing changes; under load one fsync and a handful of
//! statements serve many consumptions.
//!
//! The guarantees are the ones of a single consumption: the group's transaction locks
//! every account it touches (in id order; a deadlock PostgreSQL should still find fails
//! the group, which is then retried one by one), creating only the accounts a recorded
//! consumption needs, the allocation
//! is `sm_domain::credits::allocate` applied to each request in turn on what the
//! requests before it left, a key seen twice (in the database or earlier in the group)
//! answers the first result, and the unique `(account, idempotency_key)` is checked by
//! the insert itself. What the accounts' open holds reserve is read once too, and a
//! request may spend only `available − held`. A refused request (insufficient credits, a reused key) is answered
//! on its own and writes nothing. If the group's transaction fails as a whole, each
//! request is retried alone, so one bad request cannot fail the others.

use std::collections::{BTreeMap, HashMap};

use sm_domain::credits::{Credits, LotState, allocate, available};
use sm_store::credits::{ConsumptionRow, LotRow, NewConsumption, NewEntry};
use sm_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::{ConsumeRequest, Consumption, Ledger, LedgerError};

/// Consumptions per transaction at most.
const MAX_GROUP: usize = 128;

type Answer = Result<Consumption, LedgerError>;

/// A consumption waiting for the writer; already validated.
#[derive(Debug)]
pub(crate) struct Job {
    pub account: String,
    pub req: ConsumeRequest,
    /// What identifies the request's body under its key.
    pub fingerprint: String,
    /// The caller's clock: expiry and `created_at` are judged at this instant.
    pub now: i64,
    pub reply: oneshot::Sender<Answer>,
}

/// The writer's handle; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Consumer {
    tx: mpsc::Sender<Job>,
}

impl Consumer {
    /// Starts the writer task on the current runtime. `ledger` is what a request falls
    /// back to when its group cannot commit.
    pub fn start(store: Store, ledger: Ledger) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            let mut next: Option<Job> = None;
            loop {
                let first = match next.take() {
                    Some(job) => job,
                    None => match rx.recv().await {
                        Some(job) => job,
                        None => return,
                    },
                };
                // One instant per group: a request with another clock starts the next.
                let now = first.now;
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(job) if job.now == now => group.push(job),
                        Ok(job) => {
                            next = Some(job);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                metrics::histogram!("stripe_manager_credit_consume_group_size")
                    .record(group.len() as f64);
                match apply_group(&store, &group, now).await {
                    Ok(answers) => {
                        for (job, answer) in group.into_iter().zip(answers) {
                            let _ = job.reply.send(answer);
                        }
                    }
                    Err(e) => {
                        // Logged for a group of one too: the answers stay right, but a
                        // statement of the group path failing would otherwise go unseen.
                        tracing::warn!(error = %e, consumptions = group.len(), "a group of consumptions failed; applying them one by one");
                        for job in group {
                            let answer =
                                ledger.consume_alone(&job.account, &job.req, job.now).await;
                            let _ = job.reply.send(answer);
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Hands `job` to the writer; `Err(job)` when the writer has stopped (its runtime
    /// is shutting down), so the caller can apply it alone.
    pub async fn submit(&self, job: Job, answer: oneshot::Receiver<Answer>) -> Result<Answer, ()> {
        self.tx.send(job).await.map_err(|_| ())?;
        answer.await.map_err(|_| ())
    }
}

/// Applies `jobs` in one transaction; the answers are in the jobs' order. `Err` when the
/// transaction failed as a whole (nothing was written).
async fn apply_group(store: &Store, jobs: &[Job], now: i64) -> Result<Vec<Answer>, StoreError> {
    let mut tx = store.begin().await?;
    // Plans made for this group's arrays, not cached ones (see sm_store::credits).
    tx.plan_each_statement().await?;
    let mut accounts: Vec<&str> = jobs.iter().map(|j| j.account.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let created = tx.lock_accounts(&accounts, now).await?;
    let keys: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.account.as_str(), j.req.idempotency_key.as_str()))
        .collect();
    let mut done: HashMap<(String, String), ConsumptionRow> = tx
        .find_consumptions(&keys)
        .await?
        .into_iter()
        .map(|(account, key, row)| ((account, key), row))
        .collect();
    // Open holds keep their credits: a consumption may spend `available − held`.
    let held: HashMap<String, i64> = tx.held_of(&accounts, now).await?.into_iter().collect();
    let mut lots: HashMap<String, Vec<LotState>> = HashMap::new();
    for row in tx.open_lots_of(&accounts).await? {
        lots.entry(row.account.clone())
            .or_default()
            .push(LotRow::state(&row));
    }

    let mut answers = Vec::with_capacity(jobs.len());
    let mut taken: BTreeMap<i64, i64> = BTreeMap::new();
    let mut entries: Vec<NewEntry<'_>> = Vec::new();
    let mut records: Vec<NewConsumption<'_>> = Vec::new();
    for job in jobs {
        let key = job.req.idempotency_key.as_str();
        let description = job.req.description.as_deref();
        if let Some(row) = done.get(&(job.account.clone(), key.to_owned())) {
            answers.push(if row.request_hash != job.fingerprint {
                Err(LedgerError::KeyReused(key.to_owned()))
            } else {
                Ok(Consumption {
                    account: job.account.clone(),
                    idempotency_key: key.to_owned(),
                    amount: Credits(row.amount),
                    description: row.description.clone(),
                    balance: Credits(row.balance_after),
                    created_at: row.created_at,
                    replayed: true,
                })
            });
            continue;
        }
        let states = lots.entry(job.account.clone()).or_default();
        let amount = job.req.amount.hundredths();
        let avail = available(states, now);
        let held = held.get(&job.account).copied().unwrap_or(0);
        let takes = match allocate(states, amount, now) {
            Ok(takes) if amount == 0 || amount <= avail - held => takes,
            _ => {
                answers.push(Err(super::holds::short(avail, held, amount)));
                continue;
            }
        };
        let balance = avail - amount;
        if takes.is_empty() {
            // A free consumption is recorded all the same: usage at zero cost.
            entries.push(NewEntry {
                account: &job.account,
                kind: "consume",
                reference: key,
                description,
                ..Default::default()
            });
        }
        for &(lot, n) in &takes {
            if let Some(state) = states.iter_mut().find(|s| s.id == lot) {
                state.remaining -= n;
            }
            *taken.entry(lot).or_default() += n;
            entries.push(NewEntry {
                account: &job.account,
                lot: Some(lot),
                kind: "consume",
                amount: -n,
                reference: key,
                description,
                ..Default::default()
            });
        }
        records.push(NewConsumption {
            account: &job.account,
            key,
            request_hash: &job.fingerprint,
            amount,
            description,
            balance_after: balance,
        });
        // A second request with this key later in the group answers this result.
        done.insert(
            (job.account.clone(), key.to_owned()),
            ConsumptionRow {
                request_hash: job.fingerprint.clone(),
                amount,
                description: description.map(str::to_owned),
                balance_after: balance,
                created_at: now,
            },
        );
        answers.push(Ok(Consumption {
            account: job.account.clone(),
            idempotency_key: key.to_owned(),
            amount: job.req.amount,
            description: description.map(str::to_owned),
            balance: Credits(balance),
            created_at: now,
            replayed: false,
        }));
    }
    if records.is_empty() {
        tx.rollback().await?;
        return Ok(answers);
    }
    // Accounts created above for requests that were all refused: not kept.
    let unused: Vec<&str> = created
        .iter()
        .map(String::as_str)
        .filter(|a| !records.iter().any(|r| r.account == *a))
        .collect();
    tx.forget_new_accounts(&unused).await?;
    let taken: Vec<(i64, i64)> = taken.into_iter().collect();
    tx.take_from_lots(&taken).await?;
    tx.insert_entries(&entries, now).await?;
    // The keys were read under the account locks, so none can have been recorded
    // since; the unique key makes sure of it whatever the locking.
    let new = tx.insert_consumptions(&records, now).await?;
    if new != records.len() as u64 {
        tx.rollback().await?;
        return Err(StoreError::Corrupt(
            "an idempotency key was recorded by another transaction meanwhile".into(),
        ));
    }
    // A crossing of an account's top-up threshold queues one purchase with the group.
    let mut spent: BTreeMap<&str, i64> = BTreeMap::new();
    for r in &records {
        *spent.entry(r.account).or_default() += r.amount;
    }
    // A free consumption (amount 0) never buys: it would let a caller buy at will.
    let changes: Vec<(&str, i64, i64)> = spent
        .iter()
        .filter(|(_, amount)| **amount > 0)
        .map(|(account, amount)| {
            let states = lots.get(*account).map(Vec::as_slice).unwrap_or_default();
            let after = available(states, now) - held.get(*account).copied().unwrap_or(0);
            (*account, after + amount, after)
        })
        .collect();
    crate::topup::after_debit(&mut tx, &changes, now).await?;
    if tx.outbox_enabled() {
        // What each account may spend now, from the group's own reckoning.
        let known: HashMap<String, crate::outbox::Spendable> = records
            .iter()
            .map(|r| {
                let states = lots.get(r.account).map(Vec::as_slice).unwrap_or_default();
                (
                    r.account.to_owned(),
                    crate::outbox::Spendable {
                        available: available(states, now),
                        held: held.get(r.account).copied().unwrap_or(0),
                    },
                )
            })
            .collect();
        crate::outbox::announce(&mut tx, now, &known).await?;
    }
    tx.commit().await?;
    metrics::counter!("stripe_manager_credit_consumptions_total").increment(records.len() as u64);
    Ok(answers)
}
