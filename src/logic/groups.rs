//! Groups: lifecycle, membership, roles and mutes, each change a system message in the
//! group's conversation; group messages, timelines and history.

use std::sync::Arc;

use super::{
    Error, Page, Result, SharedCaller,
    kernel::{ids::IdGenerator, lookups, paging, pushes::pushes_of, validate},
    rules::group::{self as group_rules, DecisionContext, GroupChange, GroupEvent, GroupRefusal, GroupRules},
};
use crate::{
    config::Limits,
    delivery::{Delivery, Membership},
    model::{
        AppId, Group, GroupActor, GroupEffects, GroupMember, GroupPatch, GroupRole, GroupState, JoinPolicy,
        JoinRequest, NewGroup, now_ms,
    },
    store::{GroupOutcome, GroupStore, StoreError},
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

/// Groups and their members: what each change may do, decided under the group's lock.
pub struct Groups {
    store: Arc<dyn GroupStore>,
    ids: Arc<IdGenerator>,
    /// Tells connect of large groups' members, and pushes each change's notice.
    delivery: Arc<dyn Delivery>,
    limits: Arc<Limits>,
    rules: GroupRules,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").field("rules", &self.rules).finish_non_exhaustive()
    }
}

impl Groups {
    pub fn new(
        store: Arc<dyn GroupStore>,
        ids: Arc<IdGenerator>,
        delivery: Arc<dyn Delivery>,
        limits: Arc<Limits>,
        rules: GroupRules,
    ) -> Self {
        Self { store, ids, delivery, limits, rules }
    }

    fn check_group_fields(
        &self,
        name: Option<&str>,
        avatar: Option<&str>,
        intro: Option<&str>,
        extra: Option<&str>,
    ) -> Result<()> {
        let limits = &self.limits;
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
        let (id, sent_at_ms) = self.ids.next();
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
            self.delivery.membership(changes);
        }
        if let Some(event) = &outcome.event {
            self.delivery.deliver(pushes_of(app, &event.message, &event.appended));
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
            let ctx = DecisionContext { rules: self.rules, now_ms: now_ms(), event: &event };
            let mut decided: Option<std::result::Result<GroupEffects, GroupRefusal>> = None;
            let mut decide = |state: &GroupState| {
                let decision = group_rules::decide(&change, &actor, state, &ctx);
                let effects = decision.as_ref().ok().cloned();
                decided = Some(decision);
                effects
            };
            let result = match create {
                Some(group) => self.store.create_group(caller.app, group, &load, &mut decide).await,
                None => self.store.change_group(caller.app, group_id, &load, &mut decide).await,
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
        validate::ids("member_ids", &members, self.limits.max_import_users, true)?;
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
        if self.store.get_group(caller.app, &group_id).await?.is_some() {
            return Err(Error::Conflict(format!("group {group_id} already exists")));
        }
        let change = GroupChange::Create { owner, members };
        let created =
            self.decided_change(caller, &group_id, change, "group.created", serde_json::Value::Null, Some(&group));
        Ok(created.await?.0.group)
    }

    pub async fn get_group(&self, app: AppId, group_id: &str) -> Result<Group> {
        lookups::existing_group(self.store.as_ref(), app, group_id).await
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
        paging::page(&self.limits, limit, |n| self.store.user_groups(caller.app, user, after_group_id, n)).await
    }

    pub async fn group_members(
        &self,
        caller: &SharedCaller,
        group_id: &str,
        after_user_id: &str,
        limit: i32,
    ) -> Result<Page<GroupMember>> {
        let group = self.get_group(caller.app, group_id).await?;
        lookups::member_or_app(self.store.as_ref(), caller, &group).await?;
        paging::page(&self.limits, limit, |n| self.store.group_members(caller.app, group_id, after_user_id, n)).await
    }

    /// Joins a free group at once, or asks to join an approval group; `true` if the
    /// caller is a member now.
    pub async fn join_group(&self, caller: &SharedCaller, group_id: &str, message: &str) -> Result<bool> {
        caller.require_user()?;
        validate::text("message", message, self.limits.max_join_request_chars)?;
        let change = GroupChange::Join { message: message.to_owned() };
        let (_, effects) =
            self.decided_change(caller, group_id, change, "group.member_joined", serde_json::Value::Null, None).await?;
        Ok(effects.join_request.is_none())
    }

    /// Brings users in: any member of a free group may, owners and admins of others.
    pub async fn invite(&self, caller: &SharedCaller, group_id: &str, users: Vec<String>) -> Result<Vec<String>> {
        validate::ids("user_ids", &users, self.limits.max_page_size as usize, false)?;
        let change = GroupChange::Invite(users);
        Ok(self.change(caller, group_id, change, "group.member_joined", serde_json::Value::Null).await?.affected)
    }

    /// Open requests to join; for owners, admins and the app.
    pub async fn join_requests(&self, caller: &SharedCaller, group_id: &str) -> Result<Vec<JoinRequest>> {
        let group = self.get_group(caller.app, group_id).await?;
        let membership = match caller.user() {
            Some(user) => self.store.group_member(caller.app, group_id, user).await?,
            None => None,
        };
        if group.dismissed {
            return Err(GroupRefusal::Dismissed(group.group_id).into());
        }
        group_rules::may_review(&caller.actor, membership.as_ref())?;
        Ok(self.store.join_requests(caller.app, group_id).await?)
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
        validate::ids("user_ids", &users, self.limits.max_page_size as usize, false)?;
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
        validate::name("nickname", nickname, &self.limits)?;
        let change = GroupChange::Nickname { user, nickname: nickname.to_owned() };
        let detail = serde_json::json!({ "nickname": nickname });
        self.change(caller, group_id, change, "group.nickname_changed", detail).await?;
        Ok(())
    }
}
