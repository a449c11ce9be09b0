//! Groups: lifecycle, membership, roles and mutes, each change a system message in the
//! group's conversation; group messages, timelines and history.

use super::{
    Error, Logic, Page, Result, SharedCaller,
    broadcast::ANNOUNCEMENTS,
    group_rules::{self, DecisionContext, GroupChange, GroupEvent, GroupRefusal},
    message_rules::SendRules,
    messages::{Outgoing, SyncPage},
    pushes::pushes_of,
    validate,
};
use crate::{
    delivery::Membership,
    model::{
        AppId, ConversationType, Group, GroupMember, GroupRole, JoinPolicy, JoinRequest, Message, MessageMeta, now_ms,
    },
    proto::common::v1::message_body::Content,
    store::{GroupActor, GroupEffects, GroupOutcome, GroupPatch, GroupState, NewGroup, NewMessage, StoreError},
};

/// Attempts of a group change whose event id collided with another node's.
const CONFLICT_ATTEMPTS: u32 = 3;

/// A group as the creator describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupInput {
    pub group_id: String,
    pub name: String,
    pub avatar_url: String,
    pub introduction: String,
    pub extra: String,
    pub join_policy: JoinPolicy,
    pub history_visible: bool,
    pub owner_id: String,
}

/// The result of a group send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSent {
    pub message_id: u64,
    pub seq: u64,
    pub group_seq: u64,
    pub sent_at_ms: i64,
}

impl Logic {
    fn check_group_fields(
        &self,
        name: Option<&str>,
        avatar: Option<&str>,
        intro: Option<&str>,
        extra: Option<&str>,
    ) -> Result<()> {
        let limits = self.limits();
        if let Some(name) = name {
            if name.trim().is_empty() {
                return Err(Error::invalid("name is required"));
            }
            validate::name("name", name, limits)?;
        }
        if let Some(avatar) = avatar {
            validate::url("avatar_url", avatar, limits)?;
        }
        if let Some(intro) = intro {
            validate::text("introduction", intro, limits.max_group_introduction_chars)?;
        }
        if let Some(extra) = extra {
            validate::extra("extra", extra, limits)?;
        }
        Ok(())
    }

    /// The system message a change announced as `name` writes.
    fn group_event(&self, name: &str, detail: &serde_json::Value) -> GroupEvent {
        let (id, sent_at_ms) = self.inner.ids.next();
        let detail = if detail.is_null() { String::new() } else { detail.to_string() };
        GroupEvent { id, sent_at_ms, event: name.to_owned(), detail }
    }

    /// Tells connect about large-group membership first, then pushes the event: a new
    /// member of a large group is subscribed before its timeline moves.
    fn publish(&self, app: AppId, outcome: &GroupOutcome) {
        let group_id = &outcome.group.group_id;
        let changes: Vec<Membership> = outcome
            .joined_large
            .iter()
            .map(|user| (user, true))
            .chain(outcome.left_large.iter().map(|user| (user, false)))
            .map(|(user, joined)| Membership { app, user_id: user.clone(), group_id: group_id.clone(), joined })
            .collect();
        if !changes.is_empty() {
            self.inner.delivery.membership(changes);
        }
        if let Some(event) = &outcome.event {
            self.inner.delivery.deliver(pushes_of(app, &event.message, &event.appended));
        }
    }

    /// Changes an existing group (see `decided_change`).
    async fn change(
        &self,
        caller: &SharedCaller,
        group_id: &str,
        change: GroupChange,
        event: &str,
        detail: serde_json::Value,
    ) -> Result<GroupOutcome> {
        Ok(self.decided_change(caller, group_id, change, event, detail, None).await?.0)
    }

    /// Makes a change: the store locks the group and reads its state, the rules decide,
    /// the store writes what they decided with the event announcing it. `create` names a
    /// group row to write first.
    async fn decided_change(
        &self,
        caller: &SharedCaller,
        group_id: &str,
        change: GroupChange,
        event: &str,
        detail: serde_json::Value,
        create: Option<&NewGroup>,
    ) -> Result<(GroupOutcome, GroupEffects)> {
        validate::id("group_id", group_id)?;
        // The creator announces a new group, even one the app creates for it.
        let actor = match (&change, create) {
            (GroupChange::Create { owner, .. }, Some(_)) => GroupActor::User(owner.clone()),
            _ => caller.actor.clone(),
        };
        let load = group_rules::load(&change, &actor);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let event = self.group_event(event, &detail);
            let ctx = DecisionContext { rules: self.inner.groups, now_ms: now_ms(), event: &event };
            let mut decided: Option<std::result::Result<GroupEffects, GroupRefusal>> = None;
            let mut decide = |state: &GroupState| {
                let decision = group_rules::decide(&change, &actor, state, &ctx);
                let effects = decision.as_ref().ok().cloned();
                decided = Some(decision);
                effects
            };
            let result = match create {
                Some(group) => self.store().create_group(caller.app, group, &load, &mut decide).await,
                None => self.store().change_group(caller.app, group_id, &load, &mut decide).await,
            };
            match (result, decided) {
                (Ok(Some(outcome)), Some(Ok(effects))) => {
                    self.publish(caller.app, &outcome);
                    return Ok((outcome, effects));
                }
                (Ok(_), Some(Err(refusal))) => return Err(refusal.into()),
                (Ok(_), _) => return Err(Error::internal("a group change was neither made nor refused")),
                // The event's id collided with another node's (or, for a new group, its id
                // was taken meanwhile): try again, with a new event id.
                (Err(StoreError::Conflict), _) if attempt < CONFLICT_ATTEMPTS => {}
                (Err(StoreError::Conflict), _) if create.is_some() => {
                    return Err(Error::Conflict(format!("group {group_id} already exists")));
                }
                (Err(StoreError::NotFound), _) => {
                    return Err(GroupRefusal::NoGroup(group_id.to_owned()).into());
                }
                (Err(err), _) => return Err(err.into()),
            }
        }
    }

    pub async fn create_group(&self, caller: &SharedCaller, input: GroupInput, members: Vec<String>) -> Result<Group> {
        let owner = match caller.user() {
            Some(user) => user.to_owned(),
            None if !input.owner_id.is_empty() => input.owner_id.clone(),
            None => return Err(Error::invalid("owner_id is required when the app itself creates a group")),
        };
        validate::id("owner_id", &owner)?;
        let group_id = if input.group_id.is_empty() { validate::generated_id("g_") } else { input.group_id };
        validate::id("group_id", &group_id)?;
        self.check_group_fields(
            Some(&input.name),
            Some(&input.avatar_url),
            Some(&input.introduction),
            Some(&input.extra),
        )?;
        // A group starts with at most `max_import_users` members; more are invited later.
        validate::ids("member_ids", &members, self.limits().max_import_users, true)?;
        let join_policy =
            if input.join_policy == JoinPolicy::Unspecified { JoinPolicy::InviteOnly } else { input.join_policy };
        let group = NewGroup {
            group_id: group_id.clone(),
            name: input.name,
            avatar_url: input.avatar_url,
            introduction: input.introduction,
            extra: input.extra,
            owner_id: owner.clone(),
            join_policy,
            history_visible: input.history_visible,
            created_at_ms: now_ms(),
        };
        if self.store().get_group(caller.app, &group_id).await?.is_some() {
            return Err(Error::Conflict(format!("group {group_id} already exists")));
        }
        let change = GroupChange::Create { owner, members };
        let created =
            self.decided_change(caller, &group_id, change, "group.created", serde_json::Value::Null, Some(&group));
        Ok(created.await?.0.group)
    }

    pub async fn get_group(&self, app: AppId, group_id: &str) -> Result<Group> {
        validate::id("group_id", group_id)?;
        self.store()
            .get_group(app, group_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("group {group_id} does not exist")))
    }

    /// The caller's membership, required for reads; the app reads anything.
    async fn member_or_app(&self, caller: &SharedCaller, group: &Group) -> Result<Option<GroupMember>> {
        let Some(user) = caller.user() else { return Ok(None) };
        match self.store().group_member(caller.app, &group.group_id, user).await? {
            Some(member) => Ok(Some(member)),
            None => Err(GroupRefusal::NotMember(user.to_owned()).into()),
        }
    }

    pub async fn update_group(&self, caller: &SharedCaller, group_id: &str, patch: GroupPatch) -> Result<Group> {
        self.check_group_fields(
            patch.name.as_deref(),
            patch.avatar_url.as_deref(),
            patch.introduction.as_deref(),
            patch.extra.as_deref(),
        )?;
        let (event, detail) = match (patch.muted_all, &patch) {
            (Some(true), _) => ("group.muted_all", serde_json::Value::Null),
            (Some(false), _) => ("group.unmuted_all", serde_json::Value::Null),
            (None, patch) => (
                "group.updated",
                serde_json::json!({
                    "name": patch.name, "avatar_url": patch.avatar_url, "introduction": patch.introduction,
                    "join_policy": patch.join_policy.map(|p| p.as_str_name()), "history_visible": patch.history_visible,
                }),
            ),
        };
        Ok(self.change(caller, group_id, GroupChange::Update(patch), event, detail).await?.group)
    }

    pub async fn dismiss_group(&self, caller: &SharedCaller, group_id: &str) -> Result<()> {
        self.change(caller, group_id, GroupChange::Dismiss, "group.dismissed", serde_json::Value::Null).await?;
        Ok(())
    }

    pub async fn my_groups(&self, caller: &SharedCaller, after_group_id: &str, limit: i32) -> Result<Page<Group>> {
        let user = caller.require_user()?;
        self.page(limit, |n| self.store().user_groups(caller.app, user, after_group_id, n)).await
    }

    pub async fn group_members(
        &self,
        caller: &SharedCaller,
        group_id: &str,
        after_user_id: &str,
        limit: i32,
    ) -> Result<Page<GroupMember>> {
        let group = self.get_group(caller.app, group_id).await?;
        self.member_or_app(caller, &group).await?;
        self.page(limit, |n| self.store().group_members(caller.app, group_id, after_user_id, n)).await
    }

    /// Joins a free group at once, or asks to join an approval group; `true` if the
    /// caller is a member now.
    pub async fn join_group(&self, caller: &SharedCaller, group_id: &str, message: &str) -> Result<bool> {
        caller.require_user()?;
        validate::text("message", message, self.limits().max_join_request_chars)?;
        let change = GroupChange::Join { message: message.to_owned() };
        let (_, effects) =
            self.decided_change(caller, group_id, change, "group.member_joined", serde_json::Value::Null, None).await?;
        Ok(effects.join_request.is_none())
    }

    /// Brings users in: any member of a free group may, owners and admins of others.
    pub async fn invite(&self, caller: &SharedCaller, group_id: &str, users: Vec<String>) -> Result<Vec<String>> {
        validate::ids("user_ids", &users, self.limits().max_page_size as usize, false)?;
        let change = GroupChange::Invite(users);
        Ok(self.change(caller, group_id, change, "group.member_joined", serde_json::Value::Null).await?.affected)
    }

    /// Open requests to join; for owners, admins and the app.
    pub async fn join_requests(&self, caller: &SharedCaller, group_id: &str) -> Result<Vec<JoinRequest>> {
        let group = self.get_group(caller.app, group_id).await?;
        let membership = match caller.user() {
            Some(user) => self.store().group_member(caller.app, group_id, user).await?,
            None => None,
        };
        if group.dismissed {
            return Err(GroupRefusal::Dismissed(group.group_id).into());
        }
        group_rules::may_review(&caller.actor, membership.as_ref())?;
        Ok(self.store().join_requests(caller.app, group_id).await?)
    }

    pub async fn review_join(&self, caller: &SharedCaller, group_id: &str, user_id: &str, approve: bool) -> Result<()> {
        validate::id("user_id", user_id)?;
        if approve {
            let change = GroupChange::Approve(user_id.to_owned());
            self.change(caller, group_id, change, "group.member_joined", serde_json::json!({"approved": true})).await?;
        } else {
            // A rejection drops the request and is not announced: no event name.
            let change = GroupChange::Reject(user_id.to_owned());
            self.change(caller, group_id, change, "", serde_json::Value::Null).await?;
        }
        Ok(())
    }

    pub async fn leave_group(&self, caller: &SharedCaller, group_id: &str) -> Result<()> {
        caller.require_user()?;
        self.change(caller, group_id, GroupChange::Leave, "group.member_left", serde_json::Value::Null).await?;
        Ok(())
    }

    pub async fn remove_members(
        &self,
        caller: &SharedCaller,
        group_id: &str,
        users: Vec<String>,
    ) -> Result<Vec<String>> {
        validate::ids("user_ids", &users, self.limits().max_page_size as usize, false)?;
        let change = GroupChange::Remove(users);
        Ok(self.change(caller, group_id, change, "group.members_removed", serde_json::Value::Null).await?.affected)
    }

    pub async fn transfer_ownership(&self, caller: &SharedCaller, group_id: &str, new_owner: &str) -> Result<()> {
        validate::id("new_owner_id", new_owner)?;
        let change = GroupChange::Transfer(new_owner.to_owned());
        self.change(caller, group_id, change, "group.owner_changed", serde_json::Value::Null).await?;
        Ok(())
    }

    pub async fn set_role(&self, caller: &SharedCaller, group_id: &str, user_id: &str, role: GroupRole) -> Result<()> {
        validate::id("user_id", user_id)?;
        if !matches!(role, GroupRole::Admin | GroupRole::Member) {
            return Err(Error::invalid("role must be admin or member; the owner changes with TransferOwnership"));
        }
        let change = GroupChange::SetRole { user: user_id.to_owned(), role };
        let detail = serde_json::json!({ "role": role.as_str_name() });
        self.change(caller, group_id, change, "group.role_changed", detail).await?;
        Ok(())
    }

    /// Mutes a member for `seconds` (0 lifts the mute).
    pub async fn mute_member(&self, caller: &SharedCaller, group_id: &str, user_id: &str, seconds: u32) -> Result<()> {
        validate::id("user_id", user_id)?;
        let until_ms = if seconds == 0 { 0 } else { now_ms() + i64::from(seconds) * 1000 };
        let change = GroupChange::Mute { user: user_id.to_owned(), until_ms };
        let (event, detail) = if seconds == 0 {
            ("group.member_unmuted", serde_json::Value::Null)
        } else {
            ("group.member_muted", serde_json::json!({ "until_ms": until_ms }))
        };
        self.change(caller, group_id, change, event, detail).await?;
        Ok(())
    }

    pub async fn set_nickname(
        &self,
        caller: &SharedCaller,
        group_id: &str,
        user_id: &str,
        nickname: &str,
    ) -> Result<()> {
        let user = if user_id.is_empty() { caller.require_user()?.to_owned() } else { user_id.to_owned() };
        validate::id("user_id", &user)?;
        validate::name("nickname", nickname, self.limits())?;
        let change = GroupChange::Nickname { user, nickname: nickname.to_owned() };
        let detail = serde_json::json!({ "nickname": nickname });
        self.change(caller, group_id, change, "group.nickname_changed", detail).await?;
        Ok(())
    }

    /// Sends to a group: to every member's inbox (small group) or onto its timeline
    /// (large group); the store checks membership and mutes under the group's lock.
    pub async fn send_group(&self, caller: &SharedCaller, group_id: &str, outgoing: Outgoing) -> Result<GroupSent> {
        validate::id("group_id", group_id)?;
        validate::client_msg_id(&outgoing.client_msg_id, self.limits())?;
        validate::body(outgoing.body.as_ref(), self.limits())?;
        self.app_send(caller.app).await?;
        let body = outgoing.body.unwrap_or_default();
        if let Some(Content::Text(text)) = &body.content
            && text.mention_all
            && let Some(user) = caller.user()
        {
            let member = self.store().group_member(caller.app, group_id, user).await?;
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
        let message = self.moderate(caller.app, message).await?;
        // Group messages follow the group's rules alone (membership, mutes).
        let appended = self.inner.writer.write(caller.app, message, SendRules::default()).await?;
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
        let group = self.get_group(caller.app, group_id).await?;
        let member = self.member_or_app(caller, &group).await?;
        let floor = member.filter(|_| !group.history_visible).map_or(0, |m| m.joined_group_seq);
        let after = after_group_seq.max(floor);
        let viewer = caller.user().unwrap_or_default();
        let mut page =
            self.page(limit, |n| self.store().timeline_after(caller.app, group_id, viewer, after, n)).await?;
        self.decorate(caller.app, viewer, &mut page.items).await?;
        let latest_seq = page.items.last().map_or(group.seq, |m| m.group_seq.max(group.seq));
        Ok(SyncPage { messages: page.items, has_more: page.has_more, latest_seq, large_groups: Vec::new() })
    }

    /// The app's announcements after `after`: every user of the app reads them all.
    async fn sync_announcements(&self, caller: &SharedCaller, after: u64, limit: i32) -> Result<SyncPage> {
        let viewer = caller.user().unwrap_or_default();
        let mut page =
            self.page(limit, |n| self.store().timeline_after(caller.app, ANNOUNCEMENTS, viewer, after, n)).await?;
        self.decorate(caller.app, viewer, &mut page.items).await?;
        let latest = self.store().latest_on_timeline(caller.app, ANNOUNCEMENTS).await?;
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
        let group = self.get_group(caller.app, group_id).await?;
        let member = self.member_or_app(caller, &group).await?;
        let after = member.filter(|_| !group.history_visible).map_or(0, |m| m.joined_position);
        let viewer = caller.user().unwrap_or_default();
        let page =
            self.page(limit, |n| self.store().group_history(caller.app, group_id, viewer, after, before, n)).await?;
        let next = match page.items.last() {
            Some((position, _)) if page.has_more => position.to_string(),
            _ => String::new(),
        };
        let mut messages: Vec<Message> = page.items.into_iter().map(|(_, message)| message).collect();
        self.decorate(caller.app, viewer, &mut messages).await?;
        Ok((messages, next))
    }
}
