//! The calls a device makes over its WebSocket session, answered for a device that is
//! already authenticated: the gRPC handlers of the same calls answer with these after
//! checking the token, and connect's in-process link calls them directly (the session's
//! token was checked when it opened; revoking it closes the session). Requests and
//! answers are the protocol's messages; errors are logic's.

use std::sync::Arc;

use super::convert;
use crate::{
    logic::{DeviceCaller, MessageSender, Messaging, Outgoing, Result, Rooms, SharedCaller, SyncPage},
    model::ConversationType,
    proto::logic::v1 as api,
};

#[derive(Clone)]
pub struct SessionCalls {
    pub messaging: Arc<Messaging>,
    pub rooms: Arc<Rooms>,
}

impl std::fmt::Debug for SessionCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCalls")
    }
}

/// A device acting as its user on the APIs devices share with business backends.
pub fn as_shared(caller: &DeviceCaller) -> SharedCaller {
    SharedCaller {
        app: caller.app,
        actor: crate::logic::GroupActor::User(caller.user_id.clone()),
        device_id: Some(caller.device_id.clone()),
    }
}

fn sync_response(page: SyncPage) -> api::SyncResponse {
    convert::sync_page(page)
}

impl SessionCalls {
    pub fn new(messaging: Arc<Messaging>, rooms: Arc<Rooms>) -> Self {
        Self { messaging, rooms }
    }

    pub async fn send(
        &self,
        caller: &DeviceCaller,
        request: api::DeviceSendRequest,
    ) -> Result<api::SendMessageResponse> {
        let sender = MessageSender::Device(caller.clone());
        let sent = self
            .messaging
            .send_direct(
                caller.app,
                sender,
                &request.receiver_user_id,
                Outgoing::new(request.client_msg_id, request.body, request.reply_to_message_id),
            )
            .await?;
        Ok(api::SendMessageResponse { message_id: sent.message_id, seq: sent.seq, sent_at_ms: sent.sent_at_ms })
    }

    pub async fn sync(&self, caller: &DeviceCaller, request: api::SyncRequest) -> Result<api::SyncResponse> {
        let page = self.messaging.sync(caller.app, &caller.user_id, request.after_seq, request.limit).await?;
        Ok(sync_response(page))
    }

    pub async fn ack(&self, caller: &DeviceCaller, request: api::AckRequest) -> Result<api::AckResponse> {
        Ok(api::AckResponse { acked_seq: self.messaging.ack(caller, request.seq).await? })
    }

    pub async fn typing(&self, caller: &DeviceCaller, request: api::TypingRequest) -> Result<api::TypingResponse> {
        let kind = ConversationType::try_from(request.conversation_type).unwrap_or_default();
        self.messaging.typing(caller, (kind, &request.conversation_id)).await?;
        Ok(api::TypingResponse {})
    }

    pub async fn mark_read(&self, caller: &DeviceCaller, request: api::MarkReadRequest) -> Result<api::ReadCursor> {
        let conversation_type = ConversationType::try_from(request.conversation_type).unwrap_or_default();
        let cursor = self.messaging.mark_read(caller, conversation_type, &request.conversation_id, request.seq).await?;
        Ok(convert::read_cursor(cursor))
    }

    pub async fn group_send(
        &self,
        caller: &SharedCaller,
        request: api::GroupSendRequest,
    ) -> Result<api::GroupSendResponse> {
        let outgoing = Outgoing::new(request.client_msg_id, request.body, request.reply_to_message_id);
        let sent = self.messaging.send_group(caller, &request.group_id, outgoing).await?;
        Ok(api::GroupSendResponse {
            message_id: sent.message_id,
            seq: sent.seq,
            group_seq: sent.group_seq,
            sent_at_ms: sent.sent_at_ms,
        })
    }

    /// A device's message to a room its session is in (connect checked that).
    pub async fn room_send(
        &self,
        caller: &DeviceCaller,
        request: api::RoomSendRequest,
    ) -> Result<api::RoomSendResponse> {
        let sent = self.rooms.room_send(caller, &request.room_id, request.client_msg_id, request.body).await?;
        Ok(api::RoomSendResponse { seq: sent.seq, sent_at_ms: sent.sent_at_ms })
    }

    pub async fn sync_group(&self, caller: &SharedCaller, request: api::SyncGroupRequest) -> Result<api::SyncResponse> {
        let page = self.messaging.sync_group(caller, &request.group_id, request.after_group_seq, request.limit).await?;
        Ok(sync_response(page))
    }
}
