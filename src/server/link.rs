//! Connect's way into logic when both run in one process: the session calls of the
//! device API, made directly for the device its token named when the session opened. A
//! device's own calls count against its rates; what connect reads for it does not.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    api::{SessionCalls, as_shared},
    connect::{LogicLink, SessionDevice},
    logic::{Accounts, DeviceCaller, Result, Services, Social},
    model::AppId,
    proto::logic::v1::{
        AckRequest, AckResponse, DeviceSendRequest, GroupSendRequest, GroupSendResponse, MarkReadRequest, ReadCursor,
        RoomSendRequest, RoomSendResponse, SendMessageResponse, SyncGroupRequest, SyncRequest, SyncResponse,
        TypingRequest, TypingResponse,
    },
};

pub struct InProcessLink {
    calls: SessionCalls,
    accounts: Arc<Accounts>,
    social: Arc<Social>,
}

impl InProcessLink {
    pub fn new(services: &Services) -> Self {
        Self {
            calls: SessionCalls::new(services.messaging.clone(), services.rooms.clone()),
            accounts: services.accounts.clone(),
            social: services.social.clone(),
        }
    }

    /// A call the device made itself.
    fn counted(&self, device: &SessionDevice) -> Result<()> {
        self.accounts.device_call(&device.caller)
    }
}

#[async_trait]
impl LogicLink for InProcessLink {
    async fn authenticate(&self, token: &str) -> Result<DeviceCaller> {
        let caller = self.accounts.authenticate_device(token).await?;
        self.accounts.device_call(&caller)?;
        Ok(caller)
    }

    async fn send(&self, device: &SessionDevice, request: DeviceSendRequest) -> Result<SendMessageResponse> {
        self.counted(device)?;
        self.calls.send(&device.caller, request).await
    }

    async fn sync(&self, device: &SessionDevice, request: SyncRequest) -> Result<SyncResponse> {
        self.counted(device)?;
        self.calls.sync(&device.caller, request).await
    }

    async fn ack(&self, device: &SessionDevice, request: AckRequest) -> Result<AckResponse> {
        self.counted(device)?;
        self.calls.ack(&device.caller, request).await
    }

    async fn mark_read(&self, device: &SessionDevice, request: MarkReadRequest) -> Result<ReadCursor> {
        self.counted(device)?;
        self.calls.mark_read(&device.caller, request).await
    }

    async fn typing(&self, device: &SessionDevice, request: TypingRequest) -> Result<TypingResponse> {
        self.counted(device)?;
        self.calls.typing(&device.caller, request).await
    }

    async fn group_send(&self, device: &SessionDevice, request: GroupSendRequest) -> Result<GroupSendResponse> {
        self.counted(device)?;
        self.calls.group_send(&as_shared(&device.caller), request).await
    }

    async fn sync_group(&self, device: &SessionDevice, request: SyncGroupRequest) -> Result<SyncResponse> {
        self.counted(device)?;
        self.calls.sync_group(&as_shared(&device.caller), request).await
    }

    async fn catch_up(&self, device: &SessionDevice, request: SyncRequest) -> Result<SyncResponse> {
        self.calls.sync(&device.caller, request).await
    }

    async fn catch_up_group(&self, device: &SessionDevice, request: SyncGroupRequest) -> Result<SyncResponse> {
        self.calls.sync_group(&as_shared(&device.caller), request).await
    }

    async fn sessions_changed(&self, users: Vec<(AppId, String)>) -> Result<()> {
        self.social.sessions_changed(users);
        Ok(())
    }

    async fn room_send(&self, device: &SessionDevice, request: RoomSendRequest) -> Result<RoomSendResponse> {
        self.calls.room_send(&device.caller, request).await
    }
}
