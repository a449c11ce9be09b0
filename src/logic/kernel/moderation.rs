//! The before-send hook: an app may have gim ask its backend about each message a device
//! sends, before the message is stored. The answer lets it through, refuses it (the
//! sender gets PERMISSION_DENIED with the business's reason, and nothing is stored), or
//! replaces its body. The app's `allow_on_failure` says what a timeout, an error or an
//! unreadable answer means.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::{directory::AppDirectory, validate};
use crate::{
    config::Limits,
    logic::{DeviceCaller, Error, Result, rules::group::GroupRefusal},
    metrics::{HookLabels, Metrics},
    model::{AppId, BeforeSendHook, ConversationType, Message, MessageBody, NewMessage, now_ms},
    outbound::AddressPolicy,
    proto::common::v1::{TextBody, message_body::Content},
    store::GroupStore,
    webhooks::{
        events::{body_from_json, body_json, message_json, rfc3339},
        sender::{Answer, Post, Sender},
        signature,
    },
};

/// The hook's wait when the app sets none.
const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Most characters of a refusal's reason passed on to the sender.
const MAX_REASON_CHARS: usize = 200;

/// What the business answered.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Allow,
    Refuse(String),
    Replace(MessageBody),
}

/// Reads the answer's JSON: `{"action": "allow" | "refuse" | "replace", "reason", "body"}`.
fn verdict_of(answer: &str) -> std::result::Result<Verdict, String> {
    let value: Value = serde_json::from_str(answer).map_err(|err| format!("the answer is not JSON: {err}"))?;
    match value["action"].as_str() {
        Some("allow") => Ok(Verdict::Allow),
        Some("refuse") => {
            let reason: String = value["reason"].as_str().unwrap_or_default().chars().take(MAX_REASON_CHARS).collect();
            Ok(Verdict::Refuse(if reason.is_empty() { "refused by the app".into() } else { reason }))
        }
        Some("replace") => body_from_json(&value["body"]).map(Verdict::Replace),
        other => Err(format!("unknown action {other:?}: answer allow, refuse or replace")),
    }
}

/// Checks a hook's settings as the operator gives them, its URL read as gim stores it.
pub fn check_hook(hook: &mut BeforeSendHook, max_timeout_ms: u64, policy: &AddressPolicy) -> Result<()> {
    hook.url = validate::outbound_url("before_send.url", &hook.url, policy)?;
    signature::key_of(&hook.secret).map_err(|err| Error::invalid(format!("before_send.secret: {err}")))?;
    if hook.timeout_ms > max_timeout_ms {
        return Err(Error::invalid(format!(
            "before_send.timeout_ms must be at most {max_timeout_ms} (webhooks.max_hook_timeout_ms)"
        )));
    }
    if !hook.direct && !hook.group && !hook.room {
        return Err(Error::invalid("before_send must moderate direct or group conversations, or rooms"));
    }
    Ok(())
}

/// What the hook is asked about: a message about to be stored or sent to a room, or a
/// new text for one.
struct Question {
    /// `message.before_send`, `message.before_edit` or `room.before_send`.
    kind: &'static str,
    /// Where the message goes: a conversation of this type, or (`None`) a room.
    conversation_type: Option<ConversationType>,
    /// The message as it would be stored (JSON, as the events show messages).
    message: Value,
    /// The same on every retry of the same send or edit.
    webhook_id: String,
}

/// Asks apps' before-send hooks about what devices send (messages, edits, room messages).
pub struct Moderation {
    pub directory: AppDirectory,
    /// Group memberships, to refuse outsiders before the hook is asked.
    pub groups: Arc<dyn GroupStore>,
    pub client: Sender,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
}

impl std::fmt::Debug for Moderation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moderation").finish_non_exhaustive()
    }
}

impl Moderation {
    /// Asks the app's hook about a message a device sends, if the app has one for its
    /// conversation: returns the message as it may be stored, or refuses it.
    pub async fn moderate(&self, app: AppId, mut message: NewMessage) -> Result<NewMessage> {
        if message.sender_device_id.is_empty() {
            // The business sent it itself: nothing to ask it.
            return Ok(message);
        }
        let asks_groups = self.directory.settings(app).await?.before_send.as_ref().is_some_and(|hook| hook.group);
        if asks_groups && message.conversation_type == ConversationType::Group {
            // Outsiders are refused here as the write would refuse them, so that they
            // cannot make gim call the business about groups they are not in.
            let member = self.groups.group_member(app, &message.receiver_id, &message.sender_user_id).await?;
            if member.is_none() {
                return Err(GroupRefusal::NotMember(message.sender_user_id).into());
            }
        }
        let mut shown = message_json(&message.stored(&crate::model::Appended {
            id: 0,
            sent_at_ms: now_ms(),
            duplicate: false,
            inboxes: Vec::new(),
            sender_seq: 0,
            timeline: None,
        }));
        if let Some(fields) = shown.as_object_mut() {
            // Not stored yet: no id, no time of its own.
            fields.remove("id");
            fields.remove("sent_at_ms");
        }
        let question = Question {
            kind: "message.before_send",
            conversation_type: Some(message.conversation_type),
            message: shown,
            webhook_id: format!("hook_{}_{}", message.sender_device_id, message.client_msg_id),
        };
        if let Some(body) = self.put(app, question).await? {
            message.body = body;
        }
        Ok(message)
    }

    /// Asks the app's hook about a device's edit of `original` to `text`, like a send:
    /// returns the text to store (the hook's replacement, if it gave one), or refuses it.
    pub async fn moderate_edit(
        &self,
        app: AppId,
        device_id: &str,
        original: &Message,
        text: TextBody,
    ) -> Result<TextBody> {
        let edited = Message { body: MessageBody { content: Some(Content::Text(text.clone())) }, ..original.clone() };
        let question = Question {
            kind: "message.before_edit",
            conversation_type: Some(original.conversation_type),
            message: message_json(&edited),
            webhook_id: format!("hook_edit_{}_{}", original.id, validate::generated_id("")),
        };
        match self.put(app, question).await?.map(|body| body.content) {
            None => Ok(text),
            Some(Some(Content::Text(replaced))) => Ok(replaced),
            Some(_) => {
                tracing::warn!(app, device_id, "the before-send hook replaced an edit with a body that is not text");
                Err(Error::invalid("an edit stays text: the app's moderation answered with another body"))
            }
        }
    }

    /// Asks the app's hook about a device's message to a room, if it moderates rooms:
    /// returns the body to send, or refuses it.
    pub async fn moderate_room(
        &self,
        caller: &DeviceCaller,
        room: &str,
        client_msg_id: &str,
        body: MessageBody,
    ) -> Result<MessageBody> {
        let question = Question {
            kind: "room.before_send",
            conversation_type: None,
            message: json!({
                "room_id": room,
                "sender_user_id": caller.user_id,
                "sender_device_id": caller.device_id,
                "client_msg_id": client_msg_id,
                "body": body_json(&body),
            }),
            webhook_id: format!("hook_room_{}", validate::generated_id("")),
        };
        Ok(self.put(caller.app, question).await?.unwrap_or(body))
    }

    /// Puts a question to the app's hook, if it has one for the conversation: `None` to
    /// go on as asked, a body to go on with instead, or the refusal.
    async fn put(&self, app: AppId, question: Question) -> Result<Option<MessageBody>> {
        let settings = self.directory.settings(app).await?;
        let Some(hook) = settings.before_send.as_ref() else { return Ok(None) };
        let wanted = match question.conversation_type {
            Some(ConversationType::Direct) => hook.direct,
            Some(ConversationType::Group) => hook.group,
            Some(_) => false,
            None => hook.room,
        };
        if !wanted {
            return Ok(None);
        }
        let started = Instant::now();
        let verdict = self.ask(app, hook, &question).await;
        let outcome = match &verdict {
            Ok(Verdict::Allow) => "allow",
            Ok(Verdict::Refuse(_)) => "refuse",
            Ok(Verdict::Replace(_)) => "replace",
            Err(_) => "failed",
        };
        self.metrics
            .hook_seconds
            .get_or_create(&HookLabels { outcome: outcome.into() })
            .observe(started.elapsed().as_secs_f64());
        match verdict {
            Ok(Verdict::Allow) => Ok(None),
            Ok(Verdict::Refuse(reason)) => Err(Error::PermissionDenied(reason)),
            Ok(Verdict::Replace(body)) => {
                validate::body(Some(&body), &self.limits)?;
                Ok(Some(body))
            }
            Err(error) if hook.allow_on_failure => {
                tracing::warn!(app, %error, kind = question.kind, "the before-send hook failed; the message goes through");
                Ok(None)
            }
            Err(error) => {
                tracing::warn!(app, %error, kind = question.kind, "the before-send hook failed; the message is refused");
                Err(Error::Unavailable("the app's moderation did not answer; try again".into()))
            }
        }
    }

    async fn ask(
        &self,
        app: AppId,
        hook: &BeforeSendHook,
        question: &Question,
    ) -> std::result::Result<Verdict, String> {
        let keys = [signature::key_of(&hook.secret)?];
        let now = now_ms();
        let data = json!({ "app_id": app, "message": question.message });
        let payload = json!({ "type": question.kind, "timestamp": rfc3339(now), "data": data }).to_string();
        let timeout_ms = if hook.timeout_ms == 0 { DEFAULT_TIMEOUT_MS } else { hook.timeout_ms };
        let post = Post {
            url: &hook.url,
            webhook_id: &question.webhook_id,
            keys: &keys,
            payload: &payload,
            timestamp_secs: now / 1000,
        };
        match self.client.post_within(post, Duration::from_millis(timeout_ms)).await {
            Answer::Status { status: 200..=299, body, .. } => verdict_of(&body),
            Answer::Status { status, .. } => Err(format!("the hook answered HTTP {status}")),
            Answer::Failed(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_verdicts() {
        assert_eq!(verdict_of(r#"{"action": "allow"}"#), Ok(Verdict::Allow));
        assert_eq!(verdict_of(r#"{"action": "refuse", "reason": "spam"}"#), Ok(Verdict::Refuse("spam".into())));
        assert_eq!(verdict_of(r#"{"action": "refuse"}"#), Ok(Verdict::Refuse("refused by the app".into())));
        let Ok(Verdict::Replace(body)) =
            verdict_of(r#"{"action": "replace", "body": {"type": "text", "text": "***"}}"#)
        else {
            panic!("a replacement");
        };
        assert_eq!(crate::model::message_type_of(&body), crate::model::MessageType::Text);
        for bad in ["", "allow", r#"{"action": "maybe"}"#, r#"{"action": "replace", "body": {"type": "system"}}"#] {
            assert!(verdict_of(bad).is_err(), "{bad}");
        }
    }
}
