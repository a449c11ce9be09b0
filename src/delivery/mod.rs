//! The push path seam: logic hands every committed message to a `Delivery`, which gets
//! it to the online devices of its recipients. Pushes are an optimisation on top of
//! persist-then-sync, so a delivery may drop a push under pressure; it must never block.

mod recording;

pub use recording::RecordingDelivery;

use crate::model::{AppId, Message};

/// One committed message for the devices of its recipients.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub app: AppId,
    /// The message as stored; `seq` is 0, each recipient carries its own.
    pub message: Message,
    pub recipients: Vec<PushRecipient>,
}

/// A user whose devices should get the message, with the seq it has in their inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecipient {
    pub user_id: String,
    pub seq: u64,
    /// The device that sent the message already has it.
    pub skip_device: Option<String>,
}

/// Gets committed messages to online devices.
pub trait Delivery: Send + Sync + 'static {
    /// Queues a push. Called after commit, on the request path: must return at once.
    fn deliver(&self, push: Push);
}

/// Drops every push: for processes that store messages but have no connect service to
/// push through (devices still get everything by syncing).
#[derive(Debug, Default)]
pub struct Discard;

impl Delivery for Discard {
    fn deliver(&self, _push: Push) {}
}
