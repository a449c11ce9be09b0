//! Credentials carried in gRPC metadata, checked before a handler does anything else.

use tonic::{Status, metadata::MetadataMap};
use tracing::Span;

use crate::{
    logic::{AppCaller, DeviceCaller, GroupActor, Logic, SharedCaller},
    model::AppId,
};

pub const APP_ID: &str = "x-gim-app-id";
pub const APP_SECRET: &str = "x-gim-app-secret";
/// The user a business call acts for, on APIs shared with devices.
pub const ACTING_USER: &str = "x-gim-acting-user";

fn text<'m>(metadata: &'m MetadataMap, key: &str) -> Option<&'m str> {
    metadata.get(key).and_then(|value| value.to_str().ok()).filter(|value| !value.is_empty())
}

/// The token of `authorization: Bearer <token>`.
pub fn bearer(metadata: &MetadataMap) -> Option<&str> {
    text(metadata, "authorization").and_then(|value| value.strip_prefix("Bearer ")).map(str::trim)
}

pub fn app_id(metadata: &MetadataMap) -> Result<AppId, Status> {
    let value =
        text(metadata, APP_ID).ok_or_else(|| Status::unauthenticated(format!("{APP_ID} metadata is required")))?;
    let app = value.parse().map_err(|_| Status::unauthenticated(format!("{APP_ID} must be a number")))?;
    Span::current().record("app", app);
    Ok(app)
}

/// A business call: app id and secret.
pub async fn business(logic: &Logic, metadata: &MetadataMap) -> Result<AppCaller, Status> {
    let app = app_id(metadata)?;
    let secret = text(metadata, APP_SECRET)
        .ok_or_else(|| Status::unauthenticated(format!("{APP_SECRET} metadata is required")))?;
    Ok(logic.authenticate_app(app, secret).await?)
}

/// A device call: a device token.
pub async fn device(logic: &Logic, metadata: &MetadataMap) -> Result<DeviceCaller, Status> {
    let token =
        bearer(metadata).ok_or_else(|| Status::unauthenticated("authorization: Bearer <device token> is required"))?;
    let caller = logic.authenticate_device(token).await?;
    let span = Span::current();
    span.record("app", caller.app);
    span.record("user", caller.user_id.as_str());
    span.record("device", caller.device_id.as_str());
    Ok(caller)
}

/// A call that devices and business backends share: a device acts as its user; a
/// business acts as `x-gim-acting-user`, or as the app itself without it.
pub async fn shared_caller(logic: &Logic, metadata: &MetadataMap) -> Result<SharedCaller, Status> {
    if bearer(metadata).is_some() {
        let caller = device(logic, metadata).await?;
        return Ok(SharedCaller {
            app: caller.app,
            actor: GroupActor::User(caller.user_id),
            device_id: Some(caller.device_id),
        });
    }
    let caller = business(logic, metadata).await?;
    match metadata.get(ACTING_USER) {
        Some(value) => {
            let user =
                value.to_str().map_err(|_| Status::invalid_argument(format!("{ACTING_USER} must be a user id")))?;
            acting_for(user);
            Ok(logic.act_as(&caller, user).await?)
        }
        None => Ok(SharedCaller { app: caller.app, actor: GroupActor::App, device_id: None }),
    }
}

/// Records the user a business call acts for in the request span.
pub fn acting_for(user_id: &str) {
    Span::current().record("user", user_id);
}
