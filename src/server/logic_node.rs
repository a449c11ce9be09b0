use std::{net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use super::{ServerError, build_logic, id_generator, io, open_store, stopped_signal};
use crate::{
    api,
    config::Config,
    delivery::Delivery,
    logic::{IdGenerator, Logic},
    metrics::Metrics,
    route::RouteRegistry,
    store::SqlStore,
};

/// A running logic node: the store, the use cases and the gRPC server.
pub struct LogicNode {
    addr: SocketAddr,
    logic: Logic,
    store: Arc<SqlStore>,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl LogicNode {
    /// Opens the store and serves the logic gRPC APIs on `config.logic.listen`
    /// (port 0 picks a free port; see `addr`), with the internal API for connect nodes
    /// when given the cluster's internal token.
    pub async fn start(
        config: &Config,
        delivery: Arc<dyn Delivery>,
        routes: Arc<dyn RouteRegistry>,
        internal_token: Option<&str>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ServerError> {
        Self::start_with_ids(config, id_generator(config), delivery, routes, internal_token, metrics).await
    }

    /// `start`, with message ids from `ids` rather than from `node.id`.
    pub async fn start_with_ids(
        config: &Config,
        ids: IdGenerator,
        delivery: Arc<dyn Delivery>,
        routes: Arc<dyn RouteRegistry>,
        internal_token: Option<&str>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ServerError> {
        let store = Arc::new(open_store(config).await?);
        let logic = build_logic(config, store.clone(), ids, delivery, routes, metrics.clone())?;
        let listener = TcpListener::bind(config.logic.listen)
            .await
            .map_err(io(format!("binding logic.listen {}", config.logic.listen)))?;
        let addr = listener.local_addr().map_err(io("reading the bound address"))?;
        let routes = api::logic_routes(
            logic.clone(),
            config.admin.token.clone(),
            config.logic.max_request_bytes,
            internal_token,
            metrics,
        )
        .await;
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(api::serve(listener, routes, stopped_signal(stopped)));
        tracing::info!(%addr, store = ?store.dialect(), "logic gRPC serving");
        Ok(Self { addr, logic, store, stop, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn logic(&self) -> &Logic {
        &self.logic
    }

    /// Completes if the gRPC server stops by itself (it should not).
    pub async fn stopped(&mut self) -> Result<(), ServerError> {
        match (&mut self.server).await {
            Ok(served) => Ok(served?),
            Err(join) => {
                Err(ServerError::Io { context: "logic server task".into(), source: std::io::Error::other(join) })
            }
        }
    }

    /// Stops accepting calls, lets calls in flight finish, and closes the store.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        let result = self.stopped().await;
        self.store.close().await;
        result
    }
}
