//! Live rooms, logic's side: messages to rooms (from devices, through the connect node
//! that holds their session, and from the business), and the business's control of
//! rooms. Which sessions are in a room is known only to the connect nodes; the registry
//! lists the nodes per room, gives each message its seq within the room's rate, and
//! keeps the last few for joiners. Nothing is stored in the database.

use std::{sync::Arc, time::Duration};

use super::{
    DeviceCaller, Error, Result,
    kernel::{directory::AppDirectory, events::check_event, moderation::Moderation, validate},
};
use crate::{
    config::{Limits, RoomsConfig},
    delivery::{Delivery, DeviceRef, RoomChange, RoomPush, RoomTarget},
    frames,
    metrics::Metrics,
    model::{AppId, MessageBody, now_ms},
    proto::logic::v1::{RoomEvent, RoomEventKind, RoomMessage},
    route::{Numbering, Published, RoomState, RouteError, RouteRegistry},
};

/// Longest room id.
pub const MAX_ROOM_ID_LEN: usize = 128;
/// Longest reason passed on with a leave or a close.
const MAX_REASON_CHARS: usize = 200;

/// Room ids: 1-128 of `A-Z a-z 0-9 _ - . @ :`.
pub fn check_room_id(room: &str) -> Result<()> {
    validate::id_up_to("room_id", room, MAX_ROOM_ID_LEN)
}

/// What the business sends to a room.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomContent {
    Message { client_msg_id: String, body: Option<MessageBody> },
    Event { kind: String, data: Vec<u8> },
}

/// A room message as it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomSent {
    pub seq: u64,
    pub sent_at_ms: i64,
}

/// Who sends a room message.
struct RoomSender<'a> {
    user_id: &'a str,
    device: Option<&'a DeviceCaller>,
}

fn unavailable(err: RouteError) -> Error {
    Error::Unavailable(format!("rooms are unavailable: {err}"))
}

fn reason(reason: &str) -> Result<String> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid(format!("reason must be at most {MAX_REASON_CHARS} characters")));
    }
    Ok(reason.to_owned())
}

/// The use cases of live rooms.
pub struct Rooms {
    /// The registry of rooms: their nodes, seqs, rates and last messages.
    routes: Arc<dyn RouteRegistry>,
    delivery: Arc<dyn Delivery>,
    moderation: Arc<Moderation>,
    directory: AppDirectory,
    limits: Arc<Limits>,
    rooms: RoomsConfig,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms").finish_non_exhaustive()
    }
}

/// What `Rooms` is built from.
pub struct RoomsParts {
    pub routes: Arc<dyn RouteRegistry>,
    pub delivery: Arc<dyn Delivery>,
    pub moderation: Arc<Moderation>,
    pub directory: AppDirectory,
    pub limits: Arc<Limits>,
    pub rooms: RoomsConfig,
    pub metrics: Arc<Metrics>,
}

impl Rooms {
    pub fn new(parts: RoomsParts) -> Self {
        Self {
            routes: parts.routes,
            delivery: parts.delivery,
            moderation: parts.moderation,
            directory: parts.directory,
            limits: parts.limits,
            rooms: parts.rooms,
            metrics: parts.metrics,
        }
    }

    /// A device's message to a room its session is in (the connect node checked that,
    /// and the session's rate). The app's before-send hook is asked if it moderates rooms.
    pub async fn room_send(
        &self,
        caller: &DeviceCaller,
        room: &str,
        client_msg_id: String,
        body: Option<MessageBody>,
    ) -> Result<RoomSent> {
        check_room_id(room)?;
        if !client_msg_id.is_empty() {
            validate::client_msg_id(&client_msg_id, &self.limits)?;
        }
        validate::body(body.as_ref(), &self.limits)?;
        self.directory.send(caller.app).await?;
        let body = self.moderation.moderate_room(caller, room, &client_msg_id, body.unwrap_or_default()).await?;
        let sender = RoomSender { user_id: &caller.user_id, device: Some(caller) };
        self.publish_room(caller.app, room, sender, client_msg_id, body).await
    }

    /// The business's message or event to every session in a room; the seq of a
    /// message (0 for an event).
    pub async fn push_room(&self, app: AppId, room: &str, content: RoomContent) -> Result<u64> {
        check_room_id(room)?;
        match content {
            RoomContent::Message { client_msg_id, body } => {
                if !client_msg_id.is_empty() {
                    validate::client_msg_id(&client_msg_id, &self.limits)?;
                }
                validate::body(body.as_ref(), &self.limits)?;
                self.directory.send(app).await?;
                let sender = RoomSender { user_id: "", device: None };
                Ok(self.publish_room(app, room, sender, client_msg_id, body.unwrap_or_default()).await?.seq)
            }
            RoomContent::Event { kind, data } => {
                check_event(&kind, &data, &self.limits)?;
                let nodes = self.routes.room(app, room).await.map_err(unavailable)?.nodes;
                let frame = frames::room_event(RoomEvent {
                    room_id: room.to_owned(),
                    kind: RoomEventKind::Custom as i32,
                    custom_kind: kind,
                    data,
                    ..Default::default()
                });
                self.delivery.room_push(RoomPush { app, room: room.to_owned(), nodes, seq: 0, frame, skip: None });
                Ok(0)
            }
        }
    }

    /// Takes the message's seq (within the room's rate, for devices' messages), keeps it
    /// for joiners, then pushes it to the room's nodes: kept first, so that a session
    /// joining while it is on its way finds it in the replay if not in its pushes.
    async fn publish_room(
        &self,
        app: AppId,
        room: &str,
        sender: RoomSender<'_>,
        client_msg_id: String,
        body: MessageBody,
    ) -> Result<RoomSent> {
        let rooms = &self.rooms;
        let per_second = if sender.device.is_some() { rooms.room_messages_per_second } else { 0 };
        let sent_at_ms = now_ms();
        let once = (!client_msg_id.is_empty()).then_some((sender.user_id, client_msg_id.as_str()));
        let numbering = Numbering { per_second, once, sent_at_ms };
        let (seq, nodes) = match self.routes.publish(app, room, numbering).await.map_err(unavailable)? {
            Some(Published::New { seq, nodes }) => (seq, nodes),
            // Sent again after a lost answer: it reached the room the first time.
            Some(Published::Repeat { seq, sent_at_ms }) => return Ok(RoomSent { seq, sent_at_ms }),
            None => {
                return Err(Error::TooFast {
                    what: format!("messages to this room: at most {per_second} a second"),
                    retry_after: Duration::from_millis(1000 - (now_ms() % 1000) as u64),
                });
            }
        };
        let frame = frames::room_message(RoomMessage {
            room_id: room.to_owned(),
            seq,
            sender_user_id: sender.user_id.to_owned(),
            client_msg_id,
            body: Some(body),
            sent_at_ms,
        });
        if rooms.replay > 0
            && let Err(err) = self.routes.remember(app, room, seq, &frame, rooms.replay).await
        {
            tracing::warn!(app, room, error = %err, "keeping a room message for the replay failed");
        }
        let skip = sender
            .device
            .map(|device| DeviceRef { user_id: device.user_id.clone(), device_id: device.device_id.clone() });
        self.metrics.room_messages.inc();
        self.delivery.room_push(RoomPush { app, room: room.to_owned(), nodes, seq, frame, skip });
        Ok(RoomSent { seq, sent_at_ms })
    }

    /// Puts the sessions of a user's device (or of all its devices) in a room, or takes
    /// them out; each is told. Reaches the nodes the user's routes name.
    pub async fn move_in_room(
        &self,
        app: AppId,
        room: &str,
        user_id: &str,
        device_id: &str,
        joined: bool,
        why: &str,
    ) -> Result<()> {
        check_room_id(room)?;
        validate::id("user_id", user_id)?;
        if !device_id.is_empty() {
            validate::id("device_id", device_id)?;
        }
        let target = RoomTarget::Device {
            user_id: user_id.to_owned(),
            device_id: Some(device_id.to_owned()).filter(|d| !d.is_empty()),
        };
        let change = RoomChange { app, room: room.to_owned(), target, joined, reason: reason(why)? };
        self.delivery.room_change(change);
        Ok(())
    }

    pub async fn room(&self, app: AppId, room: &str) -> Result<RoomState> {
        check_room_id(room)?;
        self.routes.room(app, room).await.map_err(unavailable)
    }

    /// Takes every session out of the room (each is told why) and forgets its seq and
    /// replay.
    pub async fn close_room(&self, app: AppId, room: &str, why: &str) -> Result<()> {
        check_room_id(room)?;
        let why = reason(why)?;
        let nodes = self.routes.close_room(app, room).await.map_err(unavailable)?;
        let change = RoomChange {
            app,
            room: room.to_owned(),
            target: RoomTarget::Everyone { nodes },
            joined: false,
            reason: why,
        };
        self.delivery.room_change(change);
        tracing::info!(app, room, "room closed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_follow_the_documented_alphabet_and_length() {
        assert!(check_room_id("live:match-42_final.1@eu").is_ok());
        assert!(check_room_id(&"r".repeat(128)).is_ok());
        for bad in ["", "has space", "slash/", "é", &"r".repeat(129)] {
            assert!(check_room_id(bad).is_err(), "{bad:?}");
        }
    }
}
