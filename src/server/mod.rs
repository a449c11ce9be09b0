//! Assembles processes from configuration: `gim serve` (logic and connect in one
//! process), `gim logic` and `gim connect` (apart, on MySQL and Redis). Binaries and
//! tests start nodes through here, so both run the same wiring.

pub mod data_dir;
mod link;
mod logic_node;
mod process;
mod services;

pub use self::{
    link::InProcessLink,
    logic_node::LogicNode,
    process::{Process, Role},
    services::build_services,
};

use std::path::Path;

use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;
use tokio::sync::watch;

use crate::{
    auth::TokenKey,
    config::{Config, ConfigError},
    connect::ConnectError,
    logic::IdGenerator,
    route::RouteError,
    store::{SqlStore, StoreError, sql_options},
};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Logic(#[from] crate::logic::Error),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("{what} is in use by another gim process (pid {holder}): stop it, or give this one {what_else}")]
    InUse { what: String, holder: String, what_else: &'static str },
    #[error(
        "the database is in use by another gim serve (which keeps its routes in memory): stop it, or run gim \
         logic and gim connect with Redis to share a database"
    )]
    DatabaseInUse,
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

/// Opens the configured store and brings its schema up to date.
pub async fn open_store(config: &Config) -> Result<SqlStore, ServerError> {
    let url = config.store_url();
    if url.starts_with("sqlite:") {
        data_dir::create(&config.data_dir)?;
    }
    if let Some(file) = config.sqlite_path() {
        data_dir::create_private_file(&file)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = file.clone().into_os_string();
            side.push(suffix);
            if Path::new(&side).exists() {
                data_dir::create_private_file(Path::new(&side))?;
            }
        }
    }
    let store = SqlStore::connect(&url, &sql_options(&config.store)).await?;
    store.migrate().await?;
    Ok(store)
}

/// Whether the configured store is there already: the SQLite file, or gim's schema in
/// the MySQL database (which `open_store` would otherwise create).
pub async fn store_exists(config: &Config) -> Result<bool, ServerError> {
    if config.store_url().starts_with("sqlite:") {
        return Ok(config.sqlite_path().is_some_and(|file| file.exists()));
    }
    let store = SqlStore::connect(&config.store_url(), &sql_options(&config.store)).await?;
    let migrated = store.has_schema().await;
    store.close().await;
    Ok(migrated?)
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

/// The message id generator `node.id` asks for.
pub fn id_generator(config: &Config) -> IdGenerator {
    config.node.id.map_or_else(IdGenerator::random, IdGenerator::new)
}

/// Completes once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped_signal(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
