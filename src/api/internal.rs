//! `gim.connect.v1.Sessions` on logic nodes: connect nodes report the users whose
//! sessions opened or closed, for presence events. Internal: it takes the cluster's
//! internal token.

use tonic::{Request, Response, Status};

use crate::{
    logic::Logic,
    proto::connect::v1::{SessionsChangedRequest, SessionsChangedResponse, sessions_server::Sessions},
};

/// Users one report may name at most.
const MAX_USERS: usize = 10_000;

pub struct SessionsApi {
    logic: Logic,
}

impl SessionsApi {
    /// `logic` knows the internal token (see `LogicParts::internal_token`).
    pub fn new(logic: Logic) -> Self {
        Self { logic }
    }
}

#[tonic::async_trait]
impl Sessions for SessionsApi {
    async fn changed(
        &self,
        request: Request<SessionsChangedRequest>,
    ) -> Result<Response<SessionsChangedResponse>, Status> {
        let presented = super::auth::bearer(request.metadata()).unwrap_or_default();
        if !self.logic.is_internal(presented) {
            return Err(Status::unauthenticated("the internal API takes the cluster's internal token"));
        }
        let users = request.into_inner().users;
        if users.len() > MAX_USERS {
            return Err(Status::invalid_argument(format!("report at most {MAX_USERS} users per call")));
        }
        self.logic.sessions_changed(users.into_iter().map(|user| (user.app_id, user.user_id)).collect());
        Ok(Response::new(SessionsChangedResponse {}))
    }
}
