//! A change to a group: what it reads under the group's lock, and the effects the group
//! rules decide it writes.

use std::collections::HashMap;

use super::{Group, GroupMember, JoinPolicy, JoinRequest, NewMessage};

/// A group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    pub group_id: String,
    pub name: String,
    pub avatar_url: String,
    pub introduction: String,
    pub extra: String,
    pub owner_id: String,
    pub join_policy: JoinPolicy,
    pub history_visible: bool,
    pub created_at_ms: i64,
}

/// Settings to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub introduction: Option<String>,
    pub extra: Option<String>,
    pub join_policy: Option<JoinPolicy>,
    pub muted_all: Option<bool>,
    pub history_visible: Option<bool>,
}

/// Who makes a group change: a user (whose role is read under the group's lock) or the
/// app itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupActor {
    User(String),
    App,
}

/// What a group change needs read under the group's lock, besides the group row and
/// its owner's membership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupLoad {
    /// The acting user, whose membership is read.
    pub actor: Option<String>,
    /// Users the change names: their memberships, whether they exist, whether they
    /// asked to join.
    pub users: Vec<String>,
    /// Every member's row (a dismissal).
    pub all_members: bool,
}

/// A group as a change finds it, under the group's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub group: Group,
    /// The acting user's membership, if it is a member.
    pub actor: Option<GroupMember>,
    /// The memberships of the named users, the actor and the owner (of everyone when
    /// `all_members` was asked), by user.
    pub members: HashMap<String, GroupMember>,
    /// Named users that do not exist in the app.
    pub unknown_users: Vec<String>,
    /// Named users who have asked to join.
    pub requested: Vec<String>,
}

/// What a decided group change writes, in the transaction that read its state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupEffects {
    /// The group row as it must be saved; `None` leaves it.
    pub group: Option<Group>,
    /// New members, whole rows.
    pub insert: Vec<GroupMember>,
    /// Members whose rows change.
    pub update: Vec<GroupMember>,
    /// Members who leave.
    pub delete: Vec<String>,
    /// A request to join to record (replacing an earlier one of the user).
    pub join_request: Option<JoinRequest>,
    /// Requests to join that are answered.
    pub drop_requests: Vec<String>,
    pub drop_all_requests: bool,
    /// The system message announcing the change; `None` when it changes no member or setting.
    pub system_message: Option<NewMessage>,
    /// Users the change affected (added, removed, muted, ...).
    pub affected: Vec<String>,
    /// Users who start reading the group's timeline; with `subscribe_everyone` (the
    /// switch to large), every member.
    pub subscribe: Vec<String>,
    pub subscribe_everyone: bool,
    /// Users who stop reading the group's timeline.
    pub unsubscribe: Vec<String>,
}
