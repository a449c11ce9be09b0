//! Integrations: the operator's use cases on an app's webhook endpoints (its backend's
//! addresses, the kinds of event each wants, their secrets) and on what the outbox
//! delivered to them. The outbox itself is delivered by `crate::webhooks::dispatcher`.

use std::{sync::Arc, time::Duration};

use super::{
    Error, Page, Result,
    kernel::{directory::AppDirectory, paging, validate},
};
use crate::{
    config::{Limits, WebhooksConfig},
    model::{AppId, now_ms},
    outbound::AddressPolicy,
    store::{AppStore, WebhookStore},
    webhooks::{
        Delivery, DeliveryFilter, DeliveryState, Endpoint, EndpointPatch, Kinds, NewEndpoint, events, signature,
    },
};

const MAX_DESCRIPTION_CHARS: usize = 256;
/// Most deliveries one replay names.
pub const MAX_REPLAY_IDS: usize = 512;

/// An endpoint to add, as the operator gives it.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: String,
    /// Space- or comma-separated kinds; empty: all.
    pub kinds: String,
    pub description: String,
    pub enabled: bool,
    /// `whsec_...`; empty: gim makes one.
    pub secret: String,
}

/// Changes to an endpoint, as the operator gives them (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub kinds: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

fn parse_kinds(kinds: &str) -> Result<Kinds> {
    let kinds = if kinds.trim().is_empty() { "*" } else { kinds };
    Kinds::parse(kinds).map_err(Error::invalid)
}

fn check_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!("description is longer than {MAX_DESCRIPTION_CHARS} characters")));
    }
    Ok(())
}

/// What the integrations context reads and writes.
pub trait IntegrationsStore: WebhookStore + AppStore {}

impl<T: WebhookStore + AppStore + ?Sized> IntegrationsStore for T {}

/// The operator's use cases on webhook endpoints.
pub struct Integrations {
    store: Arc<dyn IntegrationsStore>,
    directory: AppDirectory,
    limits: Arc<Limits>,
    webhooks: WebhooksConfig,
    /// Where endpoints may be.
    outbound: AddressPolicy,
}

impl std::fmt::Debug for Integrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integrations").finish_non_exhaustive()
    }
}

impl Integrations {
    pub fn new(
        store: Arc<dyn IntegrationsStore>,
        directory: AppDirectory,
        limits: Arc<Limits>,
        webhooks: WebhooksConfig,
        outbound: AddressPolicy,
    ) -> Self {
        Self { store, directory, limits, webhooks, outbound }
    }

    /// Adds an endpoint; it is returned with its secret, which the receiver verifies with.
    pub async fn create_webhook(&self, app: AppId, input: EndpointInput) -> Result<Endpoint> {
        let found =
            self.store.get_app(app).await?.ok_or_else(|| Error::not_found(format!("app {app} does not exist")))?;
        let url = validate::outbound_url("url", &input.url, &self.outbound)?;
        check_description(&input.description)?;
        let kinds = parse_kinds(&input.kinds)?;
        let secret = if input.secret.is_empty() { signature::generate_secret() } else { input.secret };
        signature::key_of(&secret).map_err(Error::invalid)?;
        let max = self.directory.quotas(&found.settings).max_webhook_endpoints.unwrap_or(0);
        if self.store.endpoints(app).await?.len() >= max as usize {
            return Err(Error::LimitReached(format!("app {app} may have at most {max} webhook endpoints")));
        }
        let new = NewEndpoint { url, secret, kinds, enabled: input.enabled, description: input.description };
        let endpoint = self.store.create_endpoint(app, &new, now_ms()).await?;
        tracing::info!(app, endpoint = endpoint.id, url = %crate::outbound::redacted(&endpoint.url), "webhook endpoint added");
        Ok(endpoint)
    }

    pub async fn list_webhooks(&self, app: AppId) -> Result<Vec<Endpoint>> {
        self.store.get_app(app).await?.ok_or_else(|| Error::not_found(format!("app {app} does not exist")))?;
        Ok(self.store.endpoints(app).await?)
    }

    pub async fn update_webhook(&self, app: AppId, endpoint_id: u64, change: EndpointChange) -> Result<Endpoint> {
        let url = change.url.map(|url| validate::outbound_url("url", &url, &self.outbound)).transpose()?;
        if let Some(description) = &change.description {
            check_description(description)?;
        }
        let patch = EndpointPatch {
            url,
            kinds: change.kinds.as_deref().map(parse_kinds).transpose()?,
            enabled: change.enabled,
            description: change.description,
        };
        let updated = self.store.update_endpoint(app, endpoint_id, &patch, now_ms()).await?;
        updated.ok_or_else(|| no_endpoint(app, endpoint_id))
    }

    /// Gives an endpoint a new secret (`secret`, or one gim makes when empty), returned
    /// with it; the one it replaces signs beside it for `keep_old_for` (0: it stops now),
    /// at most `webhooks.max_secret_overlap_secs`. A secret an earlier rotation kept
    /// stops at once.
    pub async fn rotate_webhook_secret(
        &self,
        app: AppId,
        endpoint_id: u64,
        secret: String,
        keep_old_for: Duration,
    ) -> Result<Endpoint> {
        let max = self.webhooks.max_secret_overlap_secs;
        if keep_old_for.as_secs() > max {
            return Err(Error::invalid(format!(
                "keep_old_for_seconds is at most {max} (webhooks.max_secret_overlap_secs)"
            )));
        }
        let secret = if secret.is_empty() { signature::generate_secret() } else { secret };
        signature::key_of(&secret).map_err(Error::invalid)?;
        let now = now_ms();
        let previous_until = if keep_old_for.is_zero() {
            0
        } else {
            now.saturating_add(i64::try_from(keep_old_for.as_millis()).unwrap_or(i64::MAX))
        };
        let rotated = self.store.rotate_endpoint_secret(app, endpoint_id, &secret, previous_until, now).await?;
        let endpoint = rotated.ok_or_else(|| no_endpoint(app, endpoint_id))?;
        tracing::info!(app, endpoint = endpoint_id, keep_old_secs = keep_old_for.as_secs(), "webhook secret rotated");
        Ok(endpoint)
    }

    pub async fn delete_webhook(&self, app: AppId, endpoint_id: u64) -> Result<()> {
        if !self.store.delete_endpoint(app, endpoint_id).await? {
            return Err(no_endpoint(app, endpoint_id));
        }
        tracing::info!(app, endpoint = endpoint_id, "webhook endpoint deleted");
        Ok(())
    }

    async fn app_endpoint(&self, app: AppId, endpoint_id: u64) -> Result<Endpoint> {
        match self.store.endpoint(endpoint_id).await? {
            Some(endpoint) if endpoint.app == app => Ok(endpoint),
            _ => Err(no_endpoint(app, endpoint_id)),
        }
    }

    /// An endpoint's deliveries, newest first; `state` narrows them.
    pub async fn webhook_deliveries(
        &self,
        app: AppId,
        endpoint_id: u64,
        state: Option<DeliveryState>,
        before_id: u64,
        limit: i32,
    ) -> Result<Page<Delivery>> {
        self.app_endpoint(app, endpoint_id).await?;
        let read = |limit| self.store.deliveries(app, endpoint_id, DeliveryFilter { state, before_id, limit });
        let mut page = paging::page(&self.limits, limit, read).await?;
        for delivery in &mut page.items {
            delivery.payload = events::as_listed(&delivery.kind, std::mem::take(&mut delivery.payload));
        }
        Ok(page)
    }

    /// Makes dead deliveries waiting again (those named, or all when none is); returns how many.
    pub async fn replay_webhook_deliveries(&self, app: AppId, endpoint_id: u64, ids: &[u64]) -> Result<u64> {
        self.app_endpoint(app, endpoint_id).await?;
        if ids.len() > MAX_REPLAY_IDS {
            return Err(Error::invalid(format!("name at most {MAX_REPLAY_IDS} deliveries (none: every dead one)")));
        }
        let replayed = self.store.replay_dead(app, endpoint_id, ids, now_ms()).await?;
        tracing::info!(app, endpoint = endpoint_id, replayed, "dead webhook deliveries replayed");
        Ok(replayed)
    }
}

fn no_endpoint(app: AppId, endpoint_id: u64) -> Error {
    Error::not_found(format!("app {app} has no webhook endpoint {endpoint_id}"))
}
