//! Encoded `gim.client.v1.ServerFrame`s. A frame is encoded once and the same bytes go
//! to every session that gets it.

use bytes::Bytes;
use prost::Message as _;

use crate::proto::{
    client::v1::{
        EventPush, KickReason, Kicked, MessagePush, Response, ServerFrame, event_push, server_frame::Payload,
    },
    common::v1 as pb,
    logic::v1::{RoomEvent, RoomMessage},
};

fn encode(payload: Payload) -> Bytes {
    Bytes::from(ServerFrame { payload: Some(payload) }.encode_to_vec())
}

/// A message in a user's inbox (`message.seq` is that user's seq).
pub fn message(message: pb::Message) -> Bytes {
    encode(Payload::Message(MessagePush { message: Some(message) }))
}

pub fn event(event: event_push::Event) -> Bytes {
    encode(Payload::Event(EventPush { event: Some(event) }))
}

pub fn response(response: Response) -> Bytes {
    encode(Payload::Response(response))
}

pub fn kicked(reason: KickReason, message: &str) -> Bytes {
    encode(Payload::Kicked(Kicked { reason: reason as i32, message: message.to_owned() }))
}

pub fn room_message(message: RoomMessage) -> Bytes {
    encode(Payload::RoomMessage(message))
}

pub fn room_event(event: RoomEvent) -> Bytes {
    encode(Payload::RoomEvent(event))
}
