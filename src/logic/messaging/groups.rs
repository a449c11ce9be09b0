//! Groups' messages: sending to a group, a large group's timeline, and a group's history
//! in the order its lock gave.

use super::{
    Messaging,
    broadcast::ANNOUNCEMENTS,
    send::{Outgoing, SyncPage},
};
use crate::{
    logic::{
        Error, Result, SharedCaller,
        kernel::{lookups, paging, validate, views},
        rules::message::SendRules,
    },
    model::NewMessage,
    model::{ConversationType, GroupRole, Message, MessageMeta},
    proto::common::v1::message_body::Content,
};

/// The result of a group send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSent {
    pub message_id: u64,
    pub seq: u64,
    pub group_seq: u64,
    pub sent_at_ms: i64,
}

impl Messaging {
    /// Sends to a group: to every member's inbox (small group) or onto its timeline
    /// (large group); the store checks membership and mutes under the group's lock.
    pub async fn send_group(&self, caller: &SharedCaller, group_id: &str, outgoing: Outgoing) -> Result<GroupSent> {
        validate::id("group_id", group_id)?;
        validate::client_msg_id(&outgoing.client_msg_id, &self.limits)?;
        validate::body(outgoing.body.as_ref(), &self.limits)?;
        self.directory.send(caller.app).await?;
        let body = outgoing.body.unwrap_or_default();
        if let Some(Content::Text(text)) = &body.content
            && text.mention_all
            && let Some(user) = caller.user()
        {
            let member = self.store.group_member(caller.app, group_id, user).await?;
            if !member.is_some_and(|m| matches!(m.role, GroupRole::Owner | GroupRole::Admin)) {
                return Err(Error::PermissionDenied("only the owner or an admin may mention everyone".into()));
            }
        }
        let reply_to = self
            .reply_in(caller.app, caller.user(), outgoing.reply_to, |original| {
                original.conversation_type == ConversationType::Group && original.receiver_id == group_id
            })
            .await?;
        let message = NewMessage {
            id: 0,
            client_msg_id: outgoing.client_msg_id,
            sender_user_id: caller.user().unwrap_or_default().to_owned(),
            sender_device_id: caller.device_id.clone().unwrap_or_default(),
            conversation_type: ConversationType::Group,
            receiver_id: group_id.to_owned(),
            body,
            sent_at_ms: 0,
            meta: MessageMeta {
                reply_to: outgoing.reply_to,
                forwarded_from: outgoing.forwarded_from,
                ..Default::default()
            },
            reply_to,
            recipients: Vec::new(),
        };
        let message = self.moderation.moderate(caller.app, message).await?;
        // Group messages follow the group's rules alone (membership, mutes).
        let appended = self.writer.write(caller.app, message, SendRules::default()).await?;
        Ok(GroupSent {
            message_id: appended.id,
            seq: appended.sender_seq,
            group_seq: appended.timeline.as_ref().map_or(0, |(_, seq)| *seq),
            sent_at_ms: appended.sent_at_ms,
        })
    }

    /// A large group's timeline after `after_group_seq`, never before what the caller
    /// may see.
    pub async fn sync_group(
        &self,
        caller: &SharedCaller,
        group_id: &str,
        after_group_seq: u64,
        limit: i32,
    ) -> Result<SyncPage> {
        if group_id == ANNOUNCEMENTS {
            return self.sync_announcements(caller, after_group_seq, limit).await;
        }
        let group = lookups::existing_group(self.store.as_ref(), caller.app, group_id).await?;
        let member = lookups::member_or_app(self.store.as_ref(), caller, &group).await?;
        let floor = member.filter(|_| !group.history_visible).map_or(0, |m| m.joined_group_seq);
        let after = after_group_seq.max(floor);
        let viewer = caller.user().unwrap_or_default();
        let mut page =
            paging::page(&self.limits, limit, |n| self.store.timeline_after(caller.app, group_id, viewer, after, n))
                .await?;
        views::decorate(self.store.as_ref(), caller.app, viewer, &mut page.items).await?;
        let latest_seq = page.items.last().map_or(group.seq, |m| m.group_seq.max(group.seq));
        Ok(SyncPage { messages: page.items, has_more: page.has_more, latest_seq, large_groups: Vec::new() })
    }

    /// The app's announcements after `after`: every user of the app reads them all.
    async fn sync_announcements(&self, caller: &SharedCaller, after: u64, limit: i32) -> Result<SyncPage> {
        let viewer = caller.user().unwrap_or_default();
        let mut page = paging::page(&self.limits, limit, |n| {
            self.store.timeline_after(caller.app, ANNOUNCEMENTS, viewer, after, n)
        })
        .await?;
        views::decorate(self.store.as_ref(), caller.app, viewer, &mut page.items).await?;
        let latest = self.store.latest_on_timeline(caller.app, ANNOUNCEMENTS).await?;
        let latest_seq = page.items.last().map_or(latest, |m| m.group_seq.max(latest));
        Ok(SyncPage { messages: page.items, has_more: page.has_more, latest_seq, large_groups: Vec::new() })
    }

    /// A group's messages, newest first, from either kind of fan-out, in the order the
    /// group's lock gave them; `page_token` is where the previous page stopped.
    pub async fn group_history(
        &self,
        caller: &SharedCaller,
        group_id: &str,
        page_token: &str,
        limit: i32,
    ) -> Result<(Vec<Message>, String)> {
        let before = if page_token.is_empty() {
            u64::MAX
        } else {
            page_token.parse().map_err(|_| Error::invalid("page_token is not one this API returned"))?
        };
        let group = lookups::existing_group(self.store.as_ref(), caller.app, group_id).await?;
        let member = lookups::member_or_app(self.store.as_ref(), caller, &group).await?;
        let after = member.filter(|_| !group.history_visible).map_or(0, |m| m.joined_position);
        let viewer = caller.user().unwrap_or_default();
        let page = paging::page(&self.limits, limit, |n| {
            self.store.group_history(caller.app, group_id, viewer, after, before, n)
        })
        .await?;
        let next = match page.items.last() {
            Some((position, _)) if page.has_more => position.to_string(),
            _ => String::new(),
        };
        let mut messages: Vec<Message> = page.items.into_iter().map(|(_, message)| message).collect();
        views::decorate(self.store.as_ref(), caller.app, viewer, &mut messages).await?;
        Ok((messages, next))
    }
}
