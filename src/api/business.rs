//! `gim.logic.v1.Business`: the API business backends call with their app secret.

use std::{sync::Arc, time::Duration};

use tonic::{Request, Response, Status};

use super::{auth, convert};
use crate::{
    logic::{
        Accounts, BroadcastContent, HistoryCursor, MessageSender, Messaging, Outgoing, RoomContent, Rooms, Social,
    },
    model::ProfilePatch,
    proto::{
        common::v1 as pb,
        logic::v1::{self as api, business_server::Business},
    },
};

pub struct BusinessApi {
    gate: auth::Gate,
    accounts: Arc<Accounts>,
    messaging: Arc<Messaging>,
    social: Arc<Social>,
    rooms: Arc<Rooms>,
}

impl BusinessApi {
    pub fn new(
        gate: auth::Gate,
        accounts: Arc<Accounts>,
        messaging: Arc<Messaging>,
        social: Arc<Social>,
        rooms: Arc<Rooms>,
    ) -> Self {
        Self { gate, accounts, messaging, social, rooms }
    }
}

#[tonic::async_trait]
impl Business for BusinessApi {
    async fn create_user(&self, request: Request<api::CreateUserRequest>) -> Result<Response<pb::User>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let user = self.accounts.create_user(&caller, convert::user_input(request.into_inner())).await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn import_users(
        &self,
        request: Request<api::ImportUsersRequest>,
    ) -> Result<Response<api::ImportUsersResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let inputs = request.into_inner().users.into_iter().map(convert::user_input).collect();
        let imported = self.accounts.import_users(&caller, inputs).await?;
        Ok(Response::new(api::ImportUsersResponse {
            created_user_ids: imported.created,
            existing_user_ids: imported.existing,
        }))
    }

    async fn get_user(&self, request: Request<api::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let user = self.accounts.get_user(caller.app, &request.into_inner().user_id).await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn get_users(
        &self,
        request: Request<api::GetUsersRequest>,
    ) -> Result<Response<api::GetUsersResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let users = self.accounts.get_users(caller.app, &request.into_inner().user_ids).await?;
        Ok(Response::new(api::GetUsersResponse { users: users.into_iter().map(convert::user).collect() }))
    }

    async fn update_user(&self, request: Request<api::UpdateUserRequest>) -> Result<Response<pb::User>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        auth::acting_for(&request.user_id);
        let patch = ProfilePatch { nickname: request.nickname, avatar_url: request.avatar_url, extra: request.extra };
        let user = self.accounts.update_user(caller.app, &request.user_id, patch).await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn list_users(
        &self,
        request: Request<api::ListUsersRequest>,
    ) -> Result<Response<api::ListUsersResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let crate::logic::Page { items: users, has_more } =
            self.accounts.list_users(caller.app, &request.after_user_id, request.limit).await?;
        Ok(Response::new(api::ListUsersResponse { users: users.into_iter().map(convert::user).collect(), has_more }))
    }

    async fn register_device(
        &self,
        request: Request<api::RegisterDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let (user_id, input) = convert::register_input(request.into_inner());
        auth::acting_for(&user_id);
        let device = self.accounts.register_device(caller.app, &user_id, input).await?;
        Ok(Response::new(convert::device(device)))
    }

    async fn list_devices(
        &self,
        request: Request<api::ListDevicesRequest>,
    ) -> Result<Response<api::ListDevicesResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let user_id = request.into_inner().user_id;
        auth::acting_for(&user_id);
        let devices = self.accounts.list_devices(caller.app, &user_id).await?;
        Ok(Response::new(api::ListDevicesResponse { devices: devices.into_iter().map(convert::device).collect() }))
    }

    async fn remove_device(&self, request: Request<api::RemoveDeviceRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        auth::acting_for(&request.user_id);
        self.accounts.remove_device(caller.app, &request.user_id, &request.device_id).await?;
        Ok(Response::new(api::Empty {}))
    }

    async fn issue_token(
        &self,
        request: Request<api::IssueTokenRequest>,
    ) -> Result<Response<api::TokenResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        auth::acting_for(&request.user_id);
        let ttl = Duration::from_secs(u64::from(request.ttl_seconds));
        let issued = self.accounts.issue_token(caller.app, &request.user_id, &request.device_id, ttl).await?;
        Ok(Response::new(api::TokenResponse { token: issued.token, expires_at_ms: issued.expires_at_ms }))
    }

    async fn revoke_tokens(&self, request: Request<api::RevokeTokensRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        auth::acting_for(&request.user_id);
        let device = Some(request.device_id.as_str()).filter(|d| !d.is_empty());
        self.accounts.revoke_tokens(caller.app, &request.user_id, device).await?;
        Ok(Response::new(api::Empty {}))
    }

    async fn send_message(
        &self,
        request: Request<api::BusinessSendRequest>,
    ) -> Result<Response<api::SendMessageResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let sender = if request.sender_user_id.is_empty() {
            MessageSender::System
        } else {
            auth::acting_for(&request.sender_user_id);
            MessageSender::User(request.sender_user_id)
        };
        let sent = self
            .messaging
            .send_direct(
                caller.app,
                sender,
                &request.receiver_user_id,
                Outgoing::new(request.client_msg_id, request.body, request.reply_to_message_id),
            )
            .await?;
        Ok(Response::new(api::SendMessageResponse {
            message_id: sent.message_id,
            seq: sent.seq,
            sent_at_ms: sent.sent_at_ms,
        }))
    }

    async fn sync(&self, request: Request<api::BusinessSyncRequest>) -> Result<Response<api::SyncResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        auth::acting_for(&request.user_id);
        let page = self.messaging.sync(caller.app, &request.user_id, request.after_seq, request.limit).await?;
        Ok(Response::new(api::SyncResponse {
            messages: convert::messages(page.messages),
            has_more: page.has_more,
            latest_seq: page.latest_seq,
            large_groups: convert::large_groups(page.large_groups),
        }))
    }

    async fn get_presence(
        &self,
        request: Request<api::GetPresenceRequest>,
    ) -> Result<Response<api::GetPresenceResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let presence = self.social.presence(caller.app, &request.into_inner().user_ids).await?;
        Ok(Response::new(convert::presence(presence)))
    }

    async fn kick_device(&self, request: Request<api::KickDeviceRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        auth::acting_for(&request.user_id);
        let device = Some(request.device_id.as_str()).filter(|d| !d.is_empty());
        self.accounts.kick(caller.app, &request.user_id, device, &request.reason).await?;
        Ok(Response::new(api::Empty {}))
    }

    async fn push_event(&self, request: Request<api::PushEventRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        self.messaging.push_event(caller.app, request.user_ids, &request.kind, request.data).await?;
        Ok(Response::new(api::Empty {}))
    }

    async fn broadcast(
        &self,
        request: Request<api::BroadcastRequest>,
    ) -> Result<Response<api::BroadcastResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let content = match (request.body, request.event_kind.is_empty()) {
            (Some(body), true) => BroadcastContent::Message { client_msg_id: request.client_msg_id, body: Some(body) },
            (None, false) => BroadcastContent::Event { kind: request.event_kind, data: request.event_data },
            _ => return Err(Status::invalid_argument("set either body (a message) or event_kind (an event)")),
        };
        let done = self.messaging.broadcast(caller.app, request.user_ids, content).await?;
        Ok(Response::new(api::BroadcastResponse {
            sent: done.sent,
            unknown_user_ids: done.unknown_user_ids,
            message_ids: done.message_ids.into_iter().collect(),
        }))
    }

    async fn get_history(
        &self,
        request: Request<api::BusinessHistoryRequest>,
    ) -> Result<Response<api::HistoryResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        auth::acting_for(&request.user_id);
        let cursor = HistoryCursor { before_seq: request.before_seq, before_time_ms: request.before_time_ms };
        let history = self
            .messaging
            .direct_history(caller.app, &request.user_id, &request.peer_user_id, cursor, request.limit)
            .await?;
        Ok(Response::new(api::HistoryResponse {
            messages: convert::messages(history.items),
            has_more: history.has_more,
        }))
    }

    async fn join_room(&self, request: Request<api::RoomMemberRequest>) -> Result<Response<api::Empty>, Status> {
        self.move_in_room(request, true).await
    }

    async fn leave_room(&self, request: Request<api::RoomMemberRequest>) -> Result<Response<api::Empty>, Status> {
        self.move_in_room(request, false).await
    }

    async fn push_room(
        &self,
        request: Request<api::PushRoomRequest>,
    ) -> Result<Response<api::PushRoomResponse>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let content = match (request.body, request.event_kind.is_empty()) {
            (Some(body), true) => RoomContent::Message { client_msg_id: request.client_msg_id, body: Some(body) },
            (None, false) => RoomContent::Event { kind: request.event_kind, data: request.event_data },
            _ => return Err(Status::invalid_argument("set either body (a message) or event_kind (an event)")),
        };
        let seq = self.rooms.push_room(caller.app, &request.room_id, content).await?;
        Ok(Response::new(api::PushRoomResponse { seq }))
    }

    async fn get_room(&self, request: Request<api::GetRoomRequest>) -> Result<Response<api::Room>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let room_id = request.into_inner().room_id;
        let room = self.rooms.room(caller.app, &room_id).await?;
        Ok(Response::new(api::Room { room_id, members: room.members, last_seq: room.last_seq }))
    }

    async fn close_room(&self, request: Request<api::CloseRoomRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        self.rooms.close_room(caller.app, &request.room_id, &request.reason).await?;
        Ok(Response::new(api::Empty {}))
    }
}

impl BusinessApi {
    async fn move_in_room(
        &self,
        request: Request<api::RoomMemberRequest>,
        joined: bool,
    ) -> Result<Response<api::Empty>, Status> {
        let caller = auth::business(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        auth::acting_for(&request.user_id);
        self.rooms
            .move_in_room(caller.app, &request.room_id, &request.user_id, &request.device_id, joined, &request.reason)
            .await?;
        Ok(Response::new(api::Empty {}))
    }
}
