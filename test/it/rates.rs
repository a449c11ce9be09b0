//! Per-caller rates: a device's calls over gRPC and its WebSocket share one budget, its
//! user's devices another; an app's business calls have theirs; sign-ins are counted per
//! username and per address, sign-ups per address. Past a rate: RESOURCE_EXHAUSTED with
//! the time to wait, and nothing done.

use std::time::Duration;

use gim::{
    config::RatesConfig,
    model::AppSettings,
    proto::{
        client::v1::client_frame::Payload,
        logic::v1::{ChangePasswordRequest, Empty, GetUserRequest, SignInRequest, SignUpRequest, SyncRequest},
    },
};
use tonic::Code;

use crate::{
    support::{Backend, Meta, ServeServer, channel, code, device_client},
    ws::WsClient,
};

fn rates(edit: impl FnOnce(&mut RatesConfig)) -> impl FnOnce(&mut gim::config::Config) {
    move |config| edit(&mut config.rates)
}

/// The wait a refusal asks for, from its metadata.
fn retry_after(status: &tonic::Status) -> Duration {
    let millis = status.metadata().get("retry-after-ms").expect("a refusal says how long to wait");
    Duration::from_millis(millis.to_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_shares_one_budget_over_grpc_and_its_websocket() {
    // 5 a second, bursts of 10.
    let server = ServeServer::start_with(Backend::Sqlite, rates(|r| r.device_calls_per_second = 5)).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "phone").await;
    // Opening the session (1) and its first sync (1) count; what connect reads for the
    // device does not.
    let (mut ws, _) = WsClient::online(server.ws_addr(), &token, 0).await;
    let mut grpc = device_client(server.addr(), &token).await;
    for call in 0..8 {
        grpc.get_me(Empty {}).await.unwrap_or_else(|status| panic!("call {call} is within the burst: {status}"));
    }
    let refused = grpc.get_me(Empty {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    let wait = retry_after(&refused);
    assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200), "{wait:?}");
    assert!(refused.message().contains("this device"), "{refused}");

    let over_ws = ws.request(Payload::Sync(SyncRequest { after_seq: 0, limit: 1 })).await;
    assert_eq!(over_ws.code, Code::ResourceExhausted as i32, "the WebSocket shares the budget");
    assert!(over_ws.message.contains("retry in"), "{}", over_ws.message);

    let other = device_client(server.addr(), &app.device_token("alice", "laptop").await).await;
    let mut other = other;
    other.get_me(Empty {}).await.expect("another device has a budget of its own");

    // A device cannot pass itself off as connect calling for it.
    let forged_meta = Meta::new(&[("authorization", &format!("Bearer {token}")), ("x-gim-on-behalf", "anything")]);
    let mut forged =
        gim::proto::logic::v1::device_client::DeviceClient::with_interceptor(channel(server.addr()).await, forged_meta);
    assert_eq!(code(forged.sync(SyncRequest { after_seq: 0, limit: 1 }).await), Code::ResourceExhausted);

    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    grpc.get_me(Empty {}).await.expect("after the wait, the device may call again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_devices_share_the_users_budget() {
    let server = ServeServer::start_with(
        Backend::Sqlite,
        rates(|r| {
            r.device_calls_per_second = 100;
            r.user_calls_per_second = 3;
        }),
    )
    .await;
    let app = server.new_app().await;
    app.user("alice").await;
    let mut phone = device_client(server.addr(), &app.device_token("alice", "phone").await).await;
    let mut laptop = device_client(server.addr(), &app.device_token("alice", "laptop").await).await;
    for _ in 0..3 {
        phone.get_me(Empty {}).await.unwrap();
        laptop.get_me(Empty {}).await.unwrap();
    }
    assert_eq!(code(phone.get_me(Empty {}).await), Code::ResourceExhausted);
    assert_eq!(code(laptop.get_me(Empty {}).await), Code::ResourceExhausted);
    app.user("bob").await;
    let mut bob = device_client(server.addr(), &app.device_token("bob", "phone").await).await;
    bob.get_me(Empty {}).await.expect("another user's budget is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_has_a_budget_for_its_business_calls() {
    let server = ServeServer::start_with(Backend::Sqlite, rates(|r| r.app_calls_per_second = 2)).await;
    let app = server.new_app().await;
    let other = server.new_app().await;
    let mut business = app.business().await;
    let get = || GetUserRequest { user_id: "nobody".into() };
    for _ in 0..4 {
        assert_eq!(code(business.get_user(get()).await), Code::NotFound);
    }
    let refused = business.get_user(get()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(retry_after(&refused) <= Duration::from_millis(500));
    assert_eq!(code(other.business().await.get_user(get()).await), Code::NotFound, "another app goes on");
}

/// An Account client whose calls come from `source` (a loopback address of its own).
async fn account_from(
    addr: std::net::SocketAddr,
    app_id: u64,
    source: [u8; 4],
) -> gim::proto::logic::v1::account_client::AccountClient<crate::support::Intercepted> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .local_address(Some(std::net::IpAddr::from(source)))
        .connect()
        .await
        .unwrap();
    let app = app_id.to_string();
    gim::proto::logic::v1::account_client::AccountClient::with_interceptor(
        channel,
        Meta::new(&[("x-gim-app-id", &app)]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_a_password_is_throttled_without_locking_its_owner_out() {
    let server = ServeServer::start_with(
        Backend::Sqlite,
        rates(|r| {
            r.failed_sign_ins_per_username_per_minute = 2;
            r.sign_ins_per_address_per_minute = 6;
            r.sign_ups_per_address_per_hour = 2;
        }),
    )
    .await;
    let settings = AppSettings { accounts_enabled: true, ..Default::default() };
    let (app, _) = server.services().apps.create_app("accounts", settings).await.unwrap();
    let mut attacker = account_from(server.addr(), app.id, [127, 0, 0, 1]).await;
    let mut owner = account_from(server.addr(), app.id, [127, 0, 0, 2]).await;
    let sign_up = |name: &str| SignUpRequest {
        username: name.into(),
        password: "correct horse".into(),
        nickname: name.into(),
        device: None,
    };
    owner.sign_up(sign_up("alice")).await.unwrap();
    owner.sign_up(sign_up("bob")).await.unwrap();
    assert_eq!(code(owner.sign_up(sign_up("carol")).await), Code::ResourceExhausted, "two sign-ups an hour");

    let sign_in =
        |name: &str, password: &str| SignInRequest { username: name.into(), password: password.into(), device: None };
    assert_eq!(code(attacker.sign_in(sign_in("alice", "guess one")).await), Code::Unauthenticated);
    assert_eq!(code(attacker.sign_in(sign_in("alice", "guess two")).await), Code::Unauthenticated);
    let refused = attacker.sign_in(sign_in("alice", "correct horse")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "the guessing address is held off, right password or not");
    assert!(retry_after(&refused) <= Duration::from_secs(60));
    owner.sign_in(sign_in("alice", "correct horse")).await.expect("the owner, elsewhere, still signs in");
    attacker.sign_in(sign_in("bob", "correct horse")).await.expect("another username from the same address");
    // Six attempts from the attacker's address in all: one more, then none this minute.
    assert_eq!(code(attacker.sign_in(sign_in("nobody", "x")).await), Code::Unauthenticated);
    assert_eq!(code(attacker.sign_in(sign_in("someone", "x")).await), Code::Unauthenticated);
    assert_eq!(code(attacker.sign_in(sign_in("bob", "correct horse")).await), Code::ResourceExhausted, "per address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_old_passwords_count_as_failed_sign_ins() {
    let server =
        ServeServer::start_with(Backend::Sqlite, rates(|r| r.failed_sign_ins_per_username_per_minute = 3)).await;
    let settings = AppSettings { accounts_enabled: true, ..Default::default() };
    let (app, _) = server.services().apps.create_app("accounts", settings).await.unwrap();
    let mut owner = account_from(server.addr(), app.id, [127, 0, 0, 2]).await;
    let sign_up = SignUpRequest { username: "alice".into(), password: "correct horse".into(), ..Default::default() };
    let token = owner.sign_up(sign_up).await.unwrap().into_inner().token;
    // A stolen token, used from elsewhere, to guess the password it does not know.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))
        .unwrap()
        .local_address(Some(std::net::IpAddr::from([127, 0, 0, 1])))
        .connect()
        .await
        .unwrap();
    let bearer = format!("Bearer {token}");
    let mut thief = gim::proto::logic::v1::device_client::DeviceClient::with_interceptor(
        channel,
        Meta::new(&[("authorization", &bearer)]),
    );
    let change = |old: &str| ChangePasswordRequest { old_password: old.into(), new_password: "mine now!".into() };
    for guess in ["guess one", "guess two", "guess three"] {
        assert_eq!(code(thief.change_password(change(guess)).await), Code::PermissionDenied);
    }
    let refused = thief.change_password(change("correct horse")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "held off, right password or not");
    assert!(retry_after(&refused) <= Duration::from_secs(60));
    let mut from_thief = account_from(server.addr(), app.id, [127, 0, 0, 1]).await;
    let sign_in = SignInRequest { username: "alice".into(), password: "correct horse".into(), device: None };
    assert_eq!(code(from_thief.sign_in(sign_in.clone()).await), Code::ResourceExhausted, "its address is held off");
    owner.sign_in(sign_in).await.expect("the owner, elsewhere, still signs in with the password it kept");
}
