//! The apps every context asks about: a short-lived cache of each app and its live
//! secrets (so that authenticating a business call costs no database read), the app's
//! limits in effect, and the per-app rates they set.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use quick_cache::sync::Cache;

use super::rate::Rates;
use crate::{
    auth::hash_secret,
    logic::{AppCaller, Error, Result},
    metrics::Metrics,
    model::{App, AppId, AppQuotas, AppSecret, AppSettings, now_ms},
    store::AppStore,
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
    app: Option<Arc<App>>,
    secrets: Vec<AppSecret>,
    loaded_at: Instant,
}

impl CachedApp {
    fn accepts(&self, secret_hash: &str, now_ms: i64) -> bool {
        self.secrets.iter().any(|s| s.hash == secret_hash && s.expires_at_ms.is_none_or(|at| at > now_ms))
    }
}

/// An app's settings as the cache holds them.
pub struct CachedSettings(Arc<App>);

impl std::ops::Deref for CachedSettings {
    type Target = AppSettings;

    fn deref(&self) -> &AppSettings {
        &self.0.settings
    }
}

/// The apps of the deployment as every context sees them; cheap to clone.
#[derive(Clone)]
pub struct AppDirectory {
    inner: Arc<Directory>,
}

struct Directory {
    store: Arc<dyn AppStore>,
    entries: Cache<AppId, Arc<CachedApp>>,
    ttl: Duration,
    /// The deployment's limits of every app that sets none of its own.
    quota_defaults: AppQuotas,
    rates: Arc<Rates>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AppDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppDirectory").field("ttl", &self.inner.ttl).finish_non_exhaustive()
    }
}

impl AppDirectory {
    pub fn new(
        store: Arc<dyn AppStore>,
        cache_secs: u64,
        quota_defaults: AppQuotas,
        rates: Arc<Rates>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let inner = Directory {
            store,
            entries: Cache::new(APP_CACHE_CAPACITY),
            ttl: Duration::from_secs(cache_secs),
            quota_defaults,
            rates,
            metrics,
        };
        Self { inner: Arc::new(inner) }
    }

    async fn load(&self, app: AppId) -> Result<Arc<CachedApp>> {
        let now = now_ms();
        let store = &self.inner.store;
        let found = store.get_app(app).await?;
        let secrets = if found.is_some() { store.app_secrets(app, now).await? } else { Vec::new() };
        let entry = Arc::new(CachedApp { app: found.map(Arc::new), secrets, loaded_at: Instant::now() });
        self.inner.entries.insert(app, entry.clone());
        Ok(entry)
    }

    async fn cached(&self, app: AppId) -> Result<Arc<CachedApp>> {
        match self.inner.entries.get(&app) {
            Some(entry) if entry.loaded_at.elapsed() < self.inner.ttl => Ok(entry),
            _ => self.load(app).await,
        }
    }

    /// Forgets what the cache holds of an app, after a change to it.
    pub fn forget(&self, app: AppId) {
        self.inner.entries.remove(&app);
    }

    /// Checks an app id and secret pair (business calls).
    pub async fn authenticate(&self, app: AppId, secret: &str) -> Result<AppCaller> {
        let refused = || Error::Unauthenticated("unknown app id or wrong app secret".into());
        let hash = hash_secret(secret);
        let now = now_ms();
        let mut entry = self.cached(app).await?;
        if !entry.accepts(&hash, now) && entry.loaded_at.elapsed() >= MISS_RELOAD_INTERVAL {
            entry = self.load(app).await?;
        }
        match &entry.app {
            Some(found) if entry.accepts(&hash, now) => Ok(AppCaller { app, settings: found.settings.clone() }),
            _ => Err(refused()),
        }
    }

    /// The settings of an app that exists, from the cache (no copy is made).
    pub async fn settings(&self, app: AppId) -> Result<CachedSettings> {
        match &self.cached(app).await?.app {
            Some(found) => Ok(CachedSettings(found.clone())),
            None => Err(Error::Unauthenticated(format!("app {app} does not exist"))),
        }
    }

    /// The limits `settings` put on their app: its own quotas, else the deployment's.
    pub fn quotas(&self, settings: &AppSettings) -> AppQuotas {
        settings.quotas.or(self.inner.quota_defaults)
    }

    /// A business call of the caller's app: it counts against the app's quota of calls.
    pub fn call(&self, caller: &AppCaller) -> Result<()> {
        let per_second = self.quotas(&caller.settings).business_calls_per_second.unwrap_or(0);
        let taken = self.inner.rates.app_call(caller.app, per_second);
        self.inner.metrics.app_used(caller.app, "business_call", taken.is_ok());
        taken
    }

    /// A message sent in `app` (by a device or the business): it counts against the app's
    /// quota of sends.
    pub async fn send(&self, app: AppId) -> Result<()> {
        let settings = self.settings(app).await?;
        let per_second = self.quotas(&settings).sends_per_second.unwrap_or(0);
        let taken = self.inner.rates.app_send(app, per_second);
        self.inner.metrics.app_used(app, "send", taken.is_ok());
        taken
    }
}
