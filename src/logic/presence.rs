//! Presence, kicks and business events: what the route registry and the push path
//! offer beyond messages.

use super::{Error, Logic, Result, validate};
use crate::{
    delivery::{Kick, Push},
    frames,
    model::AppId,
    proto::client::v1::{CustomEvent, KickReason, event_push::Event},
    route::Route,
};

/// Longest `kind` of a business event.
const MAX_EVENT_KIND: usize = 64;

/// An application-defined event as devices get it, once its kind and size are checked.
pub(super) fn event_frame(kind: &str, data: Vec<u8>, limits: &crate::config::Limits) -> Result<bytes::Bytes> {
    check_event(kind, &data, limits)?;
    Ok(frames::event(Event::Custom(CustomEvent { kind: kind.to_owned(), data })))
}

/// An event the business sends (to users, or to a room): its kind and its data's size.
pub(super) fn check_event(kind: &str, data: &[u8], limits: &crate::config::Limits) -> Result<()> {
    if kind.is_empty() || kind.len() > MAX_EVENT_KIND {
        return Err(Error::invalid(format!("kind must be 1-{MAX_EVENT_KIND} characters")));
    }
    if data.len() > limits.max_message_bytes {
        return Err(Error::invalid(format!("data is limited to {} bytes", limits.max_message_bytes)));
    }
    Ok(())
}

impl Logic {
    /// The online devices of each user, in request order (empty: offline).
    pub async fn presence(&self, app: AppId, user_ids: &[String]) -> Result<Vec<(String, Vec<Route>)>> {
        validate::ids("user_ids", user_ids, self.limits().max_page_size as usize, false)?;
        let mut routes = self
            .inner
            .routes
            .lookup(app, user_ids)
            .await
            .map_err(|err| Error::Unavailable(format!("presence is unavailable: {err}")))?;
        Ok(user_ids.iter().map(|user| (user.clone(), routes.remove(user).unwrap_or_default())).collect())
    }

    /// Closes the sessions of a device, or of every device of the user.
    pub async fn kick(&self, app: AppId, user_id: &str, device_id: Option<&str>, reason: &str) -> Result<()> {
        validate::id("user_id", user_id)?;
        if let Some(device_id) = device_id {
            validate::id("device_id", device_id)?;
        }
        validate::name("reason", reason, self.limits())?;
        self.get_user(app, user_id).await?;
        self.inner.delivery.kick(Kick {
            app,
            user_id: user_id.to_owned(),
            device_id: device_id.map(str::to_owned),
            reason: KickReason::Business,
            message: reason.to_owned(),
        });
        Ok(())
    }

    /// Pushes an application-defined event to the online devices of some users.
    pub async fn push_event(&self, app: AppId, user_ids: Vec<String>, kind: &str, data: Vec<u8>) -> Result<()> {
        validate::ids("user_ids", &user_ids, self.limits().max_page_size as usize, false)?;
        self.push_event_to(app, user_ids, kind, data)
    }

    /// Pushes an event to users whose ids are checked.
    pub(super) fn push_event_to(&self, app: AppId, user_ids: Vec<String>, kind: &str, data: Vec<u8>) -> Result<()> {
        let frame = event_frame(kind, data, self.limits())?;
        self.inner.delivery.deliver(vec![Push { app, users: user_ids, group: None, skip: None, seq: 0, frame }]);
        Ok(())
    }
}
