//! Sending, syncing, acknowledging and paging through messages.

use super::{DeviceCaller, Error, Logic, Page, Result, message_rules::SendRules, validate};
use crate::{
    model::{AppId, ConversationType, Message, MessageBody},
    store::{HistoryCursor, NewMessage, Recipient},
};

/// Who sends a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A device of a user (device API).
    Device(DeviceCaller),
    /// A business backend on behalf of a user.
    User(String),
    /// A business backend as the app itself.
    System,
}

/// The result of a send; a repeated `client_msg_id` gets the first send's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub message_id: u64,
    /// The sender's inbox seq (0 for system messages).
    pub seq: u64,
    pub sent_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncPage {
    pub messages: Vec<Message>,
    pub has_more: bool,
    pub latest_seq: u64,
    /// The large groups the user is in, with their latest timeline seq.
    pub large_groups: Vec<(String, u64)>,
}

impl Logic {
    /// Sends a one-to-one message: stored once, in the receiver's inbox and the
    /// sender's, then handed to delivery for their devices.
    pub async fn send_direct(
        &self,
        app: AppId,
        sender: Sender,
        receiver: &str,
        client_msg_id: &str,
        body: Option<MessageBody>,
    ) -> Result<Sent> {
        validate::id("receiver_user_id", receiver)?;
        validate::client_msg_id(client_msg_id, self.limits())?;
        validate::body(body.as_ref(), self.limits())?;
        let body = body.unwrap_or_default();
        let (sender_user, sender_device) = match &sender {
            Sender::Device(device) => (device.user_id.clone(), device.device_id.clone()),
            Sender::User(user) => {
                validate::id("sender_user_id", user)?;
                (user.clone(), String::new())
            }
            Sender::System => (String::new(), String::new()),
        };
        // Blocks and the app's friendship rule are decided in the write's transaction.
        let rules = SendRules { friends_only: self.existing_app(app).await?.settings.friendship_required };
        let (conversation_type, recipients) = if sender_user.is_empty() {
            (ConversationType::System, vec![Recipient { user_id: receiver.to_owned(), conversation_id: String::new() }])
        } else if sender_user == receiver {
            (
                ConversationType::Direct,
                vec![Recipient { user_id: receiver.to_owned(), conversation_id: receiver.to_owned() }],
            )
        } else {
            (
                ConversationType::Direct,
                vec![
                    Recipient { user_id: receiver.to_owned(), conversation_id: sender_user.clone() },
                    Recipient { user_id: sender_user.clone(), conversation_id: receiver.to_owned() },
                ],
            )
        };
        let message = NewMessage {
            id: 0,
            client_msg_id: client_msg_id.to_owned(),
            sender_user_id: sender_user,
            sender_device_id: sender_device,
            conversation_type,
            receiver_id: receiver.to_owned(),
            body,
            sent_at_ms: 0,
            recipients,
        };
        let appended = self.inner.writer.write(app, message, rules).await?;
        Ok(Sent { message_id: appended.id, seq: appended.sender_seq, sent_at_ms: appended.sent_at_ms })
    }

    /// The user's inbox after `after_seq`, in seq order.
    pub async fn sync(&self, app: AppId, user_id: &str, after_seq: u64, limit: i32) -> Result<SyncPage> {
        validate::id("user_id", user_id)?;
        let latest = self
            .store()
            .latest_seq(app, user_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("user {user_id} does not exist")))?;
        let page = self.page(limit, |n| self.store().inbox_after(app, user_id, after_seq, n)).await?;
        // Messages committed between the two reads may be newer than `latest`.
        let latest_seq = page.items.last().map_or(latest, |m| m.seq.max(latest));
        let large_groups = self.store().user_large_groups(app, user_id).await?;
        Ok(SyncPage { messages: page.items, has_more: page.has_more, latest_seq, large_groups })
    }

    /// Moves the device's acknowledged seq forward; returns where it stands.
    pub async fn ack(&self, caller: &DeviceCaller, seq: u64) -> Result<u64> {
        let latest = self.store().latest_seq(caller.app, &caller.user_id).await?.unwrap_or(0);
        if seq > latest {
            return Err(Error::invalid(format!("seq {seq} is beyond the latest seq {latest} of this user")));
        }
        match self.store().ack(caller.app, &caller.user_id, &caller.device_id, seq).await {
            Ok(acked) => Ok(acked),
            Err(crate::store::StoreError::NotFound) => {
                Err(Error::Unauthenticated("the device of this token is no longer registered".into()))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// A direct conversation of `user_id` with `peer`, newest first.
    pub async fn direct_history(
        &self,
        app: AppId,
        user_id: &str,
        peer: &str,
        cursor: HistoryCursor,
        limit: i32,
    ) -> Result<Page<Message>> {
        validate::id("user_id", user_id)?;
        validate::id("peer_user_id", peer)?;
        if cursor.before_time_ms < 0 {
            return Err(Error::invalid("before_time_ms must not be negative"));
        }
        let conversation = (ConversationType::Direct, peer);
        self.page(limit, |n| self.store().history(app, user_id, conversation, cursor, n)).await
    }
}
