//! `gim.logic.v1.Device`: the API devices call with their token (gRPC or gRPC-Web).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{auth, convert, session_calls::SessionCalls};
use crate::{
    logic::{Accounts, HistoryCursor, Messaging},
    model::ProfilePatch,
    proto::{
        common::v1 as pb,
        logic::v1::{self as api, device_server::Device},
    },
};

pub struct DeviceApi {
    gate: auth::Gate,
    accounts: Arc<Accounts>,
    messaging: Arc<Messaging>,
    calls: SessionCalls,
}

impl DeviceApi {
    pub fn new(gate: auth::Gate, calls: SessionCalls) -> Self {
        Self { accounts: gate.accounts.clone(), messaging: calls.messaging.clone(), gate, calls }
    }
}

#[tonic::async_trait]
impl Device for DeviceApi {
    async fn authenticate(&self, request: Request<api::Empty>) -> Result<Response<api::Caller>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        Ok(Response::new(api::Caller {
            app_id: caller.app,
            user_id: caller.user_id,
            device_id: caller.device_id,
            device_type: caller.device_type as i32,
        }))
    }

    async fn mark_read(&self, request: Request<api::MarkReadRequest>) -> Result<Response<api::ReadCursor>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        Ok(Response::new(self.calls.mark_read(&caller, request.into_inner()).await?))
    }

    async fn list_read_cursors(
        &self,
        request: Request<api::Empty>,
    ) -> Result<Response<api::ListReadCursorsResponse>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        let cursors = self.messaging.read_cursors(&caller).await?;
        Ok(Response::new(api::ListReadCursorsResponse {
            cursors: cursors.into_iter().map(convert::read_cursor).collect(),
        }))
    }

    async fn get_me(&self, request: Request<api::Empty>) -> Result<Response<api::GetMeResponse>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        let user = self.accounts.get_user(caller.app, &caller.user_id).await?;
        let device = self.accounts.get_device(caller.app, &caller.user_id, &caller.device_id).await?;
        Ok(Response::new(api::GetMeResponse { user: Some(convert::user(user)), device: Some(convert::device(device)) }))
    }

    async fn update_me(&self, request: Request<api::UpdateMeRequest>) -> Result<Response<pb::User>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let patch = ProfilePatch { nickname: request.nickname, avatar_url: request.avatar_url, extra: request.extra };
        let user = self.accounts.update_user(caller.app, &caller.user_id, patch).await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn change_password(
        &self,
        request: Request<api::ChangePasswordRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        let address = request.remote_addr().map(|addr| addr.ip());
        let request = request.into_inner();
        self.accounts.change_password(&caller, &request.old_password, &request.new_password, address).await?;
        Ok(Response::new(api::Empty {}))
    }

    async fn send_message(
        &self,
        request: Request<api::DeviceSendRequest>,
    ) -> Result<Response<api::SendMessageResponse>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        Ok(Response::new(self.calls.send(&caller, request.into_inner()).await?))
    }

    async fn sync(&self, request: Request<api::SyncRequest>) -> Result<Response<api::SyncResponse>, Status> {
        let caller = auth::device_or_on_behalf(&self.gate, &request).await?;
        Ok(Response::new(self.calls.sync(&caller, request.into_inner()).await?))
    }

    async fn ack(&self, request: Request<api::AckRequest>) -> Result<Response<api::AckResponse>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        Ok(Response::new(self.calls.ack(&caller, request.into_inner()).await?))
    }

    async fn get_history(
        &self,
        request: Request<api::HistoryRequest>,
    ) -> Result<Response<api::HistoryResponse>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let cursor = HistoryCursor { before_seq: request.before_seq, before_time_ms: request.before_time_ms };
        let history = self
            .messaging
            .direct_history(caller.app, &caller.user_id, &request.peer_user_id, cursor, request.limit)
            .await?;
        Ok(Response::new(api::HistoryResponse {
            messages: convert::messages(history.items),
            has_more: history.has_more,
        }))
    }
}
