//! Reading domain records out of result rows.

use prost::Message as _;
use sqlx::{Row, any::AnyRow};

use crate::{
    model::{
        App, AppSettings, Comment, Device, Group, GroupMember, Message, MessageBody, MessageMeta, MessageStatus, Post,
        PostContent, User,
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
    Ok(Device {
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        device_type: get_enum(row, "device_type")?,
        model: row.try_get("model")?,
        os_version: row.try_get("os_version")?,
        sdk_version: row.try_get("sdk_version")?,
        acked_seq: get_u64(row, "acked_seq")?,
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
        id: get_u64(row, "app_id")?,
        name: row.try_get("name")?,
        settings,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

/// Columns of `messages m` joined with `inbox i`, in the order `message` reads them,
/// with whether the inbox's user deleted the message for itself.
pub(super) const MESSAGE_COLUMNS: &str = "m.id, m.client_msg_id, m.sender_user_id, m.sender_device_id, \
     m.conversation_type, m.receiver_id, m.message_type, m.body, m.sent_at_ms, m.status, m.group_seq, m.meta, i.seq, \
     CASE WHEN EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = i.app_id AND d.user_id = i.user_id \
     AND d.message_id = i.message_id) THEN 1 ELSE 0 END AS deleted";

/// Columns of `messages m` alone (no inbox seq), for timelines and group history.
pub(super) const BARE_MESSAGE_COLUMNS: &str = "m.id, m.client_msg_id, m.sender_user_id, m.sender_device_id, \
     m.conversation_type, m.receiver_id, m.message_type, m.body, m.sent_at_ms, m.status, m.group_seq, m.meta, 0 AS seq, \
     0 AS deleted";

/// Columns of `messages m` alone, with whether `?` (the viewer, bound first) deleted it
/// for itself: a large group's timeline as one member syncs it.
pub(super) const VIEWED_MESSAGE_COLUMNS: &str = "m.id, m.client_msg_id, m.sender_user_id, m.sender_device_id, \
     m.conversation_type, m.receiver_id, m.message_type, m.body, m.sent_at_ms, m.status, m.group_seq, m.meta, \
     0 AS seq, CASE WHEN EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = m.app_id AND d.user_id = ? \
     AND d.message_id = m.id) THEN 1 ELSE 0 END AS deleted";

/// A condition on `messages m`: `?` (the viewer) has not deleted it for itself.
pub(super) const NOT_DELETED_BY_VIEWER: &str =
    "NOT EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = m.app_id AND d.user_id = ? AND d.message_id = m.id)";

/// A condition on `messages m`: not a revision (history shows what revisions did, not them).
pub(super) const NOT_A_REVISION: &str = "m.message_type <> 10";

/// A `messages.meta` value: empty for the common message with nothing to say.
pub(super) fn meta(json: &str) -> StoreResult<MessageMeta> {
    if json.is_empty() {
        return Ok(MessageMeta::default());
    }
    serde_json::from_str(json).map_err(|err| StoreError::Corrupt(format!("message meta: {err}")))
}

pub(super) fn message(row: &AnyRow) -> StoreResult<Message> {
    let body: Vec<u8> = row.try_get("body")?;
    let body =
        MessageBody::decode(body.as_slice()).map_err(|err| StoreError::Corrupt(format!("message body: {err}")))?;
    let meta = meta(&row.try_get::<String, _>("meta")?)?;
    let deleted = row.try_get::<i64, _>("deleted")? != 0;
    // The column, not the body: a recalled message keeps its type with its body erased.
    let message_type = get_enum(row, "message_type")?;
    // Deleted for the viewer: kept in place so that its seq is accounted for, but empty.
    let (body, status, meta) = if deleted {
        (MessageBody::default(), MessageStatus::Deleted, MessageMeta::default())
    } else {
        (body, get_enum(row, "status")?, meta)
    };
    Ok(Message {
        id: get_u64(row, "id")?,
        client_msg_id: row.try_get("client_msg_id")?,
        sender_user_id: row.try_get("sender_user_id")?,
        sender_device_id: row.try_get("sender_device_id")?,
        conversation_type: get_enum(row, "conversation_type")?,
        receiver_id: row.try_get("receiver_id")?,
        message_type,
        body,
        sent_at_ms: row.try_get("sent_at_ms")?,
        status,
        seq: get_u64(row, "seq")?,
        group_seq: get_u64(row, "group_seq")?,
        meta,
        reply_to: None,
        reactions: Vec::new(),
    })
}

pub(super) const GROUP_COLUMNS: &str = "group_id, name, avatar_url, introduction, extra, owner_id, join_policy, \
     muted_all, history_visible, member_count, large, seq, position, dismissed, created_at_ms, updated_at_ms";

pub(super) fn group(row: &AnyRow) -> StoreResult<Group> {
    Ok(Group {
        group_id: row.try_get("group_id")?,
        name: row.try_get("name")?,
        avatar_url: row.try_get("avatar_url")?,
        introduction: row.try_get("introduction")?,
        extra: row.try_get("extra")?,
        owner_id: row.try_get("owner_id")?,
        join_policy: get_enum(row, "join_policy")?,
        muted_all: row.try_get::<i64, _>("muted_all")? != 0,
        history_visible: row.try_get::<i64, _>("history_visible")? != 0,
        member_count: get_u64(row, "member_count")?,
        large: row.try_get::<i64, _>("large")? != 0,
        seq: get_u64(row, "seq")?,
        position: get_u64(row, "position")?,
        dismissed: row.try_get::<i64, _>("dismissed")? != 0,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub(super) const MEMBER_COLUMNS: &str =
    "user_id, role, nickname, muted_until_ms, joined_group_seq, joined_position, joined_at_ms";

pub(super) fn member(row: &AnyRow) -> StoreResult<GroupMember> {
    Ok(GroupMember {
        user_id: row.try_get("user_id")?,
        role: get_enum(row, "role")?,
        nickname: row.try_get("nickname")?,
        muted_until_ms: row.try_get("muted_until_ms")?,
        joined_group_seq: get_u64(row, "joined_group_seq")?,
        joined_position: get_u64(row, "joined_position")?,
        joined_at_ms: row.try_get("joined_at_ms")?,
    })
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
        post_id: get_u64(row, "post_id")?,
        author_id: row.try_get("author_id")?,
        client_post_id: row.try_get("client_post_id")?,
        content,
        visibility: get_enum(row, "visibility")?,
        audience: audience(&row.try_get::<String, _>("audience")?)?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

pub(super) const COMMENT_COLUMNS: &str =
    "post_id, comment_id, user_id, reply_to_user_id, reply_to_comment_id, text, created_at_ms";

pub(super) fn comment(row: &AnyRow) -> StoreResult<Comment> {
    Ok(Comment {
        post_id: get_u64(row, "post_id")?,
        comment_id: get_u64(row, "comment_id")?,
        user_id: row.try_get("user_id")?,
        reply_to_user_id: row.try_get("reply_to_user_id")?,
        reply_to_comment_id: get_u64(row, "reply_to_comment_id")?,
        text: row.try_get("text")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

// sqlx's `Any` driver knows no unsigned integers: ids, seqs, counts and generations are
// BIGINT, enums INT. Every conversion between them and gim's types is checked here: a
// value that does not fit is an error that names its column, never a silent 0 or -1.

/// A BIGINT column holding an id, seq, count or generation (never negative).
pub(super) fn get_u64(row: &AnyRow, column: &'static str) -> StoreResult<u64> {
    u64_of(row.try_get(column)?, column)
}

/// A BIGINT value read from `column` (a scalar query's), as an unsigned value.
pub(super) fn u64_of(value: i64, column: &'static str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} holds {value}, which is negative")))
}

/// An unsigned value for a BIGINT column; one past `i64::MAX` cannot be stored (nor
/// looked up).
pub(super) fn bigint(value: u64, column: &'static str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { column, value })
}

/// A seq or id used as a range bound: one past `i64::MAX` bounds nothing more than
/// `i64::MAX` does.
pub(super) fn bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An INT column holding one of a protobuf enum's values.
pub(super) fn get_enum<E: TryFrom<i32>>(row: &AnyRow, column: &'static str) -> StoreResult<E> {
    enum_of(row.try_get(column)?, column)
}

pub(super) fn enum_of<E: TryFrom<i32>>(value: i64, column: &'static str) -> StoreResult<E> {
    i32::try_from(value)
        .ok()
        .and_then(|value| E::try_from(value).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{column} holds {value}, which this build does not know")))
}
