//! Apps (tenants): the operator's use cases and business authentication.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use quick_cache::sync::Cache;

use super::{AppCaller, Error, Logic, Result, validate};
use crate::{
    auth::{generate_secret, hash_secret},
    model::{App, AppId, AppSecret, AppSettings, now_ms},
};

/// Apps whose secrets a node keeps in memory at most.
const APP_CACHE_CAPACITY: usize = 10_000;
/// A secret that matches nothing triggers a reload at most this often per app, so that a
/// secret rotated on another node works here at once without letting wrong secrets
/// hammer the database.
const MISS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// An app and its live secrets as last read from the store.
#[derive(Debug)]
struct CachedApp {
    app: Option<App>,
    secrets: Vec<AppSecret>,
    loaded_at: Instant,
}

/// Short-lived copies of apps and secrets, so that authenticating a business call
/// costs no database read.
pub(super) struct AppCache {
    entries: Cache<AppId, Arc<CachedApp>>,
    ttl: Duration,
}

impl AppCache {
    pub(super) fn new(ttl_secs: u64) -> Self {
        Self { entries: Cache::new(APP_CACHE_CAPACITY), ttl: Duration::from_secs(ttl_secs) }
    }
}

impl CachedApp {
    fn accepts(&self, secret_hash: &str, now_ms: i64) -> bool {
        self.secrets.iter().any(|s| s.hash == secret_hash && s.expires_at_ms.is_none_or(|at| at > now_ms))
    }
}

impl Logic {
    async fn load_app(&self, app: AppId) -> Result<Arc<CachedApp>> {
        let now = now_ms();
        let found = self.store().get_app(app).await?;
        let secrets = if found.is_some() { self.store().app_secrets(app, now).await? } else { Vec::new() };
        let entry = Arc::new(CachedApp { app: found, secrets, loaded_at: Instant::now() });
        self.inner.apps.entries.insert(app, entry.clone());
        Ok(entry)
    }

    async fn cached_app(&self, app: AppId) -> Result<Arc<CachedApp>> {
        match self.inner.apps.entries.get(&app) {
            Some(entry) if entry.loaded_at.elapsed() < self.inner.apps.ttl => Ok(entry),
            _ => self.load_app(app).await,
        }
    }

    /// Checks an app id and secret pair (business calls).
    pub async fn authenticate_app(&self, app: AppId, secret: &str) -> Result<AppCaller> {
        let refused = || Error::Unauthenticated("unknown app id or wrong app secret".into());
        let hash = hash_secret(secret);
        let now = now_ms();
        let mut entry = self.cached_app(app).await?;
        if !entry.accepts(&hash, now) && entry.loaded_at.elapsed() >= MISS_RELOAD_INTERVAL {
            entry = self.load_app(app).await?;
        }
        match &entry.app {
            Some(found) if entry.accepts(&hash, now) => Ok(AppCaller { app, settings: found.settings.clone() }),
            _ => Err(refused()),
        }
    }

    /// An app that exists (account calls, which carry no secret).
    pub async fn existing_app(&self, app: AppId) -> Result<App> {
        self.cached_app(app)
            .await?
            .app
            .clone()
            .ok_or_else(|| Error::Unauthenticated(format!("app {app} does not exist")))
    }

    /// Creates an app; returns it with its first secret, which is not stored in clear.
    pub async fn create_app(&self, name: &str, settings: AppSettings) -> Result<(App, String)> {
        check_app_name(name, self)?;
        self.check_settings(&settings)?;
        let secret = generate_secret();
        let app = self.store().create_app(name, &settings, &hash_secret(&secret), now_ms()).await?;
        tracing::info!(app = app.id, name, "app created");
        Ok((app, secret))
    }

    pub async fn get_app(&self, app: AppId) -> Result<App> {
        self.store().get_app(app).await?.ok_or_else(|| Error::not_found(format!("app {app} does not exist")))
    }

    pub async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(self.store().list_apps().await?)
    }

    pub async fn update_app(&self, app: AppId, name: Option<&str>, settings: Option<AppSettings>) -> Result<App> {
        if let Some(name) = name {
            check_app_name(name, self)?;
        }
        if let Some(settings) = &settings {
            self.check_settings(settings)?;
        }
        let updated = self.store().update_app(app, name, settings.as_ref()).await?;
        self.inner.apps.entries.remove(&app);
        updated.ok_or_else(|| Error::not_found(format!("app {app} does not exist")))
    }

    /// Adds a secret; the ones that exist stay valid for `keep_old_for` (0: revoked now).
    pub async fn rotate_secret(&self, app: AppId, keep_old_for: Duration) -> Result<String> {
        self.get_app(app).await?;
        let secret = generate_secret();
        let now = now_ms();
        let retire_at = now.saturating_add(i64::try_from(keep_old_for.as_millis()).unwrap_or(i64::MAX));
        self.store().rotate_secret(app, &hash_secret(&secret), retire_at, now).await?;
        self.inner.apps.entries.remove(&app);
        tracing::info!(app, keep_old_secs = keep_old_for.as_secs(), "app secret rotated");
        Ok(secret)
    }
}

impl Logic {
    fn check_settings(&self, settings: &AppSettings) -> Result<()> {
        match &settings.before_send {
            Some(hook) => super::moderation::check_hook(hook, self.inner.webhooks.max_hook_timeout_ms),
            None => Ok(()),
        }
    }
}

fn check_app_name(name: &str, logic: &Logic) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("app name is required"));
    }
    validate::name("name", name, logic.limits())
}
