//! How connect reaches logic for a session's device. In `gim serve` the link calls logic
//! in the same process for the device its token named when the session opened (revoking
//! the token closes the session); in a cluster it is a gRPC client that presents the
//! device's token with every call, balanced over the logic nodes. Either way errors are
//! logic's, and connect turns them into response codes and close codes.

use std::time::Duration;

use async_trait::async_trait;
use tonic::{
    Code, Request, Response, Status,
    metadata::{Ascii, MetadataValue},
};

use super::{
    ConnectError,
    logic_nodes::{LogicApi, LogicNodes},
};
use crate::{
    auth::{ClusterTokens, ON_BEHALF_HEADER},
    logic::{DeviceCaller, Error, Result},
    model::{AppId, DeviceType, now_ms},
    proto::{
        connect::v1::{
            DeviceRoomSend, SessionUser, SessionsChangedRequest, rooms_client::RoomsClient,
            sessions_client::SessionsClient,
        },
        logic::v1::{
            AckRequest, AckResponse, DeviceSendRequest, Empty, GroupSendRequest, GroupSendResponse, MarkReadRequest,
            ReadCursor, RoomSendRequest, RoomSendResponse, SendMessageResponse, SyncGroupRequest, SyncRequest,
            SyncResponse, TypingRequest, TypingResponse, device_client::DeviceClient, groups_client::GroupsClient,
            messages_client::MessagesClient,
        },
    },
};

/// A session's device: who its token named when the session opened, and the token,
/// which a link across the network presents with each call.
#[derive(Debug, Clone)]
pub struct SessionDevice {
    pub caller: DeviceCaller,
    pub token: String,
    /// When the token expires (seconds since the epoch): the session ends then.
    pub expires_at: i64,
}

impl SessionDevice {
    /// How long the token holds from now: it is refused from the first millisecond of
    /// second `expires_at` on.
    pub fn time_left(&self) -> Duration {
        let left_ms = self.expires_at.saturating_mul(1000).saturating_sub(now_ms());
        Duration::from_millis(u64::try_from(left_ms).unwrap_or(0))
    }
}

/// What a session asks of logic.
#[async_trait]
pub trait LogicLink: Send + Sync + 'static {
    /// Who a token names, revocation checked, when a session opens.
    async fn authenticate(&self, token: &str) -> Result<DeviceCaller>;
    /// The device's own calls, from its frames; they count against its rates.
    async fn send(&self, device: &SessionDevice, request: DeviceSendRequest) -> Result<SendMessageResponse>;
    async fn sync(&self, device: &SessionDevice, request: SyncRequest) -> Result<SyncResponse>;
    async fn ack(&self, device: &SessionDevice, request: AckRequest) -> Result<AckResponse>;
    async fn mark_read(&self, device: &SessionDevice, request: MarkReadRequest) -> Result<ReadCursor>;
    async fn typing(&self, device: &SessionDevice, request: TypingRequest) -> Result<TypingResponse>;
    async fn group_send(&self, device: &SessionDevice, request: GroupSendRequest) -> Result<GroupSendResponse>;
    async fn sync_group(&self, device: &SessionDevice, request: SyncGroupRequest) -> Result<SyncResponse>;
    /// A sync connect makes for the device (a catch-up after a missing push, or at
    /// open): it does not count against the device's rates.
    async fn catch_up(&self, device: &SessionDevice, request: SyncRequest) -> Result<SyncResponse>;
    /// A large group's catch-up, made for the device like `catch_up`.
    async fn catch_up_group(&self, device: &SessionDevice, request: SyncGroupRequest) -> Result<SyncResponse>;
    /// Users whose sessions opened or closed on this node (as the node, not a device).
    async fn sessions_changed(&self, users: Vec<(AppId, String)>) -> Result<()>;
    /// A device's message to a room its session is in (as the node, which checked that).
    async fn room_send(&self, device: &SessionDevice, request: RoomSendRequest) -> Result<RoomSendResponse>;

    /// The large groups the device's user is in.
    async fn large_groups(&self, device: &SessionDevice) -> Result<Vec<String>> {
        // A sync from past the end reads no messages, only the large groups.
        let page = self.catch_up(device, SyncRequest { after_seq: u64::MAX, limit: 1 }).await?;
        Ok(page.large_groups.into_iter().map(|g| g.group_id).collect())
    }
}

/// A request carrying a device token, as a device would send it.
fn with_token<T>(token: &str, message: T) -> std::result::Result<Request<T>, Status> {
    let mut request = Request::new(message);
    let value =
        format!("Bearer {token}").parse().map_err(|_| Status::unauthenticated("the token is not valid ASCII"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// What a status from a logic node means, as logic's error. A node answers in the codes
/// `logic::ErrorCode` lists; anything else is a fault.
fn error_of(status: Status) -> Error {
    let message = status.message().to_owned();
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => Error::InvalidArgument(message),
        Code::NotFound => Error::NotFound(message),
        Code::AlreadyExists | Code::Aborted => Error::Conflict(message),
        Code::PermissionDenied => Error::PermissionDenied(message),
        Code::Unauthenticated => Error::Unauthenticated(message),
        Code::FailedPrecondition => Error::FailedPrecondition(message),
        Code::ResourceExhausted => match retry_after(&status) {
            // The node's message already says what and how long.
            Some(retry_after) => Error::TooFast { what: message, retry_after },
            None => Error::LimitReached(message),
        },
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Error::Unavailable(message),
        Code::Ok | Code::Unknown | Code::Internal | Code::Unimplemented | Code::DataLoss => Error::internal(status),
    }
}

fn retry_after(status: &Status) -> Option<Duration> {
    let millis = status.metadata().get("retry-after-ms")?.to_str().ok()?.parse().ok()?;
    Some(Duration::from_millis(millis))
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
            public: LogicNodes::new(logic_addrs, LogicApi::Public)?,
            internal: LogicNodes::new(internal_addrs, LogicApi::Internal)?,
            internal_bearer: ascii(format!("Bearer {}", tokens.internal))?,
            on_behalf: ascii(tokens.on_behalf.clone())?,
        })
    }

    /// Whether a node answers on each API this link calls: a connect node is ready while
    /// both say so.
    pub fn answering(&self) -> Vec<tokio::sync::watch::Receiver<bool>> {
        vec![self.public.answering(), self.internal.answering()]
    }

    /// A call on logic's internal API, with the cluster's internal token.
    fn internal<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", self.internal_bearer.clone());
        request
    }

    /// A request for a device, from connect rather than from the device.
    fn on_behalf<T>(&self, token: &str, message: T) -> std::result::Result<Request<T>, Status> {
        let mut request = with_token(token, message)?;
        request.metadata_mut().insert(ON_BEHALF_HEADER, self.on_behalf.clone());
        Ok(request)
    }
}

/// Makes a device call on a logic node with the device's token (or, `$behalf`, marked as
/// connect's own), as `$client::$method`.
macro_rules! device_call {
    ($link:expr, $device:expr, $request:expr, $client:ident, $method:ident) => {
        device_call!($link, $device, $request, $client, $method, with_token)
    };
    ($link:expr, $device:expr, $request:expr, $client:ident, $method:ident, $make:expr) => {{
        let token = $device.token.as_str();
        $link
            .public
            .call(|channel| {
                let request = $make(token, $request.clone());
                async move { $client::new(channel).$method(request?).await }
            })
            .await
            .map(Response::into_inner)
            .map_err(error_of)
    }};
}

#[async_trait]
impl LogicLink for GrpcLink {
    async fn authenticate(&self, token: &str) -> Result<DeviceCaller> {
        let caller = self
            .public
            .call(|channel| async move { DeviceClient::new(channel).authenticate(with_token(token, Empty {})?).await })
            .await
            .map_err(error_of)?
            .into_inner();
        Ok(DeviceCaller {
            app: caller.app_id,
            user_id: caller.user_id,
            device_id: caller.device_id,
            device_type: DeviceType::try_from(caller.device_type).unwrap_or(DeviceType::Other),
        })
    }

    async fn send(&self, device: &SessionDevice, request: DeviceSendRequest) -> Result<SendMessageResponse> {
        // A send repeated on another node is stored once: it keeps its client_msg_id.
        device_call!(self, device, request, DeviceClient, send_message)
    }

    async fn sync(&self, device: &SessionDevice, request: SyncRequest) -> Result<SyncResponse> {
        device_call!(self, device, request, DeviceClient, sync)
    }

    async fn ack(&self, device: &SessionDevice, request: AckRequest) -> Result<AckResponse> {
        device_call!(self, device, request, DeviceClient, ack)
    }

    async fn mark_read(&self, device: &SessionDevice, request: MarkReadRequest) -> Result<ReadCursor> {
        device_call!(self, device, request, DeviceClient, mark_read)
    }

    async fn typing(&self, device: &SessionDevice, request: TypingRequest) -> Result<TypingResponse> {
        device_call!(self, device, request, MessagesClient, typing)
    }

    async fn group_send(&self, device: &SessionDevice, request: GroupSendRequest) -> Result<GroupSendResponse> {
        device_call!(self, device, request, GroupsClient, send_message)
    }

    async fn sync_group(&self, device: &SessionDevice, request: SyncGroupRequest) -> Result<SyncResponse> {
        device_call!(self, device, request, GroupsClient, sync_group)
    }

    async fn catch_up(&self, device: &SessionDevice, request: SyncRequest) -> Result<SyncResponse> {
        device_call!(self, device, request, DeviceClient, sync, |token, message| self.on_behalf(token, message))
    }

    async fn catch_up_group(&self, device: &SessionDevice, request: SyncGroupRequest) -> Result<SyncResponse> {
        device_call!(self, device, request, GroupsClient, sync_group, |token, message| self.on_behalf(token, message))
    }

    async fn sessions_changed(&self, users: Vec<(AppId, String)>) -> Result<()> {
        let users: Vec<SessionUser> =
            users.into_iter().map(|(app_id, user_id)| SessionUser { app_id, user_id }).collect();
        self.internal
            .call(|channel| {
                let request = self.internal(SessionsChangedRequest { users: users.clone() });
                async move { SessionsClient::new(channel).changed(request).await }
            })
            .await
            .map_err(error_of)?;
        Ok(())
    }

    async fn room_send(&self, device: &SessionDevice, request: RoomSendRequest) -> Result<RoomSendResponse> {
        let caller = &device.caller;
        let send = DeviceRoomSend {
            app_id: caller.app,
            user_id: caller.user_id.clone(),
            device_id: caller.device_id.clone(),
            send: Some(request),
        };
        self.internal
            .call(|channel| {
                let request = self.internal(send.clone());
                async move { RoomsClient::new(channel).send(request).await }
            })
            .await
            .map(Response::into_inner)
            .map_err(error_of)
    }
}
