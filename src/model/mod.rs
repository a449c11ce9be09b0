//! Domain records shared by the store and the use cases, and the vocabulary of the
//! rules: what a decision reads and the effects it returns, which the store writes.

mod friendship;
mod group_change;
mod sending;

use serde::{Deserialize, Serialize};

pub use self::{
    friendship::{AnswerState, PairsState, RequestEffect, RequestState},
    group_change::{GroupActor, GroupEffects, GroupLoad, GroupPatch, GroupState, NewGroup},
    sending::{Appended, NewMessage, ReactionOutcome, Recipient, SendState},
};

pub use crate::proto::{
    common::v1::{
        ConversationType, DeviceType, MessageBody, MessageStatus, MessageType, ReactionCount, ReplyTo, RevisionBody,
        RevisionKind,
    },
    logic::v1::{GroupRole, JoinPolicy, PostContent, Visibility},
};

/// Tenant id. Every row, query and cache key is scoped by one.
pub type AppId = u64;

/// An app (tenant) as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub id: AppId,
    pub name: String,
    pub settings: AppSettings,
    pub created_at_ms: i64,
}

/// Per-app switches, kept as one JSON document so that new switches need no migration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    pub accounts_enabled: bool,
    /// One-to-one messages only between friends.
    pub friendship_required: bool,
    /// No presence events to friends.
    pub presence_events_disabled: bool,
    /// The business's moderation of messages before they are stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_send: Option<BeforeSendHook>,
    /// The app's own limits; those it does not set are the deployment's.
    #[serde(skip_serializing_if = "AppQuotas::is_empty")]
    pub quotas: AppQuotas,
}

/// Limits of one app, each per logic node (`Some(0)`: no limit; `None`: the deployment's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppQuotas {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_calls_per_second: Option<u32>,
    /// Messages sent by the app's devices and backend together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sends_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_webhook_endpoints: Option<u32>,
}

impl AppQuotas {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// These quotas, with those that are not set taken from `defaults`.
    pub fn or(self, defaults: AppQuotas) -> AppQuotas {
        AppQuotas {
            business_calls_per_second: self.business_calls_per_second.or(defaults.business_calls_per_second),
            sends_per_second: self.sends_per_second.or(defaults.sends_per_second),
            max_webhook_endpoints: self.max_webhook_endpoints.or(defaults.max_webhook_endpoints),
        }
    }
}

/// Changes to an app's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSettingsPatch {
    pub accounts_enabled: Option<bool>,
    pub friendship_required: Option<bool>,
    pub presence_events_disabled: Option<bool>,
    /// `Some(None)` turns the hook off; a hook with an empty secret keeps the current one.
    pub before_send: Option<Option<BeforeSendHook>>,
    /// Drop the app's own quotas before `quotas` applies.
    pub reset_quotas: bool,
    /// The quotas to set (those `None` stay as they are).
    pub quotas: AppQuotas,
}

/// Where and how the business is asked about each message devices send, before it is
/// stored (docs/webhooks.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BeforeSendHook {
    pub url: String,
    /// `whsec_...`: requests are signed like webhook events.
    pub secret: String,
    /// The conversations it moderates, and live rooms.
    pub direct: bool,
    pub group: bool,
    pub room: bool,
    /// How long gim waits for the answer.
    pub timeout_ms: u64,
    /// On a timeout, an error or an answer gim cannot read: let the message through
    /// (`true`) or refuse it.
    pub allow_on_failure: bool,
}

/// A hashed app secret; `expires_at_ms` is set once a rotation retires it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSecret {
    pub hash: String,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: String,
    pub nickname: String,
    pub avatar_url: String,
    pub extra: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub extra: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub user_id: String,
    pub device_id: String,
    pub device_type: DeviceType,
    pub model: String,
    pub os_version: String,
    pub sdk_version: String,
    pub acked_seq: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Token generations at the time of reading (a token whose generations are lower has
/// been revoked), and the device's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGenerations {
    pub user: u64,
    pub device: u64,
    pub device_type: DeviceType,
}

/// A stored message as one user sees it (with that user's inbox seq).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: u64,
    pub client_msg_id: String,
    pub sender_user_id: String,
    pub sender_device_id: String,
    pub conversation_type: ConversationType,
    pub receiver_id: String,
    pub message_type: MessageType,
    pub body: MessageBody,
    pub sent_at_ms: i64,
    pub status: MessageStatus,
    /// The viewer's inbox seq (0 for a large group's timeline message).
    pub seq: u64,
    /// The seq on a large group's timeline (0 for an inbox message).
    pub group_seq: u64,
    pub meta: MessageMeta,
    /// What the message replies to, as it is now (filled in by logic).
    pub reply_to: Option<ReplyTo>,
    /// Filled in by logic for history and sync.
    pub reactions: Vec<ReactionCount>,
}

/// What is known of a message beyond its body, kept as JSON beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageMeta {
    /// Set once recalled: by whom (empty: the app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recalled_by: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub recalled_at_ms: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub edited_at_ms: i64,
    /// The message this one replies to (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub reply_to: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<Origin>,
    /// The `client_msg_id` the app gave the broadcast this message is a copy of (each copy
    /// is stored under an id of its own), for the webhook events that report it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast_client_msg_id: Option<String>,
}

/// Where a forwarded message was first sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub message_id: u64,
    pub sender_user_id: String,
    pub sent_at_ms: i64,
}

fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl MessageMeta {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A group as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub group_id: String,
    pub name: String,
    pub avatar_url: String,
    pub introduction: String,
    pub extra: String,
    pub owner_id: String,
    pub join_policy: JoinPolicy,
    pub muted_all: bool,
    pub history_visible: bool,
    pub member_count: u64,
    /// Reads from one timeline instead of writing to every member's inbox.
    pub large: bool,
    /// The last seq of the timeline.
    pub seq: u64,
    /// The position of the group's last message. Every group message, in either mode,
    /// takes the next one under the group's lock: history, sync and pushes share this
    /// order, whatever the clocks of the nodes that wrote the messages.
    pub position: u64,
    pub dismissed: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub user_id: String,
    pub role: GroupRole,
    pub nickname: String,
    pub muted_until_ms: i64,
    /// The timeline seq when the member joined.
    pub joined_group_seq: u64,
    /// The group's position when the member joined: its history starts after it (with
    /// the system message announcing the join).
    pub joined_position: u64,
    pub joined_at_ms: i64,
}

/// A message as one user stands to it: what decides whether that user may see it
/// (`logic`'s visibility rule), read in one go.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// The message as stored (its body kept even if the viewer deleted it for itself).
    pub message: Message,
    /// Its place in its group's order (0: not a group message).
    pub position: u64,
    /// The viewer's inbox seq of the message; `None` when it never reached the viewer's inbox.
    pub inbox_seq: Option<u64>,
    /// The viewer deleted it for itself.
    pub deleted_by_viewer: bool,
    /// Where the viewer cleared the message's conversation: an inbox seq (a large group's:
    /// a group seq) and the group position of the message there.
    pub cleared_seq: u64,
    pub cleared_position: u64,
    /// For a group message: whether the group shows its history to newcomers, and the
    /// viewer's membership (`None`: not a member, or no such group).
    pub history_visible: bool,
    pub member: Option<GroupMember>,
}

/// A request to join a group that waits for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub user_id: String,
    pub message: String,
    pub requested_at_ms: i64,
}

/// A pending friend request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendRequest {
    pub from_user_id: String,
    pub to_user_id: String,
    pub greeting: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// When the user asked turned it down (0: not yet answered).
    pub rejected_at_ms: i64,
}

/// A friend as one side of the friendship keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Friend {
    pub friend_id: String,
    pub remark: String,
    pub extra: String,
    pub since_ms: i64,
}

/// How one user stands to another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    pub friends: bool,
    /// The other user blocked this one.
    pub blocked_by_other: bool,
    /// This user blocked the other.
    pub blocking_other: bool,
}

/// A moment as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub post_id: u64,
    pub author_id: String,
    pub client_post_id: String,
    pub content: PostContent,
    pub visibility: Visibility,
    /// The chosen (CHOSEN) or excepted (EXCEPT) friends.
    pub audience: Vec<String>,
    pub created_at_ms: i64,
}

impl Post {
    /// May `viewer` see this post, given whether the two are friends.
    pub fn visible_to(&self, viewer: &str, friends: bool) -> bool {
        if viewer == self.author_id {
            return true;
        }
        match self.visibility {
            Visibility::Public => true,
            Visibility::Friends => friends,
            Visibility::Chosen => friends && self.audience.iter().any(|u| u == viewer),
            Visibility::Except => friends && !self.audience.iter().any(|u| u == viewer),
            Visibility::OnlyMe | Visibility::Unspecified => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Like {
    pub post_id: u64,
    pub user_id: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub post_id: u64,
    pub comment_id: u64,
    pub user_id: String,
    /// Set for a reply: the comment replied to and its writer.
    pub reply_to_user_id: String,
    pub reply_to_comment_id: u64,
    pub text: String,
    pub created_at_ms: i64,
}

/// What a message type follows from: the body's variant.
pub fn message_type_of(body: &MessageBody) -> MessageType {
    use crate::proto::common::v1::message_body::Content;
    match body.content {
        None => MessageType::Unspecified,
        Some(Content::Text(_)) => MessageType::Text,
        Some(Content::Image(_)) => MessageType::Image,
        Some(Content::Audio(_)) => MessageType::Audio,
        Some(Content::Video(_)) => MessageType::Video,
        Some(Content::File(_)) => MessageType::File,
        Some(Content::Sticker(_)) => MessageType::Sticker,
        Some(Content::Location(_)) => MessageType::Location,
        Some(Content::Custom(_)) => MessageType::Custom,
        Some(Content::System(_)) => MessageType::System,
        Some(Content::Revision(_)) => MessageType::Revision,
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// How far a user has read one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCursor {
    pub conversation_type: ConversationType,
    pub conversation_id: String,
    /// The user's inbox seq of the last message read.
    pub seq: u64,
    pub message_id: u64,
    pub updated_at_ms: i64,
}

/// One conversation of a user: where it stands, what the user has not read, and the
/// user's settings for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub conversation_type: ConversationType,
    pub conversation_id: String,
    /// The user's inbox seq of the latest message (0: none yet).
    pub last_seq: u64,
    pub last_message_id: u64,
    pub last_at_ms: i64,
    /// Messages from others after the read cursor.
    pub unread: u64,
    /// Of those, the ones that mention the user or everyone.
    pub mentions: u64,
    pub read_seq: u64,
    pub pinned: bool,
    /// Do not disturb: left out of the total unread count.
    pub muted: bool,
    /// Left out of the list until the next message comes.
    pub hidden: bool,
    pub draft: String,
    /// The user's conversation version when this row last changed.
    pub version: u64,
    pub updated_at_ms: i64,
    /// The user cleared the history up to this inbox seq (a large group: group seq).
    pub cleared_seq: u64,
    /// A large group the user reads the timeline of: `last_seq` and `read_seq` are group
    /// seqs, and the counts come from the timeline.
    pub on_timeline: bool,
}

/// Settings a user changes on a conversation; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationSettings {
    pub pinned: Option<bool>,
    pub muted: Option<bool>,
    pub hidden: Option<bool>,
    pub draft: Option<String>,
}

impl From<Message> for crate::proto::common::v1::Message {
    fn from(message: Message) -> Self {
        Self {
            id: message.id,
            client_msg_id: message.client_msg_id,
            sender_user_id: message.sender_user_id,
            sender_device_id: message.sender_device_id,
            conversation_type: message.conversation_type as i32,
            receiver_id: message.receiver_id,
            r#type: message.message_type as i32,
            body: Some(message.body),
            sent_at_ms: message.sent_at_ms,
            status: message.status as i32,
            seq: message.seq,
            group_seq: message.group_seq,
            recalled_by: message.meta.recalled_by.unwrap_or_default(),
            recalled_at_ms: message.meta.recalled_at_ms,
            edited_at_ms: message.meta.edited_at_ms,
            reply_to: message.reply_to,
            forwarded_from: message.meta.forwarded_from.map(|origin| crate::proto::common::v1::ForwardedFrom {
                message_id: origin.message_id,
                sender_user_id: origin.sender_user_id,
                sent_at_ms: origin.sent_at_ms,
            }),
            reactions: message.reactions,
        }
    }
}
