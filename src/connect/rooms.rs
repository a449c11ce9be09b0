//! This node's part of the live rooms: how many of its sessions are in each room, and
//! keeping the registry told. The registry lists, per room, the nodes with sessions in
//! it; logic pushes a room's messages to those nodes only. A node is listed before the
//! first join of a room here is answered (so no message sent after a join is answered
//! misses it), its counts are reported every `rooms.report_ms` when they change, and
//! every room at least every third of the route TTL, after which an entry expires.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use dashmap::DashMap;
use tokio::sync::{Notify, watch};

use super::hub::Hub;
use crate::{
    model::AppId,
    route::{RoomCount, RouteRegistry},
};

/// A room a session is in, and the seqs its replay wrote (sorted; at most `rooms.replay`).
#[derive(Debug)]
pub struct JoinedRoom {
    pub id: Arc<str>,
    pub replayed: Vec<u64>,
}

/// A room on this node.
#[derive(Debug)]
pub struct RoomHere {
    members: AtomicU64,
    /// The count the registry last heard (`u64::MAX`: never).
    reported: AtomicU64,
    /// Whether the registry lists this node in the room.
    announced: watch::Sender<bool>,
}

impl RoomHere {
    fn new() -> Self {
        Self { members: AtomicU64::new(0), reported: AtomicU64::new(u64::MAX), announced: watch::Sender::new(false) }
    }

    /// Waits, at most `within`, until the registry lists this node in the room: from then
    /// on every message to the room reaches it. False if it did not happen in time.
    pub async fn announced(&self, within: Duration) -> bool {
        let mut announced = self.announced.subscribe();
        matches!(tokio::time::timeout(within, announced.wait_for(|done| *done)).await, Ok(Ok(_)))
    }
}

type RoomKey = (AppId, Arc<str>);

/// This node's rooms.
#[derive(Debug)]
pub struct RoomsHere {
    rooms: DashMap<RoomKey, Arc<RoomHere>>,
    /// Wakes the reporter: a room waits for its announcement.
    wanted: Notify,
    max_per_session: usize,
}

impl RoomsHere {
    pub fn new(max_per_session: usize) -> Self {
        Self { rooms: DashMap::new(), wanted: Notify::new(), max_per_session }
    }

    pub fn max_per_session(&self) -> usize {
        self.max_per_session
    }

    /// `added` sessions entered the room (0: one already in it asks again).
    pub(super) fn entered(&self, app: AppId, room: &Arc<str>, added: u64) -> Arc<RoomHere> {
        // Counted under the map's lock, so that the reporter cannot forget a room that a
        // session is entering (see `forget_empty`).
        let entry = self.rooms.entry((app, room.clone())).or_insert_with(|| Arc::new(RoomHere::new()));
        entry.members.fetch_add(added, Ordering::Relaxed);
        let here = entry.clone();
        drop(entry);
        if !*here.announced.borrow() {
            self.wanted.notify_one();
        }
        here
    }

    pub(super) fn left(&self, app: AppId, room: &str) {
        if let Some(here) = self.rooms.get(&(app, room.into())) {
            let _ = here.members.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// Sessions here in a room.
    pub fn members(&self, app: AppId, room: &str) -> u64 {
        self.rooms.get(&(app, room.into())).map_or(0, |here| here.members.load(Ordering::Relaxed))
    }

    /// The rooms the registry should hear of: never announced, changed since the last
    /// report, or (`all`) every one.
    fn due(&self, all: bool) -> Vec<(RoomCount, Arc<RoomHere>)> {
        self.rooms
            .iter()
            .filter_map(|entry| {
                let here = entry.value();
                let members = here.members.load(Ordering::Relaxed);
                let due = all || !*here.announced.borrow() || here.reported.load(Ordering::Relaxed) != members;
                due.then(|| {
                    let (app, room) = entry.key();
                    (RoomCount { app: *app, room: room.to_string(), members }, here.clone())
                })
            })
            .collect()
    }

    /// Records a report's success: rooms announced, counts heard, empty rooms forgotten.
    fn reported(&self, rooms: Vec<(RoomCount, Arc<RoomHere>)>) {
        for (count, here) in rooms {
            here.reported.store(count.members, Ordering::Relaxed);
            here.announced.send_replace(true);
            if count.members == 0 {
                self.forget_empty(count.app, &count.room);
            }
        }
    }

    /// Forgets a room reported empty, unless a session entered it since (the count is
    /// read under the map's lock that `entered` holds).
    fn forget_empty(&self, app: AppId, room: &str) {
        self.rooms.remove_if(&(app, room.into()), |_, here| {
            here.members.load(Ordering::Relaxed) == 0 && here.reported.load(Ordering::Relaxed) == 0
        });
    }
}

/// Keeps the registry told of this node's rooms until `stop`: every `every` for changed
/// counts, at once when a room waits for its announcement, every room each `renew`.
pub(super) async fn report(
    hub: Arc<Hub>,
    registry: Arc<dyn RouteRegistry>,
    node: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let renew = registry.ttl() / 3;
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = hub.rooms.wanted.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
        let all = renewed.elapsed() >= renew;
        let due = hub.rooms.due(all);
        if due.is_empty() {
            continue;
        }
        let counts: Vec<RoomCount> = due.iter().map(|(count, _)| count.clone()).collect();
        match registry.report_rooms(&node, &counts).await {
            Ok(()) => {
                hub.rooms.reported(due);
                if all {
                    renewed = Instant::now();
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, rooms = counts.len(), "reporting rooms failed; retrying");
                tokio::time::sleep(every.min(Duration::from_millis(200))).await;
                hub.rooms.wanted.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_reported_when_new_or_changed_and_forgotten_once_reported_empty() {
        let rooms = RoomsHere::new(8);
        let room: Arc<str> = "live".into();
        let here = rooms.entered(1, &room, 1);
        assert!(!*here.announced.borrow());
        let due = rooms.due(false);
        assert_eq!(due.len(), 1, "never announced");
        rooms.reported(due);
        assert!(*here.announced.borrow());
        assert!(rooms.due(false).is_empty(), "nothing changed");
        assert_eq!(rooms.due(true).len(), 1, "a renewal lists every room");

        rooms.left(1, "live");
        rooms.left(1, "live");
        assert_eq!(rooms.members(1, "live"), 0, "never below zero");
        let due = rooms.due(false);
        assert_eq!(due[0].0.members, 0);
        rooms.reported(due);
        assert!(rooms.due(true).is_empty(), "an empty room reported is forgotten");

        // A room entered again starts unannounced.
        let again = rooms.entered(1, &room, 1);
        assert!(!*again.announced.borrow());
    }
}
