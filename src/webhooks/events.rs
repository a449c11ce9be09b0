//! The events gim reports and their JSON. Every body is `{"type", "timestamp", "data"}`
//! (the Standard Webhooks shape); ids of messages are strings, as in proto3's JSON, so
//! that JavaScript reads them whole. `docs/webhooks.md` shows each kind.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::OutboxEvent;
use crate::{
    model::{AppId, Appended, ConversationType, Device, DeviceType, Message, MessageBody, NewMessage},
    proto::common::v1::{RevisionKind, message_body::Content},
};

pub const MESSAGE_CREATED: &str = "message.created";
pub const MESSAGE_RECALLED: &str = "message.recalled";
pub const MESSAGE_EDITED: &str = "message.edited";
/// A message's recipients that have no device online, resolved when it is delivered.
pub const MESSAGE_OFFLINE: &str = "message.offline";
pub const USER_ONLINE: &str = "user.online";
pub const USER_OFFLINE: &str = "user.offline";
pub const DEVICE_REGISTERED: &str = "device.registered";
pub const DEVICE_REMOVED: &str = "device.removed";

/// Kinds an endpoint may name one by one. The notices of group, friend and moment changes
/// are reported under their own names (`group.member_joined`, `friend.accepted`, ...),
/// which endpoints ask for by family.
pub const KINDS: &[&str] = &[
    MESSAGE_CREATED,
    MESSAGE_RECALLED,
    MESSAGE_EDITED,
    MESSAGE_OFFLINE,
    USER_ONLINE,
    USER_OFFLINE,
    DEVICE_REGISTERED,
    DEVICE_REMOVED,
];
pub const FAMILIES: &[&str] = &["message", "user", "device", "group", "friend", "moment"];

/// The notices of these families are their own events, not `message.created`.
const NOTICE_FAMILIES: &[&str] = &["group.", "friend.", "moment."];

/// Where a `message.offline` event keeps, until it goes out, the users it may name (`null`:
/// a large group's members, read then). Never posted, never listed.
pub const OFFLINE_CANDIDATES: &str = "candidates";

fn event(kind: &'static str, lane: String, at_ms: i64, data: Value) -> OutboxEvent {
    let payload = json!({ "type": kind, "timestamp": rfc3339(at_ms), "data": data });
    OutboxEvent { kind, lane, payload: payload.to_string() }
}

/// The events of a message the store just wrote: what it is (a message, a group or friend
/// change) and, for messages users read, who of its recipients is offline. Revisions are
/// reported by `of_revision`; a deletion or clearing for one user reports nothing.
pub fn of_message(app: AppId, new: &NewMessage, appended: &Appended) -> Vec<OutboxEvent> {
    let message = new.stored(appended);
    let lane = lane_of(&message);
    let at = message.sent_at_ms;
    match &message.body.content {
        Some(Content::Revision(_)) => Vec::new(),
        Some(Content::System(system)) if NOTICE_FAMILIES.iter().any(|family| system.event.starts_with(family)) => {
            let Some(kind) = notice_kind(&system.event) else { return Vec::new() };
            let data = json!({
                "app_id": app,
                "conversation_type": conversation_type_name(message.conversation_type),
                "receiver_id": message.receiver_id,
                "actor_user_id": system.actor_user_id,
                "target_user_ids": system.target_user_ids,
                "detail": detail_json(&system.detail),
                "message_id": message.id.to_string(),
                "recipients": recipients(appended),
            });
            vec![event(kind, lane, at, data)]
        }
        _ => {
            let recipients = recipients(appended);
            let created = json!({
                "app_id": app,
                "message": message_json(&message),
                "recipients": recipients,
            });
            let mut events = vec![event(MESSAGE_CREATED, lane.clone(), at, created)];
            // Who to notify is read when the event is delivered: "offline" means offline then.
            let mut offline = json!({ "app_id": app, "message": message_json(&message) });
            offline[OFFLINE_CANDIDATES] =
                json!(recipients.map(|users| {
                    users.into_iter().filter(|user| *user != message.sender_user_id).collect::<Vec<_>>()
                }));
            events.push(event(MESSAGE_OFFLINE, lane, at, offline));
            events
        }
    }
}

/// The event of a recall or an edit the store just wrote, of a message `revised_sender`
/// sent. It goes in the lane of that message's conversation, behind the message's own
/// events. (The revision itself is written by gim, with no sender.)
pub fn of_revision(app: AppId, new: &NewMessage, appended: &Appended, revised_sender: &str) -> Option<OutboxEvent> {
    let Some(Content::Revision(revision)) = &new.body.content else { return None };
    let kind = match revision.kind() {
        RevisionKind::Recall => MESSAGE_RECALLED,
        RevisionKind::Edit => MESSAGE_EDITED,
        _ => return None,
    };
    let mut data = json!({
        "app_id": app,
        "message_id": revision.message_ids.first().map(u64::to_string),
        "actor_user_id": revision.actor_user_id,
        "conversation_type": conversation_type_name(new.conversation_type),
        "sender_user_id": revised_sender,
        "receiver_id": new.receiver_id,
    });
    if let Some(text) = &revision.text {
        data["text"] = json!(text.text);
    }
    let lane = conversation_lane(new.conversation_type, revised_sender, &new.receiver_id);
    Some(event(kind, lane, appended.sent_at_ms, data))
}

/// An event's payload as the operator's delivery list shows it: without what gim keeps
/// only to send it.
pub fn as_listed(kind: &str, payload: String) -> String {
    if kind != MESSAGE_OFFLINE {
        return payload;
    }
    match serde_json::from_str::<Value>(&payload) {
        Ok(mut value) => {
            if let Some(data) = value["data"].as_object_mut() {
                data.remove(OFFLINE_CANDIDATES);
            }
            value.to_string()
        }
        Err(_) => payload,
    }
}

/// The kind a notice is reported as: its event name, interned among those gim writes.
fn notice_kind(name: &str) -> Option<&'static str> {
    const NOTICES: &[&str] = &[
        "group.created",
        "group.updated",
        "group.muted_all",
        "group.unmuted_all",
        "group.dismissed",
        "group.member_joined",
        "group.member_left",
        "group.members_removed",
        "group.owner_changed",
        "group.role_changed",
        "group.member_muted",
        "group.member_unmuted",
        "group.nickname_changed",
        "friend.requested",
        "friend.accepted",
        "friend.deleted",
        "moment.posted",
        "moment.liked",
        "moment.commented",
        "moment.replied",
    ];
    NOTICES.iter().copied().find(|known| *known == name)
}

/// The users whose inboxes the message landed in; `None` for a large group's timeline
/// message, which every member reads.
fn recipients(appended: &Appended) -> Option<Vec<String>> {
    if appended.timeline.is_some() {
        return None;
    }
    Some(appended.inboxes.iter().map(|(user, _)| user.clone()).collect())
}

/// The lane of a message's events: its conversation's, or for a notice of a friendship or
/// a moment, that friendship's or that moment's (their recipients' system conversations
/// hold nothing else that must stay in order with them).
fn lane_of(message: &Message) -> String {
    if let Some(Content::System(notice)) = &message.body.content
        && message.conversation_type == ConversationType::System
    {
        if notice.event.starts_with("friend.")
            && let Some(other) = notice.target_user_ids.first()
        {
            return pair_lane("f", &notice.actor_user_id, other);
        }
        if notice.event.starts_with("moment.")
            && let Some(post) = detail_json(&notice.detail)["post_id"].as_str()
        {
            return format!("m:{post}");
        }
    }
    conversation_lane(message.conversation_type, &message.sender_user_id, &message.receiver_id)
}

/// A conversation's lane: a group's, a user's system conversation, or the pair of a direct
/// conversation (both sides share it).
fn conversation_lane(conversation_type: ConversationType, sender: &str, receiver: &str) -> String {
    match conversation_type {
        ConversationType::Group => format!("g:{receiver}"),
        ConversationType::Direct => pair_lane("d", sender, receiver),
        _ => format!("u:{receiver}"),
    }
}

/// A lane of two users, the same whichever comes first.
fn pair_lane(prefix: &str, a: &str, b: &str) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{prefix}:{low}:{high}")
}

/// A user came online (first device) or went offline (last device), as friends hear it.
pub fn presence(app: AppId, user_id: &str, online: bool, devices: &[(String, DeviceType)], at_ms: i64) -> OutboxEvent {
    let kind = if online { USER_ONLINE } else { USER_OFFLINE };
    let devices: Vec<Value> = devices
        .iter()
        .map(|(device_id, device_type)| json!({ "device_id": device_id, "type": device_type_name(*device_type) }))
        .collect();
    let data = json!({ "app_id": app, "user_id": user_id, "devices": devices });
    event(kind, format!("u:{user_id}"), at_ms, data)
}

pub fn device_registered(app: AppId, device: &Device) -> OutboxEvent {
    let data = json!({
        "app_id": app,
        "user_id": device.user_id,
        "device_id": device.device_id,
        "type": device_type_name(device.device_type),
        "model": device.model,
        "os_version": device.os_version,
        "sdk_version": device.sdk_version,
    });
    event(DEVICE_REGISTERED, format!("u:{}", device.user_id), device.updated_at_ms, data)
}

pub fn device_removed(app: AppId, user_id: &str, device_id: &str, at_ms: i64) -> OutboxEvent {
    let data = json!({ "app_id": app, "user_id": user_id, "device_id": device_id });
    event(DEVICE_REMOVED, format!("u:{user_id}"), at_ms, data)
}

/// A message as the events show it.
pub fn message_json(message: &Message) -> Value {
    // A broadcast's copies are stored under ids of their own; the app knows its own.
    let client_msg_id = match &message.meta.broadcast_client_msg_id {
        Some(broadcast) => broadcast,
        None => &message.client_msg_id,
    };
    let mut value = json!({
        "id": message.id.to_string(),
        "client_msg_id": client_msg_id,
        "sender_user_id": message.sender_user_id,
        "sender_device_id": message.sender_device_id,
        "conversation_type": conversation_type_name(message.conversation_type),
        "receiver_id": message.receiver_id,
        "type": body_type_name(&message.body),
        "body": body_json(&message.body),
        "sent_at_ms": message.sent_at_ms,
    });
    if message.group_seq > 0 {
        value["group_seq"] = json!(message.group_seq);
    }
    if message.meta.reply_to > 0 {
        value["reply_to_message_id"] = json!(message.meta.reply_to.to_string());
    }
    if let Some(origin) = &message.meta.forwarded_from {
        value["forwarded_from"] = json!({
            "message_id": origin.message_id.to_string(),
            "sender_user_id": origin.sender_user_id,
            "sent_at_ms": origin.sent_at_ms,
        });
    }
    value
}

fn body_type_name(body: &MessageBody) -> &'static str {
    match &body.content {
        Some(Content::Text(_)) => "text",
        Some(Content::Image(_)) => "image",
        Some(Content::Audio(_)) => "audio",
        Some(Content::Video(_)) => "video",
        Some(Content::File(_)) => "file",
        Some(Content::Sticker(_)) => "sticker",
        Some(Content::Location(_)) => "location",
        Some(Content::Custom(_)) => "custom",
        Some(Content::System(_)) => "system",
        Some(Content::Revision(_)) => "revision",
        None => "unspecified",
    }
}

/// A body's fields as JSON, named as in the protos.
pub fn body_json(body: &MessageBody) -> Value {
    match &body.content {
        Some(Content::Text(b)) => {
            json!({ "text": b.text, "mention_user_ids": b.mention_user_ids, "mention_all": b.mention_all })
        }
        Some(Content::Image(b)) => json!({
            "url": b.url, "thumbnail_url": b.thumbnail_url, "width": b.width, "height": b.height,
            "size_bytes": b.size_bytes, "format": b.format,
        }),
        Some(Content::Audio(b)) => {
            json!({ "url": b.url, "duration_ms": b.duration_ms, "size_bytes": b.size_bytes, "format": b.format })
        }
        Some(Content::Video(b)) => json!({
            "url": b.url, "cover_url": b.cover_url, "duration_ms": b.duration_ms, "width": b.width,
            "height": b.height, "size_bytes": b.size_bytes, "format": b.format,
        }),
        Some(Content::File(b)) => {
            json!({ "url": b.url, "name": b.name, "size_bytes": b.size_bytes, "mime_type": b.mime_type })
        }
        Some(Content::Sticker(b)) => json!({ "pack_id": b.pack_id, "sticker_id": b.sticker_id, "url": b.url }),
        Some(Content::Location(b)) => json!({
            "latitude": b.latitude, "longitude": b.longitude, "title": b.title, "address": b.address,
        }),
        Some(Content::Custom(b)) => json!({ "kind": b.kind, "data": STANDARD.encode(&b.data) }),
        Some(Content::System(b)) => json!({
            "event": b.event, "actor_user_id": b.actor_user_id, "target_user_ids": b.target_user_ids,
            "detail": detail_json(&b.detail),
        }),
        Some(Content::Revision(_)) | None => Value::Null,
    }
}

/// A body as a moderation hook gives it back: `{"type": "text", "text": ...}`, with the
/// fields `body_json` writes for that type (missing ones are empty). Only bodies users may
/// send: not `system` or `revision`.
pub fn body_from_json(value: &Value) -> Result<MessageBody, String> {
    use crate::proto::common::v1::{
        AudioBody, CustomBody, FileBody, ImageBody, LocationBody, StickerBody, TextBody, VideoBody,
    };
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let number = |key: &str| value[key].as_u64().unwrap_or_default();
    let small = |key: &str| u32::try_from(number(key)).unwrap_or(u32::MAX);
    let content = match value["type"].as_str().unwrap_or_default() {
        "text" => Content::Text(TextBody {
            text: text("text"),
            mention_user_ids: value["mention_user_ids"]
                .as_array()
                .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            mention_all: value["mention_all"].as_bool().unwrap_or_default(),
        }),
        "image" => Content::Image(ImageBody {
            url: text("url"),
            thumbnail_url: text("thumbnail_url"),
            width: small("width"),
            height: small("height"),
            size_bytes: number("size_bytes"),
            format: text("format"),
        }),
        "audio" => Content::Audio(AudioBody {
            url: text("url"),
            duration_ms: small("duration_ms"),
            size_bytes: number("size_bytes"),
            format: text("format"),
        }),
        "video" => Content::Video(VideoBody {
            url: text("url"),
            cover_url: text("cover_url"),
            duration_ms: small("duration_ms"),
            width: small("width"),
            height: small("height"),
            size_bytes: number("size_bytes"),
            format: text("format"),
        }),
        "file" => Content::File(FileBody {
            url: text("url"),
            name: text("name"),
            size_bytes: number("size_bytes"),
            mime_type: text("mime_type"),
        }),
        "sticker" => {
            Content::Sticker(StickerBody { pack_id: text("pack_id"), sticker_id: text("sticker_id"), url: text("url") })
        }
        "location" => Content::Location(LocationBody {
            latitude: value["latitude"].as_f64().unwrap_or_default(),
            longitude: value["longitude"].as_f64().unwrap_or_default(),
            title: text("title"),
            address: text("address"),
        }),
        "custom" => Content::Custom(CustomBody {
            kind: text("kind"),
            data: STANDARD.decode(text("data")).map_err(|_| "a custom body's data is base64")?,
        }),
        other => return Err(format!("a body of type {other:?} cannot replace a message")),
    };
    Ok(MessageBody { content: Some(content) })
}

/// A notice's detail is JSON when gim wrote it; anything else stays a string.
fn detail_json(detail: &str) -> Value {
    if detail.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(detail).unwrap_or_else(|_| Value::String(detail.to_owned()))
}

pub fn conversation_type_name(conversation_type: ConversationType) -> &'static str {
    match conversation_type {
        ConversationType::Direct => "direct",
        ConversationType::Group => "group",
        ConversationType::System => "system",
        ConversationType::Unspecified => "unspecified",
    }
}

fn device_type_name(device_type: DeviceType) -> &'static str {
    match device_type {
        DeviceType::Android => "android",
        DeviceType::Ios => "ios",
        DeviceType::Web => "web",
        DeviceType::Desktop => "desktop",
        DeviceType::Tablet => "tablet",
        DeviceType::MiniProgram => "mini_program",
        DeviceType::Other => "other",
        DeviceType::Unspecified => "unspecified",
    }
}

/// `2026-11-30T20:10:39.123Z`, without a date crate.
pub fn rfc3339(at_ms: i64) -> String {
    let secs = at_ms.div_euclid(1000);
    let millis = at_ms.rem_euclid(1000);
    let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_back_as_they_were_written() {
        let bodies = [
            r#"{"text": "hi", "mention_user_ids": ["bob"], "mention_all": true}"#,
            r#"{"url": "https://x/y.png", "thumbnail_url": "t", "width": 3, "height": 4, "size_bytes": 5, "format": "png"}"#,
            r#"{"kind": "poll", "data": "AAEC"}"#,
            r#"{"latitude": 1.5, "longitude": -2.25, "title": "here", "address": "there"}"#,
        ];
        for (kind, body) in ["text", "image", "custom", "location"].into_iter().zip(bodies) {
            let mut value: Value = serde_json::from_str(body).unwrap();
            value["type"] = json!(kind);
            let parsed = body_from_json(&value).unwrap();
            let mut written = body_json(&parsed);
            written["type"] = json!(kind);
            assert_eq!(written, value, "{kind}");
        }
        assert!(body_from_json(&json!({"type": "system", "event": "x"})).is_err());
        assert!(body_from_json(&json!({"type": "custom", "data": "not base64!"})).is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_069_439_123), "2026-11-30T20:10:39.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
