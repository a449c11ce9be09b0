//! Connect end to end: real WebSocket clients on `gim serve`, messages to every device
//! of both users once and in order, catch-up after reconnecting, replacement, kicks,
//! presence and read events.

use std::{collections::BTreeMap, time::Duration};

use gim::proto::{
    client::v1::{KickReason, client_frame::Payload, event_push::Event, server_frame},
    common::v1::{ConversationType, Message},
    logic::v1::{
        DeviceSendRequest, GetPresenceRequest, KickDeviceRequest, MarkReadRequest, PushEventRequest,
        RevokeTokensRequest,
    },
};

use crate::{
    both_stores,
    support::{Backend, ServeServer, device_client, text, text_of},
    ws::{WAIT, WsClient},
};

both_stores!(
    messages_reach_all_five_devices_once_and_in_order,
    a_device_that_reconnects_mid_stream_loses_nothing_and_gets_nothing_twice,
    a_device_is_never_pushed_what_it_sent_itself,
    pushes_that_never_came_are_read_before_the_next_one,
);

const QUIET: Duration = Duration::from_millis(300);

/// Asserts that pushes came in seq order with no gap after `floor`; returns their ids.
fn in_order(floor: u64, messages: &[Message]) -> Vec<u64> {
    for (expected, message) in (floor + 1..).zip(messages) {
        assert_eq!(message.seq, expected, "pushes come in seq order, once each: {messages:?}");
    }
    messages.iter().map(|m| m.id).collect()
}

async fn messages_reach_all_five_devices_once_and_in_order(backend: Backend) {
    let server = ServeServer::start(backend).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let ws = server.ws_addr();
    let mut alice = Vec::new();
    for device in ["a1", "a2"] {
        alice.push(WsClient::online(ws, &app.device_token("alice", device).await, 0).await.0);
    }
    let mut bob = Vec::new();
    for device in ["b1", "b2", "b3"] {
        bob.push(WsClient::online(ws, &app.device_token("bob", device).await, 0).await.0);
    }

    let mut sent_ids = Vec::new();
    for i in 0..10 {
        let from_alice = alice[0].send("bob", &format!("a{i}"), &format!("alice {i}")).await;
        let from_bob = bob[1].send("alice", &format!("b{i}"), &format!("bob {i}")).await;
        sent_ids.push(from_alice.message_id);
        sent_ids.push(from_bob.message_id);
    }

    // Every device of both users has every message: its own sends as responses, the
    // rest as pushes, in its user's seq order.
    let pushed = alice[0].messages_until_quiet(QUIET).await;
    assert_eq!(pushed.len(), 10, "a1 gets bob's ten, not its own sends");
    assert!(pushed.iter().all(|m| m.sender_user_id == "bob"));
    let pushed = alice[1].messages_until_quiet(QUIET).await;
    assert_eq!(in_order(0, &pushed), sent_ids, "alice's other device sees the conversation as it happened");
    for (index, client) in bob.iter_mut().enumerate() {
        let pushed = client.messages_until_quiet(QUIET).await;
        if index == 1 {
            assert_eq!(pushed.len(), 10, "b2 sent ten and got alice's ten");
            assert!(pushed.iter().all(|m| m.sender_user_id == "alice"));
        } else {
            assert_eq!(in_order(0, &pushed), sent_ids, "bob's device {index}");
            assert_eq!(text_of(&pushed[0]), "alice 0");
            assert_eq!(pushed[0].conversation_type, ConversationType::Direct as i32);
        }
    }

    // A duplicate client_msg_id stores and pushes nothing.
    let again = alice[0].send("bob", "a0", "alice 0").await;
    assert_eq!(again.message_id, sent_ids[0]);
    for client in bob.iter_mut().chain(alice.iter_mut()) {
        assert!(client.next_message(QUIET).await.is_none(), "a repeated send is not pushed again");
    }
}

async fn a_device_that_reconnects_mid_stream_loses_nothing_and_gets_nothing_twice(backend: Backend) {
    // Alice sends faster than the default per-session frame rate allows.
    let server = ServeServer::start_with(backend, |config| config.connect.max_frames_per_second = 10_000).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let ws = server.ws_addr();
    let alice_token = app.device_token("alice", "phone").await;
    let bob_token = app.device_token("bob", "phone").await;
    let (mut bob, _) = WsClient::online(ws, &bob_token, 0).await;

    // Alice sends 200 messages without pause, from her own socket.
    let sender = tokio::spawn(async move {
        let (mut alice, _) = WsClient::online(ws, &alice_token, 0).await;
        for i in 0..200 {
            alice.send("bob", &format!("m{i}"), &format!("{i}")).await;
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });

    // Bob reads some, acknowledges, drops the connection, reconnects while messages
    // keep coming, syncs from his ack and then lives on pushes.
    let mut received: Vec<Message> = Vec::new();
    while received.len() < 30 {
        received.push(bob.next_message(WAIT).await.expect("a push"));
    }
    let acked = received.last().unwrap().seq;
    assert_eq!(bob.ack(acked).await.code, 0);
    drop(bob);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (mut bob, synced) = WsClient::online(ws, &bob_token, acked).await;
    received.extend(synced);
    sender.await.unwrap();
    received.extend(bob.messages_until_quiet(QUIET).await);

    let seqs: Vec<u64> = received.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>(), "every message once, in order, across the reconnect");
    let texts: BTreeMap<u64, String> = received.iter().map(|m| (m.seq, text_of(m).to_owned())).collect();
    assert_eq!(texts[&200], "199");
}

async fn pushes_that_never_came_are_read_before_the_next_one(backend: Backend) {
    // Small pages, so that filling the gap takes several; the largest page is below
    // what a session once asked for.
    let server = ServeServer::start_with(backend, |config| {
        config.limits.default_page_size = 2;
        config.limits.max_page_size = 3;
    })
    .await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let (mut bob, _) = WsClient::online(server.ws_addr(), &app.device_token("bob", "phone").await, 0).await;
    let alice_token = app.device_token("alice", "phone").await;

    let pushless = server.pushless_node().await;
    let mut alice_there = device_client(pushless.addr(), &alice_token).await;
    for i in 0..5 {
        let request = DeviceSendRequest {
            receiver_user_id: "bob".into(),
            client_msg_id: format!("lost{i}"),
            body: text(&format!("lost {i}")),
            reply_to_message_id: 0,
        };
        alice_there.send_message(request).await.unwrap();
    }
    assert!(bob.next_message(QUIET).await.is_none(), "those five were never pushed");

    // The next push is five seqs past what Bob's session wrote: it reads them first.
    let (mut alice, _) = WsClient::online(server.ws_addr(), &alice_token, 0).await;
    alice.send("bob", "pushed", "pushed").await;
    let pushed = bob.messages_until_quiet(QUIET).await;
    assert_eq!(in_order(0, &pushed).len(), 6, "{pushed:?}");
    let texts: Vec<&str> = pushed.iter().map(text_of).collect();
    assert_eq!(texts, ["lost 0", "lost 1", "lost 2", "lost 3", "lost 4", "pushed"]);
    assert_eq!(server.process.metrics().session_catch_ups.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_for_a_device_replaces_the_first() {
    let server = ServeServer::start(Backend::Sqlite).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "phone").await;
    let (mut first, _) = WsClient::online(server.ws_addr(), &token, 0).await;
    let (mut second, _) = WsClient::online(server.ws_addr(), &token, 0).await;

    let (closed, before) = first.closed().await;
    assert_eq!(closed.code, 4002, "{closed:?}");
    assert!(
        matches!(before.last(), Some(server_frame::Payload::Kicked(k)) if k.reason == KickReason::Replaced as i32),
        "a Kicked frame comes before the close: {before:?}"
    );
    assert_eq!(second.heartbeat().await.code, 0, "the new session lives on");

    // The first session's end took nothing of the second's: its route stays, and pushes
    // reach it.
    app.user("bob").await;
    let (mut bob, _) = WsClient::online(server.ws_addr(), &app.device_token("bob", "phone").await, 0).await;
    bob.send("alice", "after-replace", "still here?").await;
    let pushed = second.next_message(WAIT).await.expect("the new session gets the push");
    assert_eq!(text_of(&pushed), "still here?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_read_events_and_business_events_reach_the_right_devices() {
    let server = ServeServer::start(Backend::Sqlite).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let ws = server.ws_addr();
    let (mut a1, _) = WsClient::online(ws, &app.device_token("alice", "a1").await, 0).await;
    let (mut a2, _) = WsClient::online(ws, &app.device_token("alice", "a2").await, 0).await;
    let (mut bob, _) = WsClient::online(ws, &app.device_token("bob", "b1").await, 0).await;
    let mut business = app.business().await;

    let presence = business
        .get_presence(GetPresenceRequest { user_ids: vec!["alice".into(), "bob".into(), "nobody".into()] })
        .await
        .unwrap()
        .into_inner();
    let online: Vec<(bool, Vec<String>)> = presence
        .users
        .iter()
        .map(|u| {
            let mut devices: Vec<String> = u.devices.iter().map(|d| d.device_id.clone()).collect();
            devices.sort();
            (u.online, devices)
        })
        .collect();
    assert_eq!(
        online,
        [(true, vec!["a1".to_owned(), "a2".to_owned()]), (true, vec!["b1".to_owned()]), (false, vec![])]
    );

    // Bob reads alice's message: alice's devices get a receipt, bob's own devices a sync.
    a1.send("bob", "m1", "hello").await;
    let pushed = bob.next_message(WAIT).await.unwrap();
    let read = bob
        .request(Payload::Read(MarkReadRequest {
            conversation_type: ConversationType::Direct as i32,
            conversation_id: "alice".into(),
            seq: pushed.seq,
        }))
        .await;
    assert_eq!(read.code, 0, "{}", read.message);
    for alice in [&mut a1, &mut a2] {
        let Some(Event::Read(receipt)) = alice.next_event(WAIT).await else { panic!("no read receipt") };
        assert_eq!((receipt.reader_user_id.as_str(), receipt.conversation_id.as_str()), ("bob", "bob"));
        assert_eq!(receipt.message_id, pushed.id);
    }
    let wrong = bob
        .request(Payload::Read(MarkReadRequest {
            conversation_type: ConversationType::Direct as i32,
            conversation_id: "carol".into(),
            seq: pushed.seq,
        }))
        .await;
    assert_eq!(wrong.code, tonic::Code::InvalidArgument as i32, "a seq of another conversation");

    business
        .push_event(PushEventRequest { user_ids: vec!["alice".into()], kind: "ping".into(), data: b"1".to_vec() })
        .await
        .unwrap();
    for alice in [&mut a1, &mut a2] {
        let Some(Event::Custom(custom)) = alice.next_event(WAIT).await else { panic!("no custom event") };
        assert_eq!((custom.kind.as_str(), custom.data.as_slice()), ("ping", b"1".as_slice()));
    }
    assert!(bob.next_event(QUIET).await.is_none(), "only the users named get it");

    drop(bob);
    let mut offline = false;
    for _ in 0..50 {
        let presence =
            business.get_presence(GetPresenceRequest { user_ids: vec!["bob".into()] }).await.unwrap().into_inner();
        if !presence.users[0].online {
            offline = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(offline, "a closed session leaves presence at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicks_and_revocations_close_sessions_with_a_reason() {
    let server = ServeServer::start(Backend::Sqlite).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let ws = server.ws_addr();
    let (mut phone, _) = WsClient::online(ws, &app.device_token("alice", "phone").await, 0).await;
    let (mut laptop, _) = WsClient::online(ws, &app.device_token("alice", "laptop").await, 0).await;
    let mut business = app.business().await;

    business
        .kick_device(KickDeviceRequest {
            user_id: "alice".into(),
            device_id: "phone".into(),
            reason: "maintenance".into(),
        })
        .await
        .unwrap();
    let (closed, before) = phone.closed().await;
    assert_eq!((closed.code, closed.reason.as_str()), (4003, "maintenance"));
    assert!(matches!(before.last(), Some(server_frame::Payload::Kicked(k)) if k.reason == KickReason::Business as i32));
    assert_eq!(laptop.heartbeat().await.code, 0, "the other device stays");

    business.revoke_tokens(RevokeTokensRequest { user_id: "alice".into(), device_id: String::new() }).await.unwrap();
    let (closed, before) = laptop.closed().await;
    assert_eq!(closed.code, 4003);
    assert!(matches!(before.last(), Some(server_frame::Payload::Kicked(k)) if k.reason == KickReason::Revoked as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_devices_to_reconnect_and_removes_their_routes() {
    let server = ServeServer::start(Backend::Sqlite).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let (mut phone, _) = WsClient::online(server.ws_addr(), &app.device_token("alice", "phone").await, 0).await;
    let ServeServer { process, .. } = server;
    let stopping = tokio::spawn(process.shutdown());
    let (closed, _) = phone.closed().await;
    assert_eq!(closed.code, 1001, "{closed:?}");
    tokio::time::timeout(WAIT, stopping).await.expect("shutdown finishes").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_can_skip_history_and_live_on_pushes() {
    let server = ServeServer::start(Backend::Sqlite).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let ws = server.ws_addr();
    let (mut alice, _) = WsClient::online(ws, &app.device_token("alice", "phone").await, 0).await;
    for i in 0..3 {
        alice.send("bob", &format!("old{i}"), "history").await;
    }
    let (mut bob, synced) = WsClient::online(ws, &app.device_token("bob", "new-phone").await, u64::MAX).await;
    assert!(synced.is_empty(), "no history asked for");
    alice.send("bob", "new", "live").await;
    let pushed = bob.next_message(WAIT).await.expect("a push");
    assert_eq!((pushed.seq, text_of(&pushed)), (4, "live"));
}

/// A device's own messages come back in its send responses, never as pushes, whether it
/// sent them over its WebSocket or over gRPC while the WebSocket was open; its other
/// devices get them all.
async fn a_device_is_never_pushed_what_it_sent_itself(backend: Backend) {
    use gim::proto::logic::v1::{CreateGroupRequest, DeviceSendRequest, GroupSendRequest, JoinPolicy};
    let server = ServeServer::start_with(backend, |config| config.groups.large_threshold = 3).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol", "dan"] {
        app.user(user).await;
    }
    let mut as_app = app.groups(None).await;
    for (group, members) in [("small", vec!["bob"]), ("big", vec!["bob", "carol", "dan"])] {
        let members = members.into_iter().map(str::to_owned).collect();
        let create = CreateGroupRequest {
            group_id: group.into(),
            name: group.into(),
            owner_id: "alice".into(),
            join_policy: JoinPolicy::Free as i32,
            member_ids: members,
            ..Default::default()
        };
        as_app.create_group(create).await.unwrap();
    }
    let ws = server.ws_addr();
    let phone_token = app.device_token("alice", "phone").await;
    let (mut phone, _) = WsClient::online(ws, &phone_token, 0).await;
    let (mut laptop, _) = WsClient::online(ws, &app.device_token("alice", "laptop").await, 0).await;
    let (mut bob, _) = WsClient::online(ws, &app.device_token("bob", "phone").await, 0).await;
    let mut phone_device = crate::support::device_client(server.addr(), &phone_token).await;
    let mut phone_groups = crate::support::groups_client(server.addr(), &phone_token).await;
    let group_send = |group: &str, id: &str| GroupSendRequest {
        group_id: group.into(),
        client_msg_id: id.into(),
        body: crate::support::text(id),
        reply_to_message_id: 0,
    };

    let request = DeviceSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: "grpc-1".into(),
        body: crate::support::text("grpc-1"),
        reply_to_message_id: 0,
    };
    phone_device.send_message(request).await.unwrap();
    bob.send("alice", "bob-1", "bob-1").await;
    phone_groups.send_message(group_send("small", "grpc-2")).await.unwrap();
    bob.group_send("small", "bob-2", "bob-2").await;
    phone_groups.send_message(group_send("big", "grpc-3")).await.unwrap();
    bob.group_send("big", "bob-3", "bob-3").await;
    phone.send("bob", "ws-1", "ws-1").await;
    bob.send("alice", "bob-4", "bob-4").await;

    let split = |messages: Vec<Message>| {
        let (timeline, inbox): (Vec<Message>, Vec<Message>) = messages.into_iter().partition(|m| m.group_seq > 0);
        let texts = |list: &[Message]| {
            list.iter().map(text_of).filter(|t| !t.is_empty()).map(str::to_owned).collect::<Vec<_>>()
        };
        (texts(&inbox), texts(&timeline))
    };
    let on_phone = phone.messages_until_quiet(QUIET).await;
    assert!(on_phone.iter().all(|m| m.sender_user_id == "bob"), "nothing the phone sent: {on_phone:?}");
    assert_eq!(split(on_phone), (vec!["bob-1".into(), "bob-2".into(), "bob-4".into()], vec!["bob-3".into()]));
    let on_laptop = split(laptop.messages_until_quiet(QUIET).await);
    assert_eq!(
        on_laptop,
        (
            ["grpc-1", "bob-1", "grpc-2", "bob-2", "ws-1", "bob-4"].map(String::from).to_vec(),
            ["grpc-3", "bob-3"].map(String::from).to_vec()
        ),
        "the user's other device gets everything"
    );
    let synced = phone.sync_all(0).await;
    assert!(synced.iter().any(|m| text_of(m) == "grpc-1"), "a sync returns the device's own messages too");
}
