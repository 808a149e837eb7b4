//! Group commit at the intake: requests hand their verified event to one writer task,
//! which inserts everything waiting in one transaction and then answers every request.
//! At concurrency 1 nothing changes; at 16–64 one fsync serves many events, so SQLite
//! can stay `synchronous=FULL` and still take webhooks fast.

use std::sync::Arc;

use sm_store::Store;
use sm_store::inbox::NewEvent;
use sm_stripe::Verified;
use tokio::sync::{Notify, mpsc, oneshot};

/// Events per transaction at most.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<bool, String>>;

/// The intake's handle: cheap to clone, shared by the HTTP handler and `events reconcile`.
#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::Sender<(NewEvent, Reply)>,
    /// Woken after every commit that stored something new.
    pub stored: Arc<Notify>,
}

/// Why an event could not be stored; the answer is 503 so Stripe retries.
#[derive(Debug, thiserror::Error)]
#[error("the event could not be stored: {0}")]
pub struct NotStored(String);

impl Intake {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<(NewEvent, Reply)>(4096);
        let stored = Arc::new(Notify::new());
        let wake = stored.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.into_iter().unzip();
                metrics::histogram!("stripe_manager_webhook_intake_batch_size")
                    .record(events.len() as f64);
                match store.insert_events(&events, super::now_ms()).await {
                    Ok(inserted) => {
                        let any_new = inserted.iter().any(|n| *n);
                        for (reply, new) in replies.into_iter().zip(inserted) {
                            let _ = reply.send(Ok(new));
                        }
                        if any_new {
                            wake.notify_waiters();
                            wake.notify_one();
                        }
                    }
                    Err(e) if events.len() > 1 && e.is_data_error() => {
                        // One bad row must not fail the others: store them one by one.
                        // (Not when the database is unreachable: each would wait again.)
                        tracing::warn!(error = %e, events = events.len(), "a batch of webhook events failed; storing them one by one");
                        let mut any_new = false;
                        for (event, reply) in events.into_iter().zip(replies) {
                            let one = store
                                .insert_events(std::slice::from_ref(&event), super::now_ms())
                                .await;
                            let answer = match one {
                                Ok(inserted) => {
                                    let new = inserted.first().copied().unwrap_or(false);
                                    any_new |= new;
                                    Ok(new)
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, id = %event.id, "could not store a webhook event; answering 503 so Stripe retries");
                                    Err(crate::error_chain(&e))
                                }
                            };
                            let _ = reply.send(answer);
                        }
                        if any_new {
                            wake.notify_waiters();
                            wake.notify_one();
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not store a webhook event; answering 503 so Stripe retries");
                        let message = crate::error_chain(&e);
                        for reply in replies {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Self { tx, stored }
    }

    /// An intake that stores nothing and answers every event as new: the ceiling of the
    /// webhook path (verification, parsing, the hand-off to the writer and back) without
    /// a database, for `examples/bench_server` only. The service never builds one.
    pub fn discarding() -> Self {
        let (tx, mut rx) = mpsc::channel::<(NewEvent, Reply)>(4096);
        tokio::spawn(async move {
            while let Some((event, reply)) = rx.recv().await {
                drop(event);
                let _ = reply.send(Ok(true));
            }
        });
        Self {
            tx,
            stored: Arc::new(Notify::new()),
        }
    }

    /// Stores a verified event durably. `Ok(true)`: new; `Ok(false)`: a redelivery.
    pub async fn submit(&self, event: Verified, source: &'static str) -> Result<bool, NotStored> {
        let new = NewEvent {
            id: event.id().to_owned(),
            kind: event.kind().to_owned(),
            created: event.created(),
            livemode: event.livemode(),
            api_version: event.api_version().map(str::to_owned),
            source,
            // Moved, not copied: events are up to 1 MiB.
            payload: event.into_body(),
        };
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((new, reply))
            .await
            .map_err(|_| NotStored("the intake writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| NotStored("the intake writer has stopped".into()))?
            .map_err(NotStored)
    }
}
