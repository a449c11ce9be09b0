//! Device tokens: issuing, verifying and revoking.

use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use super::Accounts;
use crate::logic::{DeviceCaller, Error, Result, kernel::validate};
use crate::{
    auth::{Claims, TokenError, TokenKey},
    config::AuthConfig,
    delivery::Kick,
    model::{AppId, TokenGenerations, now_ms},
    proto::client::v1::KickReason,
};

/// Devices whose token generations a node keeps in memory at most.
const GENERATION_CACHE_CAPACITY: usize = 200_000;

type DeviceKey = (AppId, String, String);

pub struct Tokens {
    key: TokenKey,
    default_ttl: Duration,
    max_ttl: Duration,
    generations: Cache<DeviceKey, (TokenGenerations, Instant)>,
    generation_ttl: Duration,
}

impl Tokens {
    pub fn new(key: TokenKey, config: &AuthConfig) -> Self {
        Self {
            key,
            default_ttl: Duration::from_secs(config.default_token_ttl_secs),
            max_ttl: Duration::from_secs(config.max_token_ttl_secs),
            generations: Cache::new(GENERATION_CACHE_CAPACITY),
            generation_ttl: Duration::from_secs(config.token_generation_cache_secs),
        }
    }
}

/// A token and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at_ms: i64,
}

impl Accounts {
    /// Signs a token for a registered device; `ttl` 0 takes the configured default.
    pub async fn issue_token(&self, app: AppId, user_id: &str, device_id: &str, ttl: Duration) -> Result<IssuedToken> {
        validate::id("user_id", user_id)?;
        validate::id("device_id", device_id)?;
        let tokens = &self.tokens;
        if ttl > tokens.max_ttl {
            return Err(Error::invalid(format!("ttl_seconds must be at most {}", tokens.max_ttl.as_secs())));
        }
        let ttl = if ttl.is_zero() { tokens.default_ttl } else { ttl };
        let generations = self
            .store
            .token_generations(app, user_id, device_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("device {device_id} of user {user_id} is not registered")))?;
        // Expiry is in whole seconds, rounded up: a token lives at least its ttl (rounding
        // down made a 1-second token issued late in a second expire at once).
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let expires_at = (now_ms() + 999) / 1000 + ttl_secs;
        let claims = Claims {
            app_id: app,
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            expires_at,
            user_generation: generations.user,
            device_generation: generations.device,
        };
        Ok(IssuedToken { token: tokens.key.sign(&claims), expires_at_ms: expires_at * 1000 })
    }

    /// Checks a device token: signature and expiry locally, revocation against the
    /// cached token generations.
    pub async fn authenticate_device(&self, token: &str) -> Result<DeviceCaller> {
        let tokens = &self.tokens;
        let claims = tokens.key.verify(token, now_ms() / 1000).map_err(|err| {
            Error::Unauthenticated(match err {
                TokenError::Expired => "the device token has expired; ask the business for a new one".into(),
                other => format!("invalid device token: {other}"),
            })
        })?;
        let key = (claims.app_id, claims.user_id.clone(), claims.device_id.clone());
        let generations = match tokens.generations.get(&key) {
            Some((generations, at)) if at.elapsed() < tokens.generation_ttl => generations,
            _ => {
                let Some(generations) =
                    self.store.token_generations(claims.app_id, &claims.user_id, &claims.device_id).await?
                else {
                    return Err(Error::Unauthenticated("the device of this token is no longer registered".into()));
                };
                tokens.generations.insert(key, (generations, Instant::now()));
                generations
            }
        };
        if claims.user_generation < generations.user || claims.device_generation < generations.device {
            return Err(Error::Unauthenticated("the device token has been revoked".into()));
        }
        Ok(DeviceCaller {
            app: claims.app_id,
            user_id: claims.user_id,
            device_id: claims.device_id,
            device_type: generations.device_type,
        })
    }

    /// Revokes every token of one device, or of every device of the user.
    pub async fn revoke_tokens(&self, app: AppId, user_id: &str, device_id: Option<&str>) -> Result<()> {
        validate::id("user_id", user_id)?;
        if let Some(device_id) = device_id {
            validate::id("device_id", device_id)?;
        }
        if !self.store.bump_token_generation(app, user_id, device_id).await? {
            return Err(Error::not_found(match device_id {
                Some(device_id) => format!("device {device_id} of user {user_id} does not exist"),
                None => format!("user {user_id} does not exist"),
            }));
        }
        self.forget_generations(app, user_id, device_id);
        self.kick_sessions(app, user_id, device_id, "the device's tokens were revoked");
        tracing::info!(app, user = user_id, device = device_id, "tokens revoked");
        Ok(())
    }

    /// Closes the live sessions that a revocation leaves without a valid token.
    pub(super) fn kick_sessions(&self, app: AppId, user_id: &str, device_id: Option<&str>, why: &str) {
        self.delivery.kick(Kick {
            app,
            user_id: user_id.to_owned(),
            device_id: device_id.map(str::to_owned),
            reason: KickReason::Revoked,
            message: why.to_owned(),
        });
    }

    /// Drops cached generations so that this node sees a revocation at once.
    pub(super) fn forget_generations(&self, app: AppId, user_id: &str, device_id: Option<&str>) {
        let cache = &self.tokens.generations;
        match device_id {
            Some(device_id) => {
                cache.remove(&(app, user_id.to_owned(), device_id.to_owned()));
            }
            None => cache.retain(|(a, u, _), _| !(*a == app && u == user_id)),
        }
    }
}
