//! Prometheus metrics. One `Metrics` per process, handed to whatever records into it;
//! served as text on `telemetry.metrics_listen` when that is set.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::State, routing::get};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    /// allow, refuse, replace or failed.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// delivered, retry, dead or skipped (nothing to send).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppUsageLabels {
    pub app: u64,
    /// business_call or send.
    pub kind: &'static str,
    /// allowed, or refused (past the app's quota).
    pub outcome: &'static str,
}

/// Every metric gim exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// gRPC calls by method and status code, with their latency.
    pub grpc_seconds: Family<GrpcLabels, Histogram>,
    /// Messages committed (duplicates not counted).
    pub messages_stored: Counter,
    /// Messages per write transaction.
    pub write_batch_size: Histogram,
    /// Time a write transaction takes, retries included.
    pub write_seconds: Histogram,
    /// Open device sessions on this node.
    pub sessions: Gauge,
    /// Frames sent to connect nodes by this logic node.
    pub pushes_sent: Counter,
    /// Pushes dropped (queue full, node unreachable): those devices get them by syncing.
    pub pushes_dropped: Counter,
    /// Times a session found a push missing and read the inbox to fill the gap.
    pub session_catch_ups: Counter,
    /// How long the oldest large-group push of each flush waited for it.
    pub group_push_wait_seconds: Histogram,
    /// Apps' before-send hooks: how long they took, by outcome.
    pub hook_seconds: Family<HookLabels, Histogram>,
    /// Webhook delivery attempts by outcome, with their latency.
    pub webhook_seconds: Family<WebhookLabels, Histogram>,
    /// Messages this logic node sent to live rooms (devices' and the business's).
    pub room_messages: Counter,
    /// Joins of live rooms this connect node answered (devices' and the business's put-ins).
    pub room_joins: Counter,
    /// Each app's business calls and sends, allowed or refused by its quotas.
    pub app_usage: Family<AppUsageLabels, Counter>,
}

fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("gim");
        let grpc_seconds = Family::<GrpcLabels, Histogram>::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register("grpc_request_seconds", "gRPC calls by method and status code", grpc_seconds.clone());
        let messages_stored = Counter::default();
        registry.register("messages_stored", "Messages committed, duplicates not counted", messages_stored.clone());
        let write_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register("write_batch_size", "Messages per write transaction", write_batch_size.clone());
        let write_seconds = latency_buckets();
        registry.register("write_seconds", "Time a message write transaction takes", write_seconds.clone());
        let sessions = Gauge::default();
        registry.register("sessions", "Open device sessions on this node", sessions.clone());
        let pushes_sent = Counter::default();
        registry.register("pushes_sent", "Frames sent to connect nodes", pushes_sent.clone());
        let pushes_dropped = Counter::default();
        registry.register("pushes_dropped", "Pushes dropped; devices get them by syncing", pushes_dropped.clone());
        let session_catch_ups = Counter::default();
        registry.register(
            "session_catch_ups",
            "Times a session found a push missing and read the inbox to fill the gap",
            session_catch_ups.clone(),
        );
        let group_push_wait_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 14));
        registry.register(
            "group_push_wait_seconds",
            "How long the oldest large-group push of each flush waited for it",
            group_push_wait_seconds.clone(),
        );
        let hook_seconds = Family::<HookLabels, Histogram>::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register("before_send_hook_seconds", "Apps' before-send hooks by outcome", hook_seconds.clone());
        let webhook_seconds =
            Family::<WebhookLabels, Histogram>::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register("webhook_attempt_seconds", "Webhook delivery attempts by outcome", webhook_seconds.clone());
        let room_messages = Counter::default();
        registry.register("room_messages", "Messages sent to live rooms", room_messages.clone());
        let room_joins = Counter::default();
        registry.register("room_joins", "Joins of live rooms answered on this node", room_joins.clone());
        let app_usage = Family::<AppUsageLabels, Counter>::default();
        registry.register(
            "app_usage",
            "Each app's business calls and sends on this node, allowed or refused by its quotas",
            app_usage.clone(),
        );
        Arc::new(Self {
            registry,
            grpc_seconds,
            messages_stored,
            write_batch_size,
            write_seconds,
            sessions,
            pushes_sent,
            pushes_dropped,
            session_catch_ups,
            group_push_wait_seconds,
            hook_seconds,
            webhook_seconds,
            room_messages,
            room_joins,
            app_usage,
        })
    }

    /// Records one gRPC call. Unknown methods share one label, so that callers cannot
    /// grow the label set.
    pub fn grpc_call(&self, method: &str, code: &str, latency: Duration) {
        let method = if code == "12" { "unknown" } else { method };
        self.grpc_seconds
            .get_or_create(&GrpcLabels { method: method.to_owned(), code: code.to_owned() })
            .observe(latency.as_secs_f64());
    }

    /// Counts one business call or send of `app` (`kind`), allowed or not.
    pub fn app_used(&self, app: u64, kind: &'static str, allowed: bool) {
        let outcome = if allowed { "allowed" } else { "refused" };
        self.app_usage.get_or_create(&AppUsageLabels { app, kind, outcome }).inc();
    }

    /// The Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|State(metrics): State<Arc<Metrics>>| async move {
                (
                    [(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    metrics.encode(),
                )
            }),
        )
        .with_state(metrics);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Binds the metrics endpoint if one is configured.
pub async fn bind(addr: Option<SocketAddr>) -> std::io::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => Ok(Some(TcpListener::bind(addr).await?)),
        None => Ok(None),
    }
}
