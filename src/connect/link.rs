//! How connect reaches logic on behalf of a device: the device API, with the device's
//! own token, either in-process (`gim serve`) or over gRPC (`gim connect`). Either way
//! logic authenticates and authorises every call exactly as for any other client.

use async_trait::async_trait;
use tonic::{
    Request, Response, Status,
    metadata::{Ascii, MetadataValue},
};

use super::{ConnectError, logic_nodes::LogicNodes};
use crate::auth::ClusterTokens;
use crate::model::AppId;
use crate::proto::connect::v1::{SessionUser, SessionsChangedRequest, sessions_client::SessionsClient};
use crate::proto::logic::v1::{
    AckRequest, AckResponse, Caller, DeviceSendRequest, Empty, GroupSendRequest, GroupSendResponse, MarkReadRequest,
    ReadCursor, SendMessageResponse, SyncGroupRequest, SyncRequest, SyncResponse, device_client::DeviceClient,
    groups_client::GroupsClient,
};

/// The device API as connect uses it.
#[async_trait]
pub trait LogicLink: Send + Sync + 'static {
    async fn authenticate(&self, token: &str) -> Result<Caller, Status>;
    async fn send(&self, token: &str, request: DeviceSendRequest) -> Result<SendMessageResponse, Status>;
    async fn sync(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status>;
    async fn ack(&self, token: &str, request: AckRequest) -> Result<AckResponse, Status>;
    async fn mark_read(&self, token: &str, request: MarkReadRequest) -> Result<ReadCursor, Status>;
    async fn group_send(&self, token: &str, request: GroupSendRequest) -> Result<GroupSendResponse, Status>;
    async fn sync_group(&self, token: &str, request: SyncGroupRequest) -> Result<SyncResponse, Status>;
    /// A sync connect makes for the device (a catch-up after a missing push, or at
    /// open): it does not count against the device's rates.
    async fn catch_up(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status>;
    /// A large group's catch-up, made for the device like `catch_up`.
    async fn catch_up_group(&self, token: &str, request: SyncGroupRequest) -> Result<SyncResponse, Status>;
    /// Users whose sessions opened or closed on this node (as the node, not a device).
    async fn sessions_changed(&self, users: Vec<(AppId, String)>) -> Result<(), Status>;

    /// The large groups the device's user is in.
    async fn large_groups(&self, token: &str) -> Result<Vec<String>, Status> {
        // A sync from past the end reads no messages, only the large groups.
        let page = self.catch_up(token, SyncRequest { after_seq: u64::MAX, limit: 1 }).await?;
        Ok(page.large_groups.into_iter().map(|g| g.group_id).collect())
    }
}

/// A request carrying a device token, as a device would send it.
pub fn with_token<T>(token: &str, message: T) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    let value =
        format!("Bearer {token}").parse().map_err(|_| Status::unauthenticated("the token is not valid ASCII"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// The device API of logic nodes over gRPC (`connect.logic_addrs`) and their internal
/// API (`connect.logic_internal_addrs`, with the cluster's internal token). Every call
/// goes to a live node and moves to another when its node fails (see `LogicNodes`).
#[derive(Debug, Clone)]
pub struct GrpcLink {
    public: LogicNodes,
    internal: LogicNodes,
    internal_bearer: MetadataValue<Ascii>,
    /// Sent with the calls connect makes for a device (see `ClusterTokens::on_behalf`).
    on_behalf: MetadataValue<Ascii>,
}

impl GrpcLink {
    /// Connects lazily: logic nodes may start after connect. Must run inside a Tokio runtime.
    pub fn new(
        logic_addrs: &[String],
        internal_addrs: &[String],
        tokens: &ClusterTokens,
    ) -> Result<Self, ConnectError> {
        let ascii = |value: String| {
            value.parse().map_err(|_| ConnectError::Address("internal token".into(), "not valid ASCII".into()))
        };
        Ok(Self {
            public: LogicNodes::new(logic_addrs)?,
            internal: LogicNodes::new(internal_addrs)?,
            internal_bearer: ascii(format!("Bearer {}", tokens.internal))?,
            on_behalf: ascii(tokens.on_behalf.clone())?,
        })
    }

    /// A request for a device, from connect rather than from the device.
    fn on_behalf<T>(&self, token: &str, message: T) -> Result<Request<T>, Status> {
        let mut request = with_token(token, message)?;
        request.metadata_mut().insert(crate::api::auth::ON_BEHALF, self.on_behalf.clone());
        Ok(request)
    }
}

#[async_trait]
impl LogicLink for GrpcLink {
    async fn authenticate(&self, token: &str) -> Result<Caller, Status> {
        self.public
            .call(|channel| async move { DeviceClient::new(channel).authenticate(with_token(token, Empty {})?).await })
            .await
            .map(Response::into_inner)
    }

    async fn send(&self, token: &str, request: DeviceSendRequest) -> Result<SendMessageResponse, Status> {
        // A send repeated on another node is stored once: it keeps its client_msg_id.
        self.public
            .call(|channel| {
                let request = with_token(token, request.clone());
                async move { DeviceClient::new(channel).send_message(request?).await }
            })
            .await
            .map(Response::into_inner)
    }

    async fn sync(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status> {
        self.public
            .call(|channel| async move { DeviceClient::new(channel).sync(with_token(token, request)?).await })
            .await
            .map(Response::into_inner)
    }

    async fn ack(&self, token: &str, request: AckRequest) -> Result<AckResponse, Status> {
        self.public
            .call(|channel| async move { DeviceClient::new(channel).ack(with_token(token, request)?).await })
            .await
            .map(Response::into_inner)
    }

    async fn mark_read(&self, token: &str, request: MarkReadRequest) -> Result<ReadCursor, Status> {
        self.public
            .call(|channel| {
                let request = with_token(token, request.clone());
                async move { DeviceClient::new(channel).mark_read(request?).await }
            })
            .await
            .map(Response::into_inner)
    }

    async fn group_send(&self, token: &str, request: GroupSendRequest) -> Result<GroupSendResponse, Status> {
        self.public
            .call(|channel| {
                let request = with_token(token, request.clone());
                async move { GroupsClient::new(channel).send_message(request?).await }
            })
            .await
            .map(Response::into_inner)
    }

    async fn sync_group(&self, token: &str, request: SyncGroupRequest) -> Result<SyncResponse, Status> {
        self.public
            .call(|channel| {
                let request = with_token(token, request.clone());
                async move { GroupsClient::new(channel).sync_group(request?).await }
            })
            .await
            .map(Response::into_inner)
    }

    async fn catch_up(&self, token: &str, request: SyncRequest) -> Result<SyncResponse, Status> {
        self.public
            .call(|channel| {
                let request = self.on_behalf(token, request);
                async move { DeviceClient::new(channel).sync(request?).await }
            })
            .await
            .map(Response::into_inner)
    }

    async fn catch_up_group(&self, token: &str, request: SyncGroupRequest) -> Result<SyncResponse, Status> {
        self.public
            .call(|channel| {
                let request = self.on_behalf(token, request.clone());
                async move { GroupsClient::new(channel).sync_group(request?).await }
            })
            .await
            .map(Response::into_inner)
    }

    async fn sessions_changed(&self, users: Vec<(AppId, String)>) -> Result<(), Status> {
        let users: Vec<SessionUser> =
            users.into_iter().map(|(app_id, user_id)| SessionUser { app_id, user_id }).collect();
        self.internal
            .call(|channel| {
                let mut request = Request::new(SessionsChangedRequest { users: users.clone() });
                request.metadata_mut().insert("authorization", self.internal_bearer.clone());
                async move { SessionsClient::new(channel).changed(request).await }
            })
            .await?;
        Ok(())
    }
}
