//! Broadcasts: an announcement from the app to many named users at once, as a system
//! message stored for each of them, or as an event to their online devices (or to every
//! online device of the app).
//!
//! Each named user gets a message of its own (its system conversation is its own),
//! written through the group-commit writer like any send. A repeat of a broadcast finds
//! each user's message by an id derived from the broadcast's id and the user, so it
//! stores nothing again.
//!
//! A message to every user is an announcement: stored once, on the app's announcement
//! timeline (`ANNOUNCEMENTS`), which every user of the app reads like a large group's
//! timeline: it is listed in every sync's large groups, read with `SyncGroup`, and
//! pushed to every session, which connect puts in its fan-out when it opens.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use sha2::{Digest, Sha256};

use super::{
    Messaging,
    send::{MessageSender, Outgoing},
};
use crate::logic::{
    Error, Result,
    kernel::{
        events::{event_frame, push_event_to},
        pushes::pushes_of,
        validate,
    },
};
use crate::{
    model::NewMessage,
    model::{AppId, ConversationType, MessageBody, MessageMeta},
};

/// The id of every app's announcement timeline: a large-group timeline that every user
/// of the app reads. Not a valid user or group id, so it names nothing else.
pub const ANNOUNCEMENTS: &str = "~announcements";

/// What a broadcast carries.
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcastContent {
    Message { client_msg_id: String, body: Option<MessageBody> },
    Event { kind: String, data: Vec<u8> },
}

/// What a broadcast did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Broadcasted {
    pub sent: u32,
    pub unknown_user_ids: Vec<String>,
    /// Each user's message, by user (a message only).
    pub message_ids: Vec<(String, u64)>,
}

/// The client id of one user's copy: the same for every repeat of the broadcast, unique
/// per user, and within the client id's length limit.
fn copy_id(client_msg_id: &str, user: &str) -> String {
    let digest = Sha256::new().chain_update(client_msg_id).chain_update([0]).chain_update(user).finalize();
    let hex: String = digest.iter().take(12).map(|byte| format!("{byte:02x}")).collect();
    format!("bc-{hex}")
}

impl Messaging {
    pub async fn broadcast(&self, app: AppId, user_ids: Vec<String>, content: BroadcastContent) -> Result<Broadcasted> {
        let max = self.limits.max_broadcast_users;
        if user_ids.is_empty() {
            return match content {
                BroadcastContent::Event { kind, data } => {
                    let frame = event_frame(&kind, data, &self.limits)?;
                    self.delivery.announce(app, frame);
                    tracing::info!(app, kind, "event announced to every online device");
                    Ok(Broadcasted::default())
                }
                BroadcastContent::Message { client_msg_id, body } => {
                    self.announce_to_everyone(app, client_msg_id, body).await
                }
            };
        }
        validate::ids("user_ids", &user_ids, max, false)?;
        let users: Vec<String> = user_ids.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        match content {
            BroadcastContent::Event { kind, data } => {
                push_event_to(self.delivery.as_ref(), &self.limits, (app, users.clone()), &kind, data)?;
                Ok(Broadcasted { sent: u32::try_from(users.len()).unwrap_or(u32::MAX), ..Broadcasted::default() })
            }
            BroadcastContent::Message { client_msg_id, body } => {
                validate::client_msg_id(&client_msg_id, &self.limits)?;
                validate::body(body.as_ref(), &self.limits)?;
                let sends = users.iter().map(|user| {
                    let outgoing = Outgoing {
                        broadcast_client_msg_id: Some(client_msg_id.clone()),
                        ..Outgoing::new(copy_id(&client_msg_id, user), body.clone(), 0)
                    };
                    self.send_direct(app, MessageSender::System, user, outgoing)
                });
                let mut done = Broadcasted::default();
                for (user, sent) in users.iter().zip(join_all(sends).await) {
                    match sent {
                        Ok(sent) => done.message_ids.push((user.clone(), sent.message_id)),
                        Err(Error::NotFound(_)) => done.unknown_user_ids.push(user.clone()),
                        Err(err) => return Err(err),
                    }
                }
                done.sent = u32::try_from(done.message_ids.len()).unwrap_or(u32::MAX);
                tracing::info!(app, sent = done.sent, unknown = done.unknown_user_ids.len(), "broadcast stored");
                Ok(done)
            }
        }
    }
}

impl Messaging {
    /// Pushes an application-defined event to the online devices of some users.
    pub async fn push_event(&self, app: AppId, user_ids: Vec<String>, kind: &str, data: Vec<u8>) -> Result<()> {
        validate::ids("user_ids", &user_ids, self.limits.max_page_size as usize, false)?;
        push_event_to(self.delivery.as_ref(), &self.limits, (app, user_ids), kind, data)
    }

    /// A message to every user of the app, stored once on its announcement timeline and
    /// pushed to every session; a repeat of the same `client_msg_id` stores nothing again.
    async fn announce_to_everyone(
        &self,
        app: AppId,
        client_msg_id: String,
        body: Option<MessageBody>,
    ) -> Result<Broadcasted> {
        validate::client_msg_id(&client_msg_id, &self.limits)?;
        validate::body(body.as_ref(), &self.limits)?;
        let (id, sent_at_ms) = self.ids.next();
        let message = NewMessage {
            id,
            client_msg_id: copy_id(&client_msg_id, ANNOUNCEMENTS),
            sender_user_id: String::new(),
            sender_device_id: String::new(),
            conversation_type: ConversationType::System,
            receiver_id: ANNOUNCEMENTS.to_owned(),
            body: body.unwrap_or_default(),
            meta: MessageMeta { broadcast_client_msg_id: Some(client_msg_id), ..Default::default() },
            reply_to: None,
            sent_at_ms,
            recipients: Vec::new(),
        };
        let appended = self.store.announce(app, &message).await?;
        if !appended.duplicate {
            self.delivery.deliver(pushes_of(app, &message.stored(&appended), &appended));
            let seq = appended.timeline.as_ref().map_or(0, |(_, seq)| *seq);
            tracing::info!(app, seq, "announcement stored for every user");
        }
        Ok(Broadcasted {
            sent: 1,
            unknown_user_ids: Vec::new(),
            message_ids: vec![(ANNOUNCEMENTS.to_owned(), appended.id)],
        })
    }

    /// The app's announcement timeline as one of a user's large groups, if it has any.
    pub(super) async fn announcements_listed(&self, app: AppId) -> Result<Option<(String, u64)>> {
        let latest = self.store.latest_on_timeline(app, ANNOUNCEMENTS).await?;
        Ok((latest > 0).then(|| (ANNOUNCEMENTS.to_owned(), latest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_have_short_stable_ids_of_their_own() {
        let id = copy_id("launch-2026", "alice");
        assert_eq!(id, copy_id("launch-2026", "alice"));
        assert_ne!(id, copy_id("launch-2026", "bob"));
        assert_ne!(copy_id("a", "bc"), copy_id("ab", "c"));
        assert_eq!(id.len(), 27);
    }
}
