use std::{sync::Mutex, time::Duration};

use bytes::Bytes;
use tokio::sync::Notify;

use super::{Delivery, Kick, Membership, Push, RoomChange, RoomPush};
use crate::model::AppId;

/// Records every push and kick it is given, for tests of logic without a connect service.
#[derive(Debug, Default)]
pub struct RecordingDelivery {
    pushes: Mutex<Vec<Push>>,
    kicks: Mutex<Vec<Kick>>,
    memberships: Mutex<Vec<Membership>>,
    announcements: Mutex<Vec<(AppId, Bytes)>>,
    room_pushes: Mutex<Vec<RoomPush>>,
    room_changes: Mutex<Vec<RoomChange>>,
    pushed: Notify,
}

impl RecordingDelivery {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every push so far, oldest first.
    pub fn pushes(&self) -> Vec<Push> {
        self.pushes.lock().expect("recording lock").clone()
    }

    pub fn kicks(&self) -> Vec<Kick> {
        self.kicks.lock().expect("recording lock").clone()
    }

    /// Events announced to every device of an app.
    pub fn announcements(&self) -> Vec<(AppId, Bytes)> {
        self.announcements.lock().expect("recording lock").clone()
    }

    pub fn memberships(&self) -> Vec<Membership> {
        self.memberships.lock().expect("recording lock").clone()
    }

    pub fn room_pushes(&self) -> Vec<RoomPush> {
        self.room_pushes.lock().expect("recording lock").clone()
    }

    pub fn room_changes(&self) -> Vec<RoomChange> {
        self.room_changes.lock().expect("recording lock").clone()
    }

    /// Waits until at least `count` pushes were recorded, or `timeout` passes.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Push> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.pushed.notified();
            let pushes = self.pushes();
            if pushes.len() >= count {
                return pushes;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pushes();
            }
        }
    }
}

impl Delivery for RecordingDelivery {
    fn deliver(&self, pushes: Vec<Push>) {
        self.pushes.lock().expect("recording lock").extend(pushes);
        self.pushed.notify_waiters();
    }

    fn announce(&self, app: AppId, frame: Bytes) {
        self.announcements.lock().expect("recording lock").push((app, frame));
    }

    fn kick(&self, kick: Kick) {
        self.kicks.lock().expect("recording lock").push(kick);
    }

    fn membership(&self, changes: Vec<Membership>) {
        self.memberships.lock().expect("recording lock").extend(changes);
    }

    fn room_push(&self, push: RoomPush) {
        self.room_pushes.lock().expect("recording lock").push(push);
    }

    fn room_change(&self, change: RoomChange) {
        self.room_changes.lock().expect("recording lock").push(change);
    }
}
