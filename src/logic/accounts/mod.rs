//! Accounts and devices: users and their profiles, devices, device tokens (issued,
//! checked, revoked), usernames and passwords for apps that let gim keep them, closing a
//! device's sessions, and the credentials the cluster's own nodes present.

mod passwords;
mod tokens;
mod users;

use std::sync::Arc;

pub use passwords::SignedIn;
pub use tokens::{IssuedToken, Tokens};
pub use users::{DeviceInput, Imported, KnownUsers, UserInput};

use crate::{
    auth::{ClusterTokens, hash_secret},
    config::Limits,
    delivery::{Delivery, Kick},
    logic::{
        DeviceCaller, Result,
        kernel::{directory::AppDirectory, rate::Rates, validate},
    },
    model::AppId,
    proto::client::v1::KickReason,
    store::UserStore,
};

/// The use cases of users, devices, tokens and accounts.
pub struct Accounts {
    store: Arc<dyn UserStore>,
    directory: AppDirectory,
    rates: Arc<Rates>,
    tokens: Tokens,
    /// Closes sessions (revoked tokens, removed devices, the business's kicks).
    delivery: Arc<dyn Delivery>,
    limits: Arc<Limits>,
    known_users: KnownUsers,
    /// Argon2id runs a bounded number at a time.
    password_slots: tokio::sync::Semaphore,
    /// Hashes of the cluster's internal and on-behalf tokens.
    cluster: Option<(String, String)>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

/// What `Accounts` is built from.
pub struct AccountsParts {
    pub store: Arc<dyn UserStore>,
    pub directory: AppDirectory,
    pub rates: Arc<Rates>,
    pub tokens: Tokens,
    pub delivery: Arc<dyn Delivery>,
    pub limits: Arc<Limits>,
    pub password_hash_concurrency: usize,
    /// The cluster's credentials, when connect nodes call this node over the network.
    pub cluster: Option<ClusterTokens>,
}

impl Accounts {
    pub fn new(parts: AccountsParts) -> Self {
        Self {
            store: parts.store,
            directory: parts.directory,
            rates: parts.rates,
            tokens: parts.tokens,
            delivery: parts.delivery,
            limits: parts.limits,
            known_users: KnownUsers::new(),
            password_slots: tokio::sync::Semaphore::new(parts.password_hash_concurrency),
            cluster: parts.cluster.map(|tokens| (hash_secret(&tokens.internal), hash_secret(&tokens.on_behalf))),
        }
    }

    /// A call a device made itself (not one connect makes for it): it counts against the
    /// device's and its user's rates.
    pub fn device_call(&self, caller: &DeviceCaller) -> Result<()> {
        self.rates.device_call(caller.app, &caller.user_id, &caller.device_id)
    }

    /// Whether `presented` is this cluster's internal token (a node calling the internal API).
    pub fn is_internal(&self, presented: &str) -> bool {
        self.cluster.as_ref().is_some_and(|(internal, _)| hash_secret(presented) == *internal)
    }

    /// Whether `presented` is this cluster's on-behalf token (connect calling for a device).
    pub fn is_on_behalf(&self, presented: &str) -> bool {
        self.cluster.as_ref().is_some_and(|(_, on_behalf)| hash_secret(presented) == *on_behalf)
    }

    /// Closes the sessions of a device, or of every device of the user.
    pub async fn kick(&self, app: AppId, user_id: &str, device_id: Option<&str>, reason: &str) -> Result<()> {
        validate::id("user_id", user_id)?;
        if let Some(device_id) = device_id {
            validate::id("device_id", device_id)?;
        }
        validate::name("reason", reason, &self.limits)?;
        self.get_user(app, user_id).await?;
        self.delivery.kick(Kick {
            app,
            user_id: user_id.to_owned(),
            device_id: device_id.map(str::to_owned),
            reason: KickReason::Business,
            message: reason.to_owned(),
        });
        Ok(())
    }
}
