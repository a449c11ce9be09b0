use async_trait::async_trait;
use tonic::Status;

use crate::{
    api::DeviceApi,
    connect::{LogicLink, with_token},
    proto::logic::v1::{
        AckRequest, AckResponse, Caller, DeviceSendRequest, Empty, MarkReadRequest, ReadCursor, SendMessageResponse,
        SyncRequest, SyncResponse, device_server::Device,
    },
};

/// Connect's way into logic when both run in one process: the device API's handlers,
/// called directly, so that every call is authenticated and checked exactly as over gRPC.
pub struct InProcessLink(pub DeviceApi);

#[async_trait]
impl LogicLink for InProcessLink {
    async fn authenticate(&self, token: &str) -> Result<Caller, Status> {
        Ok(self.0.authenticate(with_token(token, Empty {})?).await?.into_inner())
    }

    async fn send(&self, token: &str, request: DeviceSendRequest) -> Result<SendMessageResponse, Status> {
        Ok(self.0.send_message(with_token(token, request)?).await?.into_inner())
    }

    async fn sync(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status> {
        Ok(self.0.sync(with_token(token, request)?).await?.into_inner())
    }

    async fn ack(&self, token: &str, request: AckRequest) -> Result<AckResponse, Status> {
        Ok(self.0.ack(with_token(token, request)?).await?.into_inner())
    }

    async fn mark_read(&self, token: &str, request: MarkReadRequest) -> Result<ReadCursor, Status> {
        Ok(self.0.mark_read(with_token(token, request)?).await?.into_inner())
    }
}
