//! App administration: the operator's use cases on apps (tenants): creating them,
//! their settings, quotas and secrets.

use std::{sync::Arc, time::Duration};

use crate::{
    auth::{generate_secret, hash_secret},
    config::Limits,
    logic::{
        Error, Result,
        kernel::{directory::AppDirectory, moderation::check_hook, validate},
    },
    model::{App, AppId, AppQuotas, AppSettings, AppSettingsPatch, BeforeSendHook, now_ms},
    outbound::AddressPolicy,
    store::AppStore,
    webhooks::signature,
};

/// The operator's use cases on apps.
pub struct AppAdmin {
    store: Arc<dyn AppStore>,
    directory: AppDirectory,
    limits: Arc<Limits>,
    /// `webhooks.max_hook_timeout_ms`: the longest a before-send hook may make senders wait.
    max_hook_timeout_ms: u64,
    /// Where before-send hooks may be.
    outbound: AddressPolicy,
}

impl std::fmt::Debug for AppAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAdmin").finish_non_exhaustive()
    }
}

impl AppAdmin {
    pub fn new(
        store: Arc<dyn AppStore>,
        directory: AppDirectory,
        limits: Arc<Limits>,
        max_hook_timeout_ms: u64,
        outbound: AddressPolicy,
    ) -> Self {
        Self { store, directory, limits, max_hook_timeout_ms, outbound }
    }

    /// Creates an app; returns it with its first secret, which is not stored in clear. A
    /// before-send hook given without a secret gets one (in the returned settings, which
    /// is the one time gim shows it).
    pub async fn create_app(&self, name: &str, mut settings: AppSettings) -> Result<(App, String)> {
        check_app_name(name, &self.limits)?;
        if let Some(hook) = settings.before_send.as_mut() {
            if hook.secret.is_empty() {
                hook.secret = signature::generate_secret();
            }
            self.check_hook(hook)?;
        }
        let secret = generate_secret();
        let app = self.store.create_app(name, &settings, &hash_secret(&secret), now_ms()).await?;
        tracing::info!(app = app.id, name, "app created");
        Ok((app, secret))
    }

    pub async fn get_app(&self, app: AppId) -> Result<App> {
        self.store.get_app(app).await?.ok_or_else(|| Error::not_found(format!("app {app} does not exist")))
    }

    pub async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(self.store.list_apps().await?)
    }

    /// Renames an app and changes the settings `patch` names, leaving the others as they
    /// are. Returns the app, and the before-send hook's secret if gim made one for it.
    pub async fn update_app(
        &self,
        app: AppId,
        name: Option<&str>,
        patch: AppSettingsPatch,
    ) -> Result<(App, Option<String>)> {
        if let Some(name) = name {
            check_app_name(name, &self.limits)?;
        }
        let mut refusal = None;
        let mut made_secret = None;
        let mut change = |settings: &mut AppSettings| {
            let (mut patched, made) = patched(settings, &patch, signature::generate_secret);
            // A hook is checked when it is set; one set before stays as it is.
            let checked = match patched.before_send.as_mut().filter(|_| patch.before_send.is_some()) {
                Some(hook) => self.check_hook(hook),
                None => Ok(()),
            };
            match checked {
                Ok(()) => {
                    *settings = patched;
                    made_secret = made;
                    true
                }
                Err(err) => {
                    refusal = Some(err);
                    false
                }
            }
        };
        let updated = self.store.update_app(app, name, &mut change).await?;
        self.directory.forget(app);
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        let updated = updated.ok_or_else(|| Error::not_found(format!("app {app} does not exist")))?;
        tracing::info!(app, "app updated");
        Ok((updated, made_secret))
    }

    /// The limits `settings` put on their app: its own quotas, else the deployment's.
    pub fn quotas(&self, settings: &AppSettings) -> AppQuotas {
        self.directory.quotas(settings)
    }

    /// Adds a secret; the ones that exist stay valid for `keep_old_for` (0: revoked now).
    pub async fn rotate_secret(&self, app: AppId, keep_old_for: Duration) -> Result<String> {
        self.get_app(app).await?;
        let secret = generate_secret();
        let now = now_ms();
        let retire_at = now.saturating_add(i64::try_from(keep_old_for.as_millis()).unwrap_or(i64::MAX));
        self.store.rotate_secret(app, &hash_secret(&secret), retire_at, now).await?;
        self.directory.forget(app);
        tracing::info!(app, keep_old_secs = keep_old_for.as_secs(), "app secret rotated");
        Ok(secret)
    }
}

impl AppAdmin {
    /// Checks a before-send hook as the operator gives it, its URL read as gim stores it.
    fn check_hook(&self, hook: &mut BeforeSendHook) -> Result<()> {
        check_hook(hook, self.max_hook_timeout_ms, &self.outbound)
    }
}

/// `current` with `patch` applied. A hook set without a secret keeps the current hook's,
/// or gets a new one from `new_secret` (returned, for the caller to show once).
fn patched(
    current: &AppSettings,
    patch: &AppSettingsPatch,
    new_secret: impl FnOnce() -> String,
) -> (AppSettings, Option<String>) {
    let mut settings = current.clone();
    let mut made = None;
    settings.accounts_enabled = patch.accounts_enabled.unwrap_or(settings.accounts_enabled);
    settings.friendship_required = patch.friendship_required.unwrap_or(settings.friendship_required);
    settings.presence_events_disabled = patch.presence_events_disabled.unwrap_or(settings.presence_events_disabled);
    if let Some(hook) = &patch.before_send {
        settings.before_send = hook.clone().map(|mut hook| {
            if hook.secret.is_empty() {
                hook.secret = match &current.before_send {
                    Some(current) => current.secret.clone(),
                    None => made.insert(new_secret()).clone(),
                };
            }
            hook
        });
    }
    if patch.reset_quotas {
        settings.quotas = AppQuotas::default();
    }
    settings.quotas = patch.quotas.or(settings.quotas);
    (settings, made)
}

fn check_app_name(name: &str, limits: &Limits) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("app name is required"));
    }
    validate::name("name", name, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, secret: &str) -> BeforeSendHook {
        BeforeSendHook { url: url.into(), secret: secret.into(), direct: true, ..Default::default() }
    }

    #[test]
    fn a_patch_changes_what_it_names_and_nothing_else() {
        let current = AppSettings {
            accounts_enabled: true,
            friendship_required: true,
            before_send: Some(hook("https://a.example/h", "whsec_old")),
            quotas: AppQuotas { sends_per_second: Some(5), max_webhook_endpoints: Some(2), ..Default::default() },
            ..Default::default()
        };
        let never = || -> String { panic!("no secret is made") };
        let cases: Vec<(&str, AppSettingsPatch, AppSettings)> = vec![
            ("nothing", AppSettingsPatch::default(), current.clone()),
            (
                "one switch",
                AppSettingsPatch { friendship_required: Some(false), ..Default::default() },
                AppSettings { friendship_required: false, ..current.clone() },
            ),
            (
                "the hook, its secret kept",
                AppSettingsPatch { before_send: Some(Some(hook("https://b.example/h", ""))), ..Default::default() },
                AppSettings { before_send: Some(hook("https://b.example/h", "whsec_old")), ..current.clone() },
            ),
            (
                "the hook, with a new secret",
                AppSettingsPatch {
                    before_send: Some(Some(hook("https://b.example/h", "whsec_new"))),
                    ..Default::default()
                },
                AppSettings { before_send: Some(hook("https://b.example/h", "whsec_new")), ..current.clone() },
            ),
            (
                "the hook off",
                AppSettingsPatch { before_send: Some(None), ..Default::default() },
                AppSettings { before_send: None, ..current.clone() },
            ),
            (
                "one quota",
                AppSettingsPatch {
                    quotas: AppQuotas { business_calls_per_second: Some(0), ..Default::default() },
                    ..Default::default()
                },
                AppSettings {
                    quotas: AppQuotas { business_calls_per_second: Some(0), ..current.quotas },
                    ..current.clone()
                },
            ),
            (
                "quotas reset, one set again",
                AppSettingsPatch {
                    reset_quotas: true,
                    quotas: AppQuotas { sends_per_second: Some(9), ..Default::default() },
                    ..Default::default()
                },
                AppSettings {
                    quotas: AppQuotas { sends_per_second: Some(9), ..Default::default() },
                    ..current.clone()
                },
            ),
        ];
        for (case, patch, expected) in cases {
            assert_eq!(patched(&current, &patch, never), (expected, None), "{case}");
        }
    }

    #[test]
    fn a_first_hook_without_a_secret_gets_one_shown_once() {
        let patch = AppSettingsPatch { before_send: Some(Some(hook("https://a.example/h", ""))), ..Default::default() };
        let (settings, made) = patched(&AppSettings::default(), &patch, || "whsec_made".into());
        assert_eq!(made.as_deref(), Some("whsec_made"));
        assert_eq!(settings.before_send.map(|hook| hook.secret).as_deref(), Some("whsec_made"));
    }
}
