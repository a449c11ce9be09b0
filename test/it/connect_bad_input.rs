//! Every way a session can be refused or closed, with its code and reason; the node
//! keeps serving the others.

use std::time::Duration;

use gim::proto::{
    client::v1::{Auth, ClientFrame, Heartbeat, client_frame::Payload, response::Result as Reply, server_frame},
    logic::v1::{
        BusinessSendRequest, GetPresenceRequest, IssueTokenRequest, PushEventRequest, RegisterDeviceRequest,
        RevokeTokensRequest,
    },
};
use prost::Message as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, ServeServer, TestApp},
    ws::WsClient,
};

both_stores!(
    a_session_ends_when_its_token_expires_though_its_device_only_pings,
    a_device_that_stops_reading_is_closed_with_4008_as_soon_as_its_queue_overflows,
);

async fn server(edit: impl FnOnce(&mut gim::config::Config)) -> ServeServer {
    ServeServer::start_with(Backend::Sqlite, edit).await
}

fn http_status(result: Result<WsClient, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got a session"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_with_a_bad_token_or_path_are_refused_over_http() {
    let server = server(|_| {}).await;
    let ws = server.ws_addr();
    assert_eq!(http_status(WsClient::open(&format!("ws://{ws}/ws?token=garbage")).await), 401);
    let forged = "v1.eyJhIjoxfQ.c2lnbmF0dXJl";
    assert_eq!(http_status(WsClient::open(&format!("ws://{ws}/ws?token={forged}")).await), 401);
    assert_eq!(http_status(WsClient::open(&format!("ws://{ws}/other")).await), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_a_token_must_authenticate_with_its_first_frame() {
    let server = server(|config| config.connect.handshake_timeout_secs = 1).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "browser").await;
    let ws = server.ws_addr();

    let mut client = WsClient::connect_anonymous(ws).await;
    let response = client.request(Payload::Auth(Auth { token: token.clone() })).await;
    let Some(Reply::Auth(caller)) = response.result else { panic!("no auth result: {response:?}") };
    assert_eq!((caller.user_id.as_str(), caller.device_id.as_str()), ("alice", "browser"));
    let again = client.request(Payload::Auth(Auth { token })).await;
    assert_eq!(again.code, Code::FailedPrecondition as i32);
    assert_eq!(client.heartbeat().await.code, 0);

    let mut early = WsClient::connect_anonymous(ws).await;
    early.send_frame(Payload::Heartbeat(Heartbeat {})).await;
    let (closed, _) = early.closed().await;
    assert_eq!(closed.code, 4001, "{closed:?}");
    assert!(closed.reason.contains("Auth"), "{closed:?}");

    // Not even a ping goes first.
    let mut pinging = WsClient::connect_anonymous(ws).await;
    pinging.send_raw(WsMessage::Ping(Vec::new().into())).await;
    let (closed, _) = pinging.closed().await;
    assert_eq!(closed.code, 4001, "{closed:?}");

    let mut wrong = WsClient::connect_anonymous(ws).await;
    wrong.send_frame(Payload::Auth(Auth { token: "garbage".into() })).await;
    assert_eq!(wrong.closed().await.0.code, 4001);

    let started = std::time::Instant::now();
    let mut silent = WsClient::connect_anonymous(ws).await;
    let (closed, _) = silent.closed().await;
    assert_eq!(closed.code, 4001, "no Auth frame within the handshake timeout: {closed:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(2), "closed after {waited:?}");
}

/// Clients that cannot send an Auth frame present the token in the handshake: in the
/// query or in an `Authorization` header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_handshake_still_opens_a_session() {
    let server = server(|_| {}).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let ws = server.ws_addr();
    let mut by_query = WsClient::connect(ws, &app.device_token("alice", "phone").await).await;
    assert_eq!(by_query.sync(0, 0).await.latest_seq, 0);
    let mut by_header = WsClient::connect_with_header(ws, &app.device_token("alice", "laptop").await).await;
    assert_eq!(by_header.sync(0, 0).await.latest_seq, 0);
    assert_eq!(by_query.heartbeat().await.code, 0, "two devices, two sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_right_after_the_upgrade() {
    let server = server(|_| {}).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "phone").await;
    app.business()
        .await
        .revoke_tokens(RevokeTokensRequest { user_id: "alice".into(), device_id: "phone".into() })
        .await
        .unwrap();
    let mut client = WsClient::connect(server.ws_addr(), &token).await;
    let (closed, _) = client.closed().await;
    assert_eq!(closed.code, 4001);
    assert!(closed.reason.contains("revoked"), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_malformed_and_oversized_frames_close_with_precise_codes() {
    let server = server(|config| config.connect.max_frame_bytes = 1024).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let ws = server.ws_addr();
    let cases: [(&str, WsMessage, u16); 3] = [
        ("a text frame", WsMessage::Text("hello".into()), 1003),
        ("garbage bytes", WsMessage::Binary(vec![0xff, 0xff, 0xff, 0x0f].into()), 1007),
        ("a frame over the limit", WsMessage::Binary(vec![0u8; 2000].into()), 1009),
    ];
    for (what, message, code) in cases {
        let token = app.device_token("alice", "phone").await;
        let (mut client, _) = WsClient::online(ws, &token, 0).await;
        client.send_raw(message).await;
        let (closed, _) = client.closed().await;
        assert_eq!(closed.code, code, "{what}: {closed:?}");
        assert!(!closed.reason.is_empty(), "{what} gets a reason");
    }
    // An empty frame is answered, not fatal.
    let token = app.device_token("alice", "phone").await;
    let (mut client, _) = WsClient::online(ws, &token, 0).await;
    client.send_raw(WsMessage::Binary(ClientFrame { request_id: 7, payload: None }.encode_to_vec().into())).await;
    let Ok(Some(gim::proto::client::v1::server_frame::Payload::Response(response))) =
        client.next_frame(Duration::from_secs(5)).await
    else {
        panic!("no response to an empty frame")
    };
    assert_eq!((response.request_id, response.code), (7, Code::InvalidArgument as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_session_times_out() {
    let server = server(|config| config.connect.heartbeat_timeout_secs = 1).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let (mut client, _) = WsClient::online(server.ws_addr(), &app.device_token("alice", "phone").await, 0).await;
    let started = std::time::Instant::now();
    let (closed, _) = client.closed().await;
    assert_eq!(closed.code, 4004);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_piling_up_before_the_first_sync_close_the_session_not_the_node() {
    let server = server(|config| config.connect.outbound_queue = 4).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    // Bob connects but never syncs: his pushes are held, up to the queue size.
    let mut bob = WsClient::connect(server.ws_addr(), &app.device_token("bob", "phone").await).await;
    let (mut alice, _) = WsClient::online(server.ws_addr(), &app.device_token("alice", "phone").await, 0).await;
    for i in 0..8 {
        alice.send("bob", &format!("m{i}"), "hi").await;
    }
    let (closed, _) = bob.closed().await;
    assert_eq!(closed.code, 4008, "{closed:?}");
    assert_eq!(alice.heartbeat().await.code, 0, "other sessions carry on");

    // Reconnecting and syncing gets everything.
    let (_, synced) = WsClient::online(server.ws_addr(), &app.device_token("bob", "phone").await, 0).await;
    assert_eq!(synced.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_frames_is_answered_with_resource_exhausted() {
    let server = server(|config| config.connect.max_frames_per_second = 5).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let mut client = WsClient::connect(server.ws_addr(), &app.device_token("alice", "phone").await).await;
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(client.heartbeat().await.code);
    }
    assert!(codes.iter().filter(|c| **c == 0).count() <= 11, "a burst of twice the rate at most: {codes:?}");
    assert!(codes.contains(&(Code::ResourceExhausted as i32)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client.heartbeat().await.code, 0, "the bucket refills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_beyond_the_limit_are_refused_with_503() {
    let server = server(|config| config.connect.max_sessions = 2).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let ws = server.ws_addr();
    let _first = WsClient::connect(ws, &app.device_token("alice", "d1").await).await;
    let mut second = WsClient::connect(ws, &app.device_token("alice", "d2").await).await;
    assert_eq!(second.heartbeat().await.code, 0);
    let token = app.device_token("alice", "d3").await;
    assert_eq!(http_status(WsClient::open(&format!("ws://{ws}/ws?token={token}")).await), 503);
}

/// With `connect.allowed_origins` set, a page of another origin cannot open a session
/// (HTTP 403 before the upgrade); listed origins and clients that send no origin can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_origins_not_allowed_cannot_open_sessions() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = server(|config| config.connect.allowed_origins = vec!["https://chat.example".into()]).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "browser").await;
    let url = format!("ws://{}/ws?token={token}", server.ws_addr());
    let from = |origin: &str| {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        request
    };
    let refused = tokio_tungstenite::connect_async(from("https://evil.example")).await;
    match refused {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 403),
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
    }
    let allowed = tokio_tungstenite::connect_async(from("https://chat.example")).await;
    assert!(allowed.is_ok(), "a listed origin opens a session");
    // Another device: a second session of the browser's would replace the first.
    let mut native = WsClient::connect(server.ws_addr(), &app.device_token("alice", "phone").await).await;
    assert_eq!(native.heartbeat().await.code, 0, "a client that sends no origin is not a browser page");
}

/// RFC 6455: a close frame from the device is answered with one, so that browsers see a
/// clean close with the code they sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_device_is_answered() {
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
    let server = server(|_| {}).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "phone").await;
    let (mut client, _) = WsClient::online(server.ws_addr(), &token, 0).await;
    client.send_raw(WsMessage::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))).await;
    let (closed, _) = client.closed().await;
    assert_eq!(closed.code, 1000, "the server echoes the device's close: {closed:?}");
}

/// Whether any device of `user` holds a session (its routes, as Business.GetPresence reads them).
async fn online(app: &TestApp, user: &str) -> bool {
    let request = GetPresenceRequest { user_ids: vec![user.into()] };
    app.business().await.get_presence(request).await.expect("reading presence").into_inner().users[0].online
}

/// The token's expiry closes the session on time, with 4001, even though the device sends
/// nothing but WebSocket pings (which carry no request to refuse) while pushes keep coming.
async fn a_session_ends_when_its_token_expires_though_its_device_only_pings(backend: Backend) {
    let server = ServeServer::start(backend).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let mut business = app.business().await;
    let device = RegisterDeviceRequest { user_id: "bob".into(), device_id: "phone".into(), ..Default::default() };
    business.register_device(device).await.unwrap();
    let issue = IssueTokenRequest { user_id: "bob".into(), device_id: "phone".into(), ttl_seconds: 2 };
    let issued = business.issue_token(issue).await.unwrap().into_inner();
    let (mut bob, _) = WsClient::online(server.ws_addr(), &issued.token, 0).await;

    // Alice writes to bob every 100 ms, before his token expires and after.
    let sender = tokio::spawn(async move {
        for i in 0.. {
            let request = BusinessSendRequest {
                sender_user_id: "alice".into(),
                receiver_user_id: "bob".into(),
                client_msg_id: format!("m{i}"),
                body: crate::support::text("still there?"),
                ..Default::default()
            };
            business.send_message(request).await.expect("sending");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (closed, closed_at_ms, before) =
        bob.ping_until_closed(Duration::from_millis(200), Duration::from_secs(5)).await;
    assert_eq!(closed.code, 4001, "{closed:?}");
    assert!(closed.reason.contains("expired"), "{closed:?}");
    let late_ms = closed_at_ms - issued.expires_at_ms;
    assert!((-50..750).contains(&late_ms), "closed {late_ms} ms after the token expired");
    let pushed = before.iter().filter(|(_, frame)| matches!(frame, server_frame::Payload::Message(_))).count();
    assert!(pushed > 0, "pushes flowed while the token held");

    // Nothing follows the close, though alice is still writing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!matches!(bob.next_frame(Duration::from_millis(300)).await, Ok(Some(_))), "a frame after the close");
    sender.abort();
    assert!(!online(&app, "bob").await, "the expired session's route is gone");
}

/// A device that stops reading while pushes flow is closed with 4008 as soon as its queue
/// overflows, and its user is offline at once: not after a write to it times out.
async fn a_device_that_stops_reading_is_closed_with_4008_as_soon_as_its_queue_overflows(backend: Backend) {
    let server = ServeServer::start_with(backend, |config| {
        config.connect.outbound_queue = 16;
        // Far beyond what this test waits: only the overflow can end the session in time.
        config.connect.write_timeout_secs = 60;
    })
    .await;
    let app = server.new_app().await;
    app.user("bob").await;
    let token = app.device_token("bob", "phone").await;
    let mut bob = WsClient::connect_with_a_small_receive_buffer(server.ws_addr(), &token).await;
    bob.sync_all(0).await;
    assert!(online(&app, "bob").await);

    // Bob reads nothing more. Events fill the sockets' buffers, then his queue.
    let mut business = app.business().await;
    let started = std::time::Instant::now();
    let mut sent = 0;
    while online(&app, "bob").await {
        assert!(started.elapsed() < Duration::from_secs(5), "bob is still online after {sent} pushes he did not read");
        for _ in 0..8 {
            let event = PushEventRequest { user_ids: vec!["bob".into()], kind: "fill".into(), data: vec![7; 8192] };
            business.push_event(event).await.unwrap();
            sent += 1;
        }
    }

    // When he reads again, what the sockets held comes first, then the close.
    let (closed, _) = bob.closed().await;
    assert_eq!(closed.code, 4008, "{closed:?}");
}

/// A device that never reads again cannot be sent its close frame (it waits behind what
/// the device left unread): after the write timeout the connection is reset, so that
/// neither the session nor the kernel keeps its unread pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_that_a_device_does_not_read_resets_the_connection_after_the_write_timeout() {
    let server = server(|config| {
        config.connect.outbound_queue = 16;
        config.connect.write_timeout_secs = 1;
    })
    .await;
    let app = server.new_app().await;
    app.user("bob").await;
    let token = app.device_token("bob", "phone").await;
    let mut bob = WsClient::connect_with_a_small_receive_buffer(server.ws_addr(), &token).await;
    bob.sync_all(0).await;
    let mut business = app.business().await;
    while online(&app, "bob").await {
        let event = PushEventRequest { user_ids: vec!["bob".into()], kind: "fill".into(), data: vec![7; 8192] };
        business.push_event(event).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // What the sockets held, then a reset (not the end of a stream whose last bytes were
    // delivered at last).
    let (closed, _) = bob.closed().await;
    assert_eq!(closed.code, 1006, "{closed:?}");
    assert!(closed.reason.contains("Connection reset by peer"), "{closed:?}");
}
