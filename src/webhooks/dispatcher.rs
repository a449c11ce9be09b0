//! The dispatcher: delivers the outbox of webhook events to apps' endpoints.
//!
//! Any number of logic nodes deliver. A node leases the partitions that have events due
//! (a lease is a row claim, so a partition is delivered by one node at a time) and posts
//! each partition's events in the order they were written, per lane: a failed event holds
//! back the later events of its lane (one conversation, one user) and nothing else. An
//! event that keeps failing is retried with exponential backoff and jitter for
//! `webhooks.retry_for_secs`, then it is dead until replayed. A node that dies holds its
//! leases until they lapse; another node then takes the partitions over.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use rand::Rng;
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinSet};

use super::{
    AttemptOutcome, Delivery, Endpoint,
    events::{MESSAGE_OFFLINE, OFFLINE_CANDIDATES, conversation_type_name},
    sender::{Answer, Post, Sender},
};
use crate::{
    config::WebhooksConfig,
    metrics::{Metrics, WebhookLabels},
    model::{AppId, ConversationType, now_ms},
    outbound::AddressPolicy,
    route::{RouteError, RouteRegistry},
    store::{ConversationStore, GroupStore, StoreError, WebhookStore},
};

/// Waiting deliveries a partition task reads at a time.
const BATCH: u32 = 100;
/// The least time between two looks for due partitions.
const CLAIM_INTERVAL: Duration = Duration::from_millis(20);
/// Partitions a dispatcher looks at per poll.
const DUE_PARTITIONS: u32 = 256;
/// Finished deliveries pruned per round.
const PRUNE_BATCH: u32 = 500;
/// Of a failed answer's body, this much is kept as the delivery's error.
const ERROR_BODY_CHARS: usize = 256;

/// What the dispatcher reads and writes: the outbox, and what a `message.offline` event
/// is completed with when it goes out (badges, a large group's members).
pub trait OutboxStore: WebhookStore + ConversationStore + GroupStore {}

impl<T: WebhookStore + ConversationStore + GroupStore + ?Sized> OutboxStore for T {}

/// Why a round of delivery stopped short (it is tried again at the next poll).
#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("routes are unavailable: {0}")]
    Routes(#[from] RouteError),
    #[error("a stored event is unreadable: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, DispatchError>;

/// One pass over a partition's waiting events.
#[derive(Debug, Default)]
struct Pass {
    now: i64,
    /// Lanes whose first waiting event is not due, or failed in this pass: the rest of
    /// the lane waits behind it (until then).
    held_back: HashMap<String, i64>,
    /// Lanes whose rest was deferred in this pass.
    deferred: HashSet<String>,
    /// Whether the pass attempted an event (otherwise the partition has nothing due).
    attempted: bool,
}

/// Whether to go on with a partition after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

/// Delivers the outbox until `stop` turns true: this node's share of the work.
pub async fn deliver(
    store: Arc<dyn OutboxStore>,
    routes: Arc<dyn RouteRegistry>,
    config: WebhooksConfig,
    outbound: AddressPolicy,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    let node = format!("{}-{:08x}", std::process::id(), rand::rng().random::<u32>());
    let dispatcher = Arc::new(Dispatcher {
        store,
        routes,
        sender: Sender::new(Duration::from_secs(config.timeout_secs), outbound),
        metrics,
        node,
        config,
        failing: Default::default(),
    });
    let mut running: JoinSet<(u64, u32)> = JoinSet::new();
    // The partitions this node's tasks hold, by task: a task that panics lets its go too.
    let mut held: HashMap<tokio::task::Id, (u64, u32)> = HashMap::new();
    let poll = Duration::from_millis(dispatcher.config.poll_ms);
    let mut next_prune = tokio::time::Instant::now();
    let stopped = {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => break,
            Some(done) = running.join_next_with_id() => {
                let task = done.map_or_else(|err| err.id(), |(task, _)| task);
                held.remove(&task);
                continue;
            }
            () = dispatcher.store.events_written() => {
                // The writer's transaction commits a moment later.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            () = tokio::time::sleep(poll) => {}
        }
        if let Err(err) = dispatcher.claim(&mut running, &mut held, &stop).await {
            tracing::warn!(error = %err, "looking for webhook events to deliver failed");
        }
        // A busy node writes events all the time: look at most this often.
        tokio::time::sleep(CLAIM_INTERVAL).await;
        if tokio::time::Instant::now() >= next_prune {
            next_prune += Duration::from_secs(60);
            dispatcher.prune().await;
        }
    }
    // Tasks finish their attempt in flight and let their partitions go.
    while running.join_next().await.is_some() {}
}

/// Failed attempts in a row (of different lanes) after which a partition rests.
const FAILURES_TO_REST: usize = 5;

/// Whether an endpoint's failures say it is down rather than refusing one event.
#[derive(Debug, Clone, Default)]
struct Breaker {
    /// Rests the partition had in a row before this drain (its endpoint has failed since).
    rests: u32,
    /// Lanes whose attempts failed since the partition's last success. Kept from one drain
    /// to the next: with lanes spread over the partitions, a drain often has one or two
    /// events due, and a streak that ended with the drain would never reach a rest.
    failed_lanes: HashSet<String>,
}

impl Breaker {
    /// Counts a failure of `lane`; `true` when the partition should rest. After a rest one
    /// failure is enough: the first attempt was a probe.
    fn trips(&mut self, lane: &str) -> bool {
        self.failed_lanes.insert(lane.to_owned());
        self.failed_lanes.len() >= if self.rests > 0 { 1 } else { FAILURES_TO_REST }
    }
}

/// One node's delivery of the outbox.
struct Dispatcher {
    store: Arc<dyn OutboxStore>,
    /// Where recipients are online, for `message.offline` events.
    routes: Arc<dyn RouteRegistry>,
    sender: Sender,
    metrics: Arc<Metrics>,
    /// This node's name on its leases.
    node: String,
    config: WebhooksConfig,
    /// The failing lanes of the partitions this node drained last (`Breaker::failed_lanes`).
    failing: std::sync::Mutex<HashMap<(u64, u32), HashSet<String>>>,
}

impl Dispatcher {
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Leases partitions with events due that this node does not hold yet, and starts
    /// a task for each.
    async fn claim(
        self: &Arc<Self>,
        running: &mut JoinSet<(u64, u32)>,
        held: &mut HashMap<tokio::task::Id, (u64, u32)>,
        stop: &watch::Receiver<bool>,
    ) -> Result<()> {
        let store = &self.store;
        let now = now_ms();
        let due = store.due_partitions(now, &self.node, DUE_PARTITIONS).await?;
        let wanted: Vec<(u64, u32)> =
            due.into_iter().filter(|partition| !held.values().any(|mine| mine == partition)).collect();
        for partition in store.lease_partitions(&wanted, &self.node, now, now + self.lease_ms()).await? {
            let dispatcher = self.clone();
            let stop = stop.clone();
            let task = running.spawn(async move {
                if let Err(err) = dispatcher.drain(partition, &stop).await {
                    tracing::warn!(endpoint = partition.0, part = partition.1, error = %err, "webhook delivery stopped");
                }
                let _ = dispatcher.store.release_lease(partition, &dispatcher.node).await;
                partition
            });
            held.insert(task.id(), partition);
        }
        Ok(())
    }

    /// Delivers a leased partition's due events until none is left due (or the lease is lost).
    async fn drain(&self, partition: (u64, u32), stop: &watch::Receiver<bool>) -> Result<()> {
        // Successes are recorded a page at a time: one write for many events. Those not
        // recorded when a node dies are sent again (delivery is at least once).
        let mut delivered = Vec::new();
        let failed_lanes = self.failing.lock().expect("failing lanes").remove(&partition).unwrap_or_default();
        let mut breaker = Breaker { rests: self.store.partition_failures(partition).await?, failed_lanes };
        let result = self.drain_into(partition, stop, &mut delivered, &mut breaker).await;
        if !breaker.failed_lanes.is_empty() {
            self.failing.lock().expect("failing lanes").insert(partition, breaker.failed_lanes);
        }
        self.store.finish_delivered(&delivered, now_ms()).await?;
        result
    }

    async fn drain_into(
        &self,
        partition: (u64, u32),
        stop: &watch::Receiver<bool>,
        delivered: &mut Vec<(u64, u16)>,
        breaker: &mut Breaker,
    ) -> Result<()> {
        let mut renew_at = now_ms() + self.lease_ms() / 3;
        // Passes over the partition's waiting events, a page at a time, until a pass
        // attempts nothing: what is left backs off, and the dispatcher comes back when it is due.
        loop {
            let mut pass = Pass { now: now_ms(), ..Pass::default() };
            let mut after_id = 0;
            loop {
                // Read again for each page: the operator may have disabled the endpoint,
                // moved it or rotated its secret meanwhile.
                let Some(endpoint) = self.store.endpoint(partition.0).await?.filter(|endpoint| endpoint.enabled) else {
                    return Ok(());
                };
                let page = self.store.waiting_deliveries(partition, after_id, BATCH).await?;
                let Some(last) = page.last() else { break };
                after_id = last.id;
                for delivery in &page {
                    if *stop.borrow() || !self.keep_lease(partition, &mut renew_at).await? {
                        return Ok(());
                    }
                    if self.held_back(partition, &mut pass, delivery).await? {
                        continue;
                    }
                    pass.attempted = true;
                    if self.deliver_one(partition, &endpoint, delivery, &mut pass, delivered, breaker).await?
                        == Next::Stop
                    {
                        return Ok(());
                    }
                }
                self.store.finish_delivered(delivered, now_ms()).await?;
                delivered.clear();
            }
            if !pass.attempted {
                return Ok(());
            }
        }
    }

    /// Renews the partition's lease once two thirds of it are gone; `false` when another
    /// node has it now.
    async fn keep_lease(&self, partition: (u64, u32), renew_at: &mut i64) -> Result<bool> {
        if now_ms() < *renew_at {
            return Ok(true);
        }
        if !self.store.renew_lease(partition, &self.node, now_ms() + self.lease_ms()).await? {
            return Ok(false);
        }
        *renew_at = now_ms() + self.lease_ms() / 3;
        Ok(true)
    }

    /// Whether the event waits: behind an earlier event of its lane (the rest of the lane
    /// is deferred to then, once per pass), or for its own time.
    async fn held_back(&self, partition: (u64, u32), pass: &mut Pass, delivery: &Delivery) -> Result<bool> {
        if let Some(&until) = pass.held_back.get(&delivery.lane) {
            if delivery.next_at_ms < until && pass.deferred.insert(delivery.lane.clone()) {
                self.store.defer_lane(partition, &delivery.lane, delivery.id - 1, until).await?;
            }
            return Ok(true);
        }
        if delivery.next_at_ms > pass.now {
            pass.held_back.insert(delivery.lane.clone(), delivery.next_at_ms);
            return Ok(true);
        }
        Ok(false)
    }

    /// Attempts one event and keeps its outcome: a success joins the page's `delivered`, a
    /// failure is recorded and holds its lane back; `Stop` when the partition rests or the
    /// receiver is gone.
    async fn deliver_one(
        &self,
        partition: (u64, u32),
        endpoint: &Endpoint,
        delivery: &Delivery,
        pass: &mut Pass,
        delivered: &mut Vec<(u64, u16)>,
        breaker: &mut Breaker,
    ) -> Result<Next> {
        let started = std::time::Instant::now();
        let keys = endpoint.signing_keys(now_ms()).map_err(|err| DispatchError::Corrupt(err.to_string()))?;
        let outcome = self.attempt(endpoint, &keys, delivery).await;
        self.record(&outcome, started.elapsed());
        if let AttemptOutcome::Delivered { status } = outcome {
            delivered.push((delivery.id, status));
            if breaker.rests > 0 {
                self.store.recover_partition(partition).await?;
            }
            *breaker = Breaker::default();
            return Ok(Next::Continue);
        }
        let attempts = delivery.attempts.saturating_add(1);
        self.store.finish_attempt(delivery.id, attempts, &outcome, now_ms()).await?;
        let gone = matches!(outcome, AttemptOutcome::Dead { status: 410, .. });
        if let AttemptOutcome::Retry { error, .. } | AttemptOutcome::Dead { error, .. } = &outcome
            && !gone
            && breaker.trips(&delivery.lane)
        {
            self.rest(partition, breaker, error).await?;
            breaker.failed_lanes.clear();
            return Ok(Next::Stop);
        }
        match outcome {
            AttemptOutcome::Retry { next_at_ms, .. } => {
                pass.held_back.insert(delivery.lane.clone(), next_at_ms);
            }
            AttemptOutcome::Dead { status: 410, .. } => {
                self.store.disable_endpoint(endpoint.id, "the receiver answered 410 Gone", now_ms()).await?;
                tracing::warn!(app = endpoint.app, endpoint = endpoint.id, "webhook endpoint disabled: 410 Gone");
                return Ok(Next::Stop);
            }
            _ => {}
        }
        Ok(Next::Continue)
    }

    /// Rests a partition whose endpoint keeps failing: its events stay as they are, and
    /// the dispatcher comes back after a backoff that grows with each rest in a row.
    async fn rest(&self, partition: (u64, u32), breaker: &Breaker, error: &str) -> Result<()> {
        let now = now_ms();
        let rests = breaker.rests.saturating_add(1);
        let until = now + retry_delay_ms(&self.config, rests - 1, None);
        let expired = now.saturating_sub_unsigned(self.config.retry_for_secs.saturating_mul(1000));
        let error = format!("the endpoint kept failing: {error}");
        self.store.rest_partition(partition, rests, until, expired, &error).await?;
        tracing::info!(endpoint = partition.0, part = partition.1, rests, "webhook endpoint failing; partition rests");
        Ok(())
    }

    fn record(&self, outcome: &AttemptOutcome, took: Duration) {
        let outcome = match outcome {
            AttemptOutcome::Delivered { status: 0 } => "skipped",
            AttemptOutcome::Delivered { .. } => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Dead { .. } => "dead",
        };
        let labels = WebhookLabels { outcome: outcome.into() };
        self.metrics.webhook_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Posts one event and says what becomes of it.
    async fn attempt(&self, endpoint: &Endpoint, keys: &[Vec<u8>], delivery: &Delivery) -> AttemptOutcome {
        let payload = if delivery.kind == MESSAGE_OFFLINE {
            match self.offline_payload(delivery).await {
                Ok(Some(payload)) => payload,
                Ok(None) => return AttemptOutcome::Delivered { status: 0 },
                Err(err) => return self.retry_or_die(delivery, 0, None, format!("finding offline recipients: {err}")),
            }
        } else {
            delivery.payload.clone()
        };
        let webhook_id = delivery.webhook_id();
        let post = Post {
            url: &endpoint.url,
            webhook_id: &webhook_id,
            keys,
            payload: &payload,
            timestamp_secs: now_ms() / 1000,
        };
        let started = std::time::Instant::now();
        let answer = self.sender.post(post).await;
        let elapsed = started.elapsed();
        match answer {
            Answer::Status { status, .. } if (200..300).contains(&status) => {
                tracing::debug!(endpoint = endpoint.id, id = delivery.id, status, ?elapsed, "webhook delivered");
                AttemptOutcome::Delivered { status }
            }
            Answer::Status { status: 410, .. } => {
                AttemptOutcome::Dead { status: 410, error: "410 Gone: the endpoint is disabled".into() }
            }
            Answer::Status { status, retry_after, body } => {
                let body: String = body.chars().take(ERROR_BODY_CHARS).collect();
                self.retry_or_die(delivery, status, retry_after, format!("HTTP {status}: {body}"))
            }
            Answer::Failed(error) => self.retry_or_die(delivery, 0, None, error),
        }
    }

    /// The next attempt's time, or death once `retry_for_secs` have passed since the event
    /// was written (or its retries were started over).
    fn retry_or_die(
        &self,
        delivery: &Delivery,
        status: u16,
        retry_after: Option<Duration>,
        error: String,
    ) -> AttemptOutcome {
        let now = now_ms();
        let next_at_ms = now + retry_delay_ms(&self.config, delivery.attempts, retry_after);
        let give_up_at =
            delivery.retry_window_start_ms().saturating_add_unsigned(self.config.retry_for_secs.saturating_mul(1000));
        if next_at_ms > give_up_at {
            tracing::warn!(endpoint = delivery.endpoint_id, id = delivery.id, %error, "webhook delivery is dead");
            return AttemptOutcome::Dead { status, error };
        }
        AttemptOutcome::Retry { next_at_ms, status, error }
    }

    /// A `message.offline` event as it goes out: its candidates that have no device online
    /// now, each with the badge to show. `None` when all are online.
    async fn offline_payload(&self, delivery: &Delivery) -> Result<Option<String>> {
        let mut payload: Value =
            serde_json::from_str(&delivery.payload).map_err(|err| DispatchError::Corrupt(err.to_string()))?;
        let candidates = match payload["data"][OFFLINE_CANDIDATES].as_array() {
            Some(users) => users.iter().filter_map(|user| user.as_str().map(str::to_owned)).collect(),
            None => self.large_group_members(delivery.app, &payload["data"]["message"]).await?,
        };
        let routes = self.routes.lookup(delivery.app, &candidates).await?;
        let mut recipients = Vec::new();
        for user in candidates.iter().filter(|user| routes.get(*user).is_none_or(Vec::is_empty)) {
            let totals = self.store.conversation_totals(delivery.app, user).await?;
            recipients.push(json!({ "user_id": user, "badge": totals.unread }));
        }
        if recipients.is_empty() {
            return Ok(None);
        }
        if let Some(data) = payload["data"].as_object_mut() {
            data.remove(OFFLINE_CANDIDATES);
            data.insert("recipients".into(), Value::Array(recipients));
        }
        Ok(Some(payload.to_string()))
    }

    /// A large group's members but the sender, up to `max_offline_recipients`.
    async fn large_group_members(&self, app: AppId, message: &Value) -> Result<Vec<String>> {
        let (Some(group), Some(sender)) = (message["receiver_id"].as_str(), message["sender_user_id"].as_str()) else {
            return Ok(Vec::new());
        };
        if message["conversation_type"].as_str() != Some(conversation_type_name(ConversationType::Group)) {
            return Ok(Vec::new());
        }
        let max = self.config.max_offline_recipients;
        let mut users = Vec::new();
        let mut after = String::new();
        while users.len() < max {
            let page = self.store.group_members(app, group, &after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.user_id.clone();
            users.extend(page.into_iter().map(|member| member.user_id).filter(|user| user != sender));
        }
        users.truncate(max);
        Ok(users)
    }

    async fn prune(&self) {
        let now = now_ms();
        let keep = |secs: u64| now.saturating_sub_unsigned(secs.saturating_mul(1000));
        let (delivered, dead) = (keep(self.config.keep_delivered_secs), keep(self.config.keep_dead_secs));
        if let Err(err) = self.store.prune_deliveries(delivered, dead, PRUNE_BATCH).await {
            tracing::warn!(error = %err, "pruning old webhook deliveries failed");
        }
        // A secret that signs no more is not kept: whoever reads the database could sign with it.
        if let Err(err) = self.store.forget_previous_secrets(now).await {
            tracing::warn!(error = %err, "forgetting rotated webhook secrets failed");
        }
    }
}

/// Exponential backoff from `first_retry_ms`, capped, with ±20 % jitter so that the events
/// of an endpoint that failed together do not come back together; a longer `Retry-After`
/// from the receiver wins (up to the cap).
fn retry_delay_ms(config: &WebhooksConfig, attempts_before: u32, retry_after: Option<Duration>) -> i64 {
    let cap = config.max_retry_interval_secs.saturating_mul(1000);
    let base = config.first_retry_ms.saturating_mul(1u64 << attempts_before.min(30)).min(cap);
    let jittered = (base as f64 * rand::rng().random_range(0.8..1.2)) as u64;
    let asked = retry_after.map_or(0, |after| u64::try_from(after.as_millis()).unwrap_or(u64::MAX)).min(cap);
    i64::try_from(jittered.max(asked)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
        let config = WebhooksConfig { first_retry_ms: 1000, max_retry_interval_secs: 60, ..WebhooksConfig::default() };
        for (attempts, expected) in [(0, 1000), (1, 2000), (3, 8000), (5, 32_000), (9, 60_000), (40, 60_000)] {
            let delay = retry_delay_ms(&config, attempts, None);
            assert!((expected * 8 / 10..=expected * 12 / 10).contains(&delay), "{attempts}: {delay}");
        }
        assert_eq!(retry_delay_ms(&config, 0, Some(Duration::from_secs(30))), 30_000);
        assert_eq!(retry_delay_ms(&config, 0, Some(Duration::from_secs(3600))), 60_000);
    }
}
