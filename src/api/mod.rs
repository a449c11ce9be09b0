//! The logic service's gRPC APIs. Handlers are thin: authenticate from metadata, call a
//! use case, convert the result; `status.rs` maps every domain error in one place.

mod account;
mod admin;
pub mod auth;
mod business;
pub mod codec;
mod convert;
mod device;
mod groups;
mod internal;
mod social;

pub use self::{device::DeviceApi, groups::GroupsApi};
mod status;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::extract::State;

use tokio::net::TcpListener;
use tonic::{service::Routes, transport::Server};
use tower_http::{
    cors::CorsLayer,
    trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{
    config::Secret,
    logic::Logic,
    metrics::Metrics,
    proto::{
        FILE_DESCRIPTOR_SET,
        connect::v1::sessions_server::SessionsServer,
        logic::v1::{
            account_server::AccountServer, app_admin_server::AppAdminServer, business_server::BusinessServer,
            device_server::DeviceServer, friends_server::FriendsServer, groups_server::GroupsServer,
            moments_server::MomentsServer,
        },
    },
};

/// No call may take longer; a slower one is cut off with `DEADLINE_EXCEEDED`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every service of the logic port, with health and reflection; with an internal token,
/// also the internal API connect nodes report sessions through.
/// `max_request_bytes` bounds every request (`logic.max_request_bytes`).
pub async fn logic_routes(
    logic: Logic,
    admin_token: Secret,
    max_request_bytes: usize,
    internal_token: Option<&str>,
    metrics: Arc<Metrics>,
) -> Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<BusinessServer<business::BusinessApi>>().await;
    health.set_serving::<DeviceServer<device::DeviceApi>>().await;
    health.set_serving::<AccountServer<account::AccountApi>>().await;
    health.set_serving::<AppAdminServer<admin::AdminApi>>().await;
    health.set_serving::<GroupsServer<groups::GroupsApi>>().await;
    health.set_serving::<FriendsServer<social::FriendsApi>>().await;
    health.set_serving::<MomentsServer<social::MomentsApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the generated descriptor set is valid");

    let mut routes = Routes::builder();
    routes
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            BusinessServer::new(business::BusinessApi::new(logic.clone())).max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            DeviceServer::new(device::DeviceApi::new(logic.clone())).max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            AccountServer::new(account::AccountApi::new(logic.clone())).max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            GroupsServer::new(groups::GroupsApi::new(logic.clone())).max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            FriendsServer::new(social::FriendsApi::new(logic.clone())).max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            MomentsServer::new(social::MomentsApi::new(logic.clone())).max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            AppAdminServer::new(admin::AdminApi::new(logic.clone(), admin_token))
                .max_decoding_message_size(max_request_bytes),
        );
    if let Some(token) = internal_token {
        routes.add_service(SessionsServer::new(internal::SessionsApi::new(logic, token)));
    }
    let edge = Edge { metrics, max_request_bytes };
    let router = routes.routes().into_axum_router().layer(axum::middleware::from_fn_with_state(edge, track_call));
    Routes::from(router)
}

/// What every call passes through on its way in and out.
#[derive(Clone)]
struct Edge {
    metrics: Arc<Metrics>,
    max_request_bytes: usize,
}

/// Counts every call by method and status, with its latency; reports a request over the
/// size limit as RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE, which gim never means).
async fn track_call(
    State(edge): State<Edge>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.uri().path().to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    // A failed unary call answers with headers only, which carry the status; a
    // successful one sends it in trailers, after this point.
    let headers = response.headers_mut();
    if headers.get("grpc-status").is_some_and(|code| code == "11") {
        let message = format!(
            "the request is larger than the limit of {} bytes (logic.max_request_bytes)",
            edge.max_request_bytes
        );
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        headers.insert("grpc-message", http::HeaderValue::from_str(&message).expect("an ASCII message"));
    }
    let code = headers.get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned();
    edge.metrics.grpc_call(&method, &code, started.elapsed());
    response
}

/// Accepted connections with TCP_NODELAY: tonic sets it only on listeners it binds
/// itself, and without it small HTTP/2 writes can wait for a delayed ACK (40 ms).
pub fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves `routes` on `listener` (gRPC over HTTP/2, and gRPC-Web over HTTP/1.1 for
/// browsers) until `shutdown` completes, then lets calls in flight finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .accept_http1(true)
        .timeout(REQUEST_TIMEOUT)
        // One span per call; handlers fill in app, user and device once authenticated,
        // so that everything logged for the call (failures included) carries them.
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(|request: &http::Request<_>| {
                    tracing::info_span!(
                        "grpc",
                        method = %request.uri().path(),
                        app = tracing::field::Empty,
                        user = tracing::field::Empty,
                        device = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(Level::INFO)),
        )
        // Browsers call from other origins; tokens travel in headers, not cookies, so
        // allowing any origin exposes nothing.
        .layer(CorsLayer::very_permissive().expose_headers([
            http::HeaderName::from_static("grpc-status"),
            http::HeaderName::from_static("grpc-message"),
        ]))
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}
