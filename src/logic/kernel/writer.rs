//! Group commit for messages: sends that arrive while a transaction is in flight are
//! gathered and committed together in the next one. Every message is still durable
//! when its sender hears back; only the number of commits per message falls.
//!
//! Sends go to one of `concurrency` lanes by their receiver (user or group), each lane
//! committing one batch at a time and handing the batch to delivery before the next:
//! the messages of one conversation commit and are pushed in order.

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    sync::Arc,
};

use tokio::sync::{mpsc, oneshot};

use super::{ids::IdGenerator, pushes::pushes_of};
use crate::{
    delivery::Delivery,
    logic::{
        Error, Result,
        rules::message::{SendRefusal, SendRules, may_send},
    },
    metrics::Metrics,
    model::{AppId, Appended, NewMessage, SendState},
    store::{AppendError, MessageStore, StoreError},
};

/// Attempts of a batch that hit a unique key (an id collision between nodes, or the
/// same `client_msg_id` sent through two nodes at once); the retry sees the winner.
const CONFLICT_ATTEMPTS: u32 = 4;

struct Job {
    app: AppId,
    message: NewMessage,
    /// What the app asks of the message, decided in the batch's transaction.
    rules: SendRules,
    reply: oneshot::Sender<Result<Appended>>,
}

/// What a lane needs to commit and deliver a batch.
pub struct Committer {
    pub store: Arc<dyn MessageStore>,
    pub ids: Arc<IdGenerator>,
    pub metrics: Arc<Metrics>,
    pub delivery: Arc<dyn Delivery>,
}

/// The lanes messages are written through; cheap to clone.
#[derive(Clone)]
pub struct MessageWriter {
    lanes: Arc<Vec<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWriter").field("lanes", &self.lanes.len()).finish()
    }
}

impl MessageWriter {
    /// Starts `concurrency` lanes committing up to `batch_max` messages per transaction.
    pub fn start(committer: Committer, batch_max: usize, concurrency: usize) -> Self {
        let committer = Arc::new(committer);
        let lanes = (0..concurrency.max(1))
            .map(|_| {
                let (jobs, queue) = mpsc::channel(batch_max * 4);
                tokio::spawn(run_lane(queue, committer.clone(), batch_max));
                jobs
            })
            .collect();
        Self { lanes: Arc::new(lanes) }
    }

    /// Stores `message` (its `id` and `sent_at_ms` are assigned here) if the rules of
    /// sending let it through as its conversation stands in the transaction, hands it to
    /// delivery, and returns once both are done.
    pub async fn write(&self, app: AppId, message: NewMessage, rules: SendRules) -> Result<Appended> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (app, &message.receiver_id).hash(&mut hasher);
        let lane = &self.lanes[(hasher.finish() % self.lanes.len() as u64) as usize];
        let (reply, outcome) = oneshot::channel();
        let stopped = || Error::Unavailable("the message writer has stopped; retry on another node".into());
        lane.send(Job { app, message, rules, reply }).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn run_lane(mut queue: mpsc::Receiver<Job>, committer: Arc<Committer>, batch_max: usize) {
    let mut batch = Vec::with_capacity(batch_max);
    // Sends that queue up while a batch commits go into the next one.
    while queue.recv_many(&mut batch, batch_max).await > 0 {
        committer.commit(std::mem::take(&mut batch)).await;
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
        let rules: Vec<SendRules> = jobs.iter().map(|job| job.rules).collect();
        let mut refusals: Vec<Option<SendRefusal>> = vec![None; jobs.len()];
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            for message in &mut messages {
                (message.id, message.sent_at_ms) = self.ids.next();
            }
            let mut decide = |index: usize, state: &SendState<'_>| match may_send(&messages[index], state, rules[index])
            {
                Ok(()) => true,
                Err(refusal) => {
                    refusals[index] = Some(refusal);
                    false
                }
            };
            match self.store.append(app, &messages, &mut decide).await {
                Err(StoreError::Conflict) if attempt < CONFLICT_ATTEMPTS => continue,
                other => break other,
            }
        };
        let outcomes = match outcome {
            Ok(outcomes) => outcomes,
            Err(err) => {
                tracing::error!(app, error = %err, messages = jobs.len(), "committing a batch of messages failed");
                let err = Error::from(err);
                for job in jobs {
                    let _ = job.reply.send(Err(Error::internal(format!("storing the message failed: {err}"))));
                }
                return;
            }
        };
        let mut pushes = Vec::new();
        for (message, outcome) in messages.iter().zip(&outcomes) {
            if let Ok(appended) = outcome
                && !appended.duplicate
            {
                self.metrics.messages_stored.inc();
                pushes.extend(pushes_of(app, &message.stored(appended), appended));
            }
        }
        self.delivery.deliver(pushes);
        for ((job, outcome), refusal) in jobs.into_iter().zip(outcomes).zip(refusals) {
            let reply = match (outcome, refusal) {
                (Ok(appended), _) => Ok(appended),
                (Err(AppendError::Refused), Some(refusal)) => Err(refusal.into()),
                (Err(err), _) => Err(err.into()),
            };
            let _ = job.reply.send(reply);
        }
    }
}
