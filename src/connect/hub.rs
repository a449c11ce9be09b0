//! The sessions of this node, by user, and what is queued for each. Pushes land here
//! from logic (in-process or over the internal API); each session's task drains its
//! own queue.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::Notify;

use crate::{
    delivery::{Delivery, Kick, Membership, Push},
    model::{AppId, DeviceType},
    proto::client::v1::KickReason,
    route::Registration,
};

/// Something queued for a device.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An inbox message push: delivered in the session's seq order, once.
    Message { seq: u64, frame: Bytes },
    /// A large group's timeline message: delivered in the group's seq order, once.
    Group { group: Arc<str>, seq: u64, frame: Bytes },
    /// A message the device sent itself, however it sent it: never written back, but
    /// its seq (in the inbox, or in `group`'s timeline) counts as delivered.
    Own { group: Option<Arc<str>>, seq: u64 },
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

#[derive(Debug, Default)]
struct Outbox {
    items: VecDeque<Outbound>,
    end: Option<End>,
    /// Large-group frames wait for the hub's next flush (see `Hub::flush_groups`).
    waiting_for_flush: bool,
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
    /// The large groups whose fan-out this session is in.
    groups: Mutex<Vec<Box<str>>>,
}

/// What became of an item offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    /// The session is ending: the item is dropped.
    No,
    /// Queued; the session is woken, or waits for a flush it has joined already.
    Yes,
    /// Queued without waking the session: it must join the hub's next flush.
    JoinFlush,
}

impl Session {
    /// Queues an item unless the session is ending; ends it when `limit` is exceeded.
    /// A deferred item does not wake the session: it goes out with the next write, or
    /// at the hub's next flush.
    fn enqueue(&self, item: Outbound, limit: usize, defer: bool) -> Queued {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        if outbox.end.is_some() {
            return Queued::No;
        }
        if outbox.items.len() >= limit {
            outbox.end = Some(End::SlowConsumer);
            outbox.items.clear();
        } else {
            outbox.items.push_back(item);
        }
        // A queue half full goes out now rather than risk overflowing before the flush.
        if defer && outbox.end.is_none() && outbox.items.len() < limit / 2 {
            if outbox.waiting_for_flush {
                return Queued::Yes;
            }
            outbox.waiting_for_flush = true;
            return Queued::JoinFlush;
        }
        drop(outbox);
        self.wake.notify_one();
        Queued::Yes
    }

    /// Wakes the session for frames deferred to a flush.
    fn flush(&self) {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        if std::mem::take(&mut outbox.waiting_for_flush) {
            drop(outbox);
            self.wake.notify_one();
        }
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
        outbox.waiting_for_flush = false;
        // Taking the queue also releases its buffer: an idle session keeps none.
        (std::mem::take(&mut outbox.items), outbox.end.clone())
    }

    /// Completes when something is queued or the session is asked to end.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Whether this session's device sent `message` (it has it, from its send's response).
    pub fn sent(&self, message: &crate::proto::common::v1::Message) -> bool {
        *message.sender_device_id == *self.device_id && *message.sender_user_id == *self.user_id
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
type GroupKey = (AppId, Box<str>);
/// A user's membership of a group.
type MemberKey = (AppId, Box<str>, Box<str>);

/// How long the hub remembers that a user left a large group, for sessions that read
/// the user's groups before the leave reached this node (see `subscribe_as_of`).
const REMEMBER_LEAVES: Duration = Duration::from_secs(60);

/// The sessions of this node, by user and by the large groups they read.
#[derive(Debug)]
pub struct Hub {
    users: DashMap<UserKey, Vec<Arc<Session>>>,
    /// Sessions in each large group's fan-out, by session id.
    groups: DashMap<GroupKey, HashMap<u64, Arc<Session>>>,
    /// Sessions holding large-group frames for the next flush.
    to_flush: Mutex<Vec<Arc<Session>>>,
    /// Users who left a large group lately, and when the news reached this node.
    recent_leaves: Mutex<HashMap<MemberKey, Instant>>,
    /// Whether large-group frames wait for a flush (`connect.group_push_delay_ms` > 0).
    defer_groups: bool,
    next_id: AtomicU64,
    outbound_limit: usize,
}

impl Hub {
    /// `defer_groups`: large-group frames wait for `flush_groups` (which the node calls
    /// every `connect.group_push_delay_ms`) instead of waking each session at once.
    pub fn new(outbound_limit: usize, defer_groups: bool) -> Arc<Self> {
        Arc::new(Self {
            users: DashMap::new(),
            groups: DashMap::new(),
            to_flush: Mutex::default(),
            recent_leaves: Mutex::default(),
            defer_groups,
            next_id: AtomicU64::new(1),
            outbound_limit,
        })
    }

    /// Wakes the sessions holding deferred large-group frames: each writes all it has
    /// in one go. A group sending 20 messages a second to thousands of devices costs a
    /// wake-up and a write per device per flush, not per message.
    pub fn flush_groups(&self) {
        let sessions = std::mem::take(&mut *self.to_flush.lock().expect("flush list lock"));
        for session in sessions {
            session.flush();
        }
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
            groups: Mutex::default(),
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
            self.groups.entry((session.app, group.as_str().into())).or_default().insert(session.id, session.clone());
            let mut joined = session.groups.lock().expect("session groups lock");
            if !joined.iter().any(|g| **g == **group) {
                joined.push(group.as_str().into());
            }
        }
    }

    fn unsubscribe(&self, session: &Session, group: &str) {
        let key = (session.app, group.into());
        if let dashmap::Entry::Occupied(mut entry) = self.groups.entry(key) {
            entry.get_mut().remove(&session.id);
            if entry.get().is_empty() {
                entry.remove();
            }
        }
        session.groups.lock().expect("session groups lock").retain(|g| **g != *group);
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
                    Outbound::Own { group: None, seq: push.seq }
                } else {
                    item.clone()
                };
                if session.enqueue(item, self.outbound_limit, false) != Queued::No {
                    queued += 1;
                }
            }
        }
        queued
    }

    fn push_group(&self, push: &Push, group: &str) -> usize {
        let Some(sessions) = self.groups.get(&(push.app, group.into())) else { return 0 };
        let group: Arc<str> = group.into();
        let mut queued = 0;
        let mut joining = Vec::new();
        for session in sessions.values() {
            let item = if push.skip.as_ref().is_some_and(|skip| skip.is(&session.user_id, &session.device_id)) {
                Outbound::Own { group: Some(group.clone()), seq: push.seq }
            } else {
                Outbound::Group { group: group.clone(), seq: push.seq, frame: push.frame.clone() }
            };
            match session.enqueue(item, self.outbound_limit, self.defer_groups) {
                Queued::No => continue,
                Queued::Yes => {}
                Queued::JoinFlush => joining.push(session.clone()),
            }
            queued += 1;
        }
        drop(sessions);
        if !joining.is_empty() {
            self.to_flush.lock().expect("flush list lock").extend(joining);
        }
        queued
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

    fn kick(&self, kick: Kick) {
        Hub::kick(self, &kick, 0);
    }

    fn membership(&self, changes: Vec<Membership>) {
        for change in &changes {
            Hub::membership(self, change);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

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

    fn change(group: &str, joined: bool) -> Membership {
        Membership { app: 1, user_id: "ann".into(), group_id: group.into(), joined }
    }

    #[test]
    fn a_leave_that_arrives_while_a_session_reads_its_groups_is_not_undone() {
        let hub = Hub::new(16, false);
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
}
