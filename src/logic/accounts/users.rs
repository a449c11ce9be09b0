//! Users and their devices.

use super::Accounts;
use crate::logic::{
    AppCaller, Error, Page, Result, SharedCaller,
    kernel::{paging, validate},
};
use crate::{
    model::{AppId, Device, DeviceType, GroupActor, ProfilePatch, User, now_ms},
    store::{NewDevice, NewUser, StoreError},
};

/// A user as the business or a sign-up describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInput {
    /// Empty: gim generates one.
    pub user_id: String,
    pub nickname: String,
    pub avatar_url: String,
    pub extra: String,
}

/// A device as the client describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInput {
    /// Empty: gim generates one.
    pub device_id: String,
    pub device_type: DeviceType,
    pub model: String,
    pub os_version: String,
    pub sdk_version: String,
}

/// Users a node remembers it has seen, for `act_as` (beyond, the least used are read again).
const KNOWN_USERS: usize = 100_000;

/// Users known to exist. No API deletes a user, so one seen once stays known.
pub struct KnownUsers(quick_cache::sync::Cache<(AppId, String), ()>);

impl KnownUsers {
    pub fn new() -> Self {
        Self(quick_cache::sync::Cache::new(KNOWN_USERS))
    }
}

/// The ids of an import's users, by what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub created: Vec<String>,
    /// Users that were there already, left as they were.
    pub existing: Vec<String>,
}

impl Accounts {
    /// The app acting as one of its users (`x-gim-acting-user`): the user must exist, so
    /// that nothing is ever done in the name of a user that is not there.
    pub async fn act_as(&self, caller: &AppCaller, user_id: &str) -> Result<SharedCaller> {
        validate::id("x-gim-acting-user", user_id)?;
        let key = (caller.app, user_id.to_owned());
        if self.known_users.0.get(&key).is_none() {
            if self.store.get_users(caller.app, std::slice::from_ref(&key.1)).await?.is_empty() {
                return Err(Error::not_found(format!("x-gim-acting-user: user {user_id} does not exist")));
            }
            self.known_users.0.insert(key, ());
        }
        Ok(SharedCaller { app: caller.app, actor: GroupActor::User(user_id.to_owned()), device_id: None })
    }

    pub(super) fn new_user(&self, input: UserInput) -> Result<NewUser> {
        let limits = &self.limits;
        let user_id = if input.user_id.is_empty() { validate::generated_id("u_") } else { input.user_id };
        validate::id("user_id", &user_id)?;
        validate::name("nickname", &input.nickname, limits)?;
        validate::url("avatar_url", &input.avatar_url, limits)?;
        validate::extra("extra", &input.extra, limits)?;
        Ok(NewUser { user_id, nickname: input.nickname, avatar_url: input.avatar_url, extra: input.extra })
    }

    pub async fn create_user(&self, caller: &AppCaller, input: UserInput) -> Result<User> {
        let user = self.new_user(input)?;
        let created = self.store.create_users(caller.app, std::slice::from_ref(&user), now_ms()).await?;
        if created.first() != Some(&true) {
            return Err(Error::Conflict(format!("user {} already exists", user.user_id)));
        }
        self.get_user(caller.app, &user.user_id).await
    }

    /// Creates the users that do not exist.
    pub async fn import_users(&self, caller: &AppCaller, inputs: Vec<UserInput>) -> Result<Imported> {
        let max = self.limits.max_import_users;
        if inputs.is_empty() || inputs.len() > max {
            return Err(Error::invalid(format!("import 1-{max} users per call, got {}", inputs.len())));
        }
        let users = inputs.into_iter().map(|input| self.new_user(input)).collect::<Result<Vec<_>>>()?;
        let created = self.store.create_users(caller.app, &users, now_ms()).await?;
        let mut imported = Imported::default();
        for (user, created) in users.into_iter().zip(created) {
            if created { imported.created.push(user.user_id) } else { imported.existing.push(user.user_id) }
        }
        Ok(imported)
    }

    pub async fn get_user(&self, app: AppId, user_id: &str) -> Result<User> {
        validate::id("user_id", user_id)?;
        self.store
            .get_users(app, &[user_id.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(format!("user {user_id} does not exist")))
    }

    /// The users that exist among `ids`, in the order asked for.
    pub async fn get_users(&self, app: AppId, ids: &[String]) -> Result<Vec<User>> {
        validate::ids("user_ids", ids, self.limits.max_page_size as usize, true)?;
        let mut found = self.store.get_users(app, ids).await?;
        found.sort_by_key(|user| ids.iter().position(|id| *id == user.user_id));
        Ok(found)
    }

    pub async fn update_user(&self, app: AppId, user_id: &str, patch: ProfilePatch) -> Result<User> {
        validate::id("user_id", user_id)?;
        let limits = &self.limits;
        if let Some(nickname) = &patch.nickname {
            validate::name("nickname", nickname, limits)?;
        }
        if let Some(avatar_url) = &patch.avatar_url {
            validate::url("avatar_url", avatar_url, limits)?;
        }
        if let Some(extra) = &patch.extra {
            validate::extra("extra", extra, limits)?;
        }
        self.store
            .update_user(app, user_id, &patch, now_ms())
            .await?
            .ok_or_else(|| Error::not_found(format!("user {user_id} does not exist")))
    }

    /// Users with ids after `after_user_id`, ascending.
    pub async fn list_users(&self, app: AppId, after_user_id: &str, limit: i32) -> Result<Page<User>> {
        paging::page(&self.limits, limit, |n| self.store.list_users(app, after_user_id, n)).await
    }

    /// A device of `user_id` as the client describes it, checked.
    pub(super) fn new_device(&self, user_id: &str, input: DeviceInput) -> Result<NewDevice> {
        validate::id("user_id", user_id)?;
        let device_id = if input.device_id.is_empty() { validate::generated_id("d_") } else { input.device_id };
        validate::id("device_id", &device_id)?;
        for (field, value) in
            [("model", &input.model), ("os_version", &input.os_version), ("sdk_version", &input.sdk_version)]
        {
            validate::name(field, value, &self.limits)?;
        }
        Ok(NewDevice {
            user_id: user_id.to_owned(),
            device_id,
            device_type: input.device_type,
            model: input.model,
            os_version: input.os_version,
            sdk_version: input.sdk_version,
        })
    }

    pub async fn register_device(&self, app: AppId, user_id: &str, input: DeviceInput) -> Result<Device> {
        let device = self.new_device(user_id, input)?;
        // A user has at most `max_devices_per_user` devices, counted under the user's lock.
        let max = self.limits.max_devices_per_user as u64;
        let mut decide = |others: u64| others < max;
        match self.store.upsert_device(app, &device, now_ms(), &mut decide).await {
            Ok(Some(device)) => Ok(device),
            Ok(None) => Err(Error::LimitReached(format!(
                "user {user_id} has {max} devices, the most allowed; remove one first"
            ))),
            Err(StoreError::NotFound) => Err(Error::not_found(format!("user {user_id} does not exist"))),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn get_device(&self, app: AppId, user_id: &str, device_id: &str) -> Result<Device> {
        self.store
            .get_device(app, user_id, device_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("device {device_id} of user {user_id} does not exist")))
    }

    pub async fn list_devices(&self, app: AppId, user_id: &str) -> Result<Vec<Device>> {
        self.get_user(app, user_id).await?;
        Ok(self.store.list_devices(app, user_id).await?)
    }

    /// Unregisters a device; its tokens stop working.
    pub async fn remove_device(&self, app: AppId, user_id: &str, device_id: &str) -> Result<()> {
        validate::id("user_id", user_id)?;
        validate::id("device_id", device_id)?;
        if !self.store.remove_device(app, user_id, device_id).await? {
            return Err(Error::not_found(format!("device {device_id} of user {user_id} does not exist")));
        }
        self.forget_generations(app, user_id, Some(device_id));
        self.kick_sessions(app, user_id, Some(device_id), "the device was removed");
        Ok(())
    }
}
