//! Live rooms through real sessions of `gim serve`: joining, sending and leaving, the
//! replay, the business putting sessions in and out and closing rooms, moderation, and
//! everything a room refuses (bad ids, sends from outside, rates, private rooms,
//! another app's room of the same name).

use std::time::Duration;

use gim::proto::{
    client::v1::{Response, client_frame::Payload, response::Result as Reply, server_frame},
    logic::v1::{
        AppSettings, BeforeSendHook, CloseRoomRequest, GetRoomRequest, JoinRoomRequest, JoinRoomResponse,
        LeaveRoomRequest, PushRoomRequest, RoomEvent, RoomEventKind, RoomMemberRequest, RoomMessage, RoomSendRequest,
        UpdateAppRequest,
    },
};

use crate::{
    both_stores,
    support::{ADMIN_TOKEN, Backend, ServeServer, TestApp, admin_client, code, text},
    webhooks::{Mode, Receiver},
    ws::{WAIT, WsClient},
};

const QUIET: Duration = Duration::from_millis(300);

/// A server whose rooms keep 5 messages and report counts every 100 ms.
async fn server(backend: Backend, edit: impl FnOnce(&mut gim::config::Config)) -> ServeServer {
    ServeServer::start_with(backend, |config| {
        config.rooms.replay = 5;
        config.rooms.report_ms = 100;
        edit(config);
    })
    .await
}

async fn session(server: &ServeServer, app: &TestApp, user: &str, device: &str) -> WsClient {
    if device == "phone" {
        app.user(user).await;
    }
    WsClient::connect(server.ws_addr(), &app.device_token(user, device).await).await
}

fn join(room: &str, replay: bool) -> Payload {
    Payload::JoinRoom(JoinRoomRequest { room_id: room.into(), replay })
}

fn say(room: &str, words: &str) -> Payload {
    Payload::RoomSend(RoomSendRequest { room_id: room.into(), client_msg_id: String::new(), body: text(words) })
}

fn joined(response: Response) -> JoinRoomResponse {
    match response.result {
        Some(Reply::JoinRoom(joined)) => joined,
        _ => panic!("not joined: {} {}", response.code, response.message),
    }
}

fn sent_seq(response: Response) -> u64 {
    match response.result {
        Some(Reply::RoomSend(sent)) => sent.seq,
        _ => panic!("not sent: {} {}", response.code, response.message),
    }
}

fn words(message: &RoomMessage) -> String {
    crate::support::text_of(&gim::proto::common::v1::Message { body: message.body.clone(), ..Default::default() })
        .to_owned()
}

/// The next room frame of a session (kept pushes first), skipping anything else.
async fn next_room_frame(client: &mut WsClient, wait: Duration) -> Option<server_frame::Payload> {
    while let Some(frame) = client.pushes.pop_front() {
        if matches!(frame, server_frame::Payload::RoomMessage(_) | server_frame::Payload::RoomEvent(_)) {
            return Some(frame);
        }
    }
    loop {
        match client.next_frame(wait).await {
            Ok(Some(frame @ (server_frame::Payload::RoomMessage(_) | server_frame::Payload::RoomEvent(_)))) => {
                return Some(frame);
            }
            Ok(Some(_)) => continue,
            Ok(None) => return None,
            Err(closed) => panic!("closed: {closed:?}"),
        }
    }
}

async fn next_room_message(client: &mut WsClient, wait: Duration) -> Option<RoomMessage> {
    match next_room_frame(client, wait).await? {
        server_frame::Payload::RoomMessage(message) => Some(message),
        other => panic!("a room event where a message was expected: {other:?}"),
    }
}

async fn next_room_event(client: &mut WsClient) -> RoomEvent {
    match next_room_frame(client, WAIT).await {
        Some(server_frame::Payload::RoomEvent(event)) => event,
        other => panic!("no room event: {other:?}"),
    }
}

/// The (seq, words) of every room message a session gets until it is quiet.
async fn room_messages(client: &mut WsClient) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while let Some(message) = next_room_message(client, QUIET).await {
        got.push((message.seq, words(&message)));
    }
    got
}

async fn members(app: &TestApp, room: &str, expected: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let request = GetRoomRequest { room_id: room.into() };
        let room = app.business().await.get_room(request).await.unwrap().into_inner();
        if room.members == expected || tokio::time::Instant::now() > deadline {
            return room.members;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn put(room: &str, user: &str, device: &str) -> RoomMemberRequest {
    RoomMemberRequest { room_id: room.into(), user_id: user.into(), device_id: device.into(), reason: String::new() }
}

fn push_text(room: &str, words: &str) -> PushRoomRequest {
    PushRoomRequest { room_id: room.into(), body: text(words), ..Default::default() }
}

both_stores!(
    members_get_every_message_once_and_leavers_get_none,
    a_joiner_asking_for_the_replay_gets_the_last_messages_before_new_ones,
    the_business_puts_sessions_in_and_out_and_closes_the_room,
    bad_room_calls_are_refused_and_change_nothing,
    rates_limit_each_session_and_each_room,
    room_messages_go_through_the_before_send_hook,
);

async fn members_get_every_message_once_and_leavers_get_none(backend: Backend) {
    let server = server(backend, |_| {}).await;
    let app = server.new_app().await;
    let mut ann = session(&server, &app, "ann", "phone").await;
    let mut ben = session(&server, &app, "ben", "phone").await;
    let mut ben_laptop = session(&server, &app, "ben", "laptop").await;
    let mut cat = session(&server, &app, "cat", "phone").await;
    assert_eq!(joined(ann.request(join("live", false)).await).members, 1);
    for client in [&mut ben, &mut ben_laptop] {
        joined(client.request(join("live", false)).await);
    }
    assert_eq!(members(&app, "live", 3).await, 3, "three sessions, counted across the cluster");

    assert_eq!(sent_seq(ann.request(say("live", "hello")).await), 1);
    assert_eq!(sent_seq(ann.request(say("live", "again")).await), 2);
    for client in [&mut ben, &mut ben_laptop] {
        let got = room_messages(client).await;
        assert_eq!(got, [(1, "hello".to_owned()), (2, "again".to_owned())], "each message once, in order");
    }
    assert!(room_messages(&mut ann).await.is_empty(), "the sender has its own message from the answer");
    assert!(room_messages(&mut cat).await.is_empty(), "not in the room");

    // The sender is named; the business's own message is not anyone's.
    app.business().await.push_room(push_text("live", "from the studio")).await.unwrap();
    let message = next_room_message(&mut ben, WAIT).await.expect("the studio's message");
    assert_eq!((message.seq, message.sender_user_id.as_str()), (3, ""));
    let message = next_room_message(&mut ann, WAIT).await.expect("the studio's message");
    assert_eq!(words(&message), "from the studio");

    // A leaver gets nothing more; joining twice is still one membership.
    ben_laptop.request(Payload::LeaveRoom(LeaveRoomRequest { room_id: "live".into() })).await;
    joined(ben.request(join("live", false)).await);
    ann.request(say("live", "bye")).await;
    assert_eq!(room_messages(&mut ben).await, [(4, "bye".to_owned())]);
    assert_eq!(room_messages(&mut ben_laptop).await, [(3, "from the studio".to_owned())], "nothing after leaving");
    assert_eq!(members(&app, "live", 2).await, 2);

    // A send repeated with its client_msg_id (its answer was lost) is answered with the
    // first one's seq and reaches nobody twice; the business's likewise, apart from the
    // same id of a device.
    let once = || RoomSendRequest { room_id: "live".into(), client_msg_id: "c-1".into(), body: text("sure?") };
    assert_eq!(sent_seq(ann.request(Payload::RoomSend(once())).await), 5);
    assert_eq!(sent_seq(ann.request(Payload::RoomSend(once())).await), 5, "the first one's seq");
    let studio = || PushRoomRequest { client_msg_id: "c-1".into(), ..push_text("live", "yes") };
    let mut business = app.business().await;
    assert_eq!(business.push_room(studio()).await.unwrap().into_inner().seq, 6);
    assert_eq!(business.push_room(studio()).await.unwrap().into_inner().seq, 6);
    assert_eq!(room_messages(&mut ben).await, [(5, "sure?".to_owned()), (6, "yes".to_owned())], "each once");

    // A session that ends leaves its rooms.
    drop(ben);
    assert_eq!(members(&app, "live", 1).await, 1);
}

async fn a_joiner_asking_for_the_replay_gets_the_last_messages_before_new_ones(backend: Backend) {
    let server = server(backend, |_| {}).await;
    let app = server.new_app().await;
    let mut business = app.business().await;
    for n in 1..=8 {
        business.push_room(push_text("stage", &format!("m{n}"))).await.unwrap();
    }
    let mut fan = session(&server, &app, "fan", "phone").await;
    assert_eq!(joined(fan.request(join("stage", true)).await).replayed, 5);
    let replayed: Vec<(u64, String)> = (4..=8).map(|n| (n, format!("m{n}"))).collect();
    business.push_room(push_text("stage", "m9")).await.unwrap();
    let mut expected = replayed.clone();
    expected.push((9, "m9".into()));
    assert_eq!(room_messages(&mut fan).await, expected, "the last 5, then the new one, each once");

    let mut late = session(&server, &app, "late", "phone").await;
    assert_eq!(joined(late.request(join("stage", false)).await).replayed, 0);
    assert!(room_messages(&mut late).await.is_empty(), "no replay unless asked");
    // Another app's room of the same name is another room.
    let other = server.new_app().await;
    let mut outsider = session(&server, &other, "zed", "phone").await;
    let joined_other = joined(outsider.request(join("stage", true)).await);
    assert_eq!((joined_other.replayed, joined_other.members), (0, 1));
    business.push_room(push_text("stage", "m10")).await.unwrap();
    assert!(room_messages(&mut outsider).await.is_empty(), "app isolation");
    assert_eq!(room_messages(&mut late).await, [(10, "m10".to_owned())]);
}

async fn the_business_puts_sessions_in_and_out_and_closes_the_room(backend: Backend) {
    let server = server(backend, |_| {}).await;
    let app = server.new_app().await;
    let mut business = app.business().await;
    business.push_room(push_text("private:vip", "earlier")).await.unwrap();
    let mut phone = session(&server, &app, "ann", "phone").await;
    let mut laptop = session(&server, &app, "ann", "laptop").await;
    let mut ben = session(&server, &app, "ben", "phone").await;

    // Devices cannot enter a private room; the business can put them in.
    let refused = ben.request(join("private:vip", false)).await;
    assert_eq!(refused.code, tonic::Code::PermissionDenied as i32, "{}", refused.message);
    business.join_room(put("private:vip", "ann", "")).await.unwrap();
    for client in [&mut phone, &mut laptop] {
        let event = next_room_event(client).await;
        assert_eq!((event.room_id.as_str(), event.kind()), ("private:vip", RoomEventKind::Joined));
        assert_eq!(room_messages(client).await, [(1, "earlier".to_owned())], "the replay follows the event");
    }
    assert_eq!(members(&app, "private:vip", 2).await, 2);
    assert!(room_messages(&mut ben).await.is_empty());

    // An event to the room, then one device taken out, with the reason.
    let event = PushRoomRequest {
        room_id: "private:vip".into(),
        event_kind: "score".into(),
        event_data: b"2-1".to_vec(),
        ..Default::default()
    };
    assert_eq!(business.push_room(event).await.unwrap().into_inner().seq, 0);
    for client in [&mut phone, &mut laptop] {
        let event = next_room_event(client).await;
        assert_eq!(
            (event.kind(), event.custom_kind.as_str(), event.data.as_slice()),
            (RoomEventKind::Custom, "score", b"2-1".as_slice())
        );
    }
    let out = RoomMemberRequest { reason: "ticket expired".into(), ..put("private:vip", "ann", "phone") };
    business.leave_room(out).await.unwrap();
    let event = next_room_event(&mut phone).await;
    assert_eq!((event.kind(), event.reason.as_str()), (RoomEventKind::Left, "ticket expired"));
    business.push_room(push_text("private:vip", "still here?")).await.unwrap();
    assert!(room_messages(&mut phone).await.is_empty());
    assert_eq!(room_messages(&mut laptop).await, [(2, "still here?".to_owned())]);
    // A member may send to a private room it was put in.
    assert_eq!(sent_seq(laptop.request(say("private:vip", "thanks")).await), 3);

    // Closing takes everyone out and forgets the room.
    let close = CloseRoomRequest { room_id: "private:vip".into(), reason: "show over".into() };
    business.close_room(close).await.unwrap();
    let event = next_room_event(&mut laptop).await;
    assert_eq!((event.kind(), event.reason.as_str()), (RoomEventKind::Closed, "show over"));
    let room = business.get_room(GetRoomRequest { room_id: "private:vip".into() }).await.unwrap().into_inner();
    assert_eq!(room.last_seq, 0, "seq starts over");
    let after = laptop.request(say("private:vip", "hello?")).await;
    assert_eq!(after.code, tonic::Code::FailedPrecondition as i32, "out of the room");
    // Put-ins for users with nobody online do nothing.
    business.join_room(put("lobby", "nobody", "")).await.unwrap();
}

async fn bad_room_calls_are_refused_and_change_nothing(backend: Backend) {
    let server = server(backend, |config| config.rooms.max_rooms_per_session = 2).await;
    let app = server.new_app().await;
    let mut ann = session(&server, &app, "ann", "phone").await;
    let long = "r".repeat(129);
    for room in ["", "has space", "slash/room", long.as_str()] {
        let response = ann.request(join(room, false)).await;
        assert_eq!(response.code, tonic::Code::InvalidArgument as i32, "join {room:?}");
        assert_eq!(ann.request(say(room, "x")).await.code, tonic::Code::InvalidArgument as i32, "send {room:?}");
    }
    let outside = ann.request(say("live", "x")).await;
    assert_eq!(outside.code, tonic::Code::FailedPrecondition as i32, "{}", outside.message);
    joined(ann.request(join("a", false)).await);
    joined(ann.request(join("b", false)).await);
    let third = ann.request(join("c", false)).await;
    assert_eq!(third.code, tonic::Code::ResourceExhausted as i32, "{}", third.message);
    joined(ann.request(join("a", false)).await);
    let empty = ann.request(Payload::RoomSend(RoomSendRequest { room_id: "a".into(), ..Default::default() })).await;
    assert_eq!(empty.code, tonic::Code::InvalidArgument as i32, "no body");
    let huge = ann.request(say("a", &"x".repeat(server.services().limits.max_message_bytes + 1))).await;
    assert_eq!(huge.code, tonic::Code::InvalidArgument as i32);
    let system = gim::proto::common::v1::MessageBody {
        content: Some(gim::proto::common::v1::message_body::Content::System(Default::default())),
    };
    let forged = ann
        .request(Payload::RoomSend(RoomSendRequest {
            room_id: "a".into(),
            client_msg_id: "x".into(),
            body: Some(system),
        }))
        .await;
    assert_eq!(forged.code, tonic::Code::InvalidArgument as i32, "devices send no system bodies");
    let mut business = app.business().await;
    assert_eq!(business.get_room(GetRoomRequest { room_id: "a".into() }).await.unwrap().into_inner().last_seq, 0);

    let bad = [
        code(business.push_room(push_text("bad room", "x")).await),
        code(business.push_room(PushRoomRequest { room_id: "a".into(), ..Default::default() }).await),
        code(business.push_room(PushRoomRequest { event_kind: "k".into(), ..push_text("a", "x") }).await),
        code(business.join_room(put("a", "bad user!", "")).await),
        code(business.join_room(put("", "ann", "")).await),
        code(business.leave_room(RoomMemberRequest { reason: "x".repeat(201), ..put("a", "ann", "") }).await),
        code(business.get_room(GetRoomRequest { room_id: long.clone() }).await),
        code(business.close_room(CloseRoomRequest { room_id: "a b".into(), reason: String::new() }).await),
    ];
    assert!(bad.iter().all(|c| *c == tonic::Code::InvalidArgument), "{bad:?}");
    // Still in a and b, with nothing sent.
    assert!(room_messages(&mut ann).await.is_empty());
    assert_eq!(members(&app, "a", 1).await, 1);
    // The session survives all of it.
    assert_eq!(ann.heartbeat().await.code, 0);
}

async fn rates_limit_each_session_and_each_room(backend: Backend) {
    let server = server(backend, |config| {
        config.rooms.session_messages_per_second = 1;
        config.rooms.room_messages_per_second = 3;
    })
    .await;
    let app = server.new_app().await;
    let mut ann = session(&server, &app, "ann", "phone").await;
    joined(ann.request(join("live", false)).await);
    // A burst of twice the session's rate passes, then it is refused.
    let codes: Vec<i32> = {
        let mut codes = Vec::new();
        for n in 0..3 {
            codes.push(ann.request(say("live", &format!("a{n}"))).await.code);
        }
        codes
    };
    assert_eq!(codes, [0, 0, tonic::Code::ResourceExhausted as i32]);
    // The room takes 3 a second from all its sessions together.
    let mut crowd = Vec::new();
    for user in ["b", "c", "d", "e"] {
        let mut client = session(&server, &app, user, "phone").await;
        joined(client.request(join("live", false)).await);
        crowd.push(client);
    }
    tokio::time::sleep(Duration::from_millis(1000 - (gim::model::now_ms() % 1000) as u64)).await;
    let mut refused = 0;
    for client in &mut crowd {
        let response = client.request(say("live", "hi")).await;
        if response.code == tonic::Code::ResourceExhausted as i32 {
            assert!(response.message.contains("room"), "{}", response.message);
            refused += 1;
        }
    }
    assert_eq!(refused, 1, "4 sends in one second, 3 allowed");
    // The business is not limited.
    for n in 0..5 {
        app.business().await.push_room(push_text("live", &format!("b{n}"))).await.unwrap();
    }
}

async fn room_messages_go_through_the_before_send_hook(backend: Backend) {
    let server = server(backend, |_| {}).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    let hook = BeforeSendHook {
        url: receiver.url(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        room: true,
        timeout_ms: 1000,
        ..Default::default()
    };
    let settings = AppSettings { before_send: Some(hook), ..Default::default() };
    let request = UpdateAppRequest { app_id: app.app_id, settings: Some(settings), ..Default::default() };
    admin_client(app.addr, ADMIN_TOKEN).await.update_app(request).await.unwrap();
    let mut ann = session(&server, &app, "ann", "phone").await;
    let mut ben = session(&server, &app, "ben", "phone").await;
    for client in [&mut ann, &mut ben] {
        joined(client.request(join("live", false)).await);
    }

    receiver.set(Mode::Json(r#"{"action": "refuse", "reason": "be nice"}"#));
    let refused = ann.request(say("live", "you all stink")).await;
    assert_eq!((refused.code, refused.message.as_str()), (tonic::Code::PermissionDenied as i32, "be nice"));
    let asked = receiver.wait_for("the question", |r| !r.is_empty()).await;
    assert_eq!(asked[0].json["type"], "room.before_send");
    assert_eq!(asked[0].json["data"]["message"]["room_id"], "live");
    assert_eq!(asked[0].json["data"]["message"]["sender_user_id"], "ann");
    assert_eq!(asked[0].json["data"]["message"]["body"]["text"], "you all stink");

    receiver.set(Mode::Json(r#"{"action": "replace", "body": {"type": "text", "text": "you all rock"}}"#));
    assert_eq!(sent_seq(ann.request(say("live", "you all stink")).await), 1, "the refused one took no seq");
    assert_eq!(room_messages(&mut ben).await, [(1, "you all rock".to_owned())]);
    // The business's own pushes are not asked.
    let asked_before = receiver.accepted().len();
    app.business().await.push_room(push_text("live", "studio")).await.unwrap();
    assert_eq!(room_messages(&mut ben).await, [(2, "studio".to_owned())]);
    assert_eq!(receiver.accepted().len(), asked_before);
}
