//! Large-group and live-room pushes on their way to this node's sessions, and when they
//! go.
//!
//! A topic's pushes (a large group's, or a room's) wait in one list per topic, shared by
//! all of its sessions here: a push costs one append, whatever the number of sessions.
//! A flush hands each session the lists of its topics with one lock and one wake-up, and
//! the session writes them in one go.
//!
//! When to flush adapts to the load, the way Nagle's algorithm or NATS's flusher do, but
//! measured on the whole node: how long a flush takes to be taken by every session it
//! woke (which grows with the sessions, the pushes, and whatever else keeps the CPUs
//! busy). While the last flush is being taken, pushes wait for it. A flush taken within
//! `budget` lets the next go at once; one that took longer means the node is busy, and
//! the next waits until flushing has taken no more than `budget / took` of the time: a
//! flush twice as slow waits four times as long and carries that many more pushes. No
//! push waits longer than `max_delay`. So at light load each push costs what an
//! uncoalesced server's does, with its latency, and under load the per-session cost (a
//! wake-up and a socket write, most of a delivery's CPU) is paid once per flush instead
//! of once per message.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    sync::{Notify, oneshot},
    time::Instant,
};

use crate::{delivery::DeviceRef, model::AppId};

/// When large-group and room pushes go out (`connect.group_push_max_delay_ms`,
/// `connect.group_flush_budget_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// The longest a push waits for its flush; zero flushes every push at once.
    pub max_delay: Duration,
    /// A flush taken within this is light work: the next may go at once.
    pub budget: Duration,
}

impl Pacing {
    /// How long after a flush started the next may start, given how long it took.
    fn rest(&self, took: Duration) -> Duration {
        if took <= self.budget || self.budget.is_zero() {
            return took;
        }
        took.mul_f64(took.as_secs_f64() / self.budget.as_secs_f64())
    }
}

/// What a fan-out list is for: a large group's timeline, or a live room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Group(Arc<str>),
    Room(Arc<str>),
}

/// One large-group or room push.
#[derive(Debug)]
pub struct TopicPush {
    /// Arrival order on this node: a session gets the pushes numbered from its
    /// subscription on.
    pub number: u64,
    /// Its seq on the group's timeline, or in the room (0: a room event).
    pub seq: u64,
    pub frame: Bytes,
    /// The device that sent it, which has it already.
    pub skip: Option<DeviceRef>,
}

/// One flush's pushes to one topic, shared by the topic's sessions here.
#[derive(Debug)]
pub struct Batch {
    pub app: AppId,
    pub topic: Topic,
    pub pushes: Vec<TopicPush>,
}

/// A session's part in a flush, held until the session has put what the flush gave it
/// in order for its next write; the flusher hears when the last is dropped. A session that is in the middle of a
/// write when the flush comes gets none: a device slow to read must not hold back the
/// node's next flush (its pushes go with its next write, as with Nagle's algorithm).
#[derive(Debug, Clone)]
pub struct Share(#[allow(dead_code)] Arc<Flight>);

/// Reports, when the last share of a flush is dropped, when that was.
#[derive(Debug)]
struct Flight(Option<oneshot::Sender<Instant>>);

impl Drop for Flight {
    fn drop(&mut self) {
        if let Some(taken) = self.0.take() {
            let _ = taken.send(Instant::now());
        }
    }
}

/// The pushes of one flush, by topic.
#[derive(Debug)]
pub struct Flush {
    pub batches: Vec<Arc<Batch>>,
    /// Cloned for each session the flush must wait for; dropped once all are handed out.
    pub share: Share,
    pub flushed: Flushed,
}

/// A flush handed out: when it started, and when its last share was taken.
#[derive(Debug)]
pub struct Flushed {
    started: Instant,
    taken: oneshot::Receiver<Instant>,
}

pub type TopicKey = (AppId, Topic);

#[derive(Debug, Default)]
struct Waiting {
    topics: HashMap<TopicKey, Vec<TopicPush>>,
    /// When the oldest waiting push arrived.
    since: Option<Instant>,
}

/// Pushes waiting for the next flush.
#[derive(Debug, Default)]
pub struct Pending {
    waiting: Mutex<Waiting>,
    arrived: Notify,
    next_number: AtomicU64,
}

impl Pending {
    /// The number the next push will get: a session subscribing now gets that one on.
    pub fn next_number(&self) -> u64 {
        self.next_number.load(Ordering::SeqCst)
    }

    pub fn add(&self, key: TopicKey, seq: u64, frame: Bytes, skip: Option<DeviceRef>) {
        let mut waiting = self.waiting.lock().expect("pending pushes lock");
        let number = self.next_number.fetch_add(1, Ordering::SeqCst);
        waiting.topics.entry(key).or_default().push(TopicPush { number, seq, frame, skip });
        if waiting.since.is_none() {
            waiting.since = Some(Instant::now());
            self.arrived.notify_one();
        }
    }

    /// Waits until a push is waiting; returns when the oldest arrived.
    async fn first(&self) -> Instant {
        loop {
            if let Some(since) = self.waiting.lock().expect("pending pushes lock").since {
                return since;
            }
            self.arrived.notified().await;
        }
    }

    /// Takes every waiting push as one flush's batches, by topic.
    pub fn take(&self) -> Flush {
        let waiting = std::mem::take(&mut *self.waiting.lock().expect("pending pushes lock"));
        let (sender, taken) = oneshot::channel();
        let share = Share(Arc::new(Flight(Some(sender))));
        let batches =
            waiting.topics.into_iter().map(|((app, topic), pushes)| Arc::new(Batch { app, topic, pushes })).collect();
        Flush { batches, share, flushed: Flushed { started: Instant::now(), taken } }
    }
}

#[cfg(test)]
impl Flushed {
    /// When the flush was taken, if it has been.
    pub fn taken_yet(&mut self) -> Option<Instant> {
        self.taken.try_recv().ok()
    }
}

/// Decides when each flush may go (see the module notes).
#[derive(Debug)]
pub struct Flusher {
    pacing: Pacing,
    last: Option<Flushed>,
    /// How long flushes take to be taken, smoothed over the last few: one flush slowed
    /// by a passing hiccup does not hold the next ones back.
    took: Duration,
    /// The earliest the next flush may start (see `Pacing::rest`).
    rested_at: Instant,
}

impl Flusher {
    pub fn new(pacing: Pacing) -> Self {
        Self { pacing, last: None, took: Duration::ZERO, rested_at: Instant::now() }
    }

    /// Waits until pushes are waiting and the node may flush them; returns how long the
    /// oldest waited.
    pub async fn next(&mut self, pending: &Pending) -> Duration {
        let since = pending.first().await;
        let deadline = since + self.pacing.max_delay;
        if let Some(last) = self.last.take() {
            // The node is busy while the last flush is being taken: wait for it, but no
            // longer than the oldest push may wait.
            match tokio::time::timeout_at(deadline, last.taken).await {
                Ok(Ok(taken_at)) => {
                    let took = taken_at.saturating_duration_since(last.started);
                    self.took = (self.took + took) / 2;
                    self.rested_at = last.started + self.pacing.rest(self.took);
                }
                Ok(Err(_)) | Err(_) => self.rested_at = deadline,
            }
        }
        tokio::time::sleep_until(self.rested_at.min(deadline)).await;
        since.elapsed()
    }

    /// Remembers the flush just handed out, to pace the next one.
    pub fn flushed(&mut self, flushed: Flushed) {
        self.last = Some(flushed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(app: AppId, name: &str) -> TopicKey {
        (app, Topic::Group(name.into()))
    }

    fn pacing(max_delay_ms: u64) -> Pacing {
        Pacing { max_delay: Duration::from_millis(max_delay_ms), budget: Duration::from_millis(20) }
    }

    #[test]
    fn flushes_slower_than_the_budget_rest_the_longer_the_slower() {
        let pacing = pacing(250);
        let ms = Duration::from_millis;
        assert_eq!(pacing.rest(ms(5)), ms(5), "light: only the flush itself");
        assert_eq!(pacing.rest(ms(20)), ms(20));
        assert_eq!(pacing.rest(ms(40)), ms(80), "twice the budget: flushing half the time");
        assert_eq!(pacing.rest(ms(80)), ms(320), "four times: a quarter of the time");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_node_flushes_at_once() {
        let pending = Pending::default();
        let mut flusher = Flusher::new(pacing(250));
        pending.add(group(1, "g"), 1, Bytes::new(), None);
        assert_eq!(flusher.next(&pending).await, Duration::ZERO);
        let flush = pending.take();
        flusher.flushed(flush.flushed);
        // Every share taken at once: the next push goes at once too.
        drop(flush.share);
        pending.add(group(1, "g"), 2, Bytes::new(), None);
        assert_eq!(flusher.next(&pending).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn pushes_wait_while_a_flush_is_being_taken_but_never_past_the_bound() {
        let pending = Pending::default();
        let mut flusher = Flusher::new(pacing(250));
        pending.add(group(1, "g"), 1, Bytes::new(), None);
        flusher.next(&pending).await;
        let Flush { share: held, flushed, .. } = pending.take();
        flusher.flushed(flushed);

        // A session still holds its share of the last flush: the next push waits for
        // it, then rests (80 ms, smoothed with the first flush's 0 to 40 ms: twice the
        // budget, so flushing may take half the time).
        pending.add(group(1, "g"), 2, Bytes::new(), None);
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(80)).await;
            drop(held);
        });
        assert_eq!(flusher.next(&pending).await, Duration::from_millis(80));
        release.await.unwrap();
        let Flush { batches, share: held, flushed } = pending.take();
        assert_eq!(batches[0].pushes.len(), 1);
        flusher.flushed(flushed);

        // A share never taken: the push goes when it has waited the longest allowed.
        pending.add(group(1, "g"), 3, Bytes::new(), None);
        assert_eq!(flusher.next(&pending).await, Duration::from_millis(250));
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_holds_every_push_since_the_last_by_group_in_arrival_order() {
        let pending = Pending::default();
        for (name, seq) in [("a", 1), ("b", 7), ("a", 2), ("a", 3)] {
            pending.add(group(1, name), seq, Bytes::new(), None);
        }
        pending.add(group(2, "a"), 1, Bytes::new(), None);
        pending.add((1, Topic::Room("a".into())), 1, Bytes::new(), None);
        let mut batches = pending.take().batches;
        batches.sort_by_key(|batch| (batch.app, format!("{:?}", batch.topic)));
        let seqs: Vec<(AppId, Topic, Vec<u64>, Vec<u64>)> = batches
            .iter()
            .map(|batch| {
                let seqs = batch.pushes.iter().map(|p| p.seq).collect();
                (batch.app, batch.topic.clone(), seqs, batch.pushes.iter().map(|p| p.number).collect())
            })
            .collect();
        let (a, b) = (Topic::Group("a".into()), Topic::Group("b".into()));
        assert_eq!(
            seqs,
            vec![
                (1, a.clone(), vec![1, 2, 3], vec![0, 2, 3]),
                (1, b, vec![7], vec![1]),
                (1, Topic::Room("a".into()), vec![1], vec![5]),
                (2, a, vec![1], vec![4]),
            ]
        );
        assert_eq!(pending.next_number(), 6);
        assert!(pending.take().batches.is_empty(), "a flush takes everything");
    }
}
