//! gRPC hygiene: health, reflection and gRPC-Web on the logic port.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt as _;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::support::{Backend, TestServer, channel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_service_serving() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut health = HealthClient::new(channel(server.addr()).await);
    for service in ["", "gim.logic.v1.Business", "gim.logic.v1.Device", "gim.logic.v1.Account", "gim.logic.v1.AppAdmin"]
    {
        let reply = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(reply.status, ServingStatus::Serving as i32, "{service}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_without_proto_files() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut reflection = ServerReflectionClient::new(channel(server.addr()).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply: {reply:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["gim.logic.v1.Business", "gim.logic.v1.Device", "gim.logic.v1.Account", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}

/// One HTTP/1.1 exchange on a fresh connection; returns the raw response.
async fn http1(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await.unwrap().unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_call_the_device_api_over_grpc_web() {
    let server = TestServer::start(Backend::Sqlite).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "browser").await;

    let mut request = format!(
        "POST /gim.logic.v1.Device/GetMe HTTP/1.1\r\nHost: gim\r\nContent-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\nOrigin: https://app.example\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&[0, 0, 0, 0, 0]); // one uncompressed frame holding an empty message
    let response = String::from_utf8_lossy(&http1(server.addr(), &request).await).to_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("content-type: application/grpc-web+proto"), "{response}");
    assert!(response.contains("access-control-allow-origin: https://app.example"), "{response}");
    assert!(response.contains("grpc-status:0"), "{response}");
    assert!(response.contains("alice") && response.contains("browser"), "{response}");

    let preflight = "OPTIONS /gim.logic.v1.Device/GetMe HTTP/1.1\r\nHost: gim\r\nOrigin: https://app.example\r\n\
                     Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,x-grpc-web\r\n\
                     Connection: close\r\n\r\n";
    let response = String::from_utf8_lossy(&http1(server.addr(), preflight.as_bytes()).await).to_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("access-control-allow-origin: https://app.example"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_count_calls_and_stored_messages() {
    let server = crate::support::ServeServer::start_with(Backend::Sqlite, |config| {
        config.telemetry.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let app = server.new_app().await;
    let mut alice = app.user_with_device("alice", "phone").await;
    app.user("bob").await;
    let request = gim::proto::logic::v1::DeviceSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: "m1".into(),
        body: crate::support::text("hi"),
    };
    alice.send_message(request.clone()).await.unwrap();
    alice.send_message(request).await.unwrap();

    let addr = server.process.metrics_addr().expect("metrics are served");
    let response = http1(addr, b"GET /metrics HTTP/1.1\r\nHost: gim\r\nConnection: close\r\n\r\n").await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("gim_messages_stored_total 1\n"), "the duplicate is not counted: {text}");
    assert!(
        text.contains(r#"gim_grpc_request_seconds_count{method="/gim.logic.v1.Device/SendMessage",code="0"} 2"#),
        "{text}"
    );
}
