//! Reading domain records out of result rows.

use prost::Message as _;
use sqlx::{Row, any::AnyRow};

use crate::{
    model::{
        App, AppSettings, Comment, ConversationType, Device, DeviceType, Group, GroupMember, GroupRole, JoinPolicy,
        Message, MessageBody, MessageStatus, Post, PostContent, User, Visibility,
    },
    store::{StoreError, StoreResult},
};

pub(super) const USER_COLUMNS: &str = "user_id, nickname, avatar_url, extra, created_at_ms, updated_at_ms";

pub(super) fn user(row: &AnyRow) -> StoreResult<User> {
    Ok(User {
        user_id: row.try_get("user_id")?,
        nickname: row.try_get("nickname")?,
        avatar_url: row.try_get("avatar_url")?,
        extra: row.try_get("extra")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub(super) const DEVICE_COLUMNS: &str =
    "user_id, device_id, device_type, model, os_version, sdk_version, acked_seq, created_at_ms, updated_at_ms";

pub(super) fn device(row: &AnyRow) -> StoreResult<Device> {
    let device_type: i64 = row.try_get("device_type")?;
    Ok(Device {
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        device_type: DeviceType::try_from(device_type as i32).unwrap_or(DeviceType::Other),
        model: row.try_get("model")?,
        os_version: row.try_get("os_version")?,
        sdk_version: row.try_get("sdk_version")?,
        acked_seq: unsigned(row.try_get("acked_seq")?),
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub(super) const APP_COLUMNS: &str = "app_id, name, settings, created_at_ms";

pub(super) fn app(row: &AnyRow) -> StoreResult<App> {
    let settings: String = row.try_get("settings")?;
    let settings: AppSettings =
        serde_json::from_str(&settings).map_err(|err| StoreError::Corrupt(format!("app settings: {err}")))?;
    Ok(App {
        id: unsigned(row.try_get("app_id")?),
        name: row.try_get("name")?,
        settings,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

/// Columns of `messages m` joined with `inbox i`, in the order `message` reads them.
pub(super) const MESSAGE_COLUMNS: &str = "m.id, m.client_msg_id, m.sender_user_id, m.sender_device_id, \
     m.conversation_type, m.receiver_id, m.body, m.sent_at_ms, m.status, m.group_seq, i.seq";

/// Columns of `messages m` alone (no inbox seq), for timelines and group history.
pub(super) const BARE_MESSAGE_COLUMNS: &str = "m.id, m.client_msg_id, m.sender_user_id, m.sender_device_id, \
     m.conversation_type, m.receiver_id, m.body, m.sent_at_ms, m.status, m.group_seq, 0 AS seq";

pub(super) fn message(row: &AnyRow) -> StoreResult<Message> {
    let body: Vec<u8> = row.try_get("body")?;
    let body =
        MessageBody::decode(body.as_slice()).map_err(|err| StoreError::Corrupt(format!("message body: {err}")))?;
    let conversation_type: i64 = row.try_get("conversation_type")?;
    let status: i64 = row.try_get("status")?;
    Ok(Message {
        id: unsigned(row.try_get("id")?),
        client_msg_id: row.try_get("client_msg_id")?,
        sender_user_id: row.try_get("sender_user_id")?,
        sender_device_id: row.try_get("sender_device_id")?,
        conversation_type: ConversationType::try_from(conversation_type as i32).unwrap_or_default(),
        receiver_id: row.try_get("receiver_id")?,
        message_type: crate::model::message_type_of(&body),
        body,
        sent_at_ms: row.try_get("sent_at_ms")?,
        status: MessageStatus::try_from(status as i32).unwrap_or_default(),
        seq: unsigned(row.try_get("seq")?),
        group_seq: unsigned(row.try_get("group_seq")?),
    })
}

pub(super) const GROUP_COLUMNS: &str = "group_id, name, avatar_url, introduction, extra, owner_id, join_policy, \
     muted_all, history_visible, member_count, large, seq, position, dismissed, created_at_ms, updated_at_ms";

pub(super) fn group(row: &AnyRow) -> StoreResult<Group> {
    let join_policy: i64 = row.try_get("join_policy")?;
    Ok(Group {
        group_id: row.try_get("group_id")?,
        name: row.try_get("name")?,
        avatar_url: row.try_get("avatar_url")?,
        introduction: row.try_get("introduction")?,
        extra: row.try_get("extra")?,
        owner_id: row.try_get("owner_id")?,
        // A value this build does not know lets nobody in by themselves.
        join_policy: JoinPolicy::try_from(join_policy as i32).unwrap_or(JoinPolicy::InviteOnly),
        muted_all: row.try_get::<i64, _>("muted_all")? != 0,
        history_visible: row.try_get::<i64, _>("history_visible")? != 0,
        member_count: unsigned(row.try_get("member_count")?),
        large: row.try_get::<i64, _>("large")? != 0,
        seq: unsigned(row.try_get("seq")?),
        position: unsigned(row.try_get("position")?),
        dismissed: row.try_get::<i64, _>("dismissed")? != 0,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub(super) const MEMBER_COLUMNS: &str =
    "user_id, role, nickname, muted_until_ms, joined_group_seq, joined_position, joined_at_ms";

pub(super) fn member(row: &AnyRow) -> StoreResult<GroupMember> {
    let role: i64 = row.try_get("role")?;
    Ok(GroupMember {
        user_id: row.try_get("user_id")?,
        role: GroupRole::try_from(role as i32).unwrap_or(GroupRole::Member),
        nickname: row.try_get("nickname")?,
        muted_until_ms: row.try_get("muted_until_ms")?,
        joined_group_seq: unsigned(row.try_get("joined_group_seq")?),
        joined_position: unsigned(row.try_get("joined_position")?),
        joined_at_ms: row.try_get("joined_at_ms")?,
    })
}

pub(super) fn visibility(value: i64) -> Visibility {
    Visibility::try_from(value as i32).unwrap_or(Visibility::OnlyMe)
}

/// A post's audience, stored as a JSON array of user ids.
pub(super) fn audience(value: &str) -> StoreResult<Vec<String>> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(value).map_err(|err| StoreError::Corrupt(format!("post audience: {err}")))
}

pub(super) const POST_COLUMNS: &str =
    "p.post_id, p.author_id, p.client_post_id, p.content, p.visibility, p.audience, p.created_at_ms";

pub(super) fn post(row: &AnyRow) -> StoreResult<Post> {
    let content: Vec<u8> = row.try_get("content")?;
    let content =
        PostContent::decode(content.as_slice()).map_err(|err| StoreError::Corrupt(format!("post content: {err}")))?;
    Ok(Post {
        post_id: unsigned(row.try_get("post_id")?),
        author_id: row.try_get("author_id")?,
        client_post_id: row.try_get("client_post_id")?,
        content,
        visibility: visibility(row.try_get("visibility")?),
        audience: audience(&row.try_get::<String, _>("audience")?)?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

pub(super) const COMMENT_COLUMNS: &str =
    "post_id, comment_id, user_id, reply_to_user_id, reply_to_comment_id, text, created_at_ms";

pub(super) fn comment(row: &AnyRow) -> StoreResult<Comment> {
    Ok(Comment {
        post_id: unsigned(row.try_get("post_id")?),
        comment_id: unsigned(row.try_get("comment_id")?),
        user_id: row.try_get("user_id")?,
        reply_to_user_id: row.try_get("reply_to_user_id")?,
        reply_to_comment_id: unsigned(row.try_get("reply_to_comment_id")?),
        text: row.try_get("text")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

/// Ids, seqs and generations are stored as BIGINT and never negative.
pub(super) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The BIGINT form of an id or seq to look up; values past `i64::MAX` match nothing.
pub(super) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(-1)
}

/// The BIGINT form of a seq used as a range bound; values past `i64::MAX` stay the
/// largest bound there is.
pub(super) fn bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
