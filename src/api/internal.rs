//! `gim.connect.v1.Sessions` on logic nodes: connect nodes report the users whose
//! sessions opened or closed, for presence events. Internal: it takes the cluster's
//! internal token.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::SessionCalls;
use crate::{
    logic::{Accounts, DeviceCaller, Social},
    model::DeviceType,
    proto::{
        connect::v1::{
            DeviceRoomSend, SessionsChangedRequest, SessionsChangedResponse, rooms_server::Rooms,
            sessions_server::Sessions,
        },
        logic::v1::RoomSendResponse,
    },
};

/// Users one report may name at most.
const MAX_USERS: usize = 10_000;

pub struct SessionsApi {
    /// Knows the cluster's internal token.
    accounts: Arc<Accounts>,
    social: Arc<Social>,
}

impl SessionsApi {
    pub fn new(accounts: Arc<Accounts>, social: Arc<Social>) -> Self {
        Self { accounts, social }
    }
}

fn internal_only<T>(accounts: &Accounts, request: &Request<T>) -> Result<(), Status> {
    let presented = super::auth::bearer(request.metadata()).unwrap_or_default();
    if !accounts.is_internal(presented) {
        return Err(Status::unauthenticated("the internal API takes the cluster's internal token"));
    }
    Ok(())
}

/// `gim.connect.v1.Rooms` on logic nodes: devices' room messages, from the connect node
/// that holds the session (which checked that it is in the room).
pub struct RoomsApi {
    accounts: Arc<Accounts>,
    calls: SessionCalls,
}

impl RoomsApi {
    pub fn new(accounts: Arc<Accounts>, calls: SessionCalls) -> Self {
        Self { accounts, calls }
    }
}

#[tonic::async_trait]
impl Rooms for RoomsApi {
    async fn send(&self, request: Request<DeviceRoomSend>) -> Result<Response<RoomSendResponse>, Status> {
        internal_only(&self.accounts, &request)?;
        let request = request.into_inner();
        let caller = DeviceCaller {
            app: request.app_id,
            user_id: request.user_id,
            device_id: request.device_id,
            device_type: DeviceType::Other,
        };
        let span = tracing::Span::current();
        span.record("app", caller.app);
        span.record("user", caller.user_id.as_str());
        let sent = self.calls.room_send(&caller, request.send.unwrap_or_default()).await?;
        Ok(Response::new(sent))
    }
}

#[tonic::async_trait]
impl Sessions for SessionsApi {
    async fn changed(
        &self,
        request: Request<SessionsChangedRequest>,
    ) -> Result<Response<SessionsChangedResponse>, Status> {
        internal_only(&self.accounts, &request)?;
        let users = request.into_inner().users;
        if users.len() > MAX_USERS {
            return Err(Status::invalid_argument(format!("report at most {MAX_USERS} users per call")));
        }
        self.social.sessions_changed(users.into_iter().map(|user| (user.app_id, user.user_id)).collect());
        Ok(Response::new(SessionsChangedResponse {}))
    }
}
