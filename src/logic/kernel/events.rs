//! Application-defined events the business sends to devices: checked once, built once.

use crate::{
    config::Limits,
    delivery::{Delivery, Push},
    frames,
    logic::{Error, Result},
    model::AppId,
    proto::client::v1::{CustomEvent, event_push::Event},
};

/// Longest `kind` of a business event.
const MAX_EVENT_KIND: usize = 64;

/// An event the business sends (to users, or to a room): its kind and its data's size.
pub fn check_event(kind: &str, data: &[u8], limits: &Limits) -> Result<()> {
    if kind.is_empty() || kind.len() > MAX_EVENT_KIND {
        return Err(Error::invalid(format!("kind must be 1-{MAX_EVENT_KIND} characters")));
    }
    if data.len() > limits.max_message_bytes {
        return Err(Error::invalid(format!("data is limited to {} bytes", limits.max_message_bytes)));
    }
    Ok(())
}

/// An application-defined event as devices get it, once its kind and size are checked.
pub fn event_frame(kind: &str, data: Vec<u8>, limits: &Limits) -> Result<bytes::Bytes> {
    check_event(kind, &data, limits)?;
    Ok(frames::event(Event::Custom(CustomEvent { kind: kind.to_owned(), data })))
}

/// Pushes an event to the online devices of users whose ids are checked.
pub fn push_event_to(
    delivery: &dyn Delivery,
    limits: &Limits,
    (app, user_ids): (AppId, Vec<String>),
    kind: &str,
    data: Vec<u8>,
) -> Result<()> {
    let frame = event_frame(kind, data, limits)?;
    delivery.deliver(vec![Push { app, users: user_ids, group: None, skip: None, seq: 0, frame }]);
    Ok(())
}
