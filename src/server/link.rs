use async_trait::async_trait;
use tonic::Status;

use crate::{
    api::{DeviceApi, GroupsApi, auth::OnBehalf},
    connect::{LogicLink, with_token},
    logic::Logic,
    model::AppId,
    proto::logic::v1::{
        AckRequest, AckResponse, Caller, DeviceSendRequest, Empty, GroupSendRequest, GroupSendResponse,
        MarkReadRequest, ReadCursor, SendMessageResponse, SyncGroupRequest, SyncRequest, SyncResponse,
        device_server::Device, groups_server::Groups,
    },
};

/// A request for a device, from connect rather than from the device: marked with an
/// extension, which cannot come over the network.
fn on_behalf<T>(token: &str, message: T) -> Result<tonic::Request<T>, Status> {
    let mut request = with_token(token, message)?;
    request.extensions_mut().insert(OnBehalf);
    Ok(request)
}

/// Connect's way into logic when both run in one process: the device API's handlers,
/// called directly, so that every call is authenticated and checked exactly as over gRPC.
pub struct InProcessLink {
    pub device: DeviceApi,
    pub groups: GroupsApi,
    /// For what connect reports as a node rather than as a device (sessions that changed).
    pub logic: Logic,
}

#[async_trait]
impl LogicLink for InProcessLink {
    async fn authenticate(&self, token: &str) -> Result<Caller, Status> {
        Ok(self.device.authenticate(with_token(token, Empty {})?).await?.into_inner())
    }

    async fn send(&self, token: &str, request: DeviceSendRequest) -> Result<SendMessageResponse, Status> {
        Ok(self.device.send_message(with_token(token, request)?).await?.into_inner())
    }

    async fn sync(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status> {
        Ok(self.device.sync(with_token(token, request)?).await?.into_inner())
    }

    async fn ack(&self, token: &str, request: AckRequest) -> Result<AckResponse, Status> {
        Ok(self.device.ack(with_token(token, request)?).await?.into_inner())
    }

    async fn mark_read(&self, token: &str, request: MarkReadRequest) -> Result<ReadCursor, Status> {
        Ok(self.device.mark_read(with_token(token, request)?).await?.into_inner())
    }

    async fn group_send(&self, token: &str, request: GroupSendRequest) -> Result<GroupSendResponse, Status> {
        Ok(self.groups.send_message(with_token(token, request)?).await?.into_inner())
    }

    async fn sync_group(&self, token: &str, request: SyncGroupRequest) -> Result<SyncResponse, Status> {
        Ok(self.groups.sync_group(with_token(token, request)?).await?.into_inner())
    }

    async fn catch_up(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status> {
        Ok(self.device.sync(on_behalf(token, request)?).await?.into_inner())
    }

    async fn catch_up_group(&self, token: &str, request: SyncGroupRequest) -> Result<SyncResponse, Status> {
        Ok(self.groups.sync_group(on_behalf(token, request)?).await?.into_inner())
    }

    async fn sessions_changed(&self, users: Vec<(AppId, String)>) -> Result<(), Status> {
        self.logic.sessions_changed(users);
        Ok(())
    }
}
