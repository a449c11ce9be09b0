//! Users, devices and tokens for a benchmark, made through the business API.

use std::sync::Arc;

use anyhow::Context;
use gim::{
    auth::{Claims, TokenKey},
    proto::logic::v1::{
        CreateUserRequest, ImportUsersRequest, IssueTokenRequest, RegisterDeviceRequest,
        business_client::BusinessClient,
    },
};
use tokio::sync::Semaphore;
use tonic::{Request, metadata::MetadataValue, transport::Channel};

/// How to reach an app through a logic node.
#[derive(clap::Args, Clone, Debug)]
pub struct AppArgs {
    /// Address of a logic node.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub logic: String,
    #[arg(long)]
    pub app_id: u64,
    #[arg(long)]
    pub secret: String,
    /// The deployment's auth.token_secret: tokens are then signed here instead of one
    /// IssueToken call each.
    #[arg(long)]
    pub token_secret: Option<String>,
}

pub fn with_credentials<T>(app: &AppArgs, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("x-gim-app-id", MetadataValue::from(app.app_id));
    metadata.insert("x-gim-app-secret", app.secret.parse().expect("an ASCII secret"));
    request
}

/// A request with the app's credentials, acting as `user`.
pub fn acting<T>(app: &AppArgs, user: &str, message: T) -> anyhow::Result<Request<T>> {
    let mut request = with_credentials(app, message);
    request.metadata_mut().insert("x-gim-acting-user", user.parse()?);
    Ok(request)
}

pub async fn business(app: &AppArgs) -> anyhow::Result<BusinessClient<Channel>> {
    let channel =
        Channel::from_shared(format!("http://{}", app.logic))?.connect().await.context("connecting to logic")?;
    Ok(BusinessClient::new(channel))
}

/// Creates `users` (ids `{prefix}{i}`), each with `devices` devices (`d0`, `d1`, ...),
/// and returns their tokens: user by user, device by device.
pub async fn users_with_tokens(
    app: &AppArgs,
    prefix: &str,
    users: usize,
    devices: usize,
) -> anyhow::Result<Vec<Vec<String>>> {
    let client = business(app).await?;
    let ids: Vec<String> = (0..users).map(|i| format!("{prefix}{i}")).collect();
    for chunk in ids.chunks(1000) {
        let users = chunk.iter().map(|id| CreateUserRequest { user_id: id.clone(), ..Default::default() }).collect();
        client
            .clone()
            .import_users(with_credentials(app, ImportUsersRequest { users }))
            .await
            .context("creating users")?;
    }
    let slots = Arc::new(Semaphore::new(64));
    let key = app.token_secret.as_ref().map(|secret| TokenKey::new(secret.as_bytes()));
    let mut tasks = Vec::with_capacity(users * devices);
    for id in &ids {
        for device in 0..devices {
            let (mut client, app, slots, key) = (client.clone(), app.clone(), slots.clone(), key.clone());
            let (user_id, device_id) = (id.clone(), format!("d{device}"));
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire().await?;
                let request = RegisterDeviceRequest {
                    user_id: user_id.clone(),
                    device_id: device_id.clone(),
                    ..Default::default()
                };
                client.register_device(with_credentials(&app, request)).await.context("registering a device")?;
                let token = match key {
                    Some(key) => key.sign(&Claims {
                        app_id: app.app_id,
                        user_id,
                        device_id,
                        expires_at: i64::MAX / 2,
                        user_generation: 0,
                        device_generation: 0,
                    }),
                    None => {
                        let request = IssueTokenRequest { user_id, device_id, ttl_seconds: 0 };
                        client.issue_token(with_credentials(&app, request)).await?.into_inner().token
                    }
                };
                anyhow::Ok(token)
            }));
        }
    }
    let mut tokens = vec![Vec::with_capacity(devices); users];
    for (index, task) in tasks.into_iter().enumerate() {
        tokens[index / devices].push(task.await??);
    }
    Ok(tokens)
}
