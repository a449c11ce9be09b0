use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch};

use super::{InProcessLink, LogicNode, ServerError, data_dir::SingleNodeHold, io, stopped_signal, token_key};
use crate::{
    auth::ClusterTokens,
    config::Config,
    connect::{ConnectNode, ConnectParts, GrpcLink, Hub, WebApp, WebSettings},
    delivery::{Delivery, GrpcDelivery, Peers},
    logic::{AppAdmin, Services},
    metrics::{self, Metrics},
    model::AppSettings,
    route::{MemoryRegistry, RedisRegistry, RouteRegistry},
};

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Logic and connect in one process, routes in memory: one machine.
    Serve,
    /// Logic alone; pushes go to connect nodes found in Redis.
    Logic,
    /// Connect alone; device calls go to `connect.logic_addrs`.
    Connect,
}

/// A running gim process.
pub struct Process {
    /// Held by `gim serve` for as long as it runs.
    single_node: Option<SingleNodeHold>,
    logic: Option<LogicNode>,
    connect: Option<ConnectNode>,
    metrics: Arc<Metrics>,
    metrics_addr: Option<SocketAddr>,
    metrics_stop: watch::Sender<bool>,
}

async fn redis_routes(config: &Config) -> Result<Arc<dyn RouteRegistry>, ServerError> {
    let ttl = Duration::from_secs(config.route.ttl_secs);
    let registry = RedisRegistry::connect(config.route.redis_url.expose(), &config.route.key_prefix, ttl).await?;
    Ok(Arc::new(registry.with_room_idle(Duration::from_secs(config.rooms.idle_secs))))
}

/// Logic and connect in one process: logic pushes straight onto the sessions, and the
/// sessions call logic without a network hop.
async fn start_serve(
    config: &Config,
    hold: &mut SingleNodeHold,
    metrics: &Arc<Metrics>,
) -> Result<(LogicNode, ConnectNode), ServerError> {
    let hub = Hub::new(config.connect.outbound_queue, config.rooms.max_rooms_per_session);
    let registry = MemoryRegistry::new(Duration::from_secs(config.route.ttl_secs))
        .with_room_idle(Duration::from_secs(config.rooms.idle_secs));
    let routes: Arc<dyn RouteRegistry> = Arc::new(registry);
    let delivery: Arc<dyn Delivery> = hub.clone();
    let logic = LogicNode::start(config, delivery, routes.clone(), None, metrics.clone()).await?;
    hold.take_database(logic.store()).await?;
    let web = match config.web.enabled && web_app_built_in() {
        true => Some(WebApp::new(&WebSettings {
            app_id: web_app_id(config, &logic.services().apps).await?,
            api_url: config.web.api_url.clone(),
            api_port: logic.addr().port(),
        })),
        false => None,
    };
    let parts = ConnectParts {
        hub,
        link: Arc::new(InProcessLink::new(logic.services())),
        routes,
        token_key: token_key(config)?,
        metrics: metrics.clone(),
        node: "local".into(),
        internal: None,
        ready: Vec::new(),
        peers: None,
        web,
        rooms: config.rooms.clone(),
        report_again_after: None,
    };
    let serves_web = parts.web.is_some();
    let connect = ConnectNode::start(&config.connect, parts).await?;
    if serves_web {
        let addr = connect.ws_addr();
        let at = if addr.ip().is_unspecified() { format!("localhost:{}", addr.port()) } else { addr.to_string() };
        tracing::info!("the web chat app is at http://{at}/");
    }
    Ok((logic, connect))
}

/// The name of the app `gim serve` signs web app users in to when `web.app_id` is 0.
const WEB_APP_NAME: &str = "web";

fn web_app_built_in() -> bool {
    let built_in = WebApp::built_in();
    if !built_in {
        tracing::warn!("this binary was built without the web app (clients/web/dist): nothing is served at /");
    }
    built_in
}

/// `web.app_id`, or the app named `web` (made, with accounts on, when there is none).
async fn web_app_id(config: &Config, apps: &AppAdmin) -> Result<u64, ServerError> {
    if config.web.app_id != 0 {
        return Ok(config.web.app_id);
    }
    let listed = apps.list_apps().await?;
    if let Some(app) = listed.iter().find(|app| app.name == WEB_APP_NAME && app.settings.accounts_enabled) {
        return Ok(app.id);
    }
    let settings = AppSettings { accounts_enabled: true, ..AppSettings::default() };
    let (app, _secret) = apps.create_app(WEB_APP_NAME, settings).await?;
    tracing::info!(app = app.id, "made the app the web chat app signs users in to (web.app_id)");
    Ok(app.id)
}

/// A connect node alone knows no store: it serves the web app only for a configured app
/// and API address.
fn connect_web_app(config: &Config) -> Option<WebApp> {
    let web = &config.web;
    if !web.enabled || !web_app_built_in() {
        return None;
    }
    if web.app_id == 0 || web.api_url.is_empty() {
        tracing::info!("the web app is not served: gim connect needs web.app_id and web.api_url");
        return None;
    }
    Some(WebApp::new(&WebSettings { app_id: web.app_id, api_url: web.api_url.clone(), api_port: 0 }))
}

/// Logic alone: pushes go to the connect nodes the routes in Redis name.
async fn start_logic(config: &Config, metrics: &Arc<Metrics>) -> Result<LogicNode, ServerError> {
    config.validate_cluster(false)?;
    let routes = redis_routes(config).await?;
    let tokens = ClusterTokens::derive(config.auth.token_secret.expose().as_bytes());
    let peers = Peers::new(&tokens.internal);
    let delivery = Arc::new(GrpcDelivery::start(routes.clone(), peers, config.logic.push_queue, metrics.clone()));
    LogicNode::start(config, delivery, routes, Some(&tokens), metrics.clone()).await
}

/// Connect alone: sessions call the logic nodes of `connect.logic_addrs`, which push
/// to this node's internal API.
async fn start_connect(config: &Config, metrics: &Arc<Metrics>) -> Result<ConnectNode, ServerError> {
    config.validate_cluster(true)?;
    let connect_config = &config.connect;
    let listener = TcpListener::bind(connect_config.internal_listen)
        .await
        .map_err(io(format!("binding connect.internal_listen {}", connect_config.internal_listen)))?;
    let node = if connect_config.advertise_addr.is_empty() {
        listener.local_addr().map_err(io("reading the bound address"))?.to_string()
    } else {
        connect_config.advertise_addr.clone()
    };
    let tokens = ClusterTokens::derive(config.auth.token_secret.expose().as_bytes());
    let link = GrpcLink::new(&connect_config.logic_addrs, &config.logic_internal_addrs(), &tokens)?;
    let ready = link.answering();
    let parts = ConnectParts {
        hub: Hub::new(connect_config.outbound_queue, config.rooms.max_rooms_per_session),
        link: Arc::new(link),
        routes: redis_routes(config).await?,
        token_key: token_key(config)?,
        metrics: metrics.clone(),
        node,
        peers: Some(Peers::new(&tokens.internal)),
        internal: Some((listener, tokens.internal)),
        ready,
        web: connect_web_app(config),
        rooms: config.rooms.clone(),
        // Twice the time logic holds a report before it looks.
        report_again_after: Some(Duration::from_millis(2 * config.social.presence_debounce_ms)),
    };
    Ok(ConnectNode::start(connect_config, parts).await?)
}

impl Process {
    pub async fn start(config: &Config, role: Role) -> Result<Self, ServerError> {
        let metrics = Metrics::new();
        let (single_node, logic, connect) = match role {
            Role::Serve => {
                let mut hold = SingleNodeHold::take(config)?;
                let (logic, connect) = start_serve(config, &mut hold, &metrics).await?;
                (Some(hold), Some(logic), Some(connect))
            }
            Role::Logic => (None, Some(start_logic(config, &metrics).await?), None),
            Role::Connect => (None, None, Some(start_connect(config, &metrics).await?)),
        };
        let (metrics_stop, stopped) = watch::channel(false);
        let metrics_listener = metrics::bind(config.telemetry.metrics_listen)
            .await
            .map_err(io(format!("binding telemetry.metrics_listen {:?}", config.telemetry.metrics_listen)))?;
        let metrics_addr = metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok());
        if let Some(listener) = metrics_listener {
            tracing::info!(addr = ?metrics_addr, "metrics serving on /metrics");
            tokio::spawn(metrics::serve(listener, metrics.clone(), stopped_signal(stopped)));
        }
        Ok(Self { single_node, logic, connect, metrics, metrics_addr, metrics_stop })
    }

    /// The logic gRPC address, if this process runs logic.
    pub fn logic_addr(&self) -> Option<SocketAddr> {
        self.logic.as_ref().map(LogicNode::addr)
    }

    /// The WebSocket address, if this process runs connect.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.connect.as_ref().map(ConnectNode::ws_addr)
    }

    /// The internal API address, if this process runs connect apart from logic.
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.connect.as_ref().and_then(ConnectNode::internal_addr)
    }

    /// Where `/metrics` is served, if `telemetry.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// What this process counts (served on `/metrics` when `telemetry.metrics_listen` is set).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn services(&self) -> Option<&Services> {
        self.logic.as_ref().map(LogicNode::services)
    }

    pub fn connect(&self) -> Option<&ConnectNode> {
        self.connect.as_ref()
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
        let stopped_by_itself = async {
            match self.logic.as_mut() {
                Some(logic) => logic.stopped().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = signal => {}
            result = stopped_by_itself => return result,
        }
        self.shutdown().await
    }

    /// Drains connect first (devices are told to reconnect, queues are written, routes
    /// removed), then lets logic finish the calls in flight.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        if let Some(connect) = self.connect {
            connect.shutdown().await;
        }
        let _ = self.metrics_stop.send(true);
        let stopped = match self.logic {
            Some(logic) => logic.shutdown().await,
            None => Ok(()),
        };
        if let Some(hold) = self.single_node {
            hold.release().await;
        }
        stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connect node has no store to find the web app's tenant in: it serves the app
    /// only when told the app and where browsers reach gRPC-Web.
    #[test]
    fn gim_connect_serves_the_web_app_only_with_an_app_and_an_api_url() {
        let mut config = Config::default();
        assert!(connect_web_app(&config).is_none(), "no app id, no API URL");
        config.web.app_id = 3;
        assert!(connect_web_app(&config).is_none(), "no API URL");
        config.web.api_url = "https://api.chat.example".into();
        assert!(connect_web_app(&config).is_some());
        config.web.enabled = false;
        assert!(connect_web_app(&config).is_none(), "turned off");
    }
}
