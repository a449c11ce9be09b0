use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic_health::server::HealthReporter;

use super::{ServerError, id_generator, io, open_store, services::build_services, stopped_signal};
use crate::{
    api,
    auth::ClusterTokens,
    config::Config,
    delivery::Delivery,
    logic::{IdGenerator, Services},
    metrics::Metrics,
    origins::Origins,
    route::RouteRegistry,
    store::SqlStore,
    webhooks::dispatcher,
};

/// A running logic node: the store, the use cases and the gRPC servers.
pub struct LogicNode {
    addr: SocketAddr,
    internal_addr: Option<SocketAddr>,
    services: Services,
    store: Arc<SqlStore>,
    health: HealthReporter,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    internal: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    /// This node's webhook deliveries, when it makes them.
    webhooks: Option<JoinHandle<()>>,
}

impl LogicNode {
    /// Opens the store and serves the logic gRPC APIs on `config.logic.listen` (port 0
    /// picks a free port; see `addr`) and, given the cluster's credentials, the internal
    /// API for connect nodes on `config.logic.internal_listen`.
    pub async fn start(
        config: &Config,
        delivery: Arc<dyn Delivery>,
        routes: Arc<dyn RouteRegistry>,
        cluster: Option<&ClusterTokens>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ServerError> {
        Self::start_with_ids(config, id_generator(config), delivery, routes, cluster, metrics).await
    }

    /// `start`, with message ids from `ids` rather than from `node.id`.
    pub async fn start_with_ids(
        config: &Config,
        ids: IdGenerator,
        delivery: Arc<dyn Delivery>,
        routes: Arc<dyn RouteRegistry>,
        cluster: Option<&ClusterTokens>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ServerError> {
        let store = Arc::new(open_store(config).await?);
        let services = build_services(config, store.clone(), ids, delivery, routes.clone(), metrics.clone(), cluster)?;
        let listener = TcpListener::bind(config.logic.listen)
            .await
            .map_err(io(format!("binding logic.listen {}", config.logic.listen)))?;
        let addr = listener.local_addr().map_err(io("reading the bound address"))?;
        let options = api::PublicOptions {
            admin_token: config.admin.token.clone(),
            max_request_bytes: config.logic.max_request_bytes,
        };
        let (api_routes, health) = api::logic_routes(&services, options, metrics.clone()).await;
        let (stop, stopped) = watch::channel(false);
        let origins = Origins::from_config(&config.logic.cors_allowed_origins);
        let timeout = Duration::from_secs(config.logic.request_timeout_secs);
        let server = tokio::spawn(api::serve(listener, api_routes, origins, timeout, stopped_signal(stopped.clone())));
        let (mut internal_addr, mut internal) = (None, None);
        if cluster.is_some() {
            let listen = config.logic.internal_listen;
            let listener =
                TcpListener::bind(listen).await.map_err(io(format!("binding logic.internal_listen {listen}")))?;
            internal_addr = Some(listener.local_addr().map_err(io("reading the bound address"))?);
            let internal_routes = api::internal_routes(&services).await;
            // Connect nodes are not browsers: no origin is let through.
            let origins = Origins::none();
            internal =
                Some(tokio::spawn(api::serve(listener, internal_routes, origins, timeout, stopped_signal(stopped))));
        }
        let webhooks = match config.webhooks.deliver {
            true => {
                let outbound = config.outbound.policy()?;
                let outbox = store.clone();
                let deliver =
                    dispatcher::deliver(outbox, routes, config.webhooks.clone(), outbound, metrics, stop.subscribe());
                Some(tokio::spawn(deliver))
            }
            false => None,
        };
        tracing::info!(%addr, ?internal_addr, store = ?store.dialect(), "logic gRPC serving");
        Ok(Self { addr, internal_addr, services, store, health, stop, server, internal, webhooks })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the internal API for connect nodes listens, in a cluster.
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal_addr
    }

    /// The contexts of logic this node serves.
    pub fn services(&self) -> &Services {
        &self.services
    }

    pub fn store(&self) -> &SqlStore {
        &self.store
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

    /// Says it is not serving (connect nodes stop sending it calls), stops accepting
    /// calls, lets calls in flight finish, and closes the store.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        let _ = self.stop.send(true);
        let result = self.stopped().await;
        if let Some(internal) = self.internal.take() {
            let _ = internal.await;
        }
        // Attempts in flight finish (within webhooks.timeout_secs) and their outcomes are kept.
        if let Some(webhooks) = self.webhooks.take() {
            let _ = webhooks.await;
        }
        self.store.close().await;
        result
    }
}
