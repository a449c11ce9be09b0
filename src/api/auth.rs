//! Credentials carried in gRPC metadata, checked before a handler does anything else.

use tonic::{Status, metadata::MetadataMap};
use tracing::Span;

use std::sync::Arc;

use crate::{
    logic::{Accounts, AppCaller, DeviceCaller, GroupActor, SharedCaller, kernel::directory::AppDirectory},
    model::AppId,
};

/// What checks a call's credentials: devices' tokens and the cluster's (`Accounts`), and
/// apps' secrets and call quotas (`AppDirectory`).
#[derive(Debug, Clone)]
pub struct Gate {
    pub accounts: Arc<Accounts>,
    pub directory: AppDirectory,
}

pub const APP_ID: &str = "x-gim-app-id";

/// Whether a connect node makes this call for a device rather than the device itself (a
/// catch-up after a missing push, the groups read when a session opens): such a call
/// does not count against the device's rates, since the server must not throttle its
/// own repairs. It carries `x-gim-on-behalf` with the cluster's on-behalf token.
fn on_behalf<T>(gate: &Gate, request: &tonic::Request<T>) -> bool {
    text(request.metadata(), crate::auth::ON_BEHALF_HEADER).is_some_and(|token| gate.accounts.is_on_behalf(token))
}
pub const APP_SECRET: &str = "x-gim-app-secret";
/// The user a business call acts for, on APIs shared with devices.
pub const ACTING_USER: &str = "x-gim-acting-user";

fn text<'m>(metadata: &'m MetadataMap, key: &str) -> Option<&'m str> {
    metadata.get(key).and_then(|value| value.to_str().ok()).filter(|value| !value.is_empty())
}

pub use crate::grpc::bearer;

pub fn app_id(metadata: &MetadataMap) -> Result<AppId, Status> {
    let value =
        text(metadata, APP_ID).ok_or_else(|| Status::unauthenticated(format!("{APP_ID} metadata is required")))?;
    let app = value.parse().map_err(|_| Status::unauthenticated(format!("{APP_ID} must be a number")))?;
    Span::current().record("app", app);
    Ok(app)
}

/// A business call: app id and secret; it counts against the app's rate.
pub async fn business(gate: &Gate, metadata: &MetadataMap) -> Result<AppCaller, Status> {
    let app = app_id(metadata)?;
    let secret = text(metadata, APP_SECRET)
        .ok_or_else(|| Status::unauthenticated(format!("{APP_SECRET} metadata is required")))?;
    let caller = gate.directory.authenticate(app, secret).await?;
    gate.directory.call(&caller)?;
    Ok(caller)
}

/// The device a token names.
async fn token_holder(gate: &Gate, metadata: &MetadataMap) -> Result<DeviceCaller, Status> {
    let token =
        bearer(metadata).ok_or_else(|| Status::unauthenticated("authorization: Bearer <device token> is required"))?;
    let caller = gate.accounts.authenticate_device(token).await?;
    let span = Span::current();
    span.record("app", caller.app);
    span.record("user", caller.user_id.as_str());
    span.record("device", caller.device_id.as_str());
    Ok(caller)
}

/// A device call: a device token; it counts against the device's and its user's rates.
pub async fn device(gate: &Gate, metadata: &MetadataMap) -> Result<DeviceCaller, Status> {
    let caller = token_holder(gate, metadata).await?;
    gate.accounts.device_call(&caller)?;
    Ok(caller)
}

/// `device`, except that a call a connect node makes for the device is not counted.
pub async fn device_or_on_behalf<T>(gate: &Gate, request: &tonic::Request<T>) -> Result<DeviceCaller, Status> {
    if on_behalf(gate, request) {
        return token_holder(gate, request.metadata()).await;
    }
    device(gate, request.metadata()).await
}

fn device_as_shared(caller: DeviceCaller) -> SharedCaller {
    SharedCaller { app: caller.app, actor: GroupActor::User(caller.user_id), device_id: Some(caller.device_id) }
}

/// `shared_caller`, except that a call a connect node makes for a device is not counted.
pub async fn shared_caller_or_on_behalf<T>(gate: &Gate, request: &tonic::Request<T>) -> Result<SharedCaller, Status> {
    if bearer(request.metadata()).is_some() && on_behalf(gate, request) {
        return Ok(device_as_shared(token_holder(gate, request.metadata()).await?));
    }
    shared_caller(gate, request.metadata()).await
}

/// A call that devices and business backends share: a device acts as its user; a
/// business acts as `x-gim-acting-user`, or as the app itself without it.
pub async fn shared_caller(gate: &Gate, metadata: &MetadataMap) -> Result<SharedCaller, Status> {
    if bearer(metadata).is_some() {
        return Ok(device_as_shared(device(gate, metadata).await?));
    }
    let caller = business(gate, metadata).await?;
    match metadata.get(ACTING_USER) {
        Some(value) => {
            let user =
                value.to_str().map_err(|_| Status::invalid_argument(format!("{ACTING_USER} must be a user id")))?;
            acting_for(user);
            Ok(gate.accounts.act_as(&caller, user).await?)
        }
        None => Ok(SharedCaller { app: caller.app, actor: GroupActor::App, device_id: None }),
    }
}

/// Records the user a business call acts for in the request span.
pub fn acting_for(user_id: &str) {
    Span::current().record("user", user_id);
}
