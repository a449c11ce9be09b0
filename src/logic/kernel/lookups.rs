//! What several contexts look up before they act: that a user or a group exists, and a
//! caller's membership of a group it reads (the app reads any group).

use crate::{
    logic::{Error, Result, SharedCaller, kernel::validate, rules::group::GroupRefusal},
    model::{AppId, Group, GroupMember, User},
    store::{GroupStore, UserStore},
};

/// The user `user_id` of the app; `NotFound` if there is none.
pub async fn existing_user(store: &dyn UserStore, app: AppId, user_id: &str) -> Result<User> {
    validate::id("user_id", user_id)?;
    store
        .get_users(app, &[user_id.to_owned()])
        .await?
        .pop()
        .ok_or_else(|| Error::not_found(format!("user {user_id} does not exist")))
}

/// The group `group_id` of the app; `NotFound` if there is none.
pub async fn existing_group(store: &dyn GroupStore, app: AppId, group_id: &str) -> Result<Group> {
    validate::id("group_id", group_id)?;
    store.get_group(app, group_id).await?.ok_or_else(|| Error::not_found(format!("group {group_id} does not exist")))
}

/// The caller's membership, required for reads; the app reads anything (`None`).
pub async fn member_or_app(
    store: &dyn GroupStore,
    caller: &SharedCaller,
    group: &Group,
) -> Result<Option<GroupMember>> {
    let Some(user) = caller.user() else { return Ok(None) };
    match store.group_member(caller.app, &group.group_id, user).await? {
        Some(member) => Ok(Some(member)),
        None => Err(GroupRefusal::NotMember(user.to_owned()).into()),
    }
}
