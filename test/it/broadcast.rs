//! `Business.Broadcast`: a system message stored for each named user (once, however often
//! the broadcast is repeated), a message to every user (stored once, on the app's
//! announcement timeline), or an event to their online devices; and what it refuses.

use gim::proto::logic::v1::{BroadcastRequest, BusinessSyncRequest};

use crate::{
    both_stores,
    support::{Backend, ServeServer, TestApp, TestServer, code, text, text_of},
    ws::{WAIT, WsClient},
};

fn message_to(users: &[&str], id: &str, body: &str) -> BroadcastRequest {
    BroadcastRequest {
        user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
        body: text(body),
        client_msg_id: id.into(),
        ..Default::default()
    }
}

async fn system_texts(app: &TestApp, user: &str) -> Vec<String> {
    let request = BusinessSyncRequest { user_id: user.into(), after_seq: 0, limit: 100 };
    let inbox = app.business().await.sync(request).await.unwrap().into_inner().messages;
    inbox.iter().filter(|m| m.sender_user_id.is_empty()).map(|m| text_of(m).to_owned()).collect()
}

both_stores!(
    a_message_to_every_user_is_stored_once_and_read_by_each,
    a_message_reaches_each_named_user_once,
    an_event_reaches_online_devices,
    bad_broadcasts_are_refused,
    an_event_to_everyone_reaches_every_online_device_of_the_app,
);

async fn a_message_reaches_each_named_user_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    for user in ["ann", "ben", "cat"] {
        app.user(user).await;
    }
    let mut business = app.business().await;
    let request = message_to(&["ann", "ben", "ghost", "ann"], "launch", "we are live");
    let done = business.broadcast(request.clone()).await.unwrap().into_inner();
    assert_eq!(done.sent, 2);
    assert_eq!(done.unknown_user_ids, ["ghost"]);
    assert_eq!(done.message_ids.len(), 2);
    assert_ne!(done.message_ids["ann"], done.message_ids["ben"], "each user has a message of its own");
    // A retry of the same broadcast stores nothing again and answers the same ids.
    let again = business.broadcast(request).await.unwrap().into_inner();
    assert_eq!(again.message_ids, done.message_ids);
    assert_eq!(system_texts(&app, "ann").await, ["we are live"]);
    assert_eq!(system_texts(&app, "ben").await, ["we are live"]);
    assert!(system_texts(&app, "cat").await.is_empty(), "not named, not sent");
    // Their devices were pushed the message.
    let pushed: Vec<String> =
        server.delivery.pushes().iter().filter(|p| p.seq > 0).flat_map(|p| p.users.clone()).collect();
    assert!(pushed.contains(&"ann".to_owned()) && pushed.contains(&"ben".to_owned()), "{pushed:?}");
    // Another broadcast id is another message.
    business.broadcast(message_to(&["ann"], "maintenance", "down at 2am")).await.unwrap();
    assert_eq!(system_texts(&app, "ann").await, ["we are live", "down at 2am"]);
}

async fn an_event_reaches_online_devices(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    app.user("ann").await;
    let request = BroadcastRequest {
        user_ids: vec!["ann".into(), "ben".into()],
        event_kind: "flash-sale".into(),
        event_data: b"{\"until\": 3}".to_vec(),
        ..Default::default()
    };
    let done = app.business().await.broadcast(request).await.unwrap().into_inner();
    assert_eq!(done.sent, 2);
    let events: Vec<_> = server.delivery.pushes().into_iter().filter(|p| p.seq == 0).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].users, ["ann", "ben"]);
    assert!(system_texts(&app, "ann").await.is_empty(), "an event is not stored");
}

async fn bad_broadcasts_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    app.user("ann").await;
    let mut business = app.business().await;
    let max = server.config.limits.max_broadcast_users;
    let too_many: Vec<String> = (0..=max).map(|i| format!("u{i}")).collect();
    let both = BroadcastRequest { event_kind: "x".into(), ..message_to(&["ann"], "b1", "hi") };
    let neither = BroadcastRequest { user_ids: vec!["ann".into()], ..Default::default() };
    let cases = [
        (
            BroadcastRequest { user_ids: too_many, ..message_to(&[], "b1", "hi") },
            tonic::Code::InvalidArgument,
            "too many",
        ),
        (message_to(&[], "", "hi"), tonic::Code::InvalidArgument, "every user, no client_msg_id"),
        (message_to(&[], "b4", ""), tonic::Code::InvalidArgument, "every user, empty text"),
        (both, tonic::Code::InvalidArgument, "a message and an event"),
        (neither, tonic::Code::InvalidArgument, "nothing to send"),
        (message_to(&["ann"], "", "hi"), tonic::Code::InvalidArgument, "no client_msg_id"),
        (message_to(&["ann"], "has space", "hi"), tonic::Code::InvalidArgument, "bad client_msg_id"),
        (message_to(&["ann"], "b2", ""), tonic::Code::InvalidArgument, "empty text"),
        (message_to(&["bad id!"], "b3", "hi"), tonic::Code::InvalidArgument, "bad user id"),
    ];
    for (request, expected, why) in cases {
        assert_eq!(code(business.broadcast(request).await), expected, "{why}");
    }
    assert!(system_texts(&app, "ann").await.is_empty(), "nothing was stored");
}

/// With no users named, an event goes to every online device of the app, and of no other.
async fn an_event_to_everyone_reaches_every_online_device_of_the_app(backend: Backend) {
    use gim::proto::client::v1::event_push::Event;
    let server = ServeServer::start(backend).await;
    let app = server.new_app().await;
    let other = server.new_app().await;
    let mut sessions = Vec::new();
    for (user, device) in [("ann", "phone"), ("ann", "laptop"), ("ben", "phone")] {
        if device == "phone" {
            app.user(user).await;
        }
        sessions.push(WsClient::connect(server.ws_addr(), &app.device_token(user, device).await).await);
    }
    other.user("zed").await;
    let mut outsider = WsClient::connect(server.ws_addr(), &other.device_token("zed", "phone").await).await;
    let request =
        BroadcastRequest { event_kind: "maintenance".into(), event_data: b"at 2am".to_vec(), ..Default::default() };
    app.business().await.broadcast(request).await.unwrap();
    for session in &mut sessions {
        let Some(Event::Custom(event)) = session.next_event(WAIT).await else { panic!("no event") };
        assert_eq!((event.kind.as_str(), event.data.as_slice()), ("maintenance", b"at 2am".as_slice()));
    }
    assert!(outsider.next_event(std::time::Duration::from_millis(300)).await.is_none(), "another app's device");
}

/// A message to every user: stored once on the app's announcement timeline, pushed to
/// every session (opened before the app had any announcement too), listed in every
/// user's sync and read like a large group's timeline, by users made later too; another
/// app sees none of it.
async fn a_message_to_every_user_is_stored_once_and_read_by_each(backend: Backend) {
    use gim::{logic::ANNOUNCEMENTS, proto::common::v1::ConversationType};
    let server = ServeServer::start(backend).await;
    let app = server.new_app().await;
    let other = server.new_app().await;
    for user in ["ann", "ben"] {
        app.user(user).await;
    }
    other.user("zed").await;
    let (mut ann, _) = WsClient::online(server.ws_addr(), &app.device_token("ann", "phone").await, 0).await;
    let (mut zed, _) = WsClient::online(server.ws_addr(), &other.device_token("zed", "phone").await, 0).await;
    assert!(ann.sync(u64::MAX, 1).await.large_groups.is_empty(), "no announcement yet");

    let mut business = app.business().await;
    let request = message_to(&[], "maintenance", "down at 2am");
    let done = business.broadcast(request.clone()).await.unwrap().into_inner();
    assert_eq!(done.sent, 1);
    let id = done.message_ids[ANNOUNCEMENTS];
    let pushed = ann.next_message(WAIT).await.expect("pushed to the open session");
    assert_eq!((pushed.id, pushed.group_seq, pushed.seq), (id, 1, 0));
    assert_eq!((pushed.conversation_type(), pushed.receiver_id.as_str()), (ConversationType::System, ANNOUNCEMENTS));
    assert_eq!(text_of(&pushed), "down at 2am");
    // A repeat stores nothing again and pushes nothing.
    let again = business.broadcast(request).await.unwrap().into_inner();
    assert_eq!(again.message_ids[ANNOUNCEMENTS], id);
    business.broadcast(message_to(&[], "welcome", "new features")).await.unwrap();
    let second = ann.next_message(WAIT).await.expect("the second");
    assert_eq!((second.group_seq, text_of(&second)), (2, "new features"));

    // Ben, offline meanwhile, and Cat, who did not exist, read them like a large group.
    app.user("cat").await;
    for user in ["ben", "cat"] {
        let (mut device, inbox) = WsClient::online(server.ws_addr(), &app.device_token(user, "phone").await, 0).await;
        assert!(inbox.is_empty(), "{user}: stored once, in no inbox");
        let listed = device.sync(u64::MAX, 1).await.large_groups;
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].group_id.as_str(), listed[0].latest_group_seq), (ANNOUNCEMENTS, 2));
        let page = device.sync_group(ANNOUNCEMENTS, 0).await;
        let texts: Vec<&str> = page.messages.iter().map(text_of).collect();
        assert_eq!(texts, ["down at 2am", "new features"], "{user}");
        assert_eq!(device.sync_group(ANNOUNCEMENTS, 1).await.messages.len(), 1);
    }
    assert!(system_texts(&app, "ben").await.is_empty(), "nothing written to inboxes");

    // Another app: no push, nothing listed, nothing to read.
    assert!(zed.next_message(std::time::Duration::from_millis(300)).await.is_none());
    assert!(zed.sync(u64::MAX, 1).await.large_groups.is_empty());
    assert!(zed.sync_group(ANNOUNCEMENTS, 0).await.messages.is_empty());
}
