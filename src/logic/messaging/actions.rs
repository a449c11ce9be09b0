//! What a user does to a message after sending it: recall, edit, delete for itself,
//! react, forward; and typing.
//!
//! Recall, edit and delete are written as revisions (see `RevisionBody`) through the
//! message writer, in their conversation's lane: they take seqs like messages, so that
//! every device, online or not, applies them in order with the messages around them,
//! and the store makes the change and corrects the counts in the revision's transaction.

use std::collections::BTreeSet;

use super::{
    Messaging,
    send::{MessageSender, Outgoing, Sent},
    visibility::{Deleted, Visible},
};
use crate::logic::{
    ConversationKey, DeviceCaller, Error, Result, SharedCaller,
    kernel::{lookups, revisions::revision_message, validate, views},
    rules::message::SendRules,
};
use crate::{
    delivery::{DeviceRef, Push},
    frames,
    model::{
        AppId, ConversationType, GroupRole, Message, MessageStatus, MessageType, Origin, ReactionCount,
        ReactionOutcome, Recipient, RevisionBody, RevisionKind, now_ms,
    },
    proto::{
        client::v1::{ReactionEvent, TypingEvent, event_push::Event},
        common::v1::{TextBody, message_body::Content},
    },
};

/// The users of a message's conversation, each with the conversation's id as that user
/// sees it; `None` for a large group (its members are not listed).
type Audience = Option<Vec<(String, String)>>;

impl Messaging {
    /// Unsends a message: its body is erased and every recipient's devices get a
    /// revision. Returns the message as it now is (recalling it again changes nothing).
    pub async fn recall(&self, caller: &SharedCaller, id: u64) -> Result<Message> {
        let Visible { message, member } = self.visible_message(caller.app, caller.user(), id).await?;
        if message.status == MessageStatus::Recalled {
            return self.message_now(caller, id).await;
        }
        if message.sender_user_id.is_empty() || message.conversation_type == ConversationType::System {
            return Err(Error::PermissionDenied("messages from the app cannot be recalled".into()));
        }
        let window_ms = self.messages.recall_window_secs.saturating_mul(1000);
        let allowed = match caller.user() {
            None => true,
            Some(user) => {
                let in_window = user == message.sender_user_id
                    && window_ms > 0
                    && now_ms().saturating_sub(message.sent_at_ms) <= i64::try_from(window_ms).unwrap_or(i64::MAX);
                let moderator = member.is_some_and(|m| matches!(m.role, GroupRole::Owner | GroupRole::Admin));
                in_window || moderator
            }
        };
        if !allowed {
            return Err(Error::PermissionDenied(format!(
                "only the sender within {} s of sending, a group's owner or admins, or the app may recall a message",
                self.messages.recall_window_secs
            )));
        }
        let revision = RevisionBody {
            kind: RevisionKind::Recall as i32,
            message_ids: vec![id],
            actor_user_id: caller.user().unwrap_or_default().to_owned(),
            ..Default::default()
        };
        // One recall per message: a second (from another device, or a retry) repeats it.
        match self.write_revision(caller.app, &message, format!("recall:{id}"), revision).await {
            Ok(_) | Err(Error::FailedPrecondition(_)) => self.message_now(caller, id).await,
            Err(err) => Err(err),
        }
    }

    /// The sender changes the text of its text message.
    pub async fn edit(&self, caller: &SharedCaller, id: u64, text: Option<TextBody>) -> Result<Message> {
        let user = caller.require_user()?;
        let mut text = text.ok_or_else(|| Error::invalid("text is required"))?;
        validate::text_body(&text, &self.limits)?;
        let message = self.visible_message(caller.app, Some(user), id).await?.message;
        if message.sender_user_id != user {
            return Err(Error::PermissionDenied("only its sender may edit a message".into()));
        }
        if message.status == MessageStatus::Recalled {
            return Err(Error::FailedPrecondition(format!("message {id} was recalled")));
        }
        let Some(Content::Text(original)) = &message.body.content else {
            return Err(Error::invalid("only text messages can be edited"));
        };
        let window_ms = self.messages.edit_window_secs.saturating_mul(1000);
        if window_ms == 0 || now_ms().saturating_sub(message.sent_at_ms) > i64::try_from(window_ms).unwrap_or(i64::MAX)
        {
            return Err(Error::PermissionDenied(format!(
                "a message can be edited within {} s of sending",
                self.messages.edit_window_secs
            )));
        }
        // Mentions stay as sent: an edit notifies no one anew.
        text.mention_user_ids.clone_from(&original.mention_user_ids);
        text.mention_all = original.mention_all;
        if let Some(device_id) = &caller.device_id {
            // An edit is moderated like a send, or moderation would end at the first send.
            let mentions = (text.mention_user_ids.clone(), text.mention_all);
            text = self.moderation.moderate_edit(caller.app, device_id, &message, text).await?;
            (text.mention_user_ids, text.mention_all) = mentions;
        }
        let revision = RevisionBody {
            kind: RevisionKind::Edit as i32,
            message_ids: vec![id],
            actor_user_id: user.to_owned(),
            text: Some(text),
            up_to_seq: 0,
        };
        self.write_revision(caller.app, &message, validate::generated_id("edit_"), revision).await?;
        self.message_now(caller, id).await
    }

    /// Hides messages of one of the user's conversations from all of its devices; returns
    /// the user's inbox seq of the revision that tells them.
    pub async fn delete_for_me(
        &self,
        caller: &SharedCaller,
        (kind, conversation_id): ConversationKey<'_>,
        ids: &[u64],
    ) -> Result<u64> {
        let user = caller.require_user()?;
        let max = self.messages.max_delete_ids;
        let ids: Vec<u64> = ids.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
        if ids.is_empty() || ids.len() > max {
            return Err(Error::invalid(format!("message_ids must name 1 to {max} messages")));
        }
        match kind {
            ConversationType::Direct | ConversationType::Group => validate::id("conversation_id", conversation_id)?,
            ConversationType::System if conversation_id.is_empty() => {}
            ConversationType::System => return Err(Error::invalid("the system conversation has an empty id")),
            ConversationType::Unspecified => return Err(Error::invalid("conversation_type is required")),
        }
        // Deleting again repeats the deletion, so that a retried call succeeds.
        let found = self.visible_messages(caller.app, Some(user), &ids, Deleted::Repeatable).await?;
        let in_conversation = |message: &Message| {
            message.conversation_type == kind
                && match kind {
                    ConversationType::Direct => {
                        (message.sender_user_id == user && message.receiver_id == conversation_id)
                            || (message.sender_user_id == conversation_id && message.receiver_id == user)
                    }
                    ConversationType::Group => message.receiver_id == conversation_id,
                    _ => message.receiver_id == user,
                }
        };
        if !found.iter().all(|visible| in_conversation(&visible.message)) {
            return Err(Error::not_found("some of message_ids are not messages of this conversation"));
        }
        let revision = RevisionBody {
            kind: RevisionKind::Delete as i32,
            message_ids: ids,
            actor_user_id: user.to_owned(),
            ..Default::default()
        };
        let own = vec![Recipient { user_id: user.to_owned(), conversation_id: conversation_id.to_owned() }];
        let notice = revision_message(validate::generated_id("delete_"), (kind, conversation_id), revision, own);
        let appended = self.writer.write(caller.app, notice, SendRules::default()).await?;
        Ok(appended.inboxes.first().map_or(0, |(_, seq)| *seq))
    }

    /// Writes a recall or an edit of `message` to everyone in its conversation.
    async fn write_revision(
        &self,
        app: AppId,
        message: &Message,
        client_msg_id: String,
        revision: RevisionBody,
    ) -> Result<()> {
        let (sender, receiver) = (&message.sender_user_id, &message.receiver_id);
        let recipients = match message.conversation_type {
            // A group's revision reaches its members the way its messages do.
            ConversationType::Group => Vec::new(),
            _ if sender == receiver => vec![Recipient { user_id: sender.clone(), conversation_id: sender.clone() }],
            _ => vec![
                Recipient { user_id: sender.clone(), conversation_id: receiver.clone() },
                Recipient { user_id: receiver.clone(), conversation_id: sender.clone() },
            ],
        };
        let key = (message.conversation_type, message.receiver_id.as_str());
        let notice = revision_message(client_msg_id, key, revision, recipients);
        self.writer.write(app, notice, SendRules::default()).await.map(drop)
    }

    /// A message as it is stored now, with its reply and reactions.
    async fn message_now(&self, caller: &SharedCaller, id: u64) -> Result<Message> {
        let mut found = self.store.messages_by_id(caller.app, &[id]).await?;
        views::decorate(self.store.as_ref(), caller.app, caller.user().unwrap_or_default(), &mut found).await?;
        found.pop().ok_or_else(|| Error::not_found(format!("message {id} does not exist")))
    }

    /// Adds (`add`) or removes the user's `emoji` on a message; returns its reactions
    /// after the change, and tells the conversation's online devices.
    pub async fn react(&self, caller: &SharedCaller, id: u64, emoji: &str, add: bool) -> Result<Vec<ReactionCount>> {
        let user = caller.require_user()?;
        if !self.messages.reactions.iter().any(|allowed| allowed == emoji) {
            return Err(Error::invalid(format!(
                "emoji must be one of messages.reactions: {}",
                self.messages.reactions.join(" ")
            )));
        }
        let message = self.visible_message(caller.app, Some(user), id).await?.message;
        if message.status == MessageStatus::Recalled {
            return Err(Error::FailedPrecondition(format!("message {id} was recalled")));
        }
        let changed = if add {
            let max = self.messages.max_reactions_per_user;
            match self.store.add_reaction(caller.app, id, user, emoji, max, now_ms()).await? {
                ReactionOutcome::Added => true,
                ReactionOutcome::AlreadyGiven => false,
                ReactionOutcome::TooMany => {
                    return Err(Error::invalid(format!("at most {max} different reactions per user on a message")));
                }
                ReactionOutcome::Recalled => {
                    return Err(Error::FailedPrecondition(format!("message {id} was recalled")));
                }
            }
        } else {
            self.store.remove_reaction(caller.app, id, user, emoji).await?
        };
        let reactions: Vec<ReactionCount> =
            self.store.message_reactions(caller.app, &[id], user).await?.into_iter().map(|(_, r)| r).collect();
        let everyone: Vec<ReactionCount> =
            reactions.iter().map(|r| ReactionCount { mine: false, ..r.clone() }).collect();
        // Only a change is news: a repeated add or a remove of nothing tells no one.
        if changed && let Some(audience) = self.audience(caller.app, &message).await? {
            let skip = caller.device_id.clone().map(|device_id| DeviceRef { user_id: user.to_owned(), device_id });
            let pushes = audience
                .into_iter()
                .map(|(user_id, conversation_id)| Push {
                    app: caller.app,
                    users: vec![user_id],
                    group: None,
                    skip: skip.clone(),
                    seq: 0,
                    frame: frames::event(Event::Reaction(ReactionEvent {
                        message_id: id,
                        conversation_type: message.conversation_type as i32,
                        conversation_id,
                        user_id: user.to_owned(),
                        emoji: emoji.to_owned(),
                        added: add,
                        reactions: everyone.clone(),
                    })),
                })
                .collect();
            self.delivery.deliver(pushes);
        }
        Ok(reactions)
    }

    /// Who is told of live changes to a message (reactions): both users of a direct
    /// conversation, a small group's members; nobody for a large group (its members see
    /// counts in history and sync).
    async fn audience(&self, app: AppId, message: &Message) -> Result<Audience> {
        let (sender, receiver) = (&message.sender_user_id, &message.receiver_id);
        match message.conversation_type {
            ConversationType::Direct => {
                let mut users = vec![(receiver.clone(), sender.clone())];
                if sender != receiver {
                    users.push((sender.clone(), receiver.clone()));
                }
                Ok(Some(users))
            }
            ConversationType::Group => {
                let Some(group) = self.store.get_group(app, receiver).await? else { return Ok(None) };
                if group.large {
                    return Ok(None);
                }
                let members = self.store.group_members(app, receiver, "", u32::MAX).await?;
                Ok(Some(members.into_iter().map(|m| (m.user_id, receiver.clone())).collect()))
            }
            _ => Ok(Some(vec![(receiver.clone(), String::new())])),
        }
    }

    /// Copies a message the caller can see into other conversations, each copy with
    /// where it came from.
    pub async fn forward(
        &self,
        caller: &SharedCaller,
        id: u64,
        targets: &[(ConversationType, String)],
        client_msg_id: &str,
    ) -> Result<Vec<Sent>> {
        let user = caller.require_user()?;
        self.check_forward(targets, client_msg_id)?;
        let message = self.visible_message(caller.app, Some(user), id).await?.message;
        if message.status == MessageStatus::Recalled {
            return Err(Error::FailedPrecondition(format!("message {id} was recalled")));
        }
        if message.message_type == MessageType::System {
            return Err(Error::invalid("notices cannot be forwarded"));
        }
        // A copy of a copy points at the first message.
        let origin = message.meta.forwarded_from.clone().unwrap_or(Origin {
            message_id: message.id,
            sender_user_id: message.sender_user_id.clone(),
            sent_at_ms: message.sent_at_ms,
        });
        let mut sent = Vec::with_capacity(targets.len());
        for (index, (kind, target)) in targets.iter().enumerate() {
            let outgoing = Outgoing {
                client_msg_id: format!("{client_msg_id}/{index}"),
                body: Some(message.body.clone()),
                reply_to: 0,
                forwarded_from: Some(origin.clone()),
                broadcast_client_msg_id: None,
            };
            sent.push(self.send_copy(caller, (*kind, target), outgoing).await?);
        }
        Ok(sent)
    }

    /// A forward names 1 to `messages.max_forward_targets` conversations, and a
    /// `client_msg_id` that leaves room for "/<index>" within the id limit (each copy's).
    fn check_forward(&self, targets: &[(ConversationType, String)], client_msg_id: &str) -> Result<()> {
        let max = self.messages.max_forward_targets;
        if targets.is_empty() || targets.len() > max {
            return Err(Error::invalid(format!("targets must name 1 to {max} conversations")));
        }
        let suffix_len = 1 + (targets.len() - 1).to_string().len();
        if client_msg_id.is_empty() || client_msg_id.len() + suffix_len > self.limits.max_client_msg_id_len {
            return Err(Error::invalid(format!(
                "client_msg_id is required, at most {} bytes here",
                self.limits.max_client_msg_id_len.saturating_sub(suffix_len)
            )));
        }
        Ok(())
    }

    /// Sends one forwarded copy as the caller, from its device when it has one.
    async fn send_copy(
        &self,
        caller: &SharedCaller,
        (kind, target): ConversationKey<'_>,
        outgoing: Outgoing,
    ) -> Result<Sent> {
        match kind {
            ConversationType::Direct => {
                let user = caller.user().unwrap_or_default().to_owned();
                let sender = match &caller.device_id {
                    Some(device_id) => MessageSender::Device(DeviceCaller {
                        app: caller.app,
                        user_id: user,
                        device_id: device_id.clone(),
                        device_type: Default::default(),
                    }),
                    None => MessageSender::User(user),
                };
                self.send_direct(caller.app, sender, target, outgoing).await
            }
            ConversationType::Group => {
                let done = self.send_group(caller, target, outgoing).await?;
                Ok(Sent { message_id: done.message_id, seq: done.seq, sent_at_ms: done.sent_at_ms })
            }
            _ => Err(Error::invalid("targets are direct or group conversations")),
        }
    }

    /// Tells the other users of a direct conversation or a small group that the device's
    /// user is typing; nothing is stored.
    pub async fn typing(&self, caller: &DeviceCaller, (kind, conversation_id): ConversationKey<'_>) -> Result<()> {
        validate::id("conversation_id", conversation_id)?;
        self.rates.typing(caller.app, &caller.user_id, &caller.device_id)?;
        let user = caller.user_id.as_str();
        let audience: Vec<String> = match kind {
            ConversationType::Direct => {
                // Only where the two already talk: typing is no way to reach a stranger.
                let talking = self.store.conversation(caller.app, user, (kind, conversation_id)).await?;
                if talking.is_none() {
                    return Err(Error::not_found(format!("you have no conversation with {conversation_id}")));
                }
                vec![conversation_id.to_owned()]
            }
            ConversationType::Group => {
                let group = lookups::existing_group(self.store.as_ref(), caller.app, conversation_id).await?;
                if self.store.group_member(caller.app, conversation_id, user).await?.is_none() {
                    return Err(Error::not_found(format!("you are not in group {conversation_id}")));
                }
                if group.large {
                    return Ok(());
                }
                let members = self.store.group_members(caller.app, conversation_id, "", u32::MAX).await?;
                members.into_iter().map(|m| m.user_id).filter(|member| member != user).collect()
            }
            _ => return Err(Error::invalid("conversation_type must be direct or group")),
        };
        let event = frames::event(Event::Typing(TypingEvent {
            user_id: user.to_owned(),
            conversation_type: kind as i32,
            conversation_id: if kind == ConversationType::Direct {
                user.to_owned()
            } else {
                conversation_id.to_owned()
            },
        }));
        let push = Push { app: caller.app, users: audience, group: None, skip: None, seq: 0, frame: event };
        self.delivery.deliver(vec![push]);
        Ok(())
    }
}
