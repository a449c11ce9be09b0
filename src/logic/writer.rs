//! Group commit for messages: sends that arrive while a transaction is in flight are
//! gathered and committed together in the next one. Every message is still durable
//! when its sender hears back; only the number of commits per message falls.

use std::{collections::BTreeMap, sync::Arc};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Error, IdGenerator, Result};
use crate::metrics::Metrics;
use crate::{
    model::AppId,
    store::{AppendError, Appended, NewMessage, Store, StoreError},
};

/// Attempts of a batch that hit a unique key (an id collision between nodes, or the
/// same `client_msg_id` sent through two nodes at once); the retry sees the winner.
const CONFLICT_ATTEMPTS: u32 = 4;

struct Job {
    app: AppId,
    message: NewMessage,
    reply: oneshot::Sender<Result<Result<Appended, AppendError>>>,
}

pub(super) struct MessageWriter {
    jobs: mpsc::Sender<Job>,
}

impl MessageWriter {
    /// Starts the dispatcher: up to `concurrency` transactions of up to `batch_max`
    /// messages each in flight.
    pub(super) fn start(
        store: Arc<dyn Store>,
        ids: Arc<IdGenerator>,
        metrics: Arc<Metrics>,
        batch_max: usize,
        concurrency: usize,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(batch_max * concurrency * 2);
        tokio::spawn(dispatch(queue, Committer { store, ids, metrics }, batch_max, concurrency));
        Self { jobs }
    }

    /// Stores `message` (its `id` and `sent_at_ms` are assigned here) and waits for the commit.
    pub(super) async fn write(&self, app: AppId, message: NewMessage) -> Result<Result<Appended, AppendError>> {
        let (reply, outcome) = oneshot::channel();
        let stopped = || Error::Unavailable("the message writer has stopped; retry on another node".into());
        self.jobs.send(Job { app, message, reply }).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// What a batch needs to be committed.
#[derive(Clone)]
struct Committer {
    store: Arc<dyn Store>,
    ids: Arc<IdGenerator>,
    metrics: Arc<Metrics>,
}

async fn dispatch(mut queue: mpsc::Receiver<Job>, committer: Committer, batch_max: usize, concurrency: usize) {
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        // Wait for a free slot before taking jobs: while every slot is busy, sends
        // queue up and the next batch gets bigger.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committer = committer.clone();
        tokio::spawn(async move {
            committer.commit(batch).await;
            drop(slot);
        });
    }
}

impl Committer {
    async fn commit(&self, batch: Vec<Job>) {
        let started = std::time::Instant::now();
        self.metrics.write_batch_size.observe(batch.len() as f64);
        let mut by_app: BTreeMap<AppId, Vec<Job>> = BTreeMap::new();
        for job in batch {
            by_app.entry(job.app).or_default().push(job);
        }
        for (app, jobs) in by_app {
            self.commit_app(app, jobs).await;
        }
        self.metrics.write_seconds.observe(started.elapsed().as_secs_f64());
    }

    async fn commit_app(&self, app: AppId, jobs: Vec<Job>) {
        let mut messages: Vec<NewMessage> = jobs.iter().map(|job| job.message.clone()).collect();
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            for message in &mut messages {
                (message.id, message.sent_at_ms) = self.ids.next();
            }
            match self.store.append(app, &messages).await {
                Err(StoreError::Conflict) if attempt < CONFLICT_ATTEMPTS => continue,
                other => break other,
            }
        };
        match outcome {
            Ok(outcomes) => {
                let stored = outcomes.iter().filter(|o| o.as_ref().is_ok_and(|a| !a.duplicate)).count();
                self.metrics.messages_stored.inc_by(stored as u64);
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(app, error = %err, messages = jobs.len(), "committing a batch of messages failed");
                for job in jobs {
                    let _ = job.reply.send(Err(Error::Internal(format!("storing the message failed: {err}"))));
                }
            }
        }
    }
}
