//! Assembles processes from configuration: the store, logic and the gRPC server.
//! Binaries and tests start nodes through here, so both run the same wiring.

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc};

use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    api,
    auth::TokenKey,
    config::{Config, ConfigError},
    delivery::Delivery,
    logic::{IdGenerator, Logic, LogicParts},
    metrics::{self, Metrics},
    store::{SqlStore, StoreError, sql_options},
};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

/// Opens the configured store and brings its schema up to date.
pub async fn open_store(config: &Config) -> Result<SqlStore, ServerError> {
    let url = config.store_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(io(format!("creating data_dir {}", config.data_dir.display())))?;
    }
    let store = SqlStore::connect(&url, &sql_options(&config.store)).await?;
    store.migrate().await?;
    Ok(store)
}

/// The token signing key: `auth.token_secret`, or for a single node one generated once
/// and kept in `data_dir/token_secret`.
pub fn token_key(config: &Config) -> Result<TokenKey, ServerError> {
    let secret = config.auth.token_secret.expose();
    if !secret.is_empty() {
        return Ok(TokenKey::new(secret.as_bytes()));
    }
    if !config.store_url().starts_with("sqlite:") {
        return Err(ConfigError::Invalid(
            "auth.token_secret is required with a MySQL store: every node must sign and verify device tokens \
             with the same key (set GIM_AUTH__TOKEN_SECRET to at least 32 random bytes)"
                .into(),
        )
        .into());
    }
    let path = config.data_dir.join("token_secret");
    Ok(TokenKey::new(read_or_create_secret(&path)?.as_bytes()))
}

fn read_or_create_secret(path: &Path) -> Result<String, ServerError> {
    match std::fs::read_to_string(path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().to_owned()),
        Ok(_) => {
            return Err(ConfigError::Invalid(format!("{} holds fewer than 32 bytes", path.display())).into());
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(format!("reading {}", path.display()))(err)),
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = STANDARD.encode(bytes);
    write_private(path, &secret).map_err(io(format!("writing {}", path.display())))?;
    tracing::info!(path = %path.display(), "generated the device token signing key");
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Builds logic on an open store.
pub fn build_logic(
    config: &Config,
    store: Arc<SqlStore>,
    delivery: Arc<dyn Delivery>,
    metrics: Arc<Metrics>,
) -> Result<Logic, ServerError> {
    let ids = config.node.id.map_or_else(IdGenerator::random, IdGenerator::new);
    let sqlite = store.dialect() == crate::store::Dialect::Sqlite;
    Ok(Logic::new(LogicParts {
        store,
        delivery,
        token_key: token_key(config)?,
        auth: config.auth.clone(),
        limits: config.limits.clone(),
        ids,
        metrics,
        write_batch_max: config.logic.write_batch_max,
        // SQLite has one writer; more transactions in flight would only queue.
        write_concurrency: if sqlite { 1 } else { config.logic.write_concurrency },
    }))
}

/// A running logic node: the store, the use cases and the gRPC server.
pub struct LogicNode {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    logic: Logic,
    store: Arc<SqlStore>,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl LogicNode {
    /// Opens the store and serves the logic gRPC APIs on `config.logic.listen`
    /// (port 0 picks a free port; see `addr`).
    pub async fn start(config: &Config, delivery: Arc<dyn Delivery>) -> Result<Self, ServerError> {
        let store = Arc::new(open_store(config).await?);
        let metrics = Metrics::new();
        let logic = build_logic(config, store.clone(), delivery, metrics.clone())?;
        let listener = TcpListener::bind(config.logic.listen)
            .await
            .map_err(io(format!("binding logic.listen {}", config.logic.listen)))?;
        let addr = listener.local_addr().map_err(io("reading the bound address"))?;
        let routes = api::logic_routes(logic.clone(), config.admin.token.clone(), metrics.clone()).await;
        let (stop, stopped) = watch::channel(false);
        let metrics_listener = metrics::bind(config.telemetry.metrics_listen)
            .await
            .map_err(io(format!("binding telemetry.metrics_listen {:?}", config.telemetry.metrics_listen)))?;
        let metrics_addr = metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok());
        if let Some(listener) = metrics_listener {
            tracing::info!(addr = ?metrics_addr, "metrics serving on /metrics");
            tokio::spawn(metrics::serve(listener, metrics.clone(), stopped_signal(stopped.clone())));
        }
        let server = tokio::spawn(api::serve(listener, routes, stopped_signal(stopped)));
        tracing::info!(%addr, store = ?store.dialect(), "logic gRPC serving");
        Ok(Self { addr, metrics_addr, logic, store, stop, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, if `telemetry.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn logic(&self) -> &Logic {
        &self.logic
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
        tokio::select! {
            () = signal => {}
            result = &mut self.server => {
                return match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(err.into()),
                    Err(join) => Err(ServerError::Io { context: "logic server task".into(), source: std::io::Error::other(join) }),
                };
            }
        }
        self.shutdown().await
    }

    /// Stops accepting calls, lets calls in flight finish, and closes the store.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        let result = (&mut self.server).await;
        self.store.close().await;
        match result {
            Ok(served) => Ok(served?),
            Err(join) => {
                Err(ServerError::Io { context: "logic server task".into(), source: std::io::Error::other(join) })
            }
        }
    }
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped_signal(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
