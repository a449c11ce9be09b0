//! The connect service: one WebSocket session per device, pushes to them, and the
//! internal API logic pushes through. It keeps no durable state: the route registry
//! says which node holds which device, and logic is reached through `LogicLink`.

mod close;
mod fanout;
mod hub;
mod internal;
mod link;
mod listener;
mod logic_nodes;
mod order;
mod reports;
mod room_order;
mod rooms;
mod session;
mod web;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tonic_health::{
    ServingStatus,
    pb::health_server::{Health, HealthServer},
    server::HealthReporter,
};

pub use self::{
    close::*,
    fanout::Pacing,
    hub::{End, Hub},
    link::{GrpcLink, LogicLink, SessionDevice},
    web::{WebApp, WebSettings},
};
use crate::{
    auth::TokenKey,
    config::{ConnectConfig, RoomsConfig},
    delivery::Peers,
    metrics::Metrics,
    proto::connect::v1::delivery_server::DeliveryServer,
    route::{Registration, RouteError, RouteRegistry},
};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid address {0}: {1}")]
    Address(String, String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// Session limits, from `[connect]`.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub heartbeat_timeout: Duration,
    pub handshake_timeout: Duration,
    pub write_timeout: Duration,
    pub frames_per_second: u32,
    pub max_frame_bytes: usize,
    pub outbound_queue: usize,
    /// Room messages a session may send per second (0: no limit of its own).
    pub room_messages_per_second: u32,
    /// A room's last messages kept for joiners (0: no replay).
    pub room_replay: usize,
}

/// What every session of a node shares.
pub(crate) struct Context {
    pub hub: Arc<Hub>,
    pub link: Arc<dyn LogicLink>,
    pub routes: Arc<dyn RouteRegistry>,
    pub peers: Option<Peers>,
    pub token_key: TokenKey,
    /// This node's name in the route registry: its internal address.
    pub node: String,
    pub limits: Limits,
    pub ws_config: WebSocketConfig,
    pub metrics: Arc<Metrics>,
    /// Token checks in flight at most (see `session::check_token`).
    pub auth_slots: Semaphore,
    pub reports: Arc<reports::SessionReports>,
    /// Browser origins whose pages may open sessions.
    pub origins: crate::origins::Origins,
    /// The web chat app, served beside `/ws` when on.
    pub web: Option<WebApp>,
}

/// What a connect node is built from.
pub struct ConnectParts {
    pub hub: Arc<Hub>,
    pub link: Arc<dyn LogicLink>,
    pub routes: Arc<dyn RouteRegistry>,
    pub token_key: TokenKey,
    pub metrics: Arc<Metrics>,
    /// How logic reaches this node: its internal API's address, or a name of its own
    /// for a node that runs in one process with logic.
    pub node: String,
    /// Serve the internal API here, with this bearer token (cluster mode), beside gRPC
    /// health.
    pub internal: Option<(TcpListener, String)>,
    /// What must all be true for the node to be ready (health SERVING on the internal
    /// API): that a logic node answers on each API the node calls.
    pub ready: Vec<watch::Receiver<bool>>,
    /// Reaches other connect nodes, to end a device's older session elsewhere.
    pub peers: Option<Peers>,
    /// The web chat app to serve at `/`, if any.
    pub web: Option<WebApp>,
    pub rooms: RoomsConfig,
    /// When to report session changes a second time, in case the logic node that took
    /// the first report died before acting on it; `None` when logic is in this process.
    pub report_again_after: Option<Duration>,
}

/// A running connect node.
pub struct ConnectNode {
    ws_addr: SocketAddr,
    internal_addr: Option<SocketAddr>,
    hub: Arc<Hub>,
    routes: Arc<dyn RouteRegistry>,
    reports: Arc<reports::SessionReports>,
    node: String,
    stop: watch::Sender<bool>,
    slots: Arc<Semaphore>,
    max_sessions: usize,
    grace: Duration,
    tasks: Vec<JoinHandle<()>>,
    /// The internal API's health, in cluster mode.
    health: Option<HealthReporter>,
}

fn ws_config(config: &ConnectConfig) -> WebSocketConfig {
    // Small buffers: an idle session should cost a few KiB, not tungstenite's 128 KiB
    // defaults. Frames queued together go out in writes of up to 4 KiB (the write
    // buffer keeps its capacity once grown, so it must stay small too).
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(config.max_frame_bytes.max(64 * 1024) * 4)
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes))
}

impl ConnectNode {
    /// Listens for devices on `config.listen` and, if given, serves the internal API.
    pub async fn start(config: &ConnectConfig, parts: ConnectParts) -> Result<Self, ConnectError> {
        let io = |context: String| move |source| ConnectError::Io { context, source };
        let listener =
            TcpListener::bind(config.listen).await.map_err(io(format!("binding connect.listen {}", config.listen)))?;
        let ws_addr = listener.local_addr().map_err(io("reading the bound address".into()))?;
        let (stop, stopped) = watch::channel(false);
        let reports = reports::SessionReports::new(parts.link.clone(), parts.report_again_after);
        // Routes left under this node's name by a process that died unseen point at no
        // session: they go before any session opens here, and their users are looked at again.
        match parts.routes.forget_node(&parts.node).await {
            Ok(users) => {
                if !users.is_empty() {
                    tracing::info!(users = users.len(), node = %parts.node, "dropped the routes of this node's previous run");
                }
                for (app, user) in users {
                    reports.changed(app, &user);
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not drop the routes of this node's previous run"),
        }
        let ctx = Arc::new(Context {
            hub: parts.hub.clone(),
            link: parts.link,
            reports: reports.clone(),
            routes: parts.routes.clone(),
            peers: parts.peers,
            token_key: parts.token_key,
            node: parts.node.clone(),
            limits: Limits {
                heartbeat_timeout: Duration::from_secs(config.heartbeat_timeout_secs),
                handshake_timeout: Duration::from_secs(config.handshake_timeout_secs),
                write_timeout: Duration::from_secs(config.write_timeout_secs),
                frames_per_second: config.max_frames_per_second,
                max_frame_bytes: config.max_frame_bytes,
                outbound_queue: config.outbound_queue,
                room_messages_per_second: parts.rooms.session_messages_per_second,
                room_replay: parts.rooms.replay,
            },
            ws_config: ws_config(config),
            metrics: parts.metrics,
            auth_slots: Semaphore::new(config.token_check_concurrency),
            origins: crate::origins::Origins::from_config(&config.allowed_origins),
            web: parts.web,
        });
        let slots = Arc::new(Semaphore::new(config.max_sessions));
        let mut tasks =
            vec![tokio::spawn(listener::accept_loop(listener, ctx.clone(), slots.clone(), stopped.clone()))];
        tasks.push(tokio::spawn(reports.clone().run()));
        tasks.push(tokio::spawn(renew_routes(
            parts.hub.clone(),
            parts.routes.clone(),
            reports.clone(),
            parts.node.clone(),
            stopped.clone(),
        )));
        let pacing = Pacing {
            max_delay: Duration::from_millis(config.group_push_max_delay_ms),
            budget: Duration::from_millis(config.group_flush_budget_ms),
        };
        tasks.push(tokio::spawn(parts.hub.clone().flush_groups(pacing, ctx.metrics.clone())));
        tasks.push(tokio::spawn(parts.hub.clone().release_room_pushes()));
        tasks.push(tokio::spawn(rooms::report(
            parts.hub.clone(),
            parts.routes.clone(),
            parts.node.clone(),
            Duration::from_millis(parts.rooms.report_ms),
            stopped.clone(),
        )));
        let (mut internal_addr, mut health) = (None, None);
        if let Some((listener, token)) = parts.internal {
            internal_addr = listener.local_addr().ok();
            let (reporter, health_service) = tonic_health::server::health_reporter();
            reporter.set_service_status("", ServingStatus::NotServing).await;
            tasks.push(tokio::spawn(follow_readiness(parts.ready, reporter.clone())));
            tasks.push(tokio::spawn(serve_internal(listener, parts.hub.clone(), token, health_service, stopped)));
            health = Some(reporter);
        }
        tracing::info!(%ws_addr, ?internal_addr, node = %parts.node, "connect serving WebSocket sessions on /ws");
        Ok(Self {
            ws_addr,
            internal_addr,
            hub: parts.hub,
            routes: parts.routes,
            reports,
            node: parts.node,
            stop,
            slots,
            max_sessions: config.max_sessions,
            grace: Duration::from_secs(config.shutdown_grace_secs),
            tasks,
            health,
        })
    }

    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal_addr
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Stops accepting, tells every device to reconnect elsewhere (close 1001) after
    /// writing what is queued for it, and waits for the sessions to end and remove
    /// their routes (at most `connect.shutdown_grace_secs`).
    pub async fn shutdown(self) {
        if let Some(health) = &self.health {
            health.set_service_status("", ServingStatus::NotServing).await;
        }
        let _ = self.stop.send(true);
        if let Err(err) = self.routes.retire_node(&self.node).await {
            tracing::warn!(error = %err, "could not take this node off the live list; it expires by itself");
        }
        self.hub.end_all(End::Shutdown);
        let drained = async {
            let _all = self.slots.acquire_many(self.max_sessions as u32).await;
        };
        if tokio::time::timeout(self.grace, drained).await.is_err() {
            tracing::warn!(sessions = self.hub.len(), "sessions still open after the shutdown grace period");
            let leftover = self.hub.registrations();
            for route in &leftover {
                let _ = self.routes.unregister(route, &self.node).await;
                self.reports.changed(route.app, &route.user_id);
            }
        }
        self.reports.flush().await;
        for task in self.tasks {
            task.abort();
        }
        tracing::info!("connect stopped");
    }
}

/// Keeps the node's health SERVING while every one of `ready` is true, NOT_SERVING
/// otherwise, until the senders are gone.
async fn follow_readiness(mut ready: Vec<watch::Receiver<bool>>, health: HealthReporter) {
    loop {
        let all = ready.iter_mut().all(|answering| *answering.borrow_and_update());
        let status = if all { ServingStatus::Serving } else { ServingStatus::NotServing };
        health.set_service_status("", status).await;
        if ready.is_empty() {
            return;
        }
        let changes = ready.iter_mut().map(|answering| Box::pin(answering.changed()));
        if futures_util::future::select_all(changes).await.0.is_err() {
            return;
        }
    }
}

/// Serves the internal API logic pushes through, with the cluster's internal token, and
/// gRPC health, until the node stops.
async fn serve_internal(
    listener: TcpListener,
    hub: Arc<Hub>,
    token: String,
    health: HealthServer<impl Health>,
    mut stopped: watch::Receiver<bool>,
) {
    let api = DeliveryServer::new(internal::InternalApi::new(hub, &token));
    let served = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(api)
        .serve_with_incoming_shutdown(crate::grpc::incoming(listener), async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        })
        .await;
    if let Err(err) = served {
        tracing::error!(error = %err, "connect's internal API stopped");
    }
}

/// Removes a device's route from this node unless a session of the device is open here
/// (a session that replaced it, or the device came straight back: it holds the same
/// route). One that opens while the route is being removed gets it back, written only if
/// missing so that a newer route to another node stays. Whether the route was removed.
async fn release_route(hub: &Hub, routes: &dyn RouteRegistry, node: &str, route: &Registration) -> bool {
    let held = || hub.device_route(route.app, &route.user_id, &route.device_id);
    if held().is_some() {
        return false;
    }
    let removed = match routes.unregister(route, node).await {
        Ok(removed) => removed,
        Err(err) => {
            tracing::warn!(error = %err, "removing a route failed; it expires by itself");
            false
        }
    };
    if let Some(successor) = held()
        && let Err(err) = routes.renew(&[successor], node).await
    {
        tracing::warn!(error = %err, "restoring a route failed; the next renewal puts it back");
    }
    removed
}

/// Announces this node and renews its routes every third of their time to live.
/// Routes that had run out meanwhile (this node stalled, and may have been taken for
/// dead) are put back, and their users reported as changed.
async fn renew_routes(
    hub: Arc<Hub>,
    routes: Arc<dyn RouteRegistry>,
    reports: Arc<reports::SessionReports>,
    node: String,
    mut stop: watch::Receiver<bool>,
) {
    let period = routes.ttl() / 3;
    loop {
        if let Err(err) = routes.announce_node(&node).await {
            tracing::warn!(error = %err, "announcing this node failed; retrying next period");
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = tokio::time::sleep(period) => {}
        }
        let registrations = hub.registrations();
        match routes.renew(&registrations, &node).await {
            Ok(back) => {
                for (app, user) in back {
                    reports.changed(app, &user);
                }
                // A session that ended after the snapshot may have had its route put back.
                for route in &registrations {
                    if release_route(&hub, routes.as_ref(), &node, route).await {
                        reports.changed(route.app, &route.user_id);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, routes = registrations.len(), "renewing routes failed; retrying next period")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::DeviceType, route::MemoryRegistry};

    #[tokio::test]
    async fn a_route_is_released_only_when_no_session_of_its_device_is_here() {
        let (hub, routes) = (Hub::new(16, 4), MemoryRegistry::new(Duration::from_secs(60)));
        let phone =
            Registration { app: 1, user_id: "ann".into(), device_id: "phone".into(), device_type: DeviceType::Ios };
        let live = || async { routes.lookup(1, &["ann".to_owned()]).await.unwrap().len() };
        routes.register(&phone, "n1").await.unwrap();

        // A session of the device is here (it replaced the one that ended): the route stays.
        let session = hub.attach(1, "ann", "phone", DeviceType::Ios, 0);
        assert!(!release_route(&hub, &routes, "n1", &phone).await);
        assert_eq!(live().await, 1);

        hub.detach(&session);
        assert!(release_route(&hub, &routes, "n1", &phone).await);
        assert_eq!(live().await, 0);
        assert!(!release_route(&hub, &routes, "n1", &phone).await, "nothing left to remove");
    }
}
