//! The before-send hook against a real HTTP receiver: each answer (allow, refuse,
//! replace), timeouts and errors under both failure policies, what it leaves out, and a
//! refused message leaving no trace (no inbox entry, no webhook event).

use std::time::Duration;

use gim::proto::logic::v1::{
    AppSettings, BeforeSendHook, BusinessHistoryRequest, BusinessSendRequest, DeviceSendRequest, GroupSendRequest,
    UpdateAppRequest, WebhookDeliveryState,
};

use crate::{
    both_stores,
    support::{
        ADMIN_TOKEN, Backend, TestApp, TestServer, admin_client, code, groups_client, make_group, text, text_of,
    },
    support::{Meta, channel},
    webhooks::{Mode, Receiver, add_endpoint, deliveries},
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hook(url: &str, direct: bool, group: bool, timeout_ms: u32, allow_on_failure: bool) -> BeforeSendHook {
    BeforeSendHook { url: url.into(), secret: SECRET.into(), direct, group, room: false, timeout_ms, allow_on_failure }
}

async fn set_hook(app: &TestApp, hook: BeforeSendHook) -> Result<(), tonic::Status> {
    let settings = AppSettings { before_send: Some(hook), ..Default::default() };
    let request = UpdateAppRequest { app_id: app.app_id, settings: Some(settings), ..Default::default() };
    admin_client(app.addr, ADMIN_TOKEN).await.update_app(request).await.map(drop)
}

/// Alice's phone sends to Bob.
async fn send_from_phone(app: &TestApp, id: &str, body: &str) -> Result<u64, tonic::Status> {
    let token = app.device_token("alice", "phone").await;
    let request = DeviceSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: id.into(),
        body: text(body),
        reply_to_message_id: 0,
    };
    let mut device = crate::support::device_client(app.addr, &token).await;
    device.send_message(request).await.map(|sent| sent.into_inner().message_id)
}

/// The texts of Bob's direct conversation with Alice, oldest first.
async fn conversation(app: &TestApp) -> Vec<String> {
    let request = BusinessHistoryRequest { user_id: "bob".into(), peer_user_id: "alice".into(), ..Default::default() };
    let history = app.business().await.get_history(request).await.unwrap().into_inner().messages;
    history.iter().rev().map(|m| text_of(m).to_owned()).collect()
}

async fn app_with_users(server: &TestServer) -> TestApp {
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    app
}

both_stores!(
    each_answer_is_carried_out,
    failures_follow_the_apps_policy,
    the_hook_moderates_only_what_it_names,
    hook_settings_are_checked,
    edits_are_moderated_like_sends,
);

async fn each_answer_is_carried_out(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = app_with_users(&server).await;
    let hook_receiver = Receiver::start().await;
    let events = Receiver::start().await;
    let endpoint = add_endpoint(&app, &events.url(), &["message.*"]).await.endpoint_id;
    set_hook(&app, hook(&hook_receiver.url(), true, true, 1000, false)).await.unwrap();

    hook_receiver.set(Mode::Json(r#"{"action": "allow"}"#));
    send_from_phone(&app, "m1", "hello").await.unwrap();
    let asked = hook_receiver.wait_for("the question", |r| r.len() == 1).await;
    let question = &asked[0].json;
    assert_eq!(question["type"], "message.before_send");
    assert_eq!(question["data"]["message"]["body"]["text"], "hello");
    assert_eq!(question["data"]["message"]["sender_user_id"], "alice");
    assert_eq!(question["data"]["message"]["sender_device_id"], "phone");
    assert_eq!(question["data"]["message"]["receiver_id"], "bob");
    assert!(question["data"]["message"].get("id").is_none(), "not stored yet: no id");
    assert!(asked[0].verifies_with(SECRET), "the question is signed");

    hook_receiver.set(Mode::Json(r#"{"action": "refuse", "reason": "no links, please"}"#));
    let refused = send_from_phone(&app, "m2", "buy now http://spam").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(refused.message(), "no links, please");

    hook_receiver.set(Mode::Json(r#"{"action": "replace", "body": {"type": "text", "text": "h*llo"}}"#));
    send_from_phone(&app, "m3", "hello again").await.unwrap();

    // A replacement that breaks the limits is refused like any bad body.
    hook_receiver.set(Mode::Json(r#"{"action": "replace", "body": {"type": "text", "text": ""}}"#));
    assert_eq!(send_from_phone(&app, "m4", "x").await.unwrap_err().code(), tonic::Code::InvalidArgument);

    assert_eq!(conversation(&app).await, ["hello", "h*llo"], "the refused message left no trace");
    // Its events neither: two messages, each with its offline push.
    events.wait_for("the events of the two", |r| r.len() == 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(deliveries(&app, endpoint, WebhookDeliveryState::Unspecified).await.len(), 4);
    let created: Vec<String> = events
        .accepted()
        .iter()
        .filter(|r| r.kind() == "message.created")
        .map(|r| r.json["data"]["message"]["body"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(created, ["hello", "h*llo"]);
}

async fn failures_follow_the_apps_policy(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = app_with_users(&server).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Hold);

    // Refuse on failure: a hook that does not answer in time refuses, and nothing is stored.
    set_hook(&app, hook(&receiver.url(), true, false, 200, false)).await.unwrap();
    let started = std::time::Instant::now();
    let status = send_from_phone(&app, "t1", "waits").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "the sender waited at most about the timeout");
    receiver.set(Mode::Answer(500));
    assert_eq!(send_from_phone(&app, "e1", "errs").await.unwrap_err().code(), tonic::Code::Unavailable);
    receiver.set(Mode::Json("not json"));
    assert_eq!(send_from_phone(&app, "j1", "garbled").await.unwrap_err().code(), tonic::Code::Unavailable);
    assert!(conversation(&app).await.is_empty());

    // Let through on failure.
    set_hook(&app, hook(&receiver.url(), true, false, 200, true)).await.unwrap();
    receiver.set(Mode::Hold);
    send_from_phone(&app, "t2", "through on timeout").await.unwrap();
    receiver.set(Mode::Answer(503));
    send_from_phone(&app, "e2", "through on error").await.unwrap();
    receiver.set(Mode::Json(r#"{"action": "perhaps"}"#));
    send_from_phone(&app, "j2", "through on nonsense").await.unwrap();
    assert_eq!(conversation(&app).await, ["through on timeout", "through on error", "through on nonsense"]);
    receiver.set(Mode::Accept);
}

async fn the_hook_moderates_only_what_it_names(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = app_with_users(&server).await;
    make_group(&app, "alice", "team", &["bob", "carol"]).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Json(r#"{"action": "refuse", "reason": "closed"}"#));
    // Group conversations only.
    set_hook(&app, hook(&receiver.url(), false, true, 1000, false)).await.unwrap();

    send_from_phone(&app, "d1", "direct is not moderated").await.unwrap();
    let token = app.device_token("alice", "phone").await;
    let request = GroupSendRequest {
        group_id: "team".into(),
        client_msg_id: "g1".into(),
        body: text("hi team"),
        reply_to_message_id: 0,
    };
    let status = groups_client(app.addr, &token).await.send_message(request).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (tonic::Code::PermissionDenied, "closed"));
    // The business speaks for itself: its sends are not put to it.
    let as_alice = BusinessSendRequest {
        sender_user_id: "alice".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: "b1".into(),
        body: text("from the backend"),
        reply_to_message_id: 0,
    };
    app.business().await.send_message(as_alice).await.unwrap();
    let group_as_alice = GroupSendRequest {
        group_id: "team".into(),
        client_msg_id: "g2".into(),
        body: text("backend to team"),
        reply_to_message_id: 0,
    };
    app.groups(Some("alice")).await.send_message(group_as_alice).await.unwrap();

    // An outsider is refused before the business is asked.
    app.user("outsider").await;
    let token = app.device_token("outsider", "phone").await;
    let request = GroupSendRequest {
        group_id: "team".into(),
        client_msg_id: "o1".into(),
        body: text("let me in"),
        reply_to_message_id: 0,
    };
    let status = groups_client(app.addr, &token).await.send_message(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains("not a member"), "{status:?}");
    assert_eq!(receiver.accepted().len(), 1, "one question: the member device's group message");
    assert_eq!(receiver.accepted()[0].json["data"]["message"]["conversation_type"], "group");
    assert_eq!(conversation(&app).await, ["direct is not moderated", "from the backend"]);
}

async fn hook_settings_are_checked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let url = "https://moderation.example/hook";
    let mut bad_secret = hook(url, true, true, 1000, false);
    bad_secret.secret = "plain".into();
    let too_slow = hook(url, true, true, server.config.webhooks.max_hook_timeout_ms as u32 + 1, false);
    for (bad, why) in [
        (hook("not a url", true, true, 1000, false), "url"),
        (bad_secret, "secret"),
        (too_slow, "timeout"),
        (hook(url, false, false, 1000, false), "no conversations"),
    ] {
        assert_eq!(code(set_hook(&app, bad).await.map(tonic::Response::new)), tonic::Code::InvalidArgument, "{why}");
    }
    set_hook(&app, hook(url, true, false, 0, true)).await.unwrap();
    let got = admin_client(app.addr, ADMIN_TOKEN)
        .await
        .get_app(gim::proto::logic::v1::GetAppRequest { app_id: app.app_id })
        .await
        .unwrap()
        .into_inner();
    let hook = got.settings.unwrap().before_send.unwrap();
    assert_eq!((hook.url.as_str(), hook.direct, hook.group, hook.allow_on_failure), (url, true, false, true));
}

/// An edit from a device is put to the hook like a send (as `message.before_edit`), or a
/// message allowed once could be edited into anything.
async fn edits_are_moderated_like_sends(backend: Backend) {
    use gim::proto::{
        common::v1::TextBody,
        logic::v1::{EditMessageRequest, messages_client::MessagesClient},
    };
    let server = TestServer::start(backend).await;
    let app = app_with_users(&server).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Json(r#"{"action": "allow"}"#));
    set_hook(&app, hook(&receiver.url(), true, true, 1000, false)).await.unwrap();
    let id = send_from_phone(&app, "e1", "hello").await.unwrap();
    let token = app.device_token("alice", "phone").await;
    let bearer = format!("Bearer {token}");
    let mut messages =
        MessagesClient::with_interceptor(channel(app.addr).await, Meta::new(&[("authorization", &bearer)]));
    let edit = |text: &str| EditMessageRequest {
        message_id: id,
        text: Some(TextBody { text: text.into(), ..Default::default() }),
    };

    receiver.set(Mode::Json(r#"{"action": "refuse", "reason": "not that"}"#));
    let refused = messages.edit_message(edit("buy now")).await.unwrap_err();
    assert_eq!((refused.code(), refused.message()), (tonic::Code::PermissionDenied, "not that"));
    assert_eq!(conversation(&app).await, ["hello"], "the refused edit changed nothing");
    let asked = receiver.accepted();
    let question = &asked.last().unwrap().json;
    assert_eq!(question["type"], "message.before_edit");
    assert_eq!(question["data"]["message"]["id"], id.to_string());
    assert_eq!(question["data"]["message"]["body"]["text"], "buy now");

    receiver.set(Mode::Json(r#"{"action": "replace", "body": {"type": "text", "text": "b*y now"}}"#));
    messages.edit_message(edit("buy now")).await.unwrap();
    assert_eq!(conversation(&app).await, ["b*y now"]);
    receiver.set(Mode::Json(r#"{"action": "replace", "body": {"type": "sticker", "url": "x"}}"#));
    assert_eq!(messages.edit_message(edit("again")).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    receiver.set(Mode::Json(r#"{"action": "allow"}"#));
    messages.edit_message(edit("hello there")).await.unwrap();
    assert_eq!(conversation(&app).await, ["hello there"]);
}
