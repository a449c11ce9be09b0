//! Who may change what in a group, decided over the group's state as the store loaded it
//! under the group's lock, so that the answer still holds at commit. Pure: no I/O, and
//! the whole table of roles x changes x join policies is tested without a database.

use std::collections::BTreeSet;

use crate::{
    model::{
        ConversationType, Group, GroupActor, GroupEffects, GroupLoad, GroupMember, GroupPatch, GroupRole, GroupState,
        JoinPolicy, JoinRequest, MessageBody, NewMessage, Recipient,
    },
    proto::common::v1::{SystemBody, message_body::Content},
};

/// Why a group change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupRefusal {
    #[error("group {0} does not exist")]
    NoGroup(String),
    #[error("group {0} has been dismissed")]
    Dismissed(String),
    #[error("user {0} is not a member of the group")]
    NotMember(String),
    #[error("only the owner or an admin may do this")]
    NotAdmin,
    #[error("only the owner may do this")]
    NotOwner,
    #[error("the group would have more than {0} members")]
    Full(u64),
    #[error("the owner cannot leave or be removed: transfer ownership first")]
    Owner,
    #[error("admins cannot change other admins or the owner")]
    Peer,
    #[error("users do not exist: {0}")]
    UnknownUsers(String),
    #[error("this group is invite-only: ask an owner or admin to invite you")]
    InviteOnly,
    #[error("{0} has not asked to join")]
    NoJoinRequest(String),
    #[error("this change acts for a user: a device token, or x-gim-acting-user with the app secret")]
    ActsForUser,
}

/// Group sizes, from `[groups]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRules {
    pub max_members: u64,
    /// Past this many members a group switches to a timeline (one way).
    pub large_threshold: u64,
}

/// A change to a group, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
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
pub struct GroupEvent {
    pub id: u64,
    pub sent_at_ms: i64,
    pub event: String,
    /// JSON object with details (empty for none).
    pub detail: String,
}

/// What a decision is made with besides the state: limits, the time, the event to write.
#[derive(Debug, Clone)]
pub struct DecisionContext<'a> {
    pub rules: GroupRules,
    pub now_ms: i64,
    pub event: &'a GroupEvent,
}

/// Where the actor stands in the group; the app outranks everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
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
pub fn load(change: &GroupChange, actor: &GroupActor) -> GroupLoad {
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
pub fn may_review(actor: &GroupActor, membership: Option<&GroupMember>) -> Result<(), GroupRefusal> {
    require(Standing::of(actor, membership), Standing::Admin, actor)
}

/// The named user's membership, which the change needs.
fn target<'s>(state: &'s GroupState, user: &str) -> Result<&'s GroupMember, GroupRefusal> {
    state.members.get(user).ok_or_else(|| GroupRefusal::NotMember(user.to_owned()))
}

/// Decides `change` by `actor` on the group as `state` holds it: the effects to write,
/// or why not. Effects with no system message change nothing but join requests.
pub fn decide(
    change: &GroupChange,
    actor: &GroupActor,
    state: &GroupState,
    ctx: &DecisionContext<'_>,
) -> Result<GroupEffects, GroupRefusal> {
    if state.group.dismissed {
        return Err(GroupRefusal::Dismissed(state.group.group_id.clone()));
    }
    let mut fx = Decision {
        ctx,
        state,
        actor,
        standing: Standing::of(actor, state.actor.as_ref()),
        group: state.group.clone(),
        effects: GroupEffects::default(),
        announce: false,
    };
    match change {
        GroupChange::Create { owner, members } => fx.create(owner, members)?,
        GroupChange::Update(patch) => fx.update(patch)?,
        GroupChange::Join { message } => fx.join(message)?,
        GroupChange::Invite(users) => fx.invite(users)?,
        GroupChange::Approve(user) => fx.approve(user)?,
        GroupChange::Reject(user) => fx.reject(user)?,
        GroupChange::Remove(users) => fx.remove_members(users)?,
        GroupChange::Leave => fx.leave()?,
        GroupChange::SetRole { user, role } => fx.set_role(user, *role)?,
        GroupChange::Transfer(user) => fx.transfer(user)?,
        GroupChange::Mute { user, until_ms } => fx.mute(user, *until_ms)?,
        GroupChange::Nickname { user, nickname } => fx.nickname(user, nickname)?,
        GroupChange::Dismiss => fx.dismiss()?,
    }
    Ok(fx.done())
}

/// Each change's rule: what it requires, and the effects it makes.
impl Decision<'_> {
    fn require(&self, needed: Standing) -> Result<(), GroupRefusal> {
        require(self.standing, needed, self.actor)
    }

    fn create(&mut self, owner: &str, members: &[String]) -> Result<(), GroupRefusal> {
        self.require_known()?;
        self.add(owner, GroupRole::Owner);
        for member in members.iter().filter(|m| *m != owner).collect::<BTreeSet<_>>() {
            self.add(member, GroupRole::Member);
        }
        self.finish_adding()
    }

    fn update(&mut self, patch: &GroupPatch) -> Result<(), GroupRefusal> {
        self.require(Standing::Admin)?;
        let set = |field: &mut String, value: &Option<String>| {
            if let Some(value) = value {
                field.clone_from(value);
            }
        };
        let updated = &mut self.group;
        set(&mut updated.name, &patch.name);
        set(&mut updated.avatar_url, &patch.avatar_url);
        set(&mut updated.introduction, &patch.introduction);
        set(&mut updated.extra, &patch.extra);
        updated.join_policy = patch.join_policy.unwrap_or(updated.join_policy);
        updated.muted_all = patch.muted_all.unwrap_or(updated.muted_all);
        updated.history_visible = patch.history_visible.unwrap_or(updated.history_visible);
        self.affect(Vec::new());
        Ok(())
    }

    /// A member is in already: nothing to do.
    fn join(&mut self, message: &str) -> Result<(), GroupRefusal> {
        let user = acting_user(self.actor)?;
        if self.state.actor.is_some() {
            return Ok(());
        }
        match self.group.join_policy {
            JoinPolicy::Free => {
                self.add(user, GroupRole::Member);
                self.finish_adding()
            }
            JoinPolicy::Approval => {
                let requested_at_ms = self.ctx.now_ms;
                let request = JoinRequest { user_id: user.to_owned(), message: message.to_owned(), requested_at_ms };
                self.effects.join_request = Some(request);
                Ok(())
            }
            // Unspecified never stays stored; if it did, it would let nobody in.
            JoinPolicy::InviteOnly | JoinPolicy::Unspecified => Err(GroupRefusal::InviteOnly),
        }
    }

    /// Bringing others in is for members; a user gets itself in only by joining.
    fn invite(&mut self, users: &[String]) -> Result<(), GroupRefusal> {
        let free = self.group.join_policy == JoinPolicy::Free;
        self.require(if free { Standing::Member } else { Standing::Admin })?;
        self.require_known()?;
        for user in users.iter().collect::<BTreeSet<_>>() {
            if !self.state.members.contains_key(user) {
                self.add(user, GroupRole::Member);
            }
        }
        self.finish_adding()
    }

    fn approve(&mut self, user: &str) -> Result<(), GroupRefusal> {
        self.require(Standing::Admin)?;
        self.require_request(user)?;
        if self.state.members.contains_key(user) {
            return Ok(());
        }
        self.add(user, GroupRole::Member);
        self.finish_adding()
    }

    fn reject(&mut self, user: &str) -> Result<(), GroupRefusal> {
        self.require(Standing::Admin)?;
        self.require_request(user)
    }

    /// Owners cannot be removed; admins only by the owner, the app, or themselves.
    fn remove_members(&mut self, users: &[String]) -> Result<(), GroupRefusal> {
        self.require(Standing::Admin)?;
        let mut removed = Vec::new();
        for user in users.iter().collect::<BTreeSet<_>>() {
            let Some(member) = self.state.members.get(user) else { continue };
            match member.role {
                GroupRole::Owner => return Err(GroupRefusal::Owner),
                GroupRole::Admin if self.standing < Standing::Owner && !is_actor(self.actor, user) => {
                    return Err(GroupRefusal::Peer);
                }
                _ => removed.push(user.clone()),
            }
        }
        self.remove(removed);
        Ok(())
    }

    fn leave(&mut self) -> Result<(), GroupRefusal> {
        let user = acting_user(self.actor)?;
        let member = self.state.actor.as_ref().ok_or_else(|| GroupRefusal::NotMember(user.to_owned()))?;
        if member.role == GroupRole::Owner {
            return Err(GroupRefusal::Owner);
        }
        self.remove(vec![user.to_owned()]);
        Ok(())
    }

    fn set_role(&mut self, user: &str, role: GroupRole) -> Result<(), GroupRefusal> {
        self.require(Standing::Owner)?;
        let member = target(self.state, user)?;
        if member.role == GroupRole::Owner {
            return Err(GroupRefusal::Owner);
        }
        if member.role != role {
            self.effects.update.push(GroupMember { role, ..member.clone() });
            self.affect(vec![user.to_owned()]);
        }
        Ok(())
    }

    /// The old owner becomes an admin.
    fn transfer(&mut self, user: &str) -> Result<(), GroupRefusal> {
        self.require(Standing::Owner)?;
        let heir = target(self.state, user)?;
        if heir.role == GroupRole::Owner {
            return Ok(());
        }
        if let Some(old) = self.state.members.get(&self.state.group.owner_id) {
            self.effects.update.push(GroupMember { role: GroupRole::Admin, ..old.clone() });
        }
        self.effects.update.push(GroupMember { role: GroupRole::Owner, ..heir.clone() });
        user.clone_into(&mut self.group.owner_id);
        self.affect(vec![user.to_owned()]);
        Ok(())
    }

    /// Admins and owners may be muted only by someone above them.
    fn mute(&mut self, user: &str, until_ms: i64) -> Result<(), GroupRefusal> {
        self.require(Standing::Admin)?;
        let member = target(self.state, user)?;
        let rank = Standing::of_role(member.role);
        if rank >= Standing::Admin && self.standing <= rank {
            return Err(GroupRefusal::Peer);
        }
        self.effects.update.push(GroupMember { muted_until_ms: until_ms, ..member.clone() });
        self.affect(vec![user.to_owned()]);
        Ok(())
    }

    /// A member names itself; owners, admins and the app name anyone.
    fn nickname(&mut self, user: &str, nickname: &str) -> Result<(), GroupRefusal> {
        if !is_actor(self.actor, user) {
            self.require(Standing::Admin)?;
        }
        let member = target(self.state, user)?;
        if member.nickname != nickname {
            self.effects.update.push(GroupMember { nickname: nickname.to_owned(), ..member.clone() });
            self.affect(vec![user.to_owned()]);
        }
        Ok(())
    }

    fn dismiss(&mut self) -> Result<(), GroupRefusal> {
        self.require(Standing::Owner)?;
        let mut everyone: Vec<String> = self.state.members.keys().cloned().collect();
        everyone.sort();
        self.remove(everyone);
        self.group.dismissed = true;
        self.effects.drop_all_requests = true;
        Ok(())
    }
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
    actor: &'a GroupActor,
    standing: Standing,
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
            // The member's view starts here: its join's system message comes next.
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

    /// The effects, with the group row and the system message when the change does something.
    fn done(mut self) -> GroupEffects {
        if !self.announce {
            return self.effects;
        }
        self.group.updated_at_ms = self.ctx.now_ms;
        // Members who leave get the news in their inbox: they no longer read the group.
        self.effects.system_message = Some(system_message(
            &self.group.group_id,
            self.actor,
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
fn system_message(
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
        meta: Default::default(),
        reply_to: None,
        recipients: also_to
            .iter()
            .map(|user| Recipient { user_id: user.clone(), conversation_id: group_id.to_owned() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    //! The whole table: every standing x every change x every join policy, against the
    //! allowed set written out by hand (not derived from the code under test).

    use std::collections::HashMap;

    use super::*;

    const POLICIES: [JoinPolicy; 3] = [JoinPolicy::Free, JoinPolicy::Approval, JoinPolicy::InviteOnly];

    fn member(user: &str, role: GroupRole) -> GroupMember {
        GroupMember {
            user_id: user.into(),
            role,
            nickname: String::new(),
            muted_until_ms: 0,
            joined_group_seq: 0,
            joined_position: 0,
            joined_at_ms: 0,
        }
    }

    /// A group of `own` (owner), `adm` (admin), `mem` and `mem2`; `out` exists and is
    /// not a member, `req` asked to join.
    fn state(policy: JoinPolicy, actor: Option<&str>, large: bool) -> GroupState {
        let members: HashMap<String, GroupMember> = [
            member("own", GroupRole::Owner),
            member("adm", GroupRole::Admin),
            member("mem", GroupRole::Member),
            member("mem2", GroupRole::Member),
        ]
        .into_iter()
        .map(|m| (m.user_id.clone(), m))
        .collect();
        let group = Group {
            group_id: "g".into(),
            name: "g".into(),
            avatar_url: String::new(),
            introduction: String::new(),
            extra: String::new(),
            owner_id: "own".into(),
            join_policy: policy,
            muted_all: false,
            history_visible: false,
            member_count: 4,
            large,
            seq: 0,
            position: 7,
            dismissed: false,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        GroupState {
            actor: actor.and_then(|user| members.get(user).cloned()),
            group,
            members,
            unknown_users: Vec::new(),
            requested: vec!["req".into()],
        }
    }

    const ACTORS: [(&str, Option<&str>); 5] = [
        ("owner", Some("own")),
        ("admin", Some("adm")),
        ("member", Some("mem")),
        ("outsider", Some("out")),
        ("app", None),
    ];

    /// The actors a change is allowed for under a policy.
    type Allowed = fn(JoinPolicy) -> &'static [&'static str];

    /// Each change, and the actors it is allowed for under each policy.
    fn table() -> Vec<(&'static str, GroupChange, Allowed)> {
        let invite_out = |policy: JoinPolicy| -> &'static [&'static str] {
            if policy == JoinPolicy::Free { &["owner", "admin", "member", "app"] } else { &["owner", "admin", "app"] }
        };
        let join = |policy: JoinPolicy| -> &'static [&'static str] {
            // Members are in already (nothing to do); outsiders get in, or ask, unless invite-only.
            if policy == JoinPolicy::InviteOnly {
                &["owner", "admin", "member"]
            } else {
                &["owner", "admin", "member", "outsider"]
            }
        };
        vec![
            ("update", GroupChange::Update(GroupPatch { name: Some("x".into()), ..Default::default() }), |_| {
                &["owner", "admin", "app"]
            }),
            ("join", GroupChange::Join { message: String::new() }, join),
            ("invite the outsider", GroupChange::Invite(vec!["out".into()]), invite_out),
            ("approve", GroupChange::Approve("req".into()), |_| &["owner", "admin", "app"]),
            ("reject", GroupChange::Reject("req".into()), |_| &["owner", "admin", "app"]),
            ("remove a member", GroupChange::Remove(vec!["mem2".into()]), |_| &["owner", "admin", "app"]),
            ("remove the admin", GroupChange::Remove(vec!["adm".into()]), |_| &["owner", "admin", "app"]),
            ("remove the owner", GroupChange::Remove(vec!["own".into()]), |_| &[]),
            ("leave", GroupChange::Leave, |_| &["admin", "member"]),
            ("make an admin", GroupChange::SetRole { user: "mem2".into(), role: GroupRole::Admin }, |_| {
                &["owner", "app"]
            }),
            ("transfer", GroupChange::Transfer("mem2".into()), |_| &["owner", "app"]),
            ("mute a member", GroupChange::Mute { user: "mem2".into(), until_ms: 1 }, |_| &["owner", "admin", "app"]),
            ("mute the admin", GroupChange::Mute { user: "adm".into(), until_ms: 1 }, |_| &["owner", "app"]),
            ("rename oneself", GroupChange::Nickname { user: "mem".into(), nickname: "n".into() }, |_| {
                &["owner", "admin", "member", "app"]
            }),
            ("rename a member", GroupChange::Nickname { user: "mem2".into(), nickname: "n".into() }, |_| {
                &["owner", "admin", "app"]
            }),
            ("dismiss", GroupChange::Dismiss, |_| &["owner", "app"]),
        ]
    }

    #[test]
    fn every_role_may_do_exactly_what_the_table_allows_under_every_policy() {
        let event = GroupEvent { id: 1, sent_at_ms: 1, event: "e".into(), detail: String::new() };
        let rules = GroupRules { max_members: 100, large_threshold: 200 };
        let ctx = DecisionContext { rules, now_ms: 5, event: &event };
        let mut wrong = Vec::new();
        for large in [false, true] {
            for policy in POLICIES {
                for (change_name, change, allowed) in table() {
                    for (actor_name, user) in ACTORS {
                        let actor = user.map_or(GroupActor::App, |u| GroupActor::User(u.into()));
                        // "rename oneself" by an admin or owner renames mem, which they may
                        // anyway; by mem it is its own name.
                        let decision = decide(&change, &actor, &state(policy, user, large), &ctx);
                        let expected = allowed(policy).contains(&actor_name);
                        if decision.is_ok() != expected {
                            wrong.push(format!(
                                "{change_name} by {actor_name} ({policy:?}, large: {large}): {decision:?}"
                            ));
                        }
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "decisions that differ from the table:\n{}", wrong.join("\n"));
    }

    #[test]
    fn an_outsider_cannot_invite_itself_into_any_group() {
        let event = GroupEvent { id: 1, sent_at_ms: 1, event: "e".into(), detail: String::new() };
        let ctx =
            DecisionContext { rules: GroupRules { max_members: 100, large_threshold: 2 }, now_ms: 5, event: &event };
        for policy in POLICIES {
            for large in [false, true] {
                let me = GroupActor::User("out".into());
                let decision =
                    decide(&GroupChange::Invite(vec!["out".into()]), &me, &state(policy, Some("out"), large), &ctx);
                assert_eq!(decision, Err(GroupRefusal::NotMember("out".into())), "{policy:?}");
            }
        }
    }

    #[test]
    fn joining_follows_the_policy_read_under_the_lock() {
        let event = GroupEvent { id: 1, sent_at_ms: 1, event: "group.member_joined".into(), detail: String::new() };
        let ctx =
            DecisionContext { rules: GroupRules { max_members: 100, large_threshold: 4 }, now_ms: 5, event: &event };
        let me = GroupActor::User("out".into());
        let join = GroupChange::Join { message: "hi".into() };

        let joined = decide(&join, &me, &state(JoinPolicy::Free, Some("out"), false), &ctx).unwrap();
        assert_eq!(
            joined.insert.iter().map(|m| (m.user_id.as_str(), m.role)).collect::<Vec<_>>(),
            [("out", GroupRole::Member)]
        );
        assert_eq!(joined.insert[0].joined_position, 7, "history starts after the position before the join");
        assert!(joined.subscribe_everyone, "the fifth member takes the group past the threshold of 4");
        assert_eq!(joined.group.as_ref().map(|g| (g.member_count, g.large)), Some((5, true)));
        let announced = joined.system_message.expect("an event");
        assert!(announced.recipients.is_empty(), "a joiner reads the group; no extra inbox");

        let asked = decide(&join, &me, &state(JoinPolicy::Approval, Some("out"), false), &ctx).unwrap();
        assert_eq!(asked.join_request.map(|r| (r.user_id, r.message)), Some(("out".into(), "hi".into())));
        assert!(asked.insert.is_empty() && asked.system_message.is_none());

        assert_eq!(
            decide(&join, &me, &state(JoinPolicy::InviteOnly, Some("out"), false), &ctx),
            Err(GroupRefusal::InviteOnly)
        );
    }

    #[test]
    fn members_who_leave_hear_of_it_in_their_inbox_and_stop_reading_a_large_group() {
        let event = GroupEvent { id: 9, sent_at_ms: 1, event: "group.members_removed".into(), detail: String::new() };
        let ctx =
            DecisionContext { rules: GroupRules { max_members: 100, large_threshold: 2 }, now_ms: 5, event: &event };
        let remove = GroupChange::Remove(vec!["mem2".into(), "nobody".into()]);
        let fx = decide(&remove, &GroupActor::User("adm".into()), &state(JoinPolicy::Free, Some("adm"), true), &ctx)
            .unwrap();
        assert_eq!(fx.delete, ["mem2"]);
        assert_eq!(fx.unsubscribe, ["mem2"]);
        assert_eq!(fx.affected, ["mem2"], "only members are removed");
        let announced = fx.system_message.unwrap();
        assert_eq!(announced.recipients.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>(), ["mem2"]);
        assert_eq!(fx.group.map(|g| g.member_count), Some(3));
    }

    #[test]
    fn a_change_that_changes_nothing_writes_nothing() {
        let event = GroupEvent { id: 1, sent_at_ms: 1, event: "e".into(), detail: String::new() };
        let ctx =
            DecisionContext { rules: GroupRules { max_members: 100, large_threshold: 200 }, now_ms: 5, event: &event };
        let owner = GroupActor::User("own".into());
        let s = state(JoinPolicy::Free, Some("own"), false);
        for change in [
            GroupChange::Invite(vec!["mem".into()]),
            GroupChange::Remove(vec!["out".into()]),
            GroupChange::SetRole { user: "mem".into(), role: GroupRole::Member },
            GroupChange::Transfer("own".into()),
            GroupChange::Nickname { user: "mem".into(), nickname: String::new() },
        ] {
            assert_eq!(decide(&change, &owner, &s, &ctx), Ok(GroupEffects::default()), "{change:?}");
        }
    }

    #[test]
    fn a_group_never_grows_past_its_limit_and_a_dismissed_one_takes_no_change() {
        let event = GroupEvent { id: 1, sent_at_ms: 1, event: "e".into(), detail: String::new() };
        let ctx =
            DecisionContext { rules: GroupRules { max_members: 4, large_threshold: 200 }, now_ms: 5, event: &event };
        let owner = GroupActor::User("own".into());
        let mut s = state(JoinPolicy::Free, Some("own"), false);
        assert_eq!(decide(&GroupChange::Invite(vec!["out".into()]), &owner, &s, &ctx), Err(GroupRefusal::Full(4)));
        s.group.dismissed = true;
        assert_eq!(
            decide(&GroupChange::Update(GroupPatch::default()), &owner, &s, &ctx),
            Err(GroupRefusal::Dismissed("g".into()))
        );
    }
}
