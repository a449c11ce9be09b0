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

/// Reflection answers in v1 and v1alpha (which many tools and Google's Python client
/// speak), lists the public services, and not the cluster's internal API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_public_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::v1alpha;
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
    // Each version lists itself as the reflection service.
    let mine = |name: &String| !name.starts_with("grpc.reflection.");
    let v1: Vec<_> = list.service.into_iter().map(|s| s.name).filter(mine).collect();

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel(server.addr()).await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut replies = alpha.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) = reply.message_response
    else {
        panic!("unexpected v1alpha reflection reply: {reply:?}");
    };
    let v1alpha: Vec<_> = list.service.into_iter().map(|s| s.name).filter(mine).collect();
    assert_eq!(v1, v1alpha, "both versions list the same services");
    for expected in [
        "gim.logic.v1.Business",
        "gim.logic.v1.Device",
        "gim.logic.v1.Account",
        "gim.logic.v1.Groups",
        "gim.logic.v1.Friends",
        "gim.logic.v1.Moments",
        "grpc.health.v1.Health",
    ] {
        assert!(v1.iter().any(|n| n == expected), "{expected} missing from {v1:?}");
    }
    assert!(v1.iter().all(|name| !name.starts_with("gim.connect")), "no internal API in {v1:?}");
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
    assert!(response.contains("access-control-allow-origin: *"), "any origin by default: {response}");
    assert!(!response.contains("access-control-allow-credentials"), "{response}");
    assert!(response.contains("grpc-status:0"), "{response}");
    assert!(response.contains("alice") && response.contains("browser"), "{response}");

    let preflight = "OPTIONS /gim.logic.v1.Device/GetMe HTTP/1.1\r\nHost: gim\r\nOrigin: https://app.example\r\n\
                     Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,x-grpc-web\r\n\
                     Connection: close\r\n\r\n";
    let response = String::from_utf8_lossy(&http1(server.addr(), preflight.as_bytes()).await).to_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("access-control-allow-origin: *"), "{response}");
}

/// With `logic.cors_allowed_origins` set, listed origins are named back (never with
/// credentials) and every other origin gets HTTP 403, preflight or call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_call_from_a_browser() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.logic.cors_allowed_origins = vec!["https://chat.example".into()];
    })
    .await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "browser").await;
    let call = |origin: &str| {
        let mut request = format!(
            "POST /gim.logic.v1.Device/GetMe HTTP/1.1\r\nHost: gim\r\nContent-Type: application/grpc-web+proto\r\n\
             X-Grpc-Web: 1\r\nOrigin: {origin}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        request.extend_from_slice(&[0, 0, 0, 0, 0]);
        request
    };
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /gim.logic.v1.Device/GetMe HTTP/1.1\r\nHost: gim\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    };
    let allowed = String::from_utf8_lossy(&http1(server.addr(), &call("https://chat.example")).await).to_lowercase();
    assert!(allowed.starts_with("http/1.1 200") && allowed.contains("grpc-status:0"), "{allowed}");
    assert!(allowed.contains("access-control-allow-origin: https://chat.example"), "{allowed}");
    assert!(!allowed.contains("access-control-allow-credentials"), "{allowed}");
    for request in [call("https://evil.example"), preflight("https://evil.example")] {
        let refused = String::from_utf8_lossy(&http1(server.addr(), &request).await).to_lowercase();
        assert!(refused.starts_with("http/1.1 403"), "{refused}");
        assert!(!refused.contains("alice"), "{refused}");
    }
    let ok = String::from_utf8_lossy(&http1(server.addr(), &preflight("https://chat.example")).await).to_lowercase();
    assert!(ok.starts_with("http/1.1 200"), "{ok}");
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
        reply_to_message_id: 0,
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

/// Sends and receives raw protobuf bytes, to put on the wire what no generated client would.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug, Clone, Default)]
struct RawCoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }

    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

impl tonic::codec::Encoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; bytes::Buf::remaining(buf)];
        bytes::Buf::copy_to_slice(buf, &mut out);
        Ok(Some(out))
    }
}

async fn raw_call(channel: tonic::transport::Channel, path: &str, body: Vec<u8>) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
    grpc.ready().await.expect("a ready channel");
    let path = http::uri::PathAndQuery::try_from(path.to_owned()).expect("a method path");
    match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

/// Every RPC of the logic port that takes a string: a request whose string is not UTF-8
/// is the caller's fault (INVALID_ARGUMENT, not INTERNAL), and the node goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_that_is_not_utf8_is_an_invalid_argument_on_every_rpc() {
    use prost::Message as _;
    let server = TestServer::start(Backend::Sqlite).await;
    let files = prost_types::FileDescriptorSet::decode(gim::proto::FILE_DESCRIPTOR_SET).unwrap().file;
    let messages: std::collections::HashMap<String, &prost_types::DescriptorProto> = files
        .iter()
        .flat_map(|file| file.message_type.iter().map(move |m| (format!(".{}.{}", file.package(), m.name()), m)))
        .collect();
    let mut tried = 0;
    let mut wrong = Vec::new();
    for file in files.iter().filter(|f| f.package() == "gim.logic.v1") {
        for service in &file.service {
            for method in &service.method {
                let input = messages[method.input_type()];
                // The first string field, set to bytes that are not UTF-8.
                let Some(field) =
                    input.field.iter().find(|f| f.r#type() == prost_types::field_descriptor_proto::Type::String)
                else {
                    continue;
                };
                let tag = (field.number() as u8) << 3 | 2;
                let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                let code = raw_call(channel(server.addr()).await, &path, vec![tag, 2, 0xff, 0xfe]).await;
                tried += 1;
                if code != tonic::Code::InvalidArgument {
                    wrong.push(format!("{path}: {code:?}"));
                }
            }
        }
    }
    assert!(tried > 40, "every RPC with a string field was tried ({tried})");
    assert!(wrong.is_empty(), "not INVALID_ARGUMENT: {wrong:?}");
    let mut health = HealthClient::new(channel(server.addr()).await);
    assert!(health.check(HealthCheckRequest { service: String::new() }).await.is_ok(), "still serving");
}

/// A request past `logic.max_request_bytes` is RESOURCE_EXHAUSTED, and one within it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_size_limit_is_resource_exhausted() {
    let server = TestServer::start_with(Backend::Sqlite, |config| config.logic.max_request_bytes = 64 * 1024).await;
    // Field 1 of CreateUserRequest (user_id), 100 KB long: decoded, it would be refused
    // for its length; it never gets that far.
    let mut big = vec![0x0a, 0xa0, 0x8d, 0x06];
    big.resize(big.len() + 100_000, b'a');
    let code = raw_call(channel(server.addr()).await, "/gim.logic.v1.Business/CreateUser", big).await;
    assert_eq!(code, tonic::Code::ResourceExhausted);
    let small = raw_call(channel(server.addr()).await, "/gim.logic.v1.Business/CreateUser", vec![0x0a, 1, b'a']).await;
    assert_eq!(small, tonic::Code::Unauthenticated, "a request within the limit reaches the handler");
}
