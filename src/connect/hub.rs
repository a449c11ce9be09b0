//! The sessions of this node, by user, by large group and by live room, and what is
//! queued for each. Pushes land here from logic (in-process or over the internal API);
//! each session's task drains its own queue. Large-group and room pushes go through
//! `fanout` first and reach sessions at its flushes.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::Notify;

use super::{
    fanout::{Batch, Flusher, Pacing, Pending, Share, Topic, TopicKey},
    room_order::{self, Ready, RoomOrder},
    rooms::{JoinedRoom, RoomHere, RoomsHere},
};
use crate::{
    delivery::{Delivery, Kick, Membership, Push, RoomChange, RoomPush, RoomTarget},
    frames,
    model::{AppId, DeviceType},
    proto::{
        client::v1::KickReason,
        logic::v1::{RoomEvent, RoomEventKind},
    },
    route::Registration,
};

/// Something queued for a device.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An inbox message push: delivered in the session's seq order, once.
    Message { seq: u64, frame: Bytes },
    /// A message the device sent itself, however it sent it: never written back, but
    /// its inbox seq counts as delivered.
    Own { seq: u64 },
    /// A flush's pushes to a large group or a room, from `batch.pushes[from]` on (the
    /// earlier ones came before the session joined the topic's fan-out). A group's are
    /// delivered in the group's seq order, once; a room's in arrival order, once; neither
    /// to the device that sent it.
    Batch { batch: Arc<Batch>, from: usize, share: Option<Share> },
    /// The business put the session in a room: it is told, and gets the room's replay,
    /// once the room is announced for this node.
    RoomJoined { room: Arc<str>, here: Arc<RoomHere> },
    /// An event frame: delivered as it comes.
    Event(Bytes),
}

/// Why a session must end, set by someone other than the session itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The outbound queue overflowed: the device is too slow.
    SlowConsumer,
    Kicked {
        reason: KickReason,
        message: String,
    },
    /// The node is shutting down.
    Shutdown,
}

impl Outbound {
    /// Pushes it holds, against the outbound queue's limit.
    pub fn pushes(&self) -> usize {
        match self {
            Self::Batch { batch, from, .. } => batch.pushes.len() - from,
            _ => 1,
        }
    }
}

#[derive(Debug, Default)]
struct Outbox {
    items: VecDeque<Outbound>,
    /// Pushes in `items`.
    pushes: usize,
    end: Option<End>,
}

/// One device's session on this node. Held by the hub and by the session's task.
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub app: AppId,
    pub user_id: Box<str>,
    pub device_id: Box<str>,
    pub device_type: DeviceType,
    pub opened_at_ms: i64,
    outbox: Mutex<Outbox>,
    wake: Notify,
    /// Told once, when the queue overflows: a write in progress stops there.
    overflow: Notify,
    /// Whether the session's task is writing to its socket.
    writing: AtomicBool,
    /// The large groups whose fan-out this session is in.
    groups: Mutex<Vec<Box<str>>>,
    /// The live rooms it is in, and the last seq it was sent in each.
    rooms: Mutex<Vec<JoinedRoom>>,
}

impl Session {
    /// Queues an item and wakes the session, unless it is ending; ends it when more
    /// than `limit` pushes would wait. Returns whether the item was queued.
    fn enqueue(&self, item: Outbound, limit: usize) -> bool {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        if outbox.end.is_some() {
            return false;
        }
        if outbox.pushes + item.pushes() > limit {
            outbox.end = Some(End::SlowConsumer);
            outbox.items.clear();
            outbox.pushes = 0;
            self.overflow.notify_one();
        } else {
            outbox.pushes += item.pushes();
            outbox.items.push_back(item);
        }
        drop(outbox);
        self.wake.notify_one();
        true
    }

    /// Marks the session's task as writing to its socket (or done writing).
    pub fn set_writing(&self, writing: bool) {
        self.writing.store(writing, Ordering::Relaxed);
    }

    /// Asks the session to end (the first reason wins).
    pub fn end(&self, end: End) {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        outbox.end.get_or_insert(end);
        drop(outbox);
        self.wake.notify_one();
    }

    /// Everything queued, and the reason to end if there is one.
    pub fn take(&self) -> (VecDeque<Outbound>, Option<End>) {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        outbox.pushes = 0;
        // Taking the queue also releases its buffer: an idle session keeps none.
        (std::mem::take(&mut outbox.items), outbox.end.clone())
    }

    /// Completes when something is queued or the session is asked to end.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Completes once the queue has overflowed (at once if it did already): the session
    /// ends as too slow, and whatever it is writing meanwhile no longer matters.
    pub async fn overflowed(&self) {
        self.overflow.notified().await;
    }

    /// Whether this session's device sent `message` (it has it, from its send's response).
    pub fn sent(&self, message: &crate::proto::common::v1::Message) -> bool {
        *message.sender_device_id == *self.device_id && *message.sender_user_id == *self.user_id
    }

    /// Which of a room's pushes to write: all but the device's own and those its join's
    /// replay already wrote; none when the session has left the room. Pushes are not
    /// dropped for their seq alone: two messages sent through two logic nodes may reach
    /// this node in either order.
    pub fn room_pushes<'b>(&self, room: &str, pushes: &'b [super::fanout::TopicPush]) -> Vec<&'b Bytes> {
        let rooms = self.rooms.lock().expect("session rooms lock");
        let Some(joined) = rooms.iter().find(|joined| *joined.id == *room) else { return Vec::new() };
        pushes
            .iter()
            .filter(|push| !push.skip.as_ref().is_some_and(|skip| skip.is(&self.user_id, &self.device_id)))
            .filter(|push| push.seq == 0 || joined.replayed.binary_search(&push.seq).is_err())
            .map(|push| &push.frame)
            .collect()
    }

    /// Of a room's kept messages, those not written yet; remembers them, so that their
    /// pushes, if still on the way, are not written again.
    pub fn room_replay(&self, room: &str, kept: Vec<(u64, Bytes)>) -> Vec<Bytes> {
        let mut rooms = self.rooms.lock().expect("session rooms lock");
        let Some(joined) = rooms.iter_mut().find(|joined| *joined.id == *room) else { return Vec::new() };
        let mut out = Vec::with_capacity(kept.len());
        for (seq, frame) in kept {
            if let Err(at) = joined.replayed.binary_search(&seq) {
                joined.replayed.insert(at, seq);
                out.push(frame);
            }
        }
        out
    }

    /// Whether the session is in the room.
    pub fn in_room(&self, room: &str) -> bool {
        self.rooms.lock().expect("session rooms lock").iter().any(|joined| *joined.id == *room)
    }

    pub fn registration(&self) -> Registration {
        Registration {
            app: self.app,
            user_id: self.user_id.to_string(),
            device_id: self.device_id.to_string(),
            device_type: self.device_type,
        }
    }
}

type UserKey = (AppId, Box<str>);
/// A user's membership of a group.
type MemberKey = (AppId, Box<str>, Box<str>);

/// How long the hub remembers that a user left a large group, for sessions that read
/// the user's groups before the leave reached this node (see `subscribe_as_of`).
const REMEMBER_LEAVES: Duration = Duration::from_secs(60);

/// A session in a large group's or a room's fan-out.
#[derive(Debug)]
struct Subscriber {
    session: Arc<Session>,
    /// The number of the first push it gets (see `TopicPush::number`).
    since: u64,
}

/// Why a session cannot enter a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomsFull(pub usize);

/// The sessions of this node, by user, by the large groups they read and by the rooms
/// they are in.
#[derive(Debug)]
pub struct Hub {
    users: DashMap<UserKey, Vec<Arc<Session>>>,
    /// Sessions in each large group's or room's fan-out, by session id.
    topics: DashMap<TopicKey, HashMap<u64, Subscriber>>,
    /// Large-group and room pushes waiting for the next flush.
    pending: Pending,
    /// This node's rooms, as the registry is told of them.
    pub(super) rooms: RoomsHere,
    /// Room pushes put back in seq order.
    room_order: RoomOrder,
    /// Users who left a large group lately, and when the news reached this node.
    recent_leaves: Mutex<HashMap<MemberKey, Instant>>,
    next_id: AtomicU64,
    outbound_limit: usize,
}

impl Hub {
    /// `outbound_limit`: pushes a session may have waiting before it ends as too slow;
    /// `max_rooms`: rooms a session may be in at once.
    pub fn new(outbound_limit: usize, max_rooms: usize) -> Arc<Self> {
        Arc::new(Self {
            users: DashMap::new(),
            topics: DashMap::new(),
            pending: Pending::default(),
            rooms: RoomsHere::new(max_rooms),
            room_order: RoomOrder::default(),
            recent_leaves: Mutex::default(),
            next_id: AtomicU64::new(1),
            outbound_limit,
        })
    }

    /// Hands the large-group and room pushes waiting to the sessions of their topics,
    /// each session its batches with one wake-up; runs until the node stops.
    pub async fn flush_groups(self: Arc<Self>, pacing: Pacing, metrics: Arc<crate::metrics::Metrics>) {
        let mut flusher = Flusher::new(pacing);
        loop {
            let waited = flusher.next(&self.pending).await;
            metrics.group_push_wait_seconds.observe(waited.as_secs_f64());
            flusher.flushed(self.flush());
        }
    }

    /// Hands out every waiting large-group and room push now.
    fn flush(&self) -> super::fanout::Flushed {
        let flush = self.pending.take();
        for batch in flush.batches {
            let Some(subscribers) = self.topics.get(&(batch.app, batch.topic.clone())) else { continue };
            let first = batch.pushes[0].number;
            for subscriber in subscribers.values() {
                let from = if subscriber.since <= first {
                    0
                } else {
                    batch.pushes.partition_point(|push| push.number < subscriber.since)
                };
                if from < batch.pushes.len() {
                    let session = &subscriber.session;
                    let share = (!session.writing.load(Ordering::Relaxed)).then(|| flush.share.clone());
                    session.enqueue(Outbound::Batch { batch: batch.clone(), from, share }, self.outbound_limit);
                }
            }
        }
        flush.flushed
    }

    /// Adds a session; other sessions of the same device on this node end as replaced.
    pub fn attach(
        &self,
        app: AppId,
        user_id: &str,
        device_id: &str,
        device_type: DeviceType,
        opened_at_ms: i64,
    ) -> Arc<Session> {
        let session = Arc::new(Session {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            app,
            user_id: user_id.into(),
            device_id: device_id.into(),
            device_type,
            opened_at_ms,
            outbox: Mutex::default(),
            wake: Notify::new(),
            overflow: Notify::new(),
            writing: AtomicBool::new(false),
            groups: Mutex::default(),
            rooms: Mutex::default(),
        });
        let mut sessions = self.users.entry((app, user_id.into())).or_default();
        for old in sessions.iter().filter(|old| *old.device_id == *device_id) {
            old.end(End::Kicked {
                reason: KickReason::Replaced,
                message: "another session opened for this device".into(),
            });
        }
        sessions.retain(|old| *old.device_id != *device_id);
        sessions.push(session.clone());
        session
    }

    /// Puts a session into the fan-out of large groups.
    pub fn subscribe(&self, session: &Arc<Session>, groups: &[String]) {
        for group in groups {
            self.add_subscriber((session.app, Topic::Group(group.as_str().into())), session);
            let mut joined = session.groups.lock().expect("session groups lock");
            if !joined.iter().any(|g| **g == **group) {
                joined.push(group.as_str().into());
            }
        }
    }

    /// Adds a session to a topic's fan-out, from the next push on; false if it was in.
    fn add_subscriber(&self, key: TopicKey, session: &Arc<Session>) -> bool {
        let subscriber = Subscriber { session: session.clone(), since: self.pending.next_number() };
        match self.topics.entry(key).or_default().entry(session.id) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(subscriber);
                true
            }
        }
    }

    fn remove_subscriber(&self, key: TopicKey, session: &Session) -> bool {
        let dashmap::Entry::Occupied(mut entry) = self.topics.entry(key) else { return false };
        let removed = entry.get_mut().remove(&session.id).is_some();
        if entry.get().is_empty() {
            entry.remove();
        }
        removed
    }

    fn unsubscribe(&self, session: &Session, group: &str) {
        self.remove_subscriber((session.app, Topic::Group(group.into())), session);
        session.groups.lock().expect("session groups lock").retain(|g| **g != *group);
    }

    /// Puts a session in a room, from the room's next push on. Returns the room's state
    /// on this node (whose announcement a new joiner waits for) and whether the session
    /// was out of the room; refuses a session already in `max` rooms.
    pub fn join_room(
        &self,
        session: &Arc<Session>,
        room: &str,
        max: usize,
    ) -> Result<(Arc<RoomHere>, bool), RoomsFull> {
        let room: Arc<str> = room.into();
        let mut rooms = session.rooms.lock().expect("session rooms lock");
        if rooms.iter().any(|joined| joined.id == room) {
            drop(rooms);
            return Ok((self.rooms.entered(session.app, &room, 0), false));
        }
        if rooms.len() >= max {
            return Err(RoomsFull(max));
        }
        rooms.push(JoinedRoom { id: room.clone(), replayed: Vec::new() });
        drop(rooms);
        self.add_subscriber((session.app, Topic::Room(room.clone())), session);
        Ok((self.rooms.entered(session.app, &room, 1), true))
    }

    /// Takes a session out of a room; false if it was not in it.
    pub fn leave_room(&self, session: &Session, room: &str) -> bool {
        let mut rooms = session.rooms.lock().expect("session rooms lock");
        let Some(index) = rooms.iter().position(|joined| *joined.id == *room) else { return false };
        rooms.swap_remove(index);
        drop(rooms);
        let key = (session.app, Topic::Room(room.into()));
        self.remove_subscriber(key.clone(), session);
        if !self.topics.contains_key(&key) {
            // Nobody here reads the room any more: its order starts afresh with the next.
            self.room_order.forget(&key);
        }
        self.rooms.left(session.app, room);
        true
    }

    /// Queues a room's push for the next flush; returns how many sessions here are in
    /// the room.
    pub fn push_room(&self, push: &RoomPush) -> usize {
        let key = (push.app, Topic::Room(push.room.as_str().into()));
        let Some(subscribers) = self.topics.get(&key) else { return 0 };
        let subscribed = subscribers.len();
        drop(subscribers);
        let ready = Ready { seq: push.seq, frame: push.frame.clone(), skip: push.skip.clone() };
        if push.seq == 0 {
            // Events have no place in the room's order.
            self.pending.add(key, 0, ready.frame, ready.skip);
            return subscribed;
        }
        for ready in self.room_order.arrived(key.clone(), ready) {
            self.pending.add(key.clone(), ready.seq, ready.frame, ready.skip);
        }
        subscribed
    }

    /// Lets room pushes that waited long enough for the ones before them go; forgets the
    /// order of rooms no session here is in. Runs until the node stops.
    pub async fn release_room_pushes(self: Arc<Self>) {
        let mut tick = tokio::time::interval(room_order::WAIT / 4);
        loop {
            tick.tick().await;
            for (key, due) in self.room_order.overdue() {
                if !self.topics.contains_key(&key) {
                    self.room_order.forget(&key);
                    continue;
                }
                for ready in due {
                    self.pending.add(key.clone(), ready.seq, ready.frame, ready.skip);
                }
            }
        }
    }

    /// The business put sessions in a room, took them out, or closed it: each session
    /// concerned is told. Returns how many.
    pub fn room_change(&self, change: &RoomChange, max_rooms: usize) -> usize {
        let sessions: Vec<Arc<Session>> = match &change.target {
            RoomTarget::Device { user_id, device_id } => {
                let Some(sessions) = self.users.get(&(change.app, user_id.as_str().into())) else { return 0 };
                let device = |session: &&Arc<Session>| device_id.as_deref().is_none_or(|d| d == &*session.device_id);
                sessions.iter().filter(device).cloned().collect()
            }
            RoomTarget::Everyone { .. } => {
                let key = (change.app, Topic::Room(change.room.as_str().into()));
                // The room starts over: its seqs count from 1 again.
                self.room_order.forget(&key);
                let Some(subscribers) = self.topics.get(&key) else { return 0 };
                subscribers.values().map(|subscriber| subscriber.session.clone()).collect()
            }
        };
        let event = |kind: RoomEventKind| {
            frames::room_event(RoomEvent {
                room_id: change.room.clone(),
                kind: kind as i32,
                reason: change.reason.clone(),
                ..Default::default()
            })
        };
        let mut changed = 0;
        for session in &sessions {
            if change.joined {
                match self.join_room(session, &change.room, max_rooms) {
                    Ok((here, true)) => {
                        session.enqueue(
                            Outbound::RoomJoined { room: change.room.as_str().into(), here },
                            self.outbound_limit,
                        );
                        changed += 1;
                    }
                    Ok((_, false)) => {}
                    Err(RoomsFull(max)) => {
                        tracing::debug!(
                            room = change.room,
                            max,
                            "a session in as many rooms as it may be was not put in another"
                        );
                    }
                }
            } else if self.leave_room(session, &change.room) {
                let kind = match change.target {
                    RoomTarget::Everyone { .. } => RoomEventKind::Closed,
                    RoomTarget::Device { .. } => RoomEventKind::Left,
                };
                session.enqueue(Outbound::Event(event(kind)), self.outbound_limit);
                changed += 1;
            }
        }
        changed
    }

    /// Puts a session into the fan-out of the large groups its user was in when they were
    /// read (at `read_at`), except those the user has left since: a leave that reached
    /// this node while the groups were being read would otherwise be undone.
    pub fn subscribe_as_of(&self, session: &Arc<Session>, groups: &[String], read_at: Instant) {
        let still: Vec<String> = {
            let leaves = self.recent_leaves.lock().expect("leaves lock");
            groups
                .iter()
                .filter(|group| {
                    let key = (session.app, session.user_id.clone(), group.as_str().into());
                    leaves.get(&key).is_none_or(|left_at| *left_at < read_at)
                })
                .cloned()
                .collect()
        };
        self.subscribe(session, &still);
    }

    /// Takes a session out of a group's fan-out (its user is no longer a member).
    pub fn unsubscribe_session(&self, session: &Session, group: &str) {
        self.unsubscribe(session, group);
    }

    fn remember_leave(&self, change: &Membership) {
        let key = (change.app, change.user_id.as_str().into(), change.group_id.as_str().into());
        let mut leaves = self.recent_leaves.lock().expect("leaves lock");
        if change.joined {
            leaves.remove(&key);
            return;
        }
        let now = Instant::now();
        leaves.insert(key, now);
        if leaves.len() > 1024 {
            leaves.retain(|_, at| now.duration_since(*at) < REMEMBER_LEAVES);
        }
    }

    /// A user joined or left a large group: its sessions here follow.
    pub fn membership(&self, change: &Membership) {
        self.remember_leave(change);
        let Some(sessions) = self.users.get(&(change.app, change.user_id.as_str().into())) else { return };
        let sessions: Vec<Arc<Session>> = sessions.clone();
        for session in &sessions {
            if change.joined {
                self.subscribe(session, std::slice::from_ref(&change.group_id));
            } else {
                self.unsubscribe(session, &change.group_id);
            }
        }
    }

    /// Removes a session (not a newer one of the same device).
    pub fn detach(&self, session: &Session) {
        let groups = std::mem::take(&mut *session.groups.lock().expect("session groups lock"));
        for group in groups {
            self.unsubscribe(session, &group);
        }
        let rooms: Vec<Arc<str>> =
            session.rooms.lock().expect("session rooms lock").iter().map(|r| r.id.clone()).collect();
        for room in rooms {
            self.leave_room(session, &room);
        }
        let key = (session.app, session.user_id.clone());
        if let dashmap::Entry::Occupied(mut entry) = self.users.entry(key) {
            entry.get_mut().retain(|s| s.id != session.id);
            if entry.get().is_empty() {
                entry.remove();
            }
        }
    }

    /// Queues a push for the sessions of its users (or its group) here; returns how
    /// many got it.
    pub fn push(&self, push: &Push) -> usize {
        if let Some(group) = &push.group {
            return self.push_group(push, group);
        }
        let item = if push.seq > 0 {
            Outbound::Message { seq: push.seq, frame: push.frame.clone() }
        } else {
            Outbound::Event(push.frame.clone())
        };
        let mut queued = 0;
        for user in &push.users {
            let Some(sessions) = self.users.get(&(push.app, user.as_str().into())) else { continue };
            for session in sessions.iter() {
                let item = if push.skip.as_ref().is_some_and(|skip| skip.is(&session.user_id, &session.device_id)) {
                    if push.seq == 0 {
                        continue;
                    }
                    Outbound::Own { seq: push.seq }
                } else {
                    item.clone()
                };
                if session.enqueue(item, self.outbound_limit) {
                    queued += 1;
                }
            }
        }
        queued
    }

    /// Queues an event for every session of an app here; returns how many got it. Rare
    /// (announcements): it walks all sessions here.
    pub fn push_everyone(&self, app: AppId, frame: &Bytes) -> usize {
        let mut queued = 0;
        for entry in self.users.iter().filter(|entry| entry.key().0 == app) {
            for session in entry.value() {
                if session.enqueue(Outbound::Event(frame.clone()), self.outbound_limit) {
                    queued += 1;
                }
            }
        }
        queued
    }

    /// Queues a large-group push for the next flush; returns how many sessions here are
    /// in the group's fan-out.
    fn push_group(&self, push: &Push, group: &str) -> usize {
        let key = (push.app, Topic::Group(group.into()));
        let Some(subscribers) = self.topics.get(&key) else { return 0 };
        let subscribed = subscribers.len();
        drop(subscribers);
        self.pending.add(key, push.seq, push.frame.clone(), push.skip.clone());
        subscribed
    }

    /// Ends the sessions a kick names that opened before `opened_before_ms` (0: all).
    pub fn kick(&self, kick: &Kick, opened_before_ms: i64) -> usize {
        let Some(sessions) = self.users.get(&(kick.app, kick.user_id.as_str().into())) else { return 0 };
        let mut kicked = 0;
        for session in sessions.iter() {
            let device_matches = kick.device_id.as_deref().is_none_or(|device| device == &*session.device_id);
            if device_matches && (opened_before_ms == 0 || session.opened_at_ms < opened_before_ms) {
                session.end(End::Kicked { reason: kick.reason, message: kick.message.clone() });
                kicked += 1;
            }
        }
        kicked
    }

    /// Asks every session to end.
    pub fn end_all(&self, end: End) {
        for sessions in self.users.iter() {
            for session in sessions.iter() {
                session.end(end.clone());
            }
        }
    }

    /// The route of the device's session here, if one is open.
    pub fn device_route(&self, app: AppId, user_id: &str, device_id: &str) -> Option<Registration> {
        let sessions = self.users.get(&(app, user_id.into()))?;
        sessions.iter().find(|s| *s.device_id == *device_id).map(|s| s.registration())
    }

    /// Every session's route, for renewal.
    pub fn registrations(&self) -> Vec<Registration> {
        self.users.iter().flat_map(|sessions| sessions.iter().map(|s| s.registration()).collect::<Vec<_>>()).collect()
    }

    pub fn len(&self) -> usize {
        self.users.iter().map(|sessions| sessions.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Delivery when connect runs in the same process as logic (`gim serve`): a push is
/// queued on the sessions directly, with no network hop.
impl Delivery for Hub {
    fn deliver(&self, pushes: Vec<Push>) {
        for push in &pushes {
            self.push(push);
        }
    }

    fn announce(&self, app: AppId, frame: Bytes) {
        self.push_everyone(app, &frame);
    }

    fn kick(&self, kick: Kick) {
        Hub::kick(self, &kick, 0);
    }

    fn membership(&self, changes: Vec<Membership>) {
        for change in &changes {
            Hub::membership(self, change);
        }
    }

    fn room_push(&self, push: RoomPush) {
        self.push_room(&push);
    }

    fn room_change(&self, change: RoomChange) {
        Hub::room_change(self, &change, self.rooms.max_per_session());
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::FutureExt as _;

    use super::*;

    fn group_push(group: &str) -> Push {
        Push {
            app: 1,
            users: Vec::new(),
            group: Some(group.into()),
            skip: None,
            seq: 1,
            frame: Bytes::from_static(b"x"),
        }
    }

    /// The group seqs queued for a session, from each batch's share.
    fn group_seqs(session: &Session) -> Vec<u64> {
        let (items, _) = session.take();
        items
            .iter()
            .flat_map(|item| match item {
                Outbound::Batch { batch, from, .. } => batch.pushes[*from..].iter().map(|p| p.seq).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn change(group: &str, joined: bool) -> Membership {
        Membership { app: 1, user_id: "ann".into(), group_id: group.into(), joined }
    }

    #[test]
    fn a_leave_that_arrives_while_a_session_reads_its_groups_is_not_undone() {
        let hub = Hub::new(16, 8);
        let session = hub.attach(1, "ann", "phone", DeviceType::Ios, 0);
        let read_at = Instant::now();
        // Ann is removed from "gone" while her session reads a list that still has it.
        hub.membership(&change("gone", false));
        hub.subscribe_as_of(&session, &["gone".into(), "kept".into()], read_at);
        assert_eq!(hub.push(&group_push("gone")), 0, "no push of a group she left");
        assert_eq!(hub.push(&group_push("kept")), 1);

        // A later join undoes the leave.
        hub.membership(&change("gone", true));
        let read_again = Instant::now();
        let again = hub.attach(1, "ann", "laptop", DeviceType::Desktop, 0);
        hub.subscribe_as_of(&again, &["gone".into()], read_again);
        assert_eq!(hub.push(&group_push("gone")), 2, "both sessions: the join subscribed the phone too");
    }

    #[test]
    fn a_flush_gives_each_session_the_pushes_since_it_joined_the_fan_out() {
        let hub = Hub::new(16, 8);
        let early = hub.attach(1, "ann", "phone", DeviceType::Ios, 0);
        hub.subscribe(&early, &["g".into()]);
        hub.push(&Push { seq: 1, ..group_push("g") });
        // Bob joins between two pushes of one flush: he gets the second only.
        let late = hub.attach(1, "bob", "phone", DeviceType::Ios, 0);
        hub.subscribe(&late, &["g".into()]);
        hub.push(&Push { seq: 2, ..group_push("g") });
        assert!(group_seqs(&early).is_empty(), "nothing reaches a session before the flush");
        let _taken = hub.flush();
        assert_eq!(group_seqs(&early), vec![1, 2]);
        assert_eq!(group_seqs(&late), vec![2]);
    }

    #[test]
    fn a_session_with_more_pushes_waiting_than_its_queue_holds_ends_as_too_slow() {
        let hub = Hub::new(3, 8);
        let session = hub.attach(1, "ann", "phone", DeviceType::Ios, 0);
        hub.subscribe(&session, &["g".into()]);
        for seq in 1..=2 {
            hub.push(&Push { seq, ..group_push("g") });
        }
        let _first = hub.flush();
        assert!(session.overflowed().now_or_never().is_none(), "2 pushes waiting, 3 allowed");
        for seq in 3..=4 {
            hub.push(&Push { seq, ..group_push("g") });
        }
        let _second = hub.flush();
        assert!(session.overflowed().now_or_never().is_some(), "a write in progress learns of it");
        let (items, end) = session.take();
        assert!(items.is_empty());
        assert_eq!(end, Some(End::SlowConsumer), "4 pushes waiting, 3 allowed");
    }

    #[test]
    fn a_flush_waits_for_idle_sessions_but_not_for_one_in_the_middle_of_a_write() {
        let hub = Hub::new(16, 8);
        let idle = hub.attach(1, "ann", "phone", DeviceType::Ios, 0);
        let writing = hub.attach(1, "bob", "phone", DeviceType::Ios, 0);
        hub.subscribe(&idle, &["g".into()]);
        hub.subscribe(&writing, &["g".into()]);
        writing.set_writing(true);
        hub.push(&group_push("g"));
        let mut flushed = hub.flush();
        assert!(flushed.taken_yet().is_none(), "the idle session has not taken its share");
        assert_eq!(group_seqs(&idle), vec![1]);
        assert!(flushed.taken_yet().is_some(), "the writing session's share is not waited for");
        assert_eq!(group_seqs(&writing), vec![1], "it still gets the push");
    }
}
