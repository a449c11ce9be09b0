//! `gim app webhook`: an app's webhook endpoints and their deliveries, over the AppAdmin
//! API, like the rest of `gim app`.

use clap::{Subcommand, ValueEnum};
use gim::{
    proto::logic::v1::{
        self as pb, CreateWebhookRequest, DeleteWebhookRequest, ListWebhookDeliveriesRequest, ListWebhooksRequest,
        ReplayWebhookDeliveriesRequest, RotateWebhookSecretRequest, UpdateWebhookRequest, WebhookDeliveryState,
        app_admin_client::AppAdminClient,
    },
    webhooks::events::rfc3339,
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::client::answer;

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint and print its id and signing secret.
    Add {
        #[arg(long)]
        app: u64,
        #[arg(long)]
        url: String,
        /// Event kinds, space- or comma-separated: names, families (group.*) or * (the default).
        #[arg(long, default_value = "*")]
        kinds: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Add it disabled: no event is kept for it until it is enabled.
        #[arg(long)]
        disabled: bool,
        /// A secret of your own (whsec_ and base64); gim makes one by default.
        #[arg(long, default_value = "")]
        secret: String,
    },
    /// List an app's endpoints.
    List {
        #[arg(long)]
        app: u64,
    },
    /// Change an endpoint; what is not given stays.
    Update {
        #[arg(long)]
        app: u64,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        kinds: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Give an endpoint a new signing secret and print it; the one it replaces keeps
    /// signing beside it for --keep-old-for seconds (0: it stops at once).
    Rotate {
        #[arg(long)]
        app: u64,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        keep_old_for: u32,
        /// A secret of your own (whsec_ and base64); gim makes one by default.
        #[arg(long, default_value = "")]
        secret: String,
    },
    /// Delete an endpoint and the events it is still owed.
    Remove {
        #[arg(long)]
        app: u64,
        #[arg(long)]
        id: u64,
    },
    /// An endpoint's recent deliveries, newest first.
    Deliveries {
        #[arg(long)]
        app: u64,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        state: Option<State>,
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
    /// Send dead deliveries again: those named, or every dead one.
    Replay {
        #[arg(long)]
        app: u64,
        #[arg(long)]
        id: u64,
        deliveries: Vec<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum State {
    Waiting,
    Delivered,
    Dead,
}

impl From<State> for WebhookDeliveryState {
    fn from(state: State) -> Self {
        match state {
            State::Waiting => WebhookDeliveryState::Waiting,
            State::Delivered => WebhookDeliveryState::Delivered,
            State::Dead => WebhookDeliveryState::Dead,
        }
    }
}

fn print_endpoint(endpoint: &pb::WebhookEndpoint) {
    let state = if endpoint.enabled { "enabled".to_owned() } else { format!("disabled {}", endpoint.disabled_reason) };
    println!("{}\t{}\t{}\t{}", endpoint.endpoint_id, endpoint.url, endpoint.kinds.join(" "), state.trim_end());
    if !endpoint.secret.is_empty() {
        println!("secret: {}", endpoint.secret);
    }
    if endpoint.previous_secret_expires_at_ms > 0 {
        println!("previous secret signs until: {}", rfc3339(endpoint.previous_secret_expires_at_ms));
    }
}

fn print_delivery(delivery: &pb::WebhookDelivery) {
    let state = WebhookDeliveryState::try_from(delivery.state).unwrap_or_default().as_str_name();
    let state = state.trim_start_matches("WEBHOOK_DELIVERY_STATE_").to_lowercase();
    println!(
        "{}\t{}\t{state}\tattempts={}\tstatus={}\t{}",
        delivery.delivery_id, delivery.kind, delivery.attempts, delivery.last_status, delivery.last_error
    );
}

type Admin<I> = AppAdminClient<InterceptedService<Channel, I>>;

pub async fn over_api<I>(client: &mut Admin<I>, command: WebhookCommand) -> anyhow::Result<()>
where
    I: tonic::service::Interceptor,
{
    match command {
        WebhookCommand::Add { app, url, kinds, description, disabled, secret } => {
            let kinds = kinds.split([' ', ',']).filter(|k| !k.is_empty()).map(str::to_owned).collect();
            let request = CreateWebhookRequest { app_id: app, url, kinds, description, disabled, secret };
            print_endpoint(&answer(client.create_webhook(request).await)?);
        }
        WebhookCommand::List { app } => {
            let found = answer(client.list_webhooks(ListWebhooksRequest { app_id: app }).await)?;
            found.endpoints.iter().for_each(print_endpoint);
        }
        WebhookCommand::Update { app, id, url, kinds, description, enable, disable } => {
            let kinds = kinds.map_or_else(Vec::new, |kinds| {
                kinds.split([' ', ',']).filter(|k| !k.is_empty()).map(str::to_owned).collect()
            });
            let enabled = (enable || disable).then_some(enable);
            let request = UpdateWebhookRequest { app_id: app, endpoint_id: id, url, kinds, description, enabled };
            print_endpoint(&answer(client.update_webhook(request).await)?);
        }
        WebhookCommand::Rotate { app, id, keep_old_for, secret } => {
            let request =
                RotateWebhookSecretRequest { app_id: app, endpoint_id: id, keep_old_for_seconds: keep_old_for, secret };
            print_endpoint(&answer(client.rotate_webhook_secret(request).await)?);
        }
        WebhookCommand::Remove { app, id } => {
            answer(client.delete_webhook(DeleteWebhookRequest { app_id: app, endpoint_id: id }).await)?;
        }
        WebhookCommand::Deliveries { app, id, state, limit } => {
            let state = state.map_or(WebhookDeliveryState::Unspecified, Into::into) as i32;
            let request =
                ListWebhookDeliveriesRequest { app_id: app, endpoint_id: id, state, before_delivery_id: 0, limit };
            answer(client.list_webhook_deliveries(request).await)?.deliveries.iter().for_each(print_delivery);
        }
        WebhookCommand::Replay { app, id, deliveries } => {
            let request = ReplayWebhookDeliveriesRequest { app_id: app, endpoint_id: id, delivery_ids: deliveries };
            println!("replayed: {}", answer(client.replay_webhook_deliveries(request).await)?.replayed);
        }
    }
    Ok(())
}
