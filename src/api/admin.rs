//! `gim.logic.v1.AppAdmin`: the operator's API.

use std::{sync::Arc, time::Duration};

use tonic::{Request, Response, Status};

use super::{auth, convert};
use crate::{
    config::Secret,
    logic::{AppAdmin as Apps, EndpointChange, EndpointInput, Integrations},
    proto::logic::v1::{self as api, app_admin_server::AppAdmin},
};

pub struct AdminApi {
    apps: Arc<Apps>,
    integrations: Arc<Integrations>,
    token: Secret,
}

impl AdminApi {
    pub fn new(apps: Arc<Apps>, integrations: Arc<Integrations>, token: Secret) -> Self {
        Self { apps, integrations, token }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.token.is_empty() {
            return Err(Status::permission_denied("the admin API is disabled: set admin.token to enable it"));
        }
        let presented = auth::bearer(request.metadata()).unwrap_or_default();
        // Compare hashes so that the time taken says nothing about the token.
        if crate::auth::hash_secret(presented) != crate::auth::hash_secret(self.token.expose()) {
            return Err(Status::unauthenticated("authorization: Bearer <admin token> is missing or wrong"));
        }
        Ok(())
    }
}

impl AdminApi {
    fn app(&self, app: crate::model::App) -> api::App {
        let quotas = self.apps.quotas(&app.settings);
        convert::app(app, quotas)
    }
}

/// Puts the before-send hook's secret that gim just made into the answer: the one time
/// it is shown.
fn show_hook_secret(app: &mut api::App, secret: Option<String>) {
    if let (Some(secret), Some(hook)) = (secret, app.settings.as_mut().and_then(|s| s.before_send.as_mut())) {
        hook.secret = secret;
    }
}

#[tonic::async_trait]
impl AppAdmin for AdminApi {
    async fn create_app(
        &self,
        request: Request<api::CreateAppRequest>,
    ) -> Result<Response<api::CreateAppResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let settings = convert::app_settings(request.settings);
        // A hook given without a secret gets one, shown in this answer only.
        let made_hook_secret = settings.before_send.as_ref().is_some_and(|hook| hook.secret.is_empty());
        let (app, secret) = self.apps.create_app(&request.name, settings).await?;
        let hook_secret = app.settings.before_send.as_ref().map(|hook| hook.secret.clone());
        let mut answer = self.app(app);
        show_hook_secret(&mut answer, hook_secret.filter(|_| made_hook_secret));
        Ok(Response::new(api::CreateAppResponse { app: Some(answer), secret }))
    }

    async fn get_app(&self, request: Request<api::GetAppRequest>) -> Result<Response<api::App>, Status> {
        self.authorize(&request)?;
        let app = self.apps.get_app(request.into_inner().app_id).await?;
        Ok(Response::new(self.app(app)))
    }

    async fn list_apps(
        &self,
        request: Request<api::ListAppsRequest>,
    ) -> Result<Response<api::ListAppsResponse>, Status> {
        self.authorize(&request)?;
        let apps = self.apps.list_apps().await?;
        Ok(Response::new(api::ListAppsResponse { apps: apps.into_iter().map(|app| self.app(app)).collect() }))
    }

    async fn update_app(&self, request: Request<api::UpdateAppRequest>) -> Result<Response<api::App>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let name = Some(request.name.as_str()).filter(|name| !name.is_empty());
        let patch = convert::settings_patch(request.settings, request.reset_quotas);
        let (app, made_hook_secret) = self.apps.update_app(request.app_id, name, patch).await?;
        let mut answer = self.app(app);
        show_hook_secret(&mut answer, made_hook_secret);
        Ok(Response::new(answer))
    }

    async fn rotate_secret(
        &self,
        request: Request<api::RotateSecretRequest>,
    ) -> Result<Response<api::RotateSecretResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let keep = Duration::from_secs(u64::from(request.keep_old_for_seconds));
        let secret = self.apps.rotate_secret(request.app_id, keep).await?;
        Ok(Response::new(api::RotateSecretResponse { secret }))
    }

    async fn create_webhook(
        &self,
        request: Request<api::CreateWebhookRequest>,
    ) -> Result<Response<api::WebhookEndpoint>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let input = EndpointInput {
            url: request.url,
            kinds: request.kinds.join(" "),
            description: request.description,
            enabled: !request.disabled,
            secret: request.secret,
        };
        let endpoint = self.integrations.create_webhook(request.app_id, input).await?;
        Ok(Response::new(convert::webhook_endpoint(endpoint, true)))
    }

    async fn list_webhooks(
        &self,
        request: Request<api::ListWebhooksRequest>,
    ) -> Result<Response<api::ListWebhooksResponse>, Status> {
        self.authorize(&request)?;
        let endpoints = self.integrations.list_webhooks(request.into_inner().app_id).await?;
        let endpoints = endpoints.into_iter().map(|endpoint| convert::webhook_endpoint(endpoint, false)).collect();
        Ok(Response::new(api::ListWebhooksResponse { endpoints }))
    }

    async fn update_webhook(
        &self,
        request: Request<api::UpdateWebhookRequest>,
    ) -> Result<Response<api::WebhookEndpoint>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let change = EndpointChange {
            url: request.url,
            kinds: (!request.kinds.is_empty()).then(|| request.kinds.join(" ")),
            description: request.description,
            enabled: request.enabled,
        };
        let endpoint = self.integrations.update_webhook(request.app_id, request.endpoint_id, change).await?;
        Ok(Response::new(convert::webhook_endpoint(endpoint, false)))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<api::RotateWebhookSecretRequest>,
    ) -> Result<Response<api::WebhookEndpoint>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let keep = Duration::from_secs(u64::from(request.keep_old_for_seconds));
        let endpoint =
            self.integrations.rotate_webhook_secret(request.app_id, request.endpoint_id, request.secret, keep).await?;
        Ok(Response::new(convert::webhook_endpoint(endpoint, true)))
    }

    async fn delete_webhook(
        &self,
        request: Request<api::DeleteWebhookRequest>,
    ) -> Result<Response<api::DeleteWebhookResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        self.integrations.delete_webhook(request.app_id, request.endpoint_id).await?;
        Ok(Response::new(api::DeleteWebhookResponse {}))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<api::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<api::ListWebhookDeliveriesResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let state = convert::delivery_state_filter(request.state)?;
        let page = self
            .integrations
            .webhook_deliveries(request.app_id, request.endpoint_id, state, request.before_delivery_id, request.limit)
            .await?;
        let deliveries = page.items.into_iter().map(convert::webhook_delivery).collect();
        Ok(Response::new(api::ListWebhookDeliveriesResponse { deliveries, has_more: page.has_more }))
    }

    async fn replay_webhook_deliveries(
        &self,
        request: Request<api::ReplayWebhookDeliveriesRequest>,
    ) -> Result<Response<api::ReplayWebhookDeliveriesResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let replayed = self
            .integrations
            .replay_webhook_deliveries(request.app_id, request.endpoint_id, &request.delivery_ids)
            .await?;
        Ok(Response::new(api::ReplayWebhookDeliveriesResponse { replayed }))
    }
}
