//! `gim.logic.v1.Account`: sign-up and sign-in with a username and password.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{auth, convert};
use crate::{
    logic::{Accounts, SignedIn},
    proto::logic::v1::{self as api, account_server::Account},
};

pub struct AccountApi {
    accounts: Arc<Accounts>,
}

impl AccountApi {
    pub fn new(accounts: Arc<Accounts>) -> Self {
        Self { accounts }
    }
}

fn session(session: SignedIn) -> api::SessionResponse {
    api::SessionResponse {
        user: Some(convert::user(session.user)),
        device: Some(convert::device(session.device)),
        token: session.token.token,
        expires_at_ms: session.token.expires_at_ms,
    }
}

#[tonic::async_trait]
impl Account for AccountApi {
    async fn sign_up(&self, request: Request<api::SignUpRequest>) -> Result<Response<api::SessionResponse>, Status> {
        let app = auth::app_id(request.metadata())?;
        let address = request.remote_addr().map(|addr| addr.ip());
        let request = request.into_inner();
        let device = convert::device_input(request.device.unwrap_or_default());
        let (username, password) = (&request.username, &request.password);
        let signed_up = self.accounts.sign_up(app, username, password, &request.nickname, device, address).await?;
        Ok(Response::new(session(signed_up)))
    }

    async fn sign_in(&self, request: Request<api::SignInRequest>) -> Result<Response<api::SessionResponse>, Status> {
        let app = auth::app_id(request.metadata())?;
        let address = request.remote_addr().map(|addr| addr.ip());
        let request = request.into_inner();
        let device = convert::device_input(request.device.unwrap_or_default());
        let signed_in = self.accounts.sign_in(app, &request.username, &request.password, device, address).await?;
        Ok(Response::new(session(signed_in)))
    }
}
