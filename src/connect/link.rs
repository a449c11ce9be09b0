//! How connect reaches logic on behalf of a device: the device API, with the device's
//! own token, either in-process (`gim serve`) or over gRPC (`gim connect`). Either way
//! logic authenticates and authorises every call exactly as for any other client.

use async_trait::async_trait;
use tonic::{Request, Status, transport::Channel};

use super::ConnectError;
use crate::proto::logic::v1::{
    AckRequest, AckResponse, Caller, DeviceSendRequest, Empty, MarkReadRequest, ReadCursor, SendMessageResponse,
    SyncRequest, SyncResponse, device_client::DeviceClient,
};

/// The device API as connect uses it.
#[async_trait]
pub trait LogicLink: Send + Sync + 'static {
    async fn authenticate(&self, token: &str) -> Result<Caller, Status>;
    async fn send(&self, token: &str, request: DeviceSendRequest) -> Result<SendMessageResponse, Status>;
    async fn sync(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status>;
    async fn ack(&self, token: &str, request: AckRequest) -> Result<AckResponse, Status>;
    async fn mark_read(&self, token: &str, request: MarkReadRequest) -> Result<ReadCursor, Status>;
}

/// A request carrying a device token, as a device would send it.
pub fn with_token<T>(token: &str, message: T) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    let value =
        format!("Bearer {token}").parse().map_err(|_| Status::unauthenticated("the token is not valid ASCII"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// The device API of logic nodes over gRPC, balanced over `connect.logic_addrs`.
#[derive(Debug, Clone)]
pub struct GrpcLink {
    client: DeviceClient<Channel>,
}

impl GrpcLink {
    /// Connects lazily: logic nodes may start after connect. Must run inside a Tokio runtime.
    pub fn new(logic_addrs: &[String]) -> Result<Self, ConnectError> {
        let endpoints = logic_addrs
            .iter()
            .map(|addr| {
                Channel::from_shared(addr.clone())
                    .map(|e| e.connect_timeout(std::time::Duration::from_secs(3)).tcp_nodelay(true))
                    .map_err(|err| ConnectError::Address(addr.clone(), err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { client: DeviceClient::new(Channel::balance_list(endpoints.into_iter())) })
    }
}

#[async_trait]
impl LogicLink for GrpcLink {
    async fn authenticate(&self, token: &str) -> Result<Caller, Status> {
        Ok(self.client.clone().authenticate(with_token(token, Empty {})?).await?.into_inner())
    }

    async fn send(&self, token: &str, request: DeviceSendRequest) -> Result<SendMessageResponse, Status> {
        Ok(self.client.clone().send_message(with_token(token, request)?).await?.into_inner())
    }

    async fn sync(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status> {
        Ok(self.client.clone().sync(with_token(token, request)?).await?.into_inner())
    }

    async fn ack(&self, token: &str, request: AckRequest) -> Result<AckResponse, Status> {
        Ok(self.client.clone().ack(with_token(token, request)?).await?.into_inner())
    }

    async fn mark_read(&self, token: &str, request: MarkReadRequest) -> Result<ReadCursor, Status> {
        Ok(self.client.clone().mark_read(with_token(token, request)?).await?.into_inner())
    }
}
