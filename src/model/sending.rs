//! A message on its way to the store: what the rules of sending decide on and produce,
//! and what storing it did.

use super::{ConversationType, Group, GroupMember, Message, MessageBody, MessageMeta, ReplyTo};

/// A message ready to be stored, with the users whose inboxes receive it. A group
/// message names no recipients: the store fans it out to the members (small group) or
/// appends it to the timeline (large group), under the group's lock.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Id chosen by logic; replaced only if it collides with a stored one.
    pub id: u64,
    pub client_msg_id: String,
    /// Empty for system messages.
    pub sender_user_id: String,
    pub sender_device_id: String,
    pub conversation_type: ConversationType,
    pub receiver_id: String,
    pub body: MessageBody,
    /// Reply and forward origin; a revision's changes are in its body.
    pub meta: MessageMeta,
    /// The message it replies to as it stood when sent, for the pushes.
    pub reply_to: Option<ReplyTo>,
    pub sent_at_ms: i64,
    /// Each gets one inbox entry with its next seq, and sees the conversation as
    /// `(conversation_type, conversation id)` per `Recipient`.
    pub recipients: Vec<Recipient>,
}

impl NewMessage {
    /// The message as stored, once `append` has given it its id.
    pub fn stored(&self, appended: &Appended) -> Message {
        Message {
            id: appended.id,
            client_msg_id: self.client_msg_id.clone(),
            sender_user_id: self.sender_user_id.clone(),
            sender_device_id: self.sender_device_id.clone(),
            conversation_type: self.conversation_type,
            receiver_id: self.receiver_id.clone(),
            message_type: super::message_type_of(&self.body),
            body: self.body.clone(),
            sent_at_ms: appended.sent_at_ms,
            status: super::MessageStatus::Normal,
            seq: 0,
            group_seq: appended.timeline.as_ref().map_or(0, |(_, seq)| *seq),
            meta: self.meta.clone(),
            reply_to: self.reply_to.clone(),
            reactions: Vec::new(),
        }
    }
}

/// One inbox a message lands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user_id: String,
    /// The conversation as this user sees it: for a direct message the other user.
    pub conversation_id: String,
}

/// What `append` did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub id: u64,
    pub sent_at_ms: i64,
    /// `true` when the sender had already sent this `client_msg_id`: nothing was
    /// stored and the first send's result is returned.
    pub duplicate: bool,
    /// Every inbox the message landed in: user and the seq it got there (empty for a
    /// duplicate and for a large group's timeline message).
    pub inboxes: Vec<(String, u64)>,
    /// The sender's inbox seq (0 for system messages and timeline messages).
    pub sender_seq: u64,
    /// Set for a message on a large group's timeline: the group and the message's seq.
    pub timeline: Option<(String, u64)>,
}

/// A message of a batch as the store finds its conversation, under the batch's locks:
/// what the rules of sending are decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState<'a> {
    /// Nothing to check: no user sends it (the app, a group's announcement), or a user
    /// writes to itself.
    Unchecked,
    /// A user writes to another user.
    Direct {
        friends: bool,
        /// The receiver blocked the sender.
        blocked: bool,
    },
    /// A message to a group: the group row (`None`: no such group) and the sender's
    /// membership (`None`: not a member, or no user sender).
    Group { group: Option<&'a Group>, sender: Option<&'a GroupMember> },
}

/// What adding a reaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionOutcome {
    Added,
    /// The user had given that emoji already.
    AlreadyGiven,
    /// The user has as many reactions on the message as it may.
    TooMany,
    /// The message was recalled (or is not stored).
    Recalled,
}
