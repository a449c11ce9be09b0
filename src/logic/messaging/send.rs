//! Sending, syncing, acknowledging and paging through messages.

use super::Messaging;
use crate::{
    logic::{
        DeviceCaller, Error, Page, Result,
        kernel::{paging, validate, views},
        rules::message::SendRules,
    },
    model::{AppId, ConversationType, Message, MessageBody, MessageMeta, NewMessage, Origin, Recipient, ReplyTo},
    store::HistoryCursor,
};

/// What a send carries: its body, and what it answers or passes on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outgoing {
    pub client_msg_id: String,
    pub body: Option<MessageBody>,
    /// The message it replies to, in the same conversation (0: none).
    pub reply_to: u64,
    /// Set when forwarding: where the body was first sent.
    pub forwarded_from: Option<Origin>,
    /// Set for a broadcast's copy: the broadcast's own id.
    pub broadcast_client_msg_id: Option<String>,
}

impl Outgoing {
    /// A send as a caller makes it: a body, perhaps a reply (0: none).
    pub fn new(client_msg_id: String, body: Option<MessageBody>, reply_to: u64) -> Self {
        Self { client_msg_id, body, reply_to, forwarded_from: None, broadcast_client_msg_id: None }
    }
}

/// Who sends a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageSender {
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

impl Messaging {
    /// Sends a one-to-one message: stored once, in the receiver's inbox and the
    /// sender's, then handed to delivery for their devices.
    pub async fn send_direct(
        &self,
        app: AppId,
        sender: MessageSender,
        receiver: &str,
        outgoing: Outgoing,
    ) -> Result<Sent> {
        validate::id("receiver_user_id", receiver)?;
        validate::client_msg_id(&outgoing.client_msg_id, &self.limits)?;
        validate::body(outgoing.body.as_ref(), &self.limits)?;
        let (sender_user, sender_device) = sent_as(&sender)?;
        self.directory.send(app).await?;
        // Blocks and the app's friendship rule are decided in the write's transaction.
        let rules = SendRules { friends_only: self.directory.settings(app).await?.friendship_required };
        let (conversation_type, recipients) = direct_route(&sender_user, receiver);
        let viewer = Some(sender_user.as_str()).filter(|user| !user.is_empty());
        let reply_to = self
            .reply_in(app, viewer, outgoing.reply_to, |original| {
                in_direct_conversation(original, conversation_type, &sender_user, receiver)
            })
            .await?;
        let message = NewMessage {
            id: 0,
            client_msg_id: outgoing.client_msg_id,
            sender_user_id: sender_user,
            sender_device_id: sender_device,
            conversation_type,
            receiver_id: receiver.to_owned(),
            body: outgoing.body.unwrap_or_default(),
            sent_at_ms: 0,
            meta: MessageMeta {
                reply_to: outgoing.reply_to,
                forwarded_from: outgoing.forwarded_from,
                broadcast_client_msg_id: outgoing.broadcast_client_msg_id,
                ..Default::default()
            },
            reply_to,
            recipients,
        };
        let message = self.moderation.moderate(app, message).await?;
        let appended = self.writer.write(app, message, rules).await?;
        Ok(Sent { message_id: appended.id, seq: appended.sender_seq, sent_at_ms: appended.sent_at_ms })
    }

    /// What a reply to message `id` shows of it: a message `viewer` may see (`None`: the
    /// app), that `in_conversation` accepts.
    pub(super) async fn reply_in(
        &self,
        app: AppId,
        viewer: Option<&str>,
        id: u64,
        in_conversation: impl Fn(&Message) -> bool,
    ) -> Result<Option<ReplyTo>> {
        if id == 0 {
            return Ok(None);
        }
        let original = self.visible_message(app, viewer, id).await?.message;
        if !in_conversation(&original) {
            return Err(Error::invalid(format!("reply_to_message_id {id} is a message of another conversation")));
        }
        Ok(Some(views::reply_of(&original)))
    }

    /// The user's inbox after `after_seq`, in seq order.
    pub async fn sync(&self, app: AppId, user_id: &str, after_seq: u64, limit: i32) -> Result<SyncPage> {
        validate::id("user_id", user_id)?;
        let latest = self
            .store
            .latest_seq(app, user_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("user {user_id} does not exist")))?;
        let mut page =
            paging::page(&self.limits, limit, |n| self.store.inbox_after(app, user_id, after_seq, n)).await?;
        views::decorate(self.store.as_ref(), app, user_id, &mut page.items).await?;
        // Messages committed between the two reads may be newer than `latest`.
        let latest_seq = page.items.last().map_or(latest, |m| m.seq.max(latest));
        let (mut large_groups, announcements) = futures_util::try_join!(
            async { Ok(self.store.user_large_groups(app, user_id).await?) },
            self.announcements_listed(app)
        )?;
        large_groups.extend(announcements);
        Ok(SyncPage { messages: page.items, has_more: page.has_more, latest_seq, large_groups })
    }

    /// Moves the device's acknowledged seq forward; returns where it stands.
    pub async fn ack(&self, caller: &DeviceCaller, seq: u64) -> Result<u64> {
        let latest = self.store.latest_seq(caller.app, &caller.user_id).await?.unwrap_or(0);
        if seq > latest {
            return Err(Error::invalid(format!("seq {seq} is beyond the latest seq {latest} of this user")));
        }
        match self.store.ack(caller.app, &caller.user_id, &caller.device_id, seq).await {
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
        let mut page =
            paging::page(&self.limits, limit, |n| self.store.history(app, user_id, conversation, cursor, n)).await?;
        views::decorate(self.store.as_ref(), app, user_id, &mut page.items).await?;
        Ok(page)
    }
}

/// The user and device a one-to-one message is sent as (both empty for the app's system
/// messages).
fn sent_as(sender: &MessageSender) -> Result<(String, String)> {
    Ok(match sender {
        MessageSender::Device(device) => (device.user_id.clone(), device.device_id.clone()),
        MessageSender::User(user) => {
            validate::id("sender_user_id", user)?;
            (user.clone(), String::new())
        }
        MessageSender::System => (String::new(), String::new()),
    })
}

/// Where a one-to-one message lands: the app's system message in the receiver's system
/// conversation, a note to oneself once, anything else in both users' inboxes, each
/// seeing the other as the conversation.
fn direct_route(sender_user: &str, receiver: &str) -> (ConversationType, Vec<Recipient>) {
    let inbox = |user: &str, conversation: &str| Recipient {
        user_id: user.to_owned(),
        conversation_id: conversation.to_owned(),
    };
    if sender_user.is_empty() {
        (ConversationType::System, vec![inbox(receiver, "")])
    } else if sender_user == receiver {
        (ConversationType::Direct, vec![inbox(receiver, receiver)])
    } else {
        (ConversationType::Direct, vec![inbox(receiver, sender_user), inbox(sender_user, receiver)])
    }
}

/// Whether `original` belongs to the conversation a one-to-one message goes to, so that
/// it may be replied to there.
fn in_direct_conversation(
    original: &Message,
    conversation_type: ConversationType,
    sender_user: &str,
    receiver: &str,
) -> bool {
    original.conversation_type == conversation_type
        && match conversation_type {
            ConversationType::System => original.receiver_id == receiver,
            _ => {
                (original.sender_user_id == sender_user && original.receiver_id == receiver)
                    || (original.sender_user_id == receiver && original.receiver_id == sender_user)
            }
        }
}
