//! The push path seam: logic hands every committed message and every event to a
//! `Delivery`, which gets it to the online devices concerned. Pushes are an optimisation
//! on top of persist-then-sync, so a delivery may drop a push under pressure; it must
//! never block the caller.

mod grpc;
mod peers;
mod recording;

pub use self::{grpc::GrpcDelivery, peers::Peers, recording::RecordingDelivery};

use bytes::Bytes;

use crate::{model::AppId, proto::client::v1::KickReason};

/// One encoded frame for the online devices of some users of one app, or of every
/// online member of a large group.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub app: AppId,
    pub users: Vec<String>,
    /// Set for a large group's timeline message: it goes to every online member, and
    /// `seq` is its seq on the timeline.
    pub group: Option<String>,
    /// A device that already has it (the sender's own).
    pub skip: Option<DeviceRef>,
    /// The users' inbox seq (or the group's timeline seq) for a message push; 0 for an event.
    pub seq: u64,
    /// An encoded `gim.client.v1.ServerFrame` (see `crate::frames`).
    pub frame: Bytes,
}

/// One device of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    pub user_id: String,
    pub device_id: String,
}

impl DeviceRef {
    pub fn is(&self, user_id: &str, device_id: &str) -> bool {
        self.user_id == user_id && self.device_id == device_id
    }
}

/// A user joined or left a large group: connect nodes holding the user's sessions add
/// them to, or take them off, the group's fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub app: AppId,
    pub user_id: String,
    pub group_id: String,
    pub joined: bool,
}

/// A frame for every session in a live room, on the nodes that have some.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPush {
    pub app: AppId,
    pub room: String,
    /// The connect nodes the registry lists in the room.
    pub nodes: Vec<String>,
    /// The message's seq in the room; 0 for an event.
    pub seq: u64,
    /// An encoded `gim.client.v1.ServerFrame`.
    pub frame: Bytes,
    /// The sending device, which has the message already.
    pub skip: Option<DeviceRef>,
}

/// Whose sessions a room change concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomTarget {
    /// A user's device, or all its devices.
    Device { user_id: String, device_id: Option<String> },
    /// Every session in the room, on these nodes (the room is closed).
    Everyone { nodes: Vec<String> },
}

/// The business puts sessions in a room or takes them out (each is told, with `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomChange {
    pub app: AppId,
    pub room: String,
    pub target: RoomTarget,
    pub joined: bool,
    pub reason: String,
}

/// Close the sessions of a user's device, or of all the user's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kick {
    pub app: AppId,
    pub user_id: String,
    pub device_id: Option<String>,
    pub reason: KickReason,
    pub message: String,
}

/// Gets frames to online devices, and closes sessions on request.
pub trait Delivery: Send + Sync + 'static {
    /// Queues pushes. Called after commit, on the request path: must return at once.
    fn deliver(&self, pushes: Vec<Push>);
    /// Queues an event (an encoded frame) for every online device of the app, on every
    /// connect node; must return at once.
    fn announce(&self, app: AppId, frame: Bytes);
    /// Queues a kick; must return at once.
    fn kick(&self, kick: Kick);
    /// Queues changes to large-group fan-out; must return at once. Called before any push
    /// of a message the change lets (or no longer lets) the user see.
    fn membership(&self, changes: Vec<Membership>);
    /// Queues a room's push; must return at once.
    fn room_push(&self, push: RoomPush);
    /// Queues a room change; must return at once. Applied before any later push.
    fn room_change(&self, change: RoomChange);
}

/// Drops everything: for processes that store messages but have no connect service to
/// push through, such as the operator commands.
#[derive(Debug, Default)]
pub struct Discard;

impl Delivery for Discard {
    fn deliver(&self, _pushes: Vec<Push>) {}
    fn announce(&self, _app: AppId, _frame: Bytes) {}
    fn kick(&self, _kick: Kick) {}
    fn membership(&self, _changes: Vec<Membership>) {}
    fn room_push(&self, _push: RoomPush) {}
    fn room_change(&self, _change: RoomChange) {}
}
