//! Durable state behind one trait per concern. `sql` implements them for MySQL-protocol
//! databases and SQLite; nothing outside this module writes SQL.

mod sql;

use async_trait::async_trait;

pub use sql::{Dialect, SingleNodeLock, SqlStore, StoreOptions};

/// Store options from the `[store]` configuration section.
pub fn sql_options(config: &crate::config::StoreConfig) -> StoreOptions {
    StoreOptions { max_connections: config.max_connections, sqlite_synchronous: config.sqlite_synchronous.clone() }
}

use crate::webhooks::{AttemptOutcome, Delivery, DeliveryFilter, Endpoint, EndpointPatch, NewEndpoint, OutboxEvent};

use crate::model::{
    AnswerState, App, AppId, AppSecret, AppSettings, Appended, Comment, Conversation, ConversationSettings,
    ConversationType, Device, DeviceType, Friend, FriendRequest, Group, GroupEffects, GroupLoad, GroupMember,
    GroupState, JoinRequest, Like, Message, NewGroup, NewMessage, PairsState, Post, ProfilePatch, ReactionCount,
    ReactionOutcome, ReadCursor, Relation, RequestEffect, RequestState, SendState, Sighting, TokenGenerations, User,
    Visibility,
};

/// Failures of the store. Callers turn `NotFound`/`Conflict` into domain errors;
/// `Backend` is an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A value that a BIGINT column cannot hold (past `i64::MAX`).
    #[error("{column} {value} is out of range")]
    OutOfRange { column: &'static str, value: u64 },
    /// The database is out of reach (no connection in time, or the connection broke).
    #[error("database out of reach: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Backend(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(err)
            }
            other => StoreError::Backend(other),
        }
    }
}

/// Changes an app's settings in place: `false` to refuse (the caller keeps its reason).
pub type AppChange<'a> = dyn FnMut(&mut AppSettings) -> bool + Send + 'a;

/// Decides whether a user with this many other devices may register one more.
pub type DeviceDecider<'a> = dyn FnMut(u64) -> bool + Send + 'a;

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub user_id: String,
    pub nickname: String,
    pub avatar_url: String,
    pub extra: String,
}

/// A device to register (or update, when the id exists for the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub user_id: String,
    pub device_id: String,
    pub device_type: DeviceType,
    pub model: String,
    pub os_version: String,
    pub sdk_version: String,
}

/// Why one message of a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("user {0} does not exist")]
    UnknownUser(String),
    /// The decider refused it (and kept its reason).
    #[error("refused")]
    Refused,
    /// A revision of a message that was recalled (or never stored).
    #[error("the message was recalled")]
    Recalled,
}

/// Decides whether message `index` of a batch may be written; the decider keeps its
/// reasons for refusing.
pub type SendDecider<'a> = dyn FnMut(usize, &SendState<'_>) -> bool + Send + 'a;

/// Decides a group change from its state under the lock: the effects to write, or
/// `None` to write nothing (the decider keeps its reason).
pub type GroupDecider<'a> = dyn FnMut(&GroupState) -> Option<GroupEffects> + Send + 'a;

/// What a group change did.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOutcome {
    /// The group after the change.
    pub group: Group,
    /// Users the change affected (added, removed, muted, ...); empty when it changed
    /// nothing, and then no event was written.
    pub affected: Vec<String>,
    /// The event as stored, for delivery.
    pub event: Option<Notice>,
    /// Members of a large group who joined or left, for connect's subscriptions; on
    /// the switch to large, every member.
    pub joined_large: Vec<String>,
    pub left_large: Vec<String>,
}

/// Where a history page starts (exclusive bounds; 0 means none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryCursor {
    pub before_seq: u64,
    pub before_time_ms: i64,
}

#[async_trait]
pub trait AppStore: Send + Sync {
    async fn create_app(&self, name: &str, settings: &AppSettings, secret_hash: &str, now_ms: i64) -> StoreResult<App>;
    async fn get_app(&self, app: AppId) -> StoreResult<Option<App>>;
    async fn list_apps(&self) -> StoreResult<Vec<App>>;
    /// Renames the app (`name`) and lets `change` change its settings as stored, under a
    /// lock, in one transaction; `None` when there is no such app or `change` refused.
    async fn update_app(&self, app: AppId, name: Option<&str>, change: &mut AppChange<'_>) -> StoreResult<Option<App>>;
    /// Secrets that have not expired at `now_ms`.
    async fn app_secrets(&self, app: AppId, now_ms: i64) -> StoreResult<Vec<AppSecret>>;
    /// Adds `new_hash` and makes every other secret expire at `retire_at_ms`.
    async fn rotate_secret(&self, app: AppId, new_hash: &str, retire_at_ms: i64, now_ms: i64) -> StoreResult<()>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the users that do not exist yet; returns, per input, whether it was created.
    async fn create_users(&self, app: AppId, users: &[NewUser], now_ms: i64) -> StoreResult<Vec<bool>>;
    /// The users that exist among `ids`, in no particular order.
    async fn get_users(&self, app: AppId, ids: &[String]) -> StoreResult<Vec<User>>;
    async fn update_user(
        &self,
        app: AppId,
        user_id: &str,
        patch: &ProfilePatch,
        now_ms: i64,
    ) -> StoreResult<Option<User>>;
    async fn list_users(&self, app: AppId, after_user_id: &str, limit: u32) -> StoreResult<Vec<User>>;

    /// Registers or updates a device, if `decide` admits it given how many other devices
    /// the user has (`None` when it refused); `NotFound` if the user does not exist.
    async fn upsert_device(
        &self,
        app: AppId,
        device: &NewDevice,
        now_ms: i64,
        decide: &mut DeviceDecider<'_>,
    ) -> StoreResult<Option<Device>>;
    async fn get_device(&self, app: AppId, user_id: &str, device_id: &str) -> StoreResult<Option<Device>>;
    async fn list_devices(&self, app: AppId, user_id: &str) -> StoreResult<Vec<Device>>;
    async fn remove_device(&self, app: AppId, user_id: &str, device_id: &str) -> StoreResult<bool>;
    /// Moves the device's ack cursor forward to `seq` (never back); returns the cursor.
    async fn ack(&self, app: AppId, user_id: &str, device_id: &str, seq: u64) -> StoreResult<u64>;

    async fn token_generations(
        &self,
        app: AppId,
        user_id: &str,
        device_id: &str,
    ) -> StoreResult<Option<TokenGenerations>>;
    /// Bumps the device's generation, or the user's when `device_id` is `None`.
    async fn bump_token_generation(&self, app: AppId, user_id: &str, device_id: Option<&str>) -> StoreResult<bool>;

    /// Creates a user, the account that signs in as it and its first device, atomically;
    /// `Conflict` when the username (or the user id) is taken.
    async fn create_account(
        &self,
        app: AppId,
        username: &str,
        password_hash: &str,
        user: &NewUser,
        device: &NewDevice,
        now_ms: i64,
    ) -> StoreResult<Device>;
    /// `(user_id, password_hash)` of a username.
    async fn account_by_username(&self, app: AppId, username: &str) -> StoreResult<Option<(String, String)>>;
    /// `(username, password_hash)` of the user's account.
    async fn account_of(&self, app: AppId, user_id: &str) -> StoreResult<Option<(String, String)>>;
    async fn set_password_hash(&self, app: AppId, user_id: &str, password_hash: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a batch of messages in one transaction: each message once (deduplicated
    /// on sender and `client_msg_id`), one inbox entry per recipient with that user's
    /// next seq. Per-message failures do not affect the rest of the batch.
    /// Each new message is written if `decide` admits it on its `SendState`.
    async fn append(
        &self,
        app: AppId,
        batch: &[NewMessage],
        decide: &mut SendDecider<'_>,
    ) -> StoreResult<Vec<Result<Appended, AppendError>>>;
    /// The user's latest inbox seq, `None` if the user does not exist.
    async fn latest_seq(&self, app: AppId, user_id: &str) -> StoreResult<Option<u64>>;
    /// Inbox entries with seq > `after_seq`, ascending, at most `limit`.
    async fn inbox_after(&self, app: AppId, user_id: &str, after_seq: u64, limit: u32) -> StoreResult<Vec<Message>>;
    /// A conversation as the user sees it, newest first, at most `limit`.
    async fn history(
        &self,
        app: AppId,
        user_id: &str,
        conversation: (ConversationType, &str),
        cursor: HistoryCursor,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
}

/// Messages to every user of an app, stored once on a timeline of the app's own (named
/// by the message's `receiver_id`) that every user reads like a large group's
/// (`GroupStore::timeline_after`).
#[async_trait]
pub trait AnnouncementStore: Send + Sync {
    /// Stores the message as the timeline's next, unless one with its sender and
    /// `client_msg_id` is stored: then that one's outcome, `duplicate`. Its webhook
    /// events are written with it.
    async fn announce(&self, app: AppId, message: &NewMessage) -> StoreResult<Appended>;
    /// The seq of a timeline's last message (0: none).
    async fn latest_on_timeline(&self, app: AppId, timeline: &str) -> StoreResult<u64>;
}

/// One entry of a user's inbox, without the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    pub seq: u64,
    pub message_id: u64,
    pub conversation_type: ConversationType,
    pub conversation_id: String,
}

#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Writes a new group's row, then decides and writes its first members and event
    /// like any change; `Conflict` if the id is taken.
    async fn create_group(
        &self,
        app: AppId,
        group: &NewGroup,
        load: &GroupLoad,
        decide: &mut GroupDecider<'_>,
    ) -> StoreResult<Option<GroupOutcome>>;
    /// Locks the group, reads what `load` asks, and writes what `decide` answers, in one
    /// transaction; `None` when it refused. `NotFound` if there is no such group.
    async fn change_group(
        &self,
        app: AppId,
        group_id: &str,
        load: &GroupLoad,
        decide: &mut GroupDecider<'_>,
    ) -> StoreResult<Option<GroupOutcome>>;
    async fn get_group(&self, app: AppId, group_id: &str) -> StoreResult<Option<Group>>;
    /// The groups of these ids that exist, in no particular order (at most 512 ids).
    async fn get_groups(&self, app: AppId, group_ids: &[&str]) -> StoreResult<Vec<Group>>;
    async fn group_member(&self, app: AppId, group_id: &str, user_id: &str) -> StoreResult<Option<GroupMember>>;
    async fn group_members(
        &self,
        app: AppId,
        group_id: &str,
        after_user_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<GroupMember>>;
    /// The groups a user is in, by id.
    async fn user_groups(&self, app: AppId, user_id: &str, after_group_id: &str, limit: u32)
    -> StoreResult<Vec<Group>>;
    /// The large groups a user is in, with their latest timeline seq.
    async fn user_large_groups(&self, app: AppId, user_id: &str) -> StoreResult<Vec<(String, u64)>>;
    async fn join_requests(&self, app: AppId, group_id: &str) -> StoreResult<Vec<JoinRequest>>;
    /// A large group's timeline after `after_seq`, ascending.
    /// `viewer`'s view: the messages it deleted for itself are there, as deleted.
    async fn timeline_after(
        &self,
        app: AppId,
        group_id: &str,
        viewer: &str,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// A group conversation's messages at positions in `(after, before)`, newest first,
    /// each with its position; without revisions and what `viewer` deleted for itself.
    async fn group_history(
        &self,
        app: AppId,
        group_id: &str,
        viewer: &str,
        after_position: u64,
        before_position: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, Message)>>;
}

/// What a read did: the cursor as stored, and whether the conversation's read point moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedRead {
    pub cursor: ReadCursor,
    pub moved: bool,
}

#[async_trait]
pub trait ReadStore: Send + Sync {
    /// The inbox entry at `seq`, if any.
    async fn inbox_entry(&self, app: AppId, user_id: &str, seq: u64) -> StoreResult<Option<InboxEntry>>;
    /// Moves a read cursor forward to `cursor.seq` (never back); returns the stored cursor.
    async fn mark_read(&self, app: AppId, user_id: &str, cursor: &ReadCursor) -> StoreResult<MarkedRead>;
    /// The same for a large group whose timeline the user reads: `cursor.seq` is a group seq.
    async fn mark_timeline_read(&self, app: AppId, user_id: &str, cursor: &ReadCursor) -> StoreResult<MarkedRead>;
    async fn read_cursors(&self, app: AppId, user_id: &str) -> StoreResult<Vec<ReadCursor>>;
}

/// Where a page of conversations ends: the last one's activity time and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationMark {
    pub last_at_ms: i64,
    pub conversation_type: ConversationType,
    pub conversation_id: String,
}

impl ConversationMark {
    /// Whether `row` comes after this mark in the list (latest activity first, then key).
    pub fn precedes(&self, row: &Conversation) -> bool {
        let mark = (std::cmp::Reverse(self.last_at_ms), self.conversation_type as i32, self.conversation_id.as_str());
        mark < (std::cmp::Reverse(row.last_at_ms), row.conversation_type as i32, row.conversation_id.as_str())
    }
}

/// A user's conversations. Messages, reads and settings change them in their own
/// transactions (`MessageStore::append`, `ReadStore::mark_read`, `update_conversation`),
/// each bumping the user's conversation version.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Shown conversations (not hidden) kept by the user's inbox (all but those of large
    /// groups it reads the timeline of), latest activity first, after `after`.
    async fn conversations(
        &self,
        app: AppId,
        user_id: &str,
        after: Option<&ConversationMark>,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>>;
    /// One conversation of the user, if it has it.
    async fn conversation(
        &self,
        app: AppId,
        user_id: &str,
        conversation: (ConversationType, &str),
    ) -> StoreResult<Option<Conversation>>;
    /// Conversations kept by the user's inbox changed after `version` (hidden ones too),
    /// in version order.
    async fn changed_conversations(
        &self,
        app: AppId,
        user_id: &str,
        version: u64,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>>;
    /// The user's conversation version and total unread count (muted conversations left out).
    async fn conversation_totals(&self, app: AppId, user_id: &str) -> StoreResult<ConversationTotals>;
    /// The user's conversations of large groups it reads the timeline of (a user has few).
    /// With `after_version`, those changed after it, or whose timeline changed since
    /// (`margin_ms` before) the user's conversation version reached it: their new messages
    /// bump no user's version.
    async fn timeline_conversations(
        &self,
        app: AppId,
        user_id: &str,
        after_version: u64,
        margin_ms: i64,
    ) -> StoreResult<Vec<Conversation>>;
    /// Changes a conversation's settings (making its row if the user has none yet).
    async fn update_conversation(
        &self,
        app: AppId,
        user_id: &str,
        conversation: (ConversationType, &str),
        settings: &ConversationSettings,
        now_ms: i64,
    ) -> StoreResult<Conversation>;
    /// The messages with these ids, as stored (seq 0).
    async fn messages_by_id(&self, app: AppId, ids: &[u64]) -> StoreResult<Vec<Message>>;
}

/// A user's conversation version and badge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConversationTotals {
    pub version: u64,
    pub unread: u64,
    /// The user's conversations of large groups it reads the timeline of.
    pub on_timeline: u64,
}

/// A notification written in the same transaction as the change it announces, as
/// stored: the message and where it landed.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub message: Message,
    pub appended: Appended,
}

/// What a change wrote, with the notices that announce it.
#[derive(Debug, Clone, PartialEq)]
pub struct Noticed<T> {
    pub value: T,
    pub notices: Vec<Notice>,
}

/// The likes and comments on some posts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reactions {
    pub likes: Vec<Like>,
    pub comments: Vec<Comment>,
}

/// The notifications of a friend request: which one is written depends on whether the
/// other user had asked first.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestNotices {
    /// To the user asked.
    pub requested: NewMessage,
    /// To both, when the request met one the other way and made them friends.
    pub accepted: NewMessage,
}

/// What a friend request did.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestOutcome {
    Requested(Vec<Notice>),
    /// The other user had asked first: they are friends now.
    BecameFriends(Vec<Notice>),
}

/// Decides a friend request from its state: the effect, or `None` to write nothing
/// (the decider keeps its reason).
pub type RequestDecider<'a> = dyn FnMut(&RequestState) -> Option<RequestEffect> + Send + 'a;

/// What a new friendship copies into each one's feed: up to `posts` of the other's latest
/// posts, those `shown` lets the new friend see.
#[derive(Clone, Copy)]
pub struct Backfill<'a> {
    pub posts: u32,
    /// Whether a post with this visibility and audience is shown to this new friend.
    pub shown: &'a (dyn Fn(Visibility, &[String], &str) -> bool + Send + Sync),
}

impl std::fmt::Debug for Backfill<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backfill").field("posts", &self.posts).finish_non_exhaustive()
    }
}

/// `user`'s answer to the friend request from `from`: to accept (with the notice to
/// write), or to turn it down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer<'a> {
    pub user: &'a str,
    pub from: &'a str,
    pub accepted: Option<&'a NewMessage>,
    pub now_ms: i64,
}

/// Decides an answer from its state: `true` to write it, `false` to refuse (the decider
/// keeps its reason).
pub type AnswerDecider<'a> = dyn FnMut(&AnswerState) -> bool + Send + 'a;
/// Decides a set of pairs to make friends, likewise.
pub type PairsDecider<'a> = dyn FnMut(&PairsState) -> bool + Send + 'a;

#[async_trait]
pub trait FriendStore: Send + Sync {
    /// How `user` stands to `other`: friends, and blocks either way.
    async fn relation(&self, app: AppId, user: &str, other: &str) -> StoreResult<Relation>;
    /// Locks the sender, reads the `RequestState`, and does what `decide` answers: stores
    /// the request (replacing an earlier one between the same two) with its notice, or
    /// makes them friends; `None` when it refused.
    async fn send_friend_request(
        &self,
        app: AppId,
        request: &FriendRequest,
        notices: &RequestNotices,
        backfill: Backfill<'_>,
        decide: &mut RequestDecider<'_>,
    ) -> StoreResult<Option<RequestOutcome>>;
    /// Reads the `AnswerState` of the request from `from` to `user` and, if `decide`
    /// admits it, accepts it (making friends, with `accepted`) or turns it down (kept,
    /// with the time, for the sender's cool-down); `None` when it refused.
    async fn answer_friend_request(
        &self,
        app: AppId,
        answer: &Answer<'_>,
        backfill: Backfill<'_>,
        decide: &mut AnswerDecider<'_>,
    ) -> StoreResult<Option<Vec<Notice>>>;
    /// Live requests to (`incoming`) or from the user, newest first.
    async fn friend_requests(
        &self,
        app: AppId,
        user: &str,
        incoming: bool,
        now_ms: i64,
    ) -> StoreResult<Vec<FriendRequest>>;
    /// Reads the `PairsState` of the users named and, if `decide` admits it, makes each
    /// pair friends (both sides; pairs that are friends already stay as they are);
    /// `false` when it refused.
    async fn make_friends(
        &self,
        app: AppId,
        pairs: &[(String, String)],
        backfill: Backfill<'_>,
        now_ms: i64,
        decide: &mut PairsDecider<'_>,
    ) -> StoreResult<bool>;
    /// Ends each pair's friendship on both sides, with the notices; returns how many
    /// pairs were friends.
    async fn break_friends(
        &self,
        app: AppId,
        pairs: &[(String, String)],
        notices: &[NewMessage],
    ) -> StoreResult<Noticed<u64>>;
    async fn friend(&self, app: AppId, user: &str, friend: &str) -> StoreResult<Option<Friend>>;
    async fn friends(&self, app: AppId, user: &str, after_friend_id: &str, limit: u32) -> StoreResult<Vec<Friend>>;
    /// Every friend of the user, by id.
    async fn friend_ids(&self, app: AppId, user: &str) -> StoreResult<Vec<String>>;
    /// Which of `others` are friends of the user.
    async fn friends_among(&self, app: AppId, user: &str, others: &[String]) -> StoreResult<Vec<String>>;
    async fn update_friend(
        &self,
        app: AppId,
        user: &str,
        friend: &str,
        remark: Option<&str>,
        extra: Option<&str>,
    ) -> StoreResult<Option<Friend>>;
    /// Blocks `blocked` (and drops its pending request to the user); `false` if it was already.
    async fn block(&self, app: AppId, user: &str, blocked: &str, now_ms: i64) -> StoreResult<bool>;
    async fn unblock(&self, app: AppId, user: &str, blocked: &str) -> StoreResult<bool>;
    async fn blocked(&self, app: AppId, user: &str) -> StoreResult<Vec<String>>;
}

/// A comment to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    pub post_id: u64,
    pub comment_id: u64,
    pub user_id: String,
    /// The post's author.
    pub author_id: String,
    pub reply_to_user_id: String,
    pub reply_to_comment_id: u64,
    pub text: String,
    pub created_at_ms: i64,
}

/// Where a page of posts starts: ids below `before_post_id` (0: the newest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostPage {
    pub before_post_id: u64,
    pub limit: u32,
}

#[async_trait]
pub trait MomentStore: Send + Sync {
    /// Stores a post with its feed entries (the author's and `readers'`) and notice; a
    /// repeated `client_post_id` returns the first post and writes nothing.
    async fn publish_post(
        &self,
        app: AppId,
        post: &Post,
        readers: &[String],
        notice: Option<&NewMessage>,
    ) -> StoreResult<Noticed<Post>>;
    /// A post that is not deleted.
    async fn get_post(&self, app: AppId, post_id: u64) -> StoreResult<Option<Post>>;
    /// Deletes the author's post with its likes and comments; `false` if there was none.
    async fn delete_post(&self, app: AppId, author_id: &str, post_id: u64) -> StoreResult<bool>;
    /// The user's feed: its own posts and those of its current friends, newest first.
    async fn feed(&self, app: AppId, user: &str, page: PostPage) -> StoreResult<Vec<Post>>;
    /// An author's posts with one of `visibilities` (all when empty), newest first.
    async fn author_posts(
        &self,
        app: AppId,
        author_id: &str,
        visibilities: &[Visibility],
        page: PostPage,
    ) -> StoreResult<Vec<Post>>;
    /// The likes and comments on `posts` that `viewer` may see: on its own posts all,
    /// on others' its own and its friends'.
    async fn reactions(&self, app: AppId, viewer: &str, posts: &[u64]) -> StoreResult<Reactions>;
    /// Likes a live post, with the notice if the like is new; `NotFound` for no post.
    async fn like(
        &self,
        app: AppId,
        post_id: u64,
        user: &str,
        notice: Option<&NewMessage>,
        now_ms: i64,
    ) -> StoreResult<Vec<Notice>>;
    async fn unlike(&self, app: AppId, post_id: u64, user: &str) -> StoreResult<bool>;
    /// Adds a comment to a live post (and to a live comment, for a reply); `NotFound` otherwise.
    async fn add_comment(
        &self,
        app: AppId,
        comment: &NewComment,
        notices: &[NewMessage],
    ) -> StoreResult<Noticed<Comment>>;
    async fn get_comment(&self, app: AppId, post_id: u64, comment_id: u64) -> StoreResult<Option<Comment>>;
    async fn delete_comment(&self, app: AppId, post_id: u64, comment_id: u64) -> StoreResult<bool>;
}

/// A search of one user's messages: every term (see `crate::terms`), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery<'a> {
    pub user_id: &'a str,
    pub terms: &'a [String],
    /// One of the user's conversations: the other user, or the group.
    pub conversation: Option<(ConversationType, &'a str)>,
    pub sender_user_id: Option<&'a str>,
    /// Sent at or after (0: no bound).
    pub after_ms: i64,
    /// Sent before (0: no bound).
    pub before_ms: i64,
    /// Older than this message (0: from the newest).
    pub before_message_id: u64,
    pub limit: u32,
}

#[async_trait]
pub trait SearchStore: Send + Sync {
    /// Messages of direct conversations the user is in, and of groups it is in (from its
    /// join, unless the group shows its history), that hold every term; never recalled
    /// ones or those the user deleted for itself.
    async fn search_messages(&self, app: AppId, query: &SearchQuery<'_>) -> StoreResult<Vec<Message>>;
}

/// How one user stands to messages named by id, for the one rule of who may see a message.
#[async_trait]
pub trait SightingStore: Send + Sync {
    /// The messages of `ids` that exist in the app, each as `viewer` stands to it, in no
    /// particular order.
    async fn sightings(&self, app: AppId, viewer: &str, ids: &[u64]) -> StoreResult<Vec<Sighting>>;
}

#[async_trait]
pub trait ReactionStore: Send + Sync {
    async fn add_reaction(
        &self,
        app: AppId,
        message_id: u64,
        user_id: &str,
        emoji: &str,
        max_per_user: u32,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome>;
    /// `false` when the user had not given that emoji.
    async fn remove_reaction(&self, app: AppId, message_id: u64, user_id: &str, emoji: &str) -> StoreResult<bool>;
    /// The reactions on each of the messages, by message id, each emoji in the order it
    /// was first given; `mine` says whether `viewer` gave it.
    async fn message_reactions(
        &self,
        app: AppId,
        message_ids: &[u64],
        viewer: &str,
    ) -> StoreResult<Vec<(u64, ReactionCount)>>;
}

/// Webhook endpoints and their outbox. Changes write their events themselves, in their
/// own transactions; this is the rest: endpoints, and the deliveries' leases and outcomes.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_endpoint(&self, app: AppId, endpoint: &NewEndpoint, now_ms: i64) -> StoreResult<Endpoint>;
    async fn endpoints(&self, app: AppId) -> StoreResult<Vec<Endpoint>>;
    async fn endpoint(&self, endpoint_id: u64) -> StoreResult<Option<Endpoint>>;
    async fn update_endpoint(
        &self,
        app: AppId,
        endpoint_id: u64,
        patch: &EndpointPatch,
        now_ms: i64,
    ) -> StoreResult<Option<Endpoint>>;
    /// Deletes the endpoint with what it is still owed; `false` if the app has no such endpoint.
    async fn delete_endpoint(&self, app: AppId, endpoint_id: u64) -> StoreResult<bool>;
    /// Gives an endpoint a new secret; the one it had signs beside it until
    /// `previous_until_ms` (0: not at all). `None` if the app has no such endpoint.
    async fn rotate_endpoint_secret(
        &self,
        app: AppId,
        endpoint_id: u64,
        secret: &str,
        previous_until_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Option<Endpoint>>;
    /// Forgets the previous secrets whose overlap ended by `now_ms`; returns how many.
    async fn forget_previous_secrets(&self, now_ms: i64) -> StoreResult<u64>;
    /// Disables an endpoint on gim's own account (its receiver said it is gone).
    async fn disable_endpoint(&self, endpoint_id: u64, reason: &str, now_ms: i64) -> StoreResult<()>;
    /// Writes the events of a change that is not the store's (a user came online).
    async fn record_events(&self, app: AppId, events: &[OutboxEvent], now_ms: i64) -> StoreResult<()>;
    /// Partitions (endpoint, part) of enabled endpoints that hold events due by `now_ms`
    /// and that no node but `node` holds.
    async fn due_partitions(&self, now_ms: i64, node: &str, limit: u32) -> StoreResult<Vec<(u64, u32)>>;
    /// Leases to `node` until `until_ms` those of `wanted` that no other node holds (rows
    /// another node is claiming at the same moment are skipped); returns the leased.
    async fn lease_partitions(
        &self,
        wanted: &[(u64, u32)],
        node: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<(u64, u32)>>;
    /// Extends `node`'s lease; `false` if it lost it.
    async fn renew_lease(&self, partition: (u64, u32), node: &str, until_ms: i64) -> StoreResult<bool>;
    async fn release_lease(&self, partition: (u64, u32), node: &str) -> StoreResult<()>;
    /// A partition's waiting deliveries after `after_id`, in the order they were written.
    async fn waiting_deliveries(&self, partition: (u64, u32), after_id: u64, limit: u32) -> StoreResult<Vec<Delivery>>;
    /// Records successful attempts of waiting deliveries, with the receivers' statuses.
    async fn finish_delivered(&self, delivered: &[(u64, u16)], now_ms: i64) -> StoreResult<()>;
    /// Records an attempt of a waiting delivery.
    async fn finish_attempt(&self, id: u64, attempts: u32, outcome: &AttemptOutcome, now_ms: i64) -> StoreResult<()>;
    /// An endpoint's deliveries, newest first.
    async fn deliveries(&self, app: AppId, endpoint_id: u64, filter: DeliveryFilter) -> StoreResult<Vec<Delivery>>;
    /// Makes dead deliveries (those of `ids`, all when empty; at most 512) waiting again.
    async fn replay_dead(&self, app: AppId, endpoint_id: u64, ids: &[u64], now_ms: i64) -> StoreResult<u64>;
    /// How many rests in a row the partition has had (0: its endpoint answers).
    async fn partition_failures(&self, partition: (u64, u32)) -> StoreResult<u32>;
    /// Rests a partition whose endpoint keeps failing until `until_ms` (its `failures`-th
    /// rest in a row), and makes dead its waiting events whose retries began (at their
    /// writing, or started over since) before `expired_before_ms`.
    async fn rest_partition(
        &self,
        partition: (u64, u32),
        failures: u32,
        until_ms: i64,
        expired_before_ms: i64,
        error: &str,
    ) -> StoreResult<()>;
    /// The partition's endpoint answered again: no more rests.
    async fn recover_partition(&self, partition: (u64, u32)) -> StoreResult<()>;
    /// Completes when this node has written events since the last call.
    async fn events_written(&self);
    /// Puts off a lane's waiting deliveries after `after_id` until `until_ms`: they wait
    /// for the lane's head, which is backing off.
    async fn defer_lane(&self, partition: (u64, u32), lane: &str, after_id: u64, until_ms: i64) -> StoreResult<()>;
    /// Deletes up to `limit` deliveries that ended before these times; returns how many.
    async fn prune_deliveries(&self, delivered_before_ms: i64, dead_before_ms: i64, limit: u32) -> StoreResult<u64>;
}

/// The whole store, as logic uses it.
pub trait Store:
    AppStore
    + UserStore
    + MessageStore
    + AnnouncementStore
    + ReadStore
    + GroupStore
    + FriendStore
    + MomentStore
    + ConversationStore
    + ReactionStore
    + SearchStore
    + SightingStore
    + WebhookStore
{
}

impl<T> Store for T where
    T: AppStore
        + UserStore
        + MessageStore
        + AnnouncementStore
        + ReadStore
        + GroupStore
        + FriendStore
        + MomentStore
        + ConversationStore
        + ReactionStore
        + SearchStore
        + SightingStore
        + WebhookStore
{
}
