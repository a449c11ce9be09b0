//! The push path seam: logic hands every committed message and every event to a
//! `Delivery`, which gets it to the online devices concerned. Pushes are an optimisation
//! on top of persist-then-sync, so a delivery may drop a push under pressure; it must
//! never block the caller.

mod grpc;
mod local;
mod recording;

pub use self::{grpc::GrpcDelivery, local::LocalDelivery, recording::RecordingDelivery};

use bytes::Bytes;

use crate::{model::AppId, proto::client::v1::KickReason};

/// One encoded frame for the online devices of some users of one app.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub app: AppId,
    pub users: Vec<String>,
    /// A device that already knows (the sender's own device).
    pub skip_device: Option<String>,
    /// The users' inbox seq for a message push (the same for each of `users`); 0 for an event.
    pub seq: u64,
    /// An encoded `gim.client.v1.ServerFrame` (see `crate::frames`).
    pub frame: Bytes,
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
    /// Queues a kick; must return at once.
    fn kick(&self, kick: Kick);
}

/// Drops everything: for processes that store messages but have no connect service to
/// push through, such as the operator commands.
#[derive(Debug, Default)]
pub struct Discard;

impl Delivery for Discard {
    fn deliver(&self, _pushes: Vec<Push>) {}
    fn kick(&self, _kick: Kick) {}
}
