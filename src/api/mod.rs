//! The logic service's gRPC APIs. Handlers are thin: authenticate from metadata, call a
//! use case, convert the result; `status.rs` maps every domain error in one place.

mod account;
mod admin;
pub mod auth;
mod business;
pub mod codec;
mod conversations;
pub mod convert;
mod device;
mod edge;
mod groups;
mod internal;
mod messages;
mod session_calls;
mod social;

pub use self::session_calls::{SessionCalls, as_shared};
mod status;

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::{service::Routes, transport::Server};
use tonic_health::server::HealthReporter;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::{
    config::Secret,
    logic::Services,
    metrics::Metrics,
    origins::Origins,
    proto::{
        PUBLIC_FILE_DESCRIPTOR_SET,
        connect::v1::{rooms_server::RoomsServer, sessions_server::SessionsServer},
        logic::v1::{
            account_server::AccountServer, app_admin_server::AppAdminServer, business_server::BusinessServer,
            conversations_server::ConversationsServer, device_server::DeviceServer, friends_server::FriendsServer,
            groups_server::GroupsServer, messages_server::MessagesServer, moments_server::MomentsServer,
        },
    },
};

/// How the public port treats its callers.
#[derive(Debug, Clone)]
pub struct PublicOptions {
    pub admin_token: Secret,
    /// `logic.max_request_bytes`: larger requests are refused.
    pub max_request_bytes: usize,
}

/// The public services of the logic port, with health and reflection (v1 and v1alpha,
/// listing these services only). The health reporter lets the node say it is stopping.
pub async fn logic_routes(
    services: &Services,
    options: PublicOptions,
    metrics: Arc<Metrics>,
) -> (Routes, HealthReporter) {
    let (health, health_service) = tonic_health::server::health_reporter();
    report_serving(&health).await;
    let (reflection_v1, reflection_v1alpha) = reflection();
    let max = options.max_request_bytes;
    let gate = auth::Gate { accounts: services.accounts.clone(), directory: services.directory.clone() };
    let calls = SessionCalls::new(services.messaging.clone(), services.rooms.clone());
    let business = business::BusinessApi::new(
        gate.clone(),
        services.accounts.clone(),
        services.messaging.clone(),
        services.social.clone(),
        services.rooms.clone(),
    );
    let admin = admin::AdminApi::new(services.apps.clone(), services.integrations.clone(), options.admin_token);
    let mut routes = Routes::builder();
    routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(BusinessServer::new(business).max_decoding_message_size(max))
        .add_service(
            DeviceServer::new(device::DeviceApi::new(gate.clone(), calls.clone())).max_decoding_message_size(max),
        )
        .add_service(
            AccountServer::new(account::AccountApi::new(services.accounts.clone())).max_decoding_message_size(max),
        )
        .add_service(
            GroupsServer::new(groups::GroupsApi::new(gate.clone(), services.groups.clone(), calls.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            FriendsServer::new(social::FriendsApi::new(gate.clone(), services.social.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            MomentsServer::new(social::MomentsApi::new(gate.clone(), services.social.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            ConversationsServer::new(conversations::ConversationsApi::new(
                gate.clone(),
                services.conversations.clone(),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(MessagesServer::new(messages::MessagesApi::new(gate, calls)).max_decoding_message_size(max))
        .add_service(AppAdminServer::new(admin).max_decoding_message_size(max));
    let calls = edge::Calls { metrics, max_request_bytes: max };
    let router =
        routes.routes().into_axum_router().layer(axum::middleware::from_fn_with_state(calls, edge::track_call));
    (Routes::from(router), health)
}

/// Each public service says it serves, until the node says it is stopping.
async fn report_serving(health: &HealthReporter) {
    health.set_serving::<BusinessServer<business::BusinessApi>>().await;
    health.set_serving::<DeviceServer<device::DeviceApi>>().await;
    health.set_serving::<AccountServer<account::AccountApi>>().await;
    health.set_serving::<AppAdminServer<admin::AdminApi>>().await;
    health.set_serving::<GroupsServer<groups::GroupsApi>>().await;
    health.set_serving::<FriendsServer<social::FriendsApi>>().await;
    health.set_serving::<MomentsServer<social::MomentsApi>>().await;
    health.set_serving::<ConversationsServer<conversations::ConversationsApi>>().await;
    health.set_serving::<MessagesServer<messages::MessagesApi>>().await;
}

/// Server reflection, v1 and v1alpha, listing the public services and health only.
fn reflection() -> (
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
) {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(PUBLIC_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = builder().build_v1().expect("the generated descriptor set is valid");
    let v1alpha = builder().build_v1alpha().expect("the generated descriptor set is valid");
    (v1, v1alpha)
}

/// The internal API connect nodes call on logic nodes (`logic.internal_listen`), with
/// health; it takes the cluster's internal token, which `Accounts` was built with.
pub async fn internal_routes(services: &Services) -> Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SessionsServer<internal::SessionsApi>>().await;
    let calls = SessionCalls::new(services.messaging.clone(), services.rooms.clone());
    let mut routes = Routes::builder();
    routes
        .add_service(health_service)
        .add_service(SessionsServer::new(internal::SessionsApi::new(
            services.accounts.clone(),
            services.social.clone(),
        )))
        .add_service(RoomsServer::new(internal::RoomsApi::new(services.accounts.clone(), calls)));
    routes.routes()
}

/// Serves `routes` on `listener` (gRPC over HTTP/2, and gRPC-Web over HTTP/1.1 for
/// pages of `origins`) until `shutdown` completes, then lets calls in flight finish.
/// A call that takes longer than `timeout` is cut off with `DEADLINE_EXCEEDED`.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    origins: Origins,
    timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .accept_http1(true)
        .timeout(timeout)
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
        .layer(edge::OriginCheckLayer(origins.clone()))
        .layer(edge::cors(&origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(routes)
        .serve_with_incoming_shutdown(crate::grpc::incoming(listener), shutdown)
        .await
}
