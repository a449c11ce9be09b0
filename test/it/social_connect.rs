//! The social layer over real WebSockets (`gim serve`): presence events to friends,
//! settled so that a flapping connection tells nothing; friend and moment
//! notifications pushed live and caught up by an offline device.

use std::time::Duration;

use gim::{
    model::AppSettings,
    proto::{
        client::v1::{PresenceEvent, event_push::Event},
        common::v1::{DeviceType, Message, message_body::Content},
        logic::v1::{
            AnswerFriendRequest, GetPresenceRequest, IssueTokenRequest, PostContent, PublishRequest,
            RegisterDeviceRequest, SendFriendRequestRequest, Visibility,
        },
    },
};

use crate::{
    both_stores,
    support::{Backend, ServeServer, TestApp},
    ws::{WAIT, WsClient},
};

both_stores!(
    friends_hear_presence_once_it_settles,
    apps_may_turn_presence_events_off,
    social_notifications_are_pushed_and_caught_up,
);

const SETTLE_MS: u64 = 300;
/// Long enough for a settled change to have been announced.
const QUIET: Duration = Duration::from_millis(SETTLE_MS * 3);

async fn serve(backend: Backend) -> ServeServer {
    ServeServer::start_with(backend, |config| config.social.presence_debounce_ms = SETTLE_MS).await
}

/// A device of the given type, online; returns its session.
async fn online(server: &ServeServer, app: &TestApp, user: &str, device: &str, kind: DeviceType) -> WsClient {
    let register = RegisterDeviceRequest {
        user_id: user.into(),
        device_id: device.into(),
        r#type: kind as i32,
        ..Default::default()
    };
    let mut business = app.business().await;
    business.register_device(register).await.unwrap();
    let issue = IssueTokenRequest { user_id: user.into(), device_id: device.into(), ttl_seconds: 0 };
    let token = business.issue_token(issue).await.unwrap().into_inner().token;
    WsClient::online(server.ws_addr(), &token, 0).await.0
}

async fn presence(client: &mut WsClient, wait: Duration) -> Option<PresenceEvent> {
    match client.next_event(wait).await {
        Some(Event::Presence(event)) => Some(event),
        Some(other) => panic!("not a presence event: {other:?}"),
        None => None,
    }
}

fn types(kinds: &[DeviceType]) -> Vec<i32> {
    kinds.iter().map(|k| *k as i32).collect()
}

async fn friends_hear_presence_once_it_settles(backend: Backend) {
    let server = serve(backend).await;
    let app = server.new_app().await;
    for user in ["ann", "bob", "cat"] {
        app.user(user).await;
    }
    app.make_friends(&[("ann", "bob")]).await;
    let mut bob = online(&server, &app, "bob", "phone", DeviceType::Android).await;
    let mut cat = online(&server, &app, "cat", "phone", DeviceType::Android).await;

    let phone = online(&server, &app, "ann", "phone", DeviceType::Ios).await;
    let event = presence(&mut bob, WAIT).await.expect("bob hears that ann came online");
    assert_eq!(event, PresenceEvent { user_id: "ann".into(), online: true, device_types: types(&[DeviceType::Ios]) });
    let asked = GetPresenceRequest { user_ids: vec!["ann".into()] };
    let answer = app.friends(Some("bob")).await.get_presence(asked).await.unwrap().into_inner();
    assert!(answer.users[0].online);
    assert_eq!(answer.users[0].devices[0].r#type, DeviceType::Ios as i32);

    let desk = online(&server, &app, "ann", "desk", DeviceType::Desktop).await;
    let event = presence(&mut bob, WAIT).await.expect("a second kind of device is news");
    assert_eq!(event.device_types, types(&[DeviceType::Ios, DeviceType::Desktop]));

    // The desk drops and is back before the change settles: nothing to tell.
    drop(desk);
    let desk = online(&server, &app, "ann", "desk", DeviceType::Desktop).await;
    assert_eq!(presence(&mut bob, QUIET).await, None, "a flap within the settling time tells nothing");

    drop(phone);
    let event = presence(&mut bob, WAIT).await.expect("the phone went away");
    assert_eq!(event.device_types, types(&[DeviceType::Desktop]));
    drop(desk);
    let event = presence(&mut bob, WAIT).await.expect("ann went offline");
    assert_eq!(event, PresenceEvent { user_id: "ann".into(), online: false, device_types: Vec::new() });
    assert_eq!(presence(&mut cat, QUIET).await, None, "a stranger hears nothing");
}

async fn apps_may_turn_presence_events_off(backend: Backend) {
    let server = serve(backend).await;
    let settings = AppSettings { presence_events_disabled: true, ..Default::default() };
    let (created, secret) = server.services().apps.create_app("quiet", settings).await.unwrap();
    let app = TestApp { app_id: created.id, secret, addr: server.addr() };
    app.user("ann").await;
    app.user("bob").await;
    app.make_friends(&[("ann", "bob")]).await;
    let mut bob = online(&server, &app, "bob", "phone", DeviceType::Android).await;
    let _ann = online(&server, &app, "ann", "phone", DeviceType::Ios).await;
    assert_eq!(presence(&mut bob, QUIET).await, None);
    let asked = GetPresenceRequest { user_ids: vec!["ann".into()] };
    let answer = app.friends(Some("bob")).await.get_presence(asked).await.unwrap().into_inner();
    assert!(answer.users[0].online, "presence can still be asked for");
}

fn event_of(message: &Message) -> &str {
    match message.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(Content::System(system)) => &system.event,
        _ => "",
    }
}

async fn social_notifications_are_pushed_and_caught_up(backend: Backend) {
    let server = serve(backend).await;
    let app = server.new_app().await;
    app.user("ann").await;
    app.user("bob").await;
    let mut ann = online(&server, &app, "ann", "phone", DeviceType::Ios).await;
    let mut bob = online(&server, &app, "bob", "phone", DeviceType::Android).await;

    let request = SendFriendRequestRequest { user_id: "bob".into(), greeting: "hi".into() };
    app.friends(Some("ann")).await.send_request(request).await.unwrap();
    let pushed = bob.next_message(WAIT).await.expect("bob's phone gets the request");
    assert_eq!(event_of(&pushed), "friend.requested");
    let answer = AnswerFriendRequest { user_id: "ann".into(), accept: true };
    app.friends(Some("bob")).await.answer(answer).await.unwrap();
    assert_eq!(event_of(&ann.next_message(WAIT).await.unwrap()), "friend.accepted");
    assert_eq!(event_of(&bob.next_message(WAIT).await.unwrap()), "friend.accepted");

    let post = PublishRequest {
        content: Some(PostContent { text: "hello".into(), ..Default::default() }),
        visibility: Visibility::Friends as i32,
        ..Default::default()
    };
    app.moments(Some("ann")).await.publish(post).await.unwrap();
    let posted = bob.next_message(WAIT).await.unwrap();
    assert_eq!(event_of(&posted), "moment.posted");

    // A device that was offline catches up by seq.
    let token = app.device_token("bob", "tablet").await;
    let (_tablet, synced) = WsClient::online(server.ws_addr(), &token, 0).await;
    let events: Vec<&str> = synced.iter().map(event_of).collect();
    assert_eq!(events, ["friend.requested", "friend.accepted", "moment.posted"]);
    assert_eq!(synced.last().unwrap().seq, posted.seq);
}
