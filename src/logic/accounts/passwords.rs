//! Usernames and passwords, for apps that let gim keep accounts.

use std::{net::IpAddr, sync::LazyLock, time::Duration};

use super::{
    Accounts, IssuedToken,
    users::{DeviceInput, UserInput},
};
use crate::logic::{DeviceCaller, Error, Result};
use crate::{
    auth::{hash_password, verify_password},
    model::{AppId, Device, User, now_ms},
    store::StoreError,
};

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 128;

/// Verified against when a username does not exist, so that a wrong username takes as
/// long as a wrong password and does not reveal which usernames exist.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password("gim dummy password"));

/// A signed-in device: the user, the device and its token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub device: Device,
    pub token: IssuedToken,
}

fn normalize_username(username: &str) -> Result<String> {
    let username = username.to_ascii_lowercase();
    if !(3..=32).contains(&username.len())
        || !username.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
    {
        return Err(Error::invalid("username must be 3-32 of a-z 0-9 _ . -"));
    }
    Ok(username)
}

fn check_password(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(Error::invalid(format!(
            "password must be {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters long"
        )));
    }
    Ok(())
}

impl Accounts {
    /// Runs argon2id off the async threads, a bounded number at a time.
    async fn hash_blocking<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _slot = self.password_slots.acquire().await.map_err(|_| Error::Unavailable("shutting down".into()))?;
        tokio::task::spawn_blocking(work).await.map_err(|err| Error::internal(format!("password hashing: {err}")))
    }

    async fn accounts_app(&self, app: AppId) -> Result<()> {
        if !self.directory.settings(app).await?.accounts_enabled {
            return Err(Error::PermissionDenied(format!("app {app} does not let gim keep accounts")));
        }
        Ok(())
    }

    /// The user who signed up as `username`, for adding a friend by name. Sign-up
    /// already tells whether a name is taken, so this reveals nothing more.
    pub async fn find_by_username(&self, app: AppId, username: &str) -> Result<User> {
        self.accounts_app(app).await?;
        let username = normalize_username(username)?;
        match self.store.account_by_username(app, &username).await? {
            Some((user_id, _)) => self.get_user(app, &user_id).await,
            None => Err(Error::not_found(format!("no user signed up as {username}"))),
        }
    }

    /// `address`: where the call came from, for the rate of sign-ups per address.
    pub async fn sign_up(
        &self,
        app: AppId,
        username: &str,
        password: &str,
        nickname: &str,
        device: DeviceInput,
        address: Option<IpAddr>,
    ) -> Result<SignedIn> {
        self.accounts_app(app).await?;
        self.rates.sign_up(address)?;
        // Everything is checked before anything is written: a refusal takes no username.
        let username = normalize_username(username)?;
        check_password(password)?;
        let user = self.new_user(UserInput { nickname: nickname.to_owned(), ..UserInput::default() })?;
        let device = self.new_device(&user.user_id, device)?;
        let password = password.to_owned();
        let hash = self.hash_blocking(move || hash_password(&password)).await?;
        let device = match self.store.create_account(app, &username, &hash, &user, &device, now_ms()).await {
            Ok(device) => device,
            Err(StoreError::Conflict) => {
                return Err(Error::Conflict(format!("username {username} is taken")));
            }
            Err(err) => return Err(err.into()),
        };
        tracing::info!(app, user = %user.user_id, "account created");
        let token = self.issue_token(app, &user.user_id, &device.device_id, Duration::ZERO).await?;
        let user = self.get_user(app, &user.user_id).await?;
        Ok(SignedIn { user, device, token })
    }

    /// `address`: where the call came from, for the rate of sign-in attempts per address
    /// (attempts are also counted per username, whether it exists or not).
    pub async fn sign_in(
        &self,
        app: AppId,
        username: &str,
        password: &str,
        device: DeviceInput,
        address: Option<IpAddr>,
    ) -> Result<SignedIn> {
        self.accounts_app(app).await?;
        let refused = || Error::Unauthenticated("wrong username or password".into());
        let username = normalize_username(username).map_err(|_| refused())?;
        self.rates.sign_in(app, &username, address)?;
        let account = self.store.account_by_username(app, &username).await?;
        let (user_id, hash) = match account {
            Some(account) => account,
            None => (String::new(), DUMMY_HASH.clone()),
        };
        let password = password.to_owned();
        let valid = self.hash_blocking(move || verify_password(&password, &hash)).await?;
        if !valid || user_id.is_empty() {
            self.rates.sign_in_failed(app, &username, address);
            return Err(refused());
        }
        self.open_session(app, &user_id, device).await
    }

    async fn open_session(&self, app: AppId, user_id: &str, device: DeviceInput) -> Result<SignedIn> {
        let device = self.register_device(app, user_id, device).await?;
        let token = self.issue_token(app, user_id, &device.device_id, Duration::ZERO).await?;
        let user = self.get_user(app, user_id).await?;
        Ok(SignedIn { user, device, token })
    }

    /// Changes the caller's password and revokes every token of the user, the caller's
    /// included: each device signs in again with the new password. A wrong old password
    /// counts as a failed sign-in of the username (`address`: where the call came from),
    /// so that a stolen token is no faster a way to guess the password than signing in.
    pub async fn change_password(
        &self,
        caller: &DeviceCaller,
        old: &str,
        new: &str,
        address: Option<IpAddr>,
    ) -> Result<()> {
        check_password(new)?;
        let (username, hash) = self
            .store
            .account_of(caller.app, &caller.user_id)
            .await?
            .ok_or_else(|| Error::FailedPrecondition("this user has no gim account".into()))?;
        let guesser = (address, caller.device_id.as_str());
        self.rates.password_check(caller.app, &username, guesser)?;
        let old = old.to_owned();
        if !self.hash_blocking(move || verify_password(&old, &hash)).await? {
            self.rates.password_check_failed(caller.app, &username, guesser);
            return Err(Error::PermissionDenied("the old password is wrong".into()));
        }
        let new = new.to_owned();
        let hash = self.hash_blocking(move || hash_password(&new)).await?;
        self.store.set_password_hash(caller.app, &caller.user_id, &hash).await?;
        self.revoke_tokens(caller.app, &caller.user_id, None).await
    }
}
