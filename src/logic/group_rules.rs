//! Who may change what in a group, decided over the group's state as the store loaded it
//! under the group's lock, so that the answer still holds at commit. Pure: no I/O, and
//! the whole table of roles x changes x join policies is tested without a database.

use std::collections::BTreeSet;

use crate::{
    model::{ConversationType, Group, GroupMember, GroupRole, JoinPolicy, JoinRequest, MessageBody},
    proto::common::v1::{SystemBody, message_body::Content},
    store::{GroupActor, GroupEffects, GroupLoad, GroupPatch, GroupRefusal, GroupState, NewMessage, Recipient},
};

/// Group sizes, from `[groups]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRules {
    pub max_members: u64,
    /// Past this many members a group switches to a timeline (one way).
    pub large_threshold: u64,
}

/// A change to a group, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GroupChange {
    /// The group row was just written: its owner and first members join.
    Create {
        owner: String,
        members: Vec<String>,
    },
    Update(GroupPatch),
    /// The acting user joins a free group, or asks to join an approval group.
    Join {
        message: String,
    },
    /// Members bring other users in, as far as the join policy lets them.
    Invite(Vec<String>),
    /// An owner or admin lets in a user who asked to join.
    Approve(String),
    /// An owner or admin turns down a user who asked to join.
    Reject(String),
    Remove(Vec<String>),
    Leave,
    SetRole {
        user: String,
        role: GroupRole,
    },
    Transfer(String),
    Mute {
        user: String,
        until_ms: i64,
    },
    Nickname {
        user: String,
        nickname: String,
    },
    Dismiss,
}

/// The system message a change writes: `event` names it, the decision fills in the
/// users the change affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupEvent {
    pub id: u64,
    pub sent_at_ms: i64,
    pub event: String,
    /// JSON object with details (empty for none).
    pub detail: String,
}

/// What a decision is made with besides the state: limits, the time, the event to write.
#[derive(Debug, Clone)]
pub(super) struct DecisionContext<'a> {
    pub rules: GroupRules,
    pub now_ms: i64,
    pub event: &'a GroupEvent,
}

/// Where the actor stands in the group; the app outranks everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Standing {
    Outsider,
    Member,
    Admin,
    Owner,
    App,
}

impl Standing {
    fn of(actor: &GroupActor, membership: Option<&GroupMember>) -> Self {
        match (actor, membership) {
            (GroupActor::App, _) => Standing::App,
            (GroupActor::User(_), None) => Standing::Outsider,
            (GroupActor::User(_), Some(member)) => Self::of_role(member.role),
        }
    }

    fn of_role(role: GroupRole) -> Self {
        match role {
            GroupRole::Owner => Standing::Owner,
            GroupRole::Admin => Standing::Admin,
            GroupRole::Member | GroupRole::Unspecified => Standing::Member,
        }
    }
}

/// What the store must load for `change` (the owner's membership always comes with it).
pub(super) fn load(change: &GroupChange, actor: &GroupActor) -> GroupLoad {
    let actor_user = match actor {
        GroupActor::User(user) => Some(user.clone()),
        GroupActor::App => None,
    };
    let (users, all_members) = match change {
        GroupChange::Create { owner, members } => (std::iter::once(owner).chain(members).cloned().collect(), false),
        GroupChange::Invite(users) | GroupChange::Remove(users) => (users.clone(), false),
        GroupChange::Approve(user)
        | GroupChange::Reject(user)
        | GroupChange::SetRole { user, .. }
        | GroupChange::Transfer(user)
        | GroupChange::Mute { user, .. }
        | GroupChange::Nickname { user, .. } => (vec![user.clone()], false),
        GroupChange::Dismiss => (Vec::new(), true),
        GroupChange::Update(_) | GroupChange::Join { .. } | GroupChange::Leave => (Vec::new(), false),
    };
    GroupLoad { actor: actor_user, users, all_members }
}

/// Requires the actor to stand at least at `needed`; an outsider is told it is not a member.
fn require(standing: Standing, needed: Standing, actor: &GroupActor) -> Result<(), GroupRefusal> {
    if standing >= needed {
        return Ok(());
    }
    Err(match (standing, actor) {
        (Standing::Outsider, GroupActor::User(user)) => GroupRefusal::NotMember(user.clone()),
        _ if needed >= Standing::Owner => GroupRefusal::NotOwner,
        _ => GroupRefusal::NotAdmin,
    })
}

/// May the caller see and answer a group's requests to join: owners, admins, the app.
pub(super) fn may_review(actor: &GroupActor, membership: Option<&GroupMember>) -> Result<(), GroupRefusal> {
    require(Standing::of(actor, membership), Standing::Admin, actor)
}

/// The named user's membership, which the change needs.
fn target<'s>(state: &'s GroupState, user: &str) -> Result<&'s GroupMember, GroupRefusal> {
    state.members.get(user).ok_or_else(|| GroupRefusal::NotMember(user.to_owned()))
}

/// Decides `change` by `actor` on the group as `state` holds it: the effects to write,
/// or why not. Effects with no announcement change nothing but join requests.
pub(super) fn decide(
    change: &GroupChange,
    actor: &GroupActor,
    state: &GroupState,
    ctx: &DecisionContext<'_>,
) -> Result<GroupEffects, GroupRefusal> {
    let group = &state.group;
    if group.dismissed {
        return Err(GroupRefusal::Dismissed(group.group_id.clone()));
    }
    let standing = Standing::of(actor, state.actor.as_ref());
    let mut fx = Decision { ctx, state, group: group.clone(), effects: GroupEffects::default(), announce: false };
    match change {
        GroupChange::Create { owner, members } => {
            fx.require_known()?;
            fx.add(owner, GroupRole::Owner);
            for member in members.iter().filter(|m| *m != owner).collect::<BTreeSet<_>>() {
                fx.add(member, GroupRole::Member);
            }
            fx.finish_adding()?;
        }
        GroupChange::Update(patch) => {
            require(standing, Standing::Admin, actor)?;
            let set = |field: &mut String, value: &Option<String>| {
                if let Some(value) = value {
                    field.clone_from(value);
                }
            };
            let updated = &mut fx.group;
            set(&mut updated.name, &patch.name);
            set(&mut updated.avatar_url, &patch.avatar_url);
            set(&mut updated.introduction, &patch.introduction);
            set(&mut updated.extra, &patch.extra);
            updated.join_policy = patch.join_policy.unwrap_or(updated.join_policy);
            updated.muted_all = patch.muted_all.unwrap_or(updated.muted_all);
            updated.history_visible = patch.history_visible.unwrap_or(updated.history_visible);
            fx.affect(Vec::new());
        }
        GroupChange::Join { message } => {
            let user = acting_user(actor)?;
            if state.actor.is_some() {
                return Ok(GroupEffects::default());
            }
            match group.join_policy {
                JoinPolicy::Free | JoinPolicy::Unspecified => {
                    fx.add(user, GroupRole::Member);
                    fx.finish_adding()?;
                }
                JoinPolicy::Approval => {
                    fx.effects.join_request = Some(JoinRequest {
                        user_id: user.to_owned(),
                        message: message.clone(),
                        requested_at_ms: ctx.now_ms,
                    });
                }
                JoinPolicy::InviteOnly => return Err(GroupRefusal::InviteOnly),
            }
        }
        GroupChange::Invite(users) => {
            // Bringing others in is for members; a user gets itself in only by joining.
            let needed = if group.join_policy == JoinPolicy::Free { Standing::Member } else { Standing::Admin };
            require(standing, needed, actor)?;
            fx.require_known()?;
            for user in users.iter().collect::<BTreeSet<_>>() {
                if !state.members.contains_key(user) {
                    fx.add(user, GroupRole::Member);
                }
            }
            fx.finish_adding()?;
        }
        GroupChange::Approve(user) => {
            require(standing, Standing::Admin, actor)?;
            fx.require_request(user)?;
            if !state.members.contains_key(user) {
                fx.add(user, GroupRole::Member);
                fx.finish_adding()?;
            }
        }
        GroupChange::Reject(user) => {
            require(standing, Standing::Admin, actor)?;
            fx.require_request(user)?;
        }
        GroupChange::Remove(users) => {
            require(standing, Standing::Admin, actor)?;
            let mut removed = Vec::new();
            for user in users.iter().collect::<BTreeSet<_>>() {
                let Some(member) = state.members.get(user) else { continue };
                match member.role {
                    GroupRole::Owner => return Err(GroupRefusal::Owner),
                    GroupRole::Admin if standing < Standing::Owner && !is_actor(actor, user) => {
                        return Err(GroupRefusal::Peer);
                    }
                    _ => removed.push(user.clone()),
                }
            }
            fx.remove(removed);
        }
        GroupChange::Leave => {
            let user = acting_user(actor)?;
            let member = state.actor.as_ref().ok_or_else(|| GroupRefusal::NotMember(user.to_owned()))?;
            if member.role == GroupRole::Owner {
                return Err(GroupRefusal::Owner);
            }
            fx.remove(vec![user.to_owned()]);
        }
        GroupChange::SetRole { user, role } => {
            require(standing, Standing::Owner, actor)?;
            let member = target(state, user)?;
            if member.role == GroupRole::Owner {
                return Err(GroupRefusal::Owner);
            }
            if member.role != *role {
                fx.effects.update.push(GroupMember { role: *role, ..member.clone() });
                fx.affect(vec![user.clone()]);
            }
        }
        GroupChange::Transfer(user) => {
            require(standing, Standing::Owner, actor)?;
            let heir = target(state, user)?;
            if heir.role != GroupRole::Owner {
                if let Some(old) = state.members.get(&group.owner_id) {
                    fx.effects.update.push(GroupMember { role: GroupRole::Admin, ..old.clone() });
                }
                fx.effects.update.push(GroupMember { role: GroupRole::Owner, ..heir.clone() });
                fx.group.owner_id.clone_from(user);
                fx.affect(vec![user.clone()]);
            }
        }
        GroupChange::Mute { user, until_ms } => {
            require(standing, Standing::Admin, actor)?;
            let member = target(state, user)?;
            let rank = Standing::of_role(member.role);
            if rank >= Standing::Admin && standing <= rank {
                return Err(GroupRefusal::Peer);
            }
            fx.effects.update.push(GroupMember { muted_until_ms: *until_ms, ..member.clone() });
            fx.affect(vec![user.clone()]);
        }
        GroupChange::Nickname { user, nickname } => {
            if !is_actor(actor, user) {
                require(standing, Standing::Admin, actor)?;
            }
            let member = target(state, user)?;
            if member.nickname != *nickname {
                fx.effects.update.push(GroupMember { nickname: nickname.clone(), ..member.clone() });
                fx.affect(vec![user.clone()]);
            }
        }
        GroupChange::Dismiss => {
            require(standing, Standing::Owner, actor)?;
            let mut everyone: Vec<String> = state.members.keys().cloned().collect();
            everyone.sort();
            fx.remove(everyone);
            fx.group.dismissed = true;
            fx.effects.drop_all_requests = true;
        }
    }
    Ok(fx.done(actor))
}

fn acting_user(actor: &GroupActor) -> Result<&str, GroupRefusal> {
    match actor {
        GroupActor::User(user) => Ok(user),
        GroupActor::App => Err(GroupRefusal::ActsForUser),
    }
}

fn is_actor(actor: &GroupActor, user: &str) -> bool {
    matches!(actor, GroupActor::User(me) if me == user)
}

/// Effects under construction.
struct Decision<'a> {
    ctx: &'a DecisionContext<'a>,
    state: &'a GroupState,
    /// The group row as the change leaves it.
    group: Group,
    effects: GroupEffects,
    /// The change does something, and a system message says so.
    announce: bool,
}

impl Decision<'_> {
    fn require_known(&self) -> Result<(), GroupRefusal> {
        if self.state.unknown_users.is_empty() {
            return Ok(());
        }
        Err(GroupRefusal::UnknownUsers(self.state.unknown_users.join(", ")))
    }

    fn require_request(&mut self, user: &str) -> Result<(), GroupRefusal> {
        if !self.state.requested.iter().any(|r| r == user) {
            return Err(GroupRefusal::NoJoinRequest(user.to_owned()));
        }
        self.effects.drop_requests.push(user.to_owned());
        Ok(())
    }

    fn add(&mut self, user: &str, role: GroupRole) {
        let group = &self.state.group;
        self.effects.insert.push(GroupMember {
            user_id: user.to_owned(),
            role,
            nickname: String::new(),
            muted_until_ms: 0,
            // The member's view starts here: its join's announcement comes next.
            joined_group_seq: group.seq,
            joined_position: group.position,
            joined_at_ms: self.ctx.now_ms,
        });
        // A request to join is answered by joining.
        self.effects.drop_requests.push(user.to_owned());
    }

    /// Checks the size limit, switches to a timeline past the threshold, and makes the
    /// added users the ones affected.
    fn finish_adding(&mut self) -> Result<(), GroupRefusal> {
        let added: Vec<String> = self.effects.insert.iter().map(|member| member.user_id.clone()).collect();
        if added.is_empty() {
            return Ok(());
        }
        let rules = self.ctx.rules;
        let count = self.group.member_count + added.len() as u64;
        if count > rules.max_members {
            return Err(GroupRefusal::Full(rules.max_members));
        }
        self.group.member_count = count;
        if self.group.large {
            self.effects.subscribe.clone_from(&added);
        } else if count > rules.large_threshold {
            self.group.large = true;
            self.effects.subscribe_everyone = true;
        }
        self.affect(added);
        Ok(())
    }

    fn remove(&mut self, users: Vec<String>) {
        if users.is_empty() {
            return;
        }
        self.group.member_count = self.group.member_count.saturating_sub(users.len() as u64);
        if self.group.large {
            self.effects.unsubscribe.clone_from(&users);
        }
        self.effects.delete.clone_from(&users);
        self.affect(users);
    }

    /// The change does something, to `users`: it is announced.
    fn affect(&mut self, users: Vec<String>) {
        self.effects.affected = users;
        self.announce = true;
    }

    /// The effects, with the group row and the announcement when the change does something.
    fn done(mut self, actor: &GroupActor) -> GroupEffects {
        if !self.announce {
            return self.effects;
        }
        self.group.updated_at_ms = self.ctx.now_ms;
        // Members who leave get the news in their inbox: they no longer read the group.
        self.effects.announcement = Some(announcement(
            &self.group.group_id,
            actor,
            self.ctx.event,
            &self.effects.affected,
            &self.effects.delete,
        ));
        self.effects.group = Some(self.group);
        self.effects
    }
}

/// The system message announcing a change, about `affected`, also written to the
/// inboxes of `also_to`.
fn announcement(
    group_id: &str,
    actor: &GroupActor,
    event: &GroupEvent,
    affected: &[String],
    also_to: &[String],
) -> NewMessage {
    let body = MessageBody {
        content: Some(Content::System(SystemBody {
            event: event.event.clone(),
            actor_user_id: match actor {
                GroupActor::User(user) => user.clone(),
                GroupActor::App => String::new(),
            },
            target_user_ids: affected.to_vec(),
            detail: event.detail.clone(),
        })),
    };
    NewMessage {
        id: event.id,
        client_msg_id: format!("event-{}", event.id),
        sender_user_id: String::new(),
        sender_device_id: String::new(),
        conversation_type: ConversationType::Group,
        receiver_id: group_id.to_owned(),
        body,
        sent_at_ms: event.sent_at_ms,
        recipients: also_to
            .iter()
            .map(|user| Recipient { user_id: user.clone(), conversation_id: group_id.to_owned() })
            .collect(),
    }
}
