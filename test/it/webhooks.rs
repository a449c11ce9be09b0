//! Webhooks against a real HTTP receiver in the test process: events arrive signed as the
//! Standard Webhooks specification says (checked with its own Rust library), in order per
//! conversation, through a receiver that is down for a while, answers 500 forever (dead
//! letters, then a replay) or hangs (sends go on, other apps' endpoints too).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, routing::post};
use gim::proto::{
    common::v1::TextBody,
    logic::v1::{
        AnswerFriendRequest, BroadcastRequest, BusinessSendRequest, CreateWebhookRequest, DeleteWebhookRequest,
        EditMessageRequest, GroupSendRequest, ListWebhookDeliveriesRequest, ListWebhooksRequest, MessageRef,
        PostContent, PostRef, PublishRequest, RegisterDeviceRequest, RemoveDeviceRequest,
        ReplayWebhookDeliveriesRequest, RotateWebhookSecretRequest, SendFriendRequestRequest, UpdateWebhookRequest,
        Visibility, WebhookDelivery, WebhookDeliveryState, WebhookEndpoint, messages_client::MessagesClient,
    },
};
use serde_json::Value;
use tokio::sync::watch;

use crate::{
    both_stores,
    support::{
        ADMIN_TOKEN, Backend, Intercepted, Meta, ServeServer, TestApp, TestServer, admin_client, channel, code,
        make_group, text,
    },
    ws::WsClient,
};

/// What the receiver does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Answer(u16),
    /// Holds every request until the mode changes.
    Hold,
    /// Answers 200 with this JSON.
    Json(&'static str),
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub json: Value,
}

impl Received {
    pub fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }

    /// Whether its signature verifies with `secret`, by the Standard Webhooks library.
    pub fn verifies_with(&self, secret: &str) -> bool {
        let verifier = standardwebhooks::Webhook::new(secret).unwrap();
        verifier.verify(self.body.as_bytes(), &self.headers).is_ok()
    }
}

#[derive(Clone)]
struct Shared {
    mode: watch::Sender<Mode>,
    /// Requests answered 2xx, in arrival order.
    accepted: Arc<Mutex<Vec<Received>>>,
    /// Every request, whatever the answer.
    seen: Arc<Mutex<u64>>,
    /// Bodies holding this text are answered 500, whatever the mode.
    poison: Arc<Mutex<Option<String>>>,
}

/// An HTTP server that records what gim posts; it can be stopped and started again on
/// the same port.
pub struct Receiver {
    addr: SocketAddr,
    shared: Shared,
    server: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: String) -> (axum::http::StatusCode, String) {
    *shared.seen.lock().unwrap() += 1;
    if shared.poison.lock().unwrap().as_ref().is_some_and(|poison| body.contains(poison.as_str())) {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new());
    }
    let mut mode = shared.mode.subscribe();
    let decided = *mode.wait_for(|mode| *mode != Mode::Hold).await.unwrap();
    if let Mode::Answer(status) = decided {
        return (axum::http::StatusCode::from_u16(status).unwrap(), String::new());
    }
    let json = serde_json::from_str(&body).expect("a JSON body");
    shared.accepted.lock().unwrap().push(Received { headers, body, json });
    match decided {
        Mode::Json(answer) => (axum::http::StatusCode::OK, answer.to_owned()),
        _ => (axum::http::StatusCode::NO_CONTENT, String::new()),
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            mode: watch::channel(Mode::Accept).0,
            accepted: Arc::default(),
            seen: Arc::default(),
            poison: Arc::default(),
        };
        let mut receiver = Self { addr, shared, server: None };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new().route("/hook", post(receive)).with_state(self.shared.clone());
        self.server = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Holds every request from now on.
    pub fn stop_answering(&self) {
        self.set(Mode::Hold);
    }

    /// Answers 500 to every body that holds `text`.
    pub fn poison(&self, text: &str) {
        *self.shared.poison.lock().unwrap() = Some(text.to_owned());
    }

    /// Stops answering 500 to the poisoned bodies.
    pub fn cure(&self) {
        *self.shared.poison.lock().unwrap() = None;
    }

    pub fn set(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Closes the port: connections are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.shared.accepted.lock().unwrap().clone()
    }

    pub fn seen(&self) -> u64 {
        *self.shared.seen.lock().unwrap()
    }

    /// Waits until the receiver has seen `count` requests, whatever it answered.
    pub async fn wait_seen(&self, count: u64) {
        for _ in 0..300 {
            if self.seen() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver saw {} requests, not {count}", self.seen());
    }

    /// Waits until `enough` holds of the accepted requests.
    pub async fn wait_for(&self, what: &str, enough: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..300 {
            let accepted = self.accepted();
            if enough(&accepted) {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let kinds: Vec<String> = self.accepted().iter().map(|r| r.kind().to_owned()).collect();
        panic!("the receiver did not get {what}; it got {kinds:?}");
    }
}

/// Quick retries, so that tests see several attempts.
fn fast_retries(config: &mut gim::config::Config) {
    config.webhooks.first_retry_ms = 100;
    config.webhooks.max_retry_interval_secs = 1;
    config.webhooks.poll_ms = 50;
}

pub async fn add_endpoint(app: &TestApp, url: &str, kinds: &[&str]) -> WebhookEndpoint {
    let request = CreateWebhookRequest {
        app_id: app.app_id,
        url: url.into(),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        ..Default::default()
    };
    admin_client(app.addr, ADMIN_TOKEN).await.create_webhook(request).await.expect("adding an endpoint").into_inner()
}

async fn messages_as(app: &TestApp, user: &str) -> MessagesClient<Intercepted> {
    let app_id = app.app_id.to_string();
    let meta = Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret), ("x-gim-acting-user", user)]);
    MessagesClient::with_interceptor(channel(app.addr).await, meta)
}

async fn send(app: &TestApp, from: &str, to: &str, id: &str) -> u64 {
    let request = BusinessSendRequest {
        sender_user_id: from.into(),
        receiver_user_id: to.into(),
        client_msg_id: id.replace(' ', "-"),
        body: text(id),
        reply_to_message_id: 0,
    };
    app.business().await.send_message(request).await.expect("sending").into_inner().message_id
}

pub async fn deliveries(app: &TestApp, endpoint: u64, state: WebhookDeliveryState) -> Vec<WebhookDelivery> {
    let request = ListWebhookDeliveriesRequest {
        app_id: app.app_id,
        endpoint_id: endpoint,
        state: state as i32,
        before_delivery_id: 0,
        limit: 100,
    };
    admin_client(app.addr, ADMIN_TOKEN).await.list_webhook_deliveries(request).await.unwrap().into_inner().deliveries
}

/// Waits until one of the endpoint's deliveries is as `wanted` says, and returns it (the
/// newest such).
async fn delivery_when(app: &TestApp, endpoint: u64, wanted: impl Fn(&WebhookDelivery) -> bool) -> WebhookDelivery {
    for _ in 0..500 {
        let listed = deliveries(app, endpoint, WebhookDeliveryState::Unspecified).await;
        if let Some(found) = listed.into_iter().find(&wanted) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no delivery got there: {:?}", deliveries(app, endpoint, WebhookDeliveryState::Unspecified).await);
}

pub fn texts_in_lane(received: &[Received], lane_users: (&str, &str)) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.kind() == "message.created")
        .map(|r| &r.json["data"]["message"])
        .filter(|m| {
            let (from, to) = (m["sender_user_id"].as_str().unwrap(), m["receiver_id"].as_str().unwrap());
            (from, to) == lane_users || (to, from) == lane_users
        })
        .map(|m| m["body"]["text"].as_str().unwrap().to_owned())
        .collect()
}

both_stores!(
    every_kind_of_event_arrives_signed,
    a_receiver_down_for_a_while_gets_everything_in_order,
    a_receiver_failing_forever_ends_in_dead_letters_that_replay_delivers,
    a_hanging_receiver_slows_no_send_and_no_other_app,
    endpoints_are_checked_and_kept_per_app,
    refused_changes_write_no_event,
    a_receiver_that_is_gone_disables_its_endpoint,
    two_nodes_deliver_each_event_once,
    presence_changes_are_events,
    a_poisoned_lane_holds_back_only_itself,
    a_dead_endpoint_is_rested_not_hammered,
    finished_deliveries_are_pruned_when_old,
    revisions_follow_their_message_in_its_conversation,
    each_friendship_and_each_moment_has_a_lane_of_its_own,
    conversations_named_alike_spread_over_the_partitions,
    events_filed_by_an_earlier_version_are_refiled_at_the_next_start,
    a_replayed_event_is_retried_for_a_window_of_its_own,
    a_disabled_endpoint_keeps_what_was_waiting_and_gets_nothing_meanwhile,
    broadcasts_are_reported_with_the_apps_client_msg_id,
    a_rotated_secret_overlaps_the_previous_one,
);

async fn every_kind_of_event_arrives_signed(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    let endpoint = add_endpoint(&app, &receiver.url(), &[]).await;
    assert!(endpoint.secret.starts_with("whsec_"), "the secret is shown when the endpoint is made");
    assert_eq!(endpoint.kinds, ["*"]);

    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    let mut business = app.business().await;
    let device = RegisterDeviceRequest { user_id: "bob".into(), device_id: "phone".into(), ..Default::default() };
    business.register_device(device).await.unwrap();
    let first = send(&app, "alice", "bob", "hello bob").await;
    send(&app, "alice", "bob", "are you there").await;
    make_group(&app, "alice", "team", &["bob", "carol"]).await;
    messages_as(&app, "bob").await.recall_message(MessageRef { message_id: first }).await.expect_err("not bob's");
    app.friends(Some("carol"))
        .await
        .send_request(SendFriendRequestRequest { user_id: "alice".into(), greeting: "hi".into() })
        .await
        .unwrap();
    let remove = RemoveDeviceRequest { user_id: "bob".into(), device_id: "phone".into() };
    business.remove_device(remove).await.unwrap();

    let wanted = [
        "device.registered",
        "message.created",
        "message.offline",
        "group.created",
        "friend.requested",
        "device.removed",
    ];
    let received = receiver
        .wait_for("every kind", |r| wanted.iter().all(|kind| r.iter().any(|r| r.kind() == *kind)) && r.len() >= 8)
        .await;

    // Every request verifies with the specification's library, and ids do not repeat.
    let mut ids = std::collections::HashSet::new();
    for request in &received {
        assert!(request.verifies_with(&endpoint.secret), "a valid signature");
        assert!(ids.insert(request.id().to_owned()), "webhook-id {} came twice", request.id());
        assert!(request.json["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(request.json["data"]["app_id"], app.app_id);
    }
    assert!(!received[0].verifies_with("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "another key does not verify");

    let created: Vec<&Received> = received.iter().filter(|r| r.kind() == "message.created").collect();
    let hello = &created[0].json["data"];
    assert_eq!(hello["message"]["id"], first.to_string(), "ids are strings");
    assert_eq!(hello["message"]["body"]["text"], "hello bob");
    assert_eq!(hello["message"]["conversation_type"], "direct");
    let mut recipients: Vec<&str> =
        hello["recipients"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, ["alice", "bob"], "both inboxes");
    assert_eq!(texts_in_lane(&received, ("alice", "bob")), ["hello bob", "are you there"]);

    // Bob has no session: the push for each message names him (not alice, who sent it),
    // with his badge when it goes out.
    let offline: Vec<&Value> =
        received.iter().filter(|r| r.kind() == "message.offline").map(|r| &r.json["data"]).collect();
    for push in &offline {
        let recipients = push["recipients"].as_array().unwrap();
        assert_eq!(recipients.len(), 1);
        assert_eq!(recipients[0]["user_id"], "bob");
        assert!((1..=2).contains(&recipients[0]["badge"].as_u64().unwrap()), "{push}");
    }
    assert_eq!(offline[1]["recipients"][0]["badge"], 2);
    assert_eq!(offline[0]["message"]["body"]["text"], "hello bob");
    // The delivery list shows the events without what gim keeps only to send them.
    let listed = deliveries(&app, endpoint.endpoint_id, WebhookDeliveryState::Delivered).await;
    let offline_listed: Vec<Value> = listed
        .iter()
        .filter(|d| d.kind == "message.offline")
        .map(|d| serde_json::from_str(&d.payload).unwrap())
        .collect();
    assert_eq!(offline_listed.len(), 2);
    for payload in &offline_listed {
        let fields: Vec<&String> = payload["data"].as_object().unwrap().keys().collect();
        assert_eq!(fields, ["app_id", "message"], "{payload}");
    }

    let group = received.iter().find(|r| r.kind() == "group.created").unwrap();
    assert_eq!(group.json["data"]["receiver_id"], "team");
    assert_eq!(group.json["data"]["actor_user_id"], "alice");
    let request = received.iter().find(|r| r.kind() == "friend.requested").unwrap();
    assert_eq!(request.json["data"]["actor_user_id"], "carol");
    let registered = received.iter().find(|r| r.kind() == "device.registered").unwrap();
    assert_eq!(registered.json["data"]["device_id"], "phone");

    // A recall by the sender is an event of its own, after the message in its lane.
    messages_as(&app, "alice").await.recall_message(MessageRef { message_id: first }).await.unwrap();
    let received = receiver.wait_for("the recall", |r| r.iter().any(|r| r.kind() == "message.recalled")).await;
    let recall = received.iter().find(|r| r.kind() == "message.recalled").unwrap();
    assert_eq!(recall.json["data"]["message_id"], first.to_string());
    assert_eq!(recall.json["data"]["actor_user_id"], "alice");

    // An edit is an event with the new text.
    let second = created[1].json["data"]["message"]["id"].as_str().unwrap().parse::<u64>().unwrap();
    let edit = gim::proto::logic::v1::EditMessageRequest {
        message_id: second,
        text: Some(gim::proto::common::v1::TextBody { text: "are you?".into(), ..Default::default() }),
    };
    messages_as(&app, "alice").await.edit_message(edit).await.unwrap();
    let received = receiver.wait_for("the edit", |r| r.iter().any(|r| r.kind() == "message.edited")).await;
    let edited = received.iter().find(|r| r.kind() == "message.edited").unwrap();
    assert_eq!(edited.json["data"]["message_id"], second.to_string());
    assert_eq!(edited.json["data"]["text"], "are you?");
}

async fn a_receiver_down_for_a_while_gets_everything_in_order(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let mut receiver = Receiver::start().await;
    let endpoint = add_endpoint(&app, &receiver.url(), &["message.created"]).await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    receiver.stop();
    let mut expected: HashMap<(&str, &str), Vec<String>> = HashMap::new();
    for i in 0..15 {
        for (from, to) in [("alice", "bob"), ("carol", "alice"), ("bob", "alice")] {
            let text = format!("{from}-{to}-{i}");
            send(&app, from, to, &text).await;
            let lane = if from < to { (from, to) } else { (to, from) };
            expected.entry(lane).or_default().push(text);
        }
    }
    // Attempts fail while it is down, and are retried.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let waiting = deliveries(&app, endpoint.endpoint_id, WebhookDeliveryState::Waiting).await;
    assert!(waiting.iter().any(|d| d.attempts > 0 && d.last_error.contains("onnect")), "{waiting:?}");
    receiver.restart().await;
    let received = receiver.wait_for("all 45 messages", |r| r.len() >= 45).await;
    for (lane, texts) in &expected {
        assert_eq!(&texts_in_lane(&received, *lane), texts, "lane {lane:?} in order, each once");
    }
    assert_eq!(received.len(), 45);
}

async fn a_receiver_failing_forever_ends_in_dead_letters_that_replay_delivers(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        fast_retries(config);
        config.webhooks.retry_for_secs = 1;
    })
    .await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Answer(500));
    let endpoint = add_endpoint(&app, &receiver.url(), &["message.*"]).await.endpoint_id;
    app.user("alice").await;
    app.user("bob").await;
    for text in ["one", "two", "three"] {
        send(&app, "alice", "bob", text).await;
    }
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = deliveries(&app, endpoint, WebhookDeliveryState::Dead).await;
        if dead.len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead.len(), 6, "three messages and their offline pushes die");
    assert!(dead.iter().all(|d| d.last_status == 500 && d.last_error.starts_with("HTTP 500")), "{dead:?}");
    assert!(dead.iter().any(|d| d.attempts > 1), "retried before dying: {dead:?}");
    assert!(receiver.seen() >= 6);
    assert!(receiver.accepted().is_empty());

    receiver.set(Mode::Accept);
    let mut admin = admin_client(app.addr, ADMIN_TOKEN).await;
    // Another app cannot replay them.
    let other = server.new_app().await;
    let foreign = ReplayWebhookDeliveriesRequest { app_id: other.app_id, endpoint_id: endpoint, delivery_ids: vec![] };
    assert_eq!(code(admin.replay_webhook_deliveries(foreign).await), tonic::Code::NotFound);
    let one = ReplayWebhookDeliveriesRequest {
        app_id: app.app_id,
        endpoint_id: endpoint,
        delivery_ids: vec![dead[0].delivery_id],
    };
    assert_eq!(admin.replay_webhook_deliveries(one).await.unwrap().into_inner().replayed, 1);
    receiver.wait_for("the one replayed", |r| r.len() == 1).await;
    let all = ReplayWebhookDeliveriesRequest { app_id: app.app_id, endpoint_id: endpoint, delivery_ids: vec![] };
    assert_eq!(admin.replay_webhook_deliveries(all).await.unwrap().into_inner().replayed, 5);
    let received = receiver.wait_for("every replayed event", |r| r.len() == 6).await;
    let mut texts = texts_in_lane(&received, ("alice", "bob"));
    texts.sort();
    assert_eq!(texts, ["one", "three", "two"]);
    let delivered = deliveries(&app, endpoint, WebhookDeliveryState::Delivered).await;
    assert_eq!(delivered.len(), 6);
    assert!(deliveries(&app, endpoint, WebhookDeliveryState::Dead).await.is_empty());
}

async fn a_hanging_receiver_slows_no_send_and_no_other_app(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let stuck_app = server.new_app().await;
    let other_app = server.new_app().await;
    let stuck = Receiver::start().await;
    stuck.set(Mode::Hold);
    let healthy = Receiver::start().await;
    add_endpoint(&stuck_app, &stuck.url(), &["message.created"]).await;
    add_endpoint(&other_app, &healthy.url(), &["message.created"]).await;
    for app in [&stuck_app, &other_app] {
        app.user("alice").await;
        app.user("bob").await;
    }
    // Every send completes while the receiver holds its first request.
    for i in 0..30 {
        send(&stuck_app, "alice", "bob", &format!("m{i}")).await;
    }
    assert!(stuck.seen() <= 1, "one lane waits on one request at a time");
    assert!(stuck.accepted().is_empty());
    for i in 0..5 {
        send(&other_app, "alice", "bob", &format!("o{i}")).await;
    }
    healthy.wait_for("the other app's events", |r| r.len() == 5).await;
    stuck.set(Mode::Accept);
    let received = stuck.wait_for("all 30 once released", |r| r.len() >= 30).await;
    let expected: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    assert_eq!(texts_in_lane(&received, ("alice", "bob")), expected);
}

async fn endpoints_are_checked_and_kept_per_app(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let other = server.new_app().await;
    let mut admin = admin_client(app.addr, ADMIN_TOKEN).await;
    let create = |url: &str, kinds: &[&str], secret: &str| CreateWebhookRequest {
        app_id: app.app_id,
        url: url.into(),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        secret: secret.into(),
        ..Default::default()
    };
    for (request, why) in [
        (create("ftp://example.com/x", &[], ""), "not http"),
        (create("example.com/hook", &[], ""), "no scheme"),
        (create(&format!("https://example.com/{}", "x".repeat(3000)), &[], ""), "too long"),
        (create("https://example.com/hook", &["message.sent"], ""), "unknown kind"),
        (create("https://example.com/hook", &["chat.*"], ""), "unknown family"),
        (create("https://example.com/hook", &[], "not-a-secret"), "no whsec_ prefix"),
        (create("https://example.com/hook", &[], "whsec_c2hvcnQ="), "a short key"),
        (
            CreateWebhookRequest { description: "d".repeat(257), ..create("https://example.com/hook", &[], "") },
            "a long description",
        ),
    ] {
        assert_eq!(code(admin.create_webhook(request).await), tonic::Code::InvalidArgument, "{why}");
    }
    let mut missing_app = create("https://example.com/hook", &[], "");
    missing_app.app_id = 999_999;
    assert_eq!(code(admin.create_webhook(missing_app).await), tonic::Code::NotFound);
    let mut wrong_token = admin_client(app.addr, "wrong").await;
    assert_eq!(
        code(wrong_token.create_webhook(create("https://example.com/hook", &[], "")).await),
        tonic::Code::Unauthenticated
    );

    let own_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let made = admin
        .create_webhook(create("https://example.com/hook", &["group.*", "message.created"], own_secret))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.secret, own_secret);
    assert_eq!(made.kinds, ["group.*", "message.created"]);
    let listed = admin.list_webhooks(ListWebhooksRequest { app_id: app.app_id }).await.unwrap().into_inner().endpoints;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].secret.is_empty(), "a listing shows no secret");
    assert!(
        admin
            .list_webhooks(ListWebhooksRequest { app_id: other.app_id })
            .await
            .unwrap()
            .into_inner()
            .endpoints
            .is_empty()
    );

    // Another app's id does not reach this endpoint.
    let foreign = UpdateWebhookRequest {
        app_id: other.app_id,
        endpoint_id: made.endpoint_id,
        enabled: Some(false),
        ..Default::default()
    };
    assert_eq!(code(admin.update_webhook(foreign).await), tonic::Code::NotFound);
    let bad = UpdateWebhookRequest {
        app_id: app.app_id,
        endpoint_id: made.endpoint_id,
        url: Some("nope".into()),
        ..Default::default()
    };
    assert_eq!(code(admin.update_webhook(bad).await), tonic::Code::InvalidArgument);
    let change = UpdateWebhookRequest {
        app_id: app.app_id,
        endpoint_id: made.endpoint_id,
        kinds: vec!["*".into()],
        enabled: Some(false),
        description: Some("billing".into()),
        ..Default::default()
    };
    let changed = admin.update_webhook(change).await.unwrap().into_inner();
    assert_eq!(
        (changed.kinds.as_slice(), changed.enabled, changed.description.as_str()),
        (&["*".to_owned()][..], false, "billing")
    );
    assert_eq!(changed.url, "https://example.com/hook");
    let list_other = ListWebhookDeliveriesRequest {
        app_id: other.app_id,
        endpoint_id: made.endpoint_id,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(code(admin.list_webhook_deliveries(list_other).await), tonic::Code::NotFound);
    let too_many = ReplayWebhookDeliveriesRequest {
        app_id: app.app_id,
        endpoint_id: made.endpoint_id,
        delivery_ids: (1..=513).collect(),
    };
    assert_eq!(code(admin.replay_webhook_deliveries(too_many).await), tonic::Code::InvalidArgument);
    let bad_state = ListWebhookDeliveriesRequest {
        app_id: app.app_id,
        endpoint_id: made.endpoint_id,
        state: 42,
        ..Default::default()
    };
    assert_eq!(code(admin.list_webhook_deliveries(bad_state).await), tonic::Code::InvalidArgument);

    let delete = |app_id| DeleteWebhookRequest { app_id, endpoint_id: made.endpoint_id };
    assert_eq!(code(admin.delete_webhook(delete(other.app_id)).await), tonic::Code::NotFound);
    admin.delete_webhook(delete(app.app_id)).await.unwrap();
    assert_eq!(code(admin.delete_webhook(delete(app.app_id)).await), tonic::Code::NotFound);

    for i in 0..server.config.webhooks.max_endpoints_per_app {
        admin.create_webhook(create(&format!("https://example.com/{i}"), &[], "")).await.unwrap();
    }
    assert_eq!(
        code(admin.create_webhook(create("https://example.com/more", &[], "")).await),
        tonic::Code::ResourceExhausted
    );
}

async fn refused_changes_write_no_event(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app_with(gim::model::AppSettings { friendship_required: true, ..Default::default() }).await;
    let receiver = Receiver::start().await;
    let endpoint = add_endpoint(&app, &receiver.url(), &["*"]).await.endpoint_id;
    app.user("alice").await;
    app.user("bob").await;
    let mut business = app.business().await;
    let refused = BusinessSendRequest {
        sender_user_id: "alice".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: "not-friends".into(),
        body: text("not friends"),
        reply_to_message_id: 0,
    };
    assert_eq!(code(business.send_message(refused).await), tonic::Code::PermissionDenied);
    let unknown = BusinessSendRequest {
        receiver_user_id: "nobody".into(),
        client_msg_id: "x".into(),
        body: text("x"),
        ..Default::default()
    };
    assert_ne!(code(business.send_message(unknown).await), tonic::Code::Ok);
    // A system message goes through; it is the only event, and a repeat of it writes none.
    let system = BusinessSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: "sys".into(),
        body: text("welcome"),
        ..Default::default()
    };
    business.send_message(system.clone()).await.unwrap();
    business.send_message(system).await.unwrap();
    let received = receiver.wait_for("the system message and its push", |r| r.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = deliveries(&app, endpoint, WebhookDeliveryState::Unspecified).await;
    let kinds: Vec<&str> = all.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["message.offline", "message.created"], "newest first");
    assert_eq!(received[0].json["data"]["message"]["conversation_type"], "system");
    assert_eq!(received.len(), 2);
}

async fn a_receiver_that_is_gone_disables_its_endpoint(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Answer(410));
    let endpoint = add_endpoint(&app, &receiver.url(), &["message.created"]).await.endpoint_id;
    app.user("alice").await;
    app.user("bob").await;
    send(&app, "alice", "bob", "first").await;
    let mut admin = admin_client(app.addr, ADMIN_TOKEN).await;
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = admin.list_webhooks(ListWebhooksRequest { app_id: app.app_id }).await.unwrap().into_inner().endpoints;
        if !listed[0].enabled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!listed[0].enabled, "410 Gone disables the endpoint");
    assert!(listed[0].disabled_reason.contains("410"));
    // While disabled, changes keep no event for it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&app, "alice", "bob", "while disabled").await;
    receiver.set(Mode::Accept);
    let enable =
        UpdateWebhookRequest { app_id: app.app_id, endpoint_id: endpoint, enabled: Some(true), ..Default::default() };
    let enabled = admin.update_webhook(enable).await.unwrap().into_inner();
    assert!(enabled.enabled && enabled.disabled_reason.is_empty());
    send(&app, "alice", "bob", "after").await;
    let received = receiver.wait_for("the message after", |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(texts_in_lane(&receiver.accepted(), ("alice", "bob")), ["after"], "{received:?}");
    let dead = deliveries(&app, endpoint, WebhookDeliveryState::Dead).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_status, 410);
}

async fn two_nodes_deliver_each_event_once(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let second = server.another_node().await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url(), &["message.created"]).await;
    let users: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
    for user in &users {
        app.user(user).await;
    }
    let through_second = TestApp { addr: second.addr(), ..app.clone() };
    let mut expected = 0;
    for round in 0..10 {
        for pair in users.chunks(2) {
            let via = if round % 2 == 0 { &app } else { &through_second };
            send(via, &pair[0], &pair[1], &format!("{}-{round}", pair[0])).await;
            expected += 1;
        }
    }
    let received = receiver.wait_for("every message", |r| r.len() >= expected).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received_now = receiver.accepted();
    assert_eq!(received_now.len(), expected, "no event twice");
    for pair in users.chunks(2) {
        let texts = texts_in_lane(&received, (&pair[0], &pair[1]));
        let wanted: Vec<String> = (0..10).map(|round| format!("{}-{round}", pair[0])).collect();
        assert_eq!(texts, wanted);
    }
    second.shutdown().await.unwrap();
}

/// Sessions opening and closing on connect are `user.online` and `user.offline` events.
async fn presence_changes_are_events(backend: Backend) {
    let server = ServeServer::start_with(backend, |config| {
        fast_retries(config);
        config.social.presence_debounce_ms = 100;
    })
    .await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url(), &["user.*"]).await;
    app.user("alice").await;
    let token = app.device_token("alice", "phone").await;
    let session = WsClient::connect(server.ws_addr(), &token).await;
    let received = receiver.wait_for("alice online", |r| r.len() == 1).await;
    assert_eq!(received[0].kind(), "user.online");
    assert_eq!(received[0].json["data"]["user_id"], "alice");
    assert_eq!(received[0].json["data"]["devices"][0]["device_id"], "phone");
    drop(session);
    let received = receiver.wait_for("alice offline", |r| r.len() == 2).await;
    assert_eq!(received[1].kind(), "user.offline");
}

/// One event the receiver keeps refusing holds back its own conversation, however many
/// events pile up behind it, and not another conversation that shares its partition.
async fn a_poisoned_lane_holds_back_only_itself(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    receiver.poison("poison");
    add_endpoint(&app, &receiver.url(), &["message.created"]).await;
    let partition = |a: &str, b: &str| {
        let lane = format!("d:{a}:{b}");
        gim::webhooks::OutboxEvent { kind: "message.created", lane, payload: String::new() }.partition()
    };
    // Another conversation in the same partition.
    let other = (0..).map(|i| format!("q{i}")).find(|q| partition("p", q) == partition("p", "s")).unwrap();
    for user in ["p", "s", other.as_str()] {
        app.user(user).await;
    }
    send(&app, "p", "s", "poison").await;
    for i in 0..150 {
        send(&app, "p", "s", &format!("behind-{i}")).await;
    }
    for i in 0..5 {
        send(&app, "p", &other, &format!("other-{i}")).await;
    }
    let received = receiver.wait_for("the other conversation", |r| r.len() == 5).await;
    let expected: Vec<String> = (0..5).map(|i| format!("other-{i}")).collect();
    assert_eq!(texts_in_lane(&received, ("p", &other)), expected);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(texts_in_lane(&receiver.accepted(), ("p", "s")).is_empty(), "nothing passes the poisoned event");
}

/// An endpoint that fails for every conversation is down, not refusing one event: its
/// partitions rest (with growing backoff) instead of each conversation retrying on its
/// own, so a dead endpoint costs next to nothing; once it answers, everything arrives.
async fn a_dead_endpoint_is_rested_not_hammered(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        fast_retries(config);
        config.webhooks.first_retry_ms = 200;
    })
    .await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Answer(503));
    add_endpoint(&app, &receiver.url(), &["message.created"]).await;
    let users: Vec<String> = (0..128).map(|i| format!("u{i}")).collect();
    for user in &users {
        app.user(user).await;
    }
    // 64 conversations, spread over the endpoint's 8 partitions.
    for pair in users.chunks(2) {
        send(&app, &pair[0], &pair[1], &format!("{}-hi", pair[0])).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Each conversation retrying alone would have made about 5 attempts each (320). A
    // partition where five conversations fail rests: a few failures, then one probe per
    // rest (11 attempts at most); one with fewer conversations retries each on its own.
    let mut conversations = [0u64; 8];
    for pair in users.chunks(2) {
        conversations[gim::webhooks::partition_of(&format!("d:{}:{}", pair[0], pair[1])) as usize] += 1;
    }
    let most: u64 = conversations.iter().map(|&n| if n >= 5 { 11 } else { 5 * n }).sum();
    let attempts = receiver.seen();
    assert!(attempts <= most, "{attempts} attempts on a dead endpoint, more than {most}");
    receiver.set(Mode::Accept);
    let received = receiver.wait_for("every conversation once it answers", |r| r.len() >= 64).await;
    assert_eq!(received.len(), 64);
}

/// Delivered and dead events are dropped once older than their keeping times; waiting
/// ones never are.
async fn finished_deliveries_are_pruned_when_old(backend: Backend) {
    use gim::store::WebhookStore;
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    let endpoint = add_endpoint(&app, &receiver.url(), &["message.created"]).await.endpoint_id;
    app.user("alice").await;
    app.user("bob").await;
    for i in 0..5 {
        send(&app, "alice", "bob", &format!("m{i}")).await;
    }
    receiver.wait_for("five", |r| r.len() == 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    receiver.stop_answering();
    send(&app, "alice", "bob", "waiting").await;
    let store = server.node.store();
    let now = gim::model::now_ms();
    assert_eq!(store.prune_deliveries(now - 60_000, now - 60_000, 100).await.unwrap(), 0, "none is old yet");
    assert_eq!(store.prune_deliveries(now + 1, now + 1, 100).await.unwrap(), 5, "the delivered five");
    let left = deliveries(&app, endpoint, WebhookDeliveryState::Unspecified).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].state, WebhookDeliveryState::Waiting as i32);
}

/// A recall or an edit goes in the lane of its message's conversation, behind the message
/// however long the receiver refuses it, and names the message's sender.
async fn revisions_follow_their_message_in_its_conversation(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    receiver.poison("\"message.created\"");
    let kinds = ["message.created", "message.edited", "message.recalled"];
    let endpoint = add_endpoint(&app, &receiver.url(), &kinds).await.endpoint_id;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    let direct = send(&app, "alice", "bob", "hello bob").await;
    make_group(&app, "alice", "team", &["bob", "carol"]).await;
    let to_group = GroupSendRequest {
        group_id: "team".into(),
        client_msg_id: "g1".into(),
        body: text("hi"),
        reply_to_message_id: 0,
    };
    let in_group = app.groups(Some("alice")).await.send_message(to_group).await.unwrap().into_inner().message_id;
    let mut alice = messages_as(&app, "alice").await;
    for id in [direct, in_group] {
        let text = TextBody { text: "edited".into(), ..Default::default() };
        alice.edit_message(EditMessageRequest { message_id: id, text: Some(text) }).await.unwrap();
        alice.recall_message(MessageRef { message_id: id }).await.unwrap();
    }
    // Each message is refused a few times; nothing of its conversation passes it.
    receiver.wait_seen(6).await;
    let early: Vec<String> = receiver.accepted().iter().map(|r| r.kind().to_owned()).collect();
    assert!(early.is_empty(), "revisions went ahead of their messages: {early:?}");
    receiver.cure();
    let received = receiver.wait_for("every event", |r| r.len() == 6).await;
    for (conversation_type, receiver_id) in [("direct", "bob"), ("group", "team")] {
        let events: Vec<&Received> = received
            .iter()
            .filter(|r| {
                let data = &r.json["data"];
                data["receiver_id"] == receiver_id || data["message"]["receiver_id"] == receiver_id
            })
            .collect();
        let kinds: Vec<&str> = events.iter().map(|r| r.kind()).collect();
        assert_eq!(kinds, ["message.created", "message.edited", "message.recalled"], "{conversation_type}");
        for revision in &events[1..] {
            assert_eq!(revision.json["data"]["sender_user_id"], "alice", "{conversation_type}");
            assert_eq!(revision.json["data"]["conversation_type"], conversation_type);
        }
    }
    let mut lanes: Vec<String> = deliveries(&app, endpoint, WebhookDeliveryState::Unspecified)
        .await
        .into_iter()
        .map(|delivery| delivery.lane)
        .collect();
    lanes.sort_unstable();
    lanes.dedup();
    assert_eq!(lanes, ["d:alice:bob", "g:team"]);
}

/// A friendship's events keep their order within the pair of users, and one pair's failing
/// event holds back no other pair's; a moment's events keep theirs within the post.
async fn each_friendship_and_each_moment_has_a_lane_of_its_own(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    receiver.poison("\"ann\"");
    let endpoint = add_endpoint(&app, &receiver.url(), &["friend.*", "moment.*"]).await.endpoint_id;
    let mut users = HashMap::new();
    for user in ["ann", "bob", "cat", "dan"] {
        users.insert(user, app.social_user(user).await);
    }
    for (asker, answerer) in [("ann", "bob"), ("cat", "dan")] {
        let request = SendFriendRequestRequest { user_id: answerer.into(), greeting: String::new() };
        users.get_mut(asker).unwrap().friends.send_request(request).await.unwrap();
        let answer = AnswerFriendRequest { user_id: asker.into(), accept: true };
        users.get_mut(answerer).unwrap().friends.answer(answer).await.unwrap();
    }
    // Ann and bob's events keep failing; cat and dan's friendship is told all the same.
    let received =
        receiver.wait_for("cat and dan's friendship", |r| r.iter().any(|r| r.kind() == "friend.accepted")).await;
    let kinds: Vec<&str> = received.iter().map(|r| r.kind()).collect();
    assert_eq!(kinds, ["friend.requested", "friend.accepted"]);
    assert_eq!(received[1].json["data"]["actor_user_id"], "dan");

    // A post to several friends, and a like of it.
    app.make_friends(&[("cat", "bob")]).await;
    let publish = PublishRequest {
        content: Some(PostContent { text: "sunset".into(), ..Default::default() }),
        visibility: Visibility::Friends as i32,
        ..Default::default()
    };
    let post = users.get_mut("cat").unwrap().moments.publish(publish).await.unwrap().into_inner().post_id;
    users.get_mut("dan").unwrap().moments.like(PostRef { post_id: post }).await.unwrap();
    receiver.wait_for("the post and its like", |r| r.iter().any(|r| r.kind() == "moment.liked")).await;

    let lanes: Vec<(String, String)> = deliveries(&app, endpoint, WebhookDeliveryState::Unspecified)
        .await
        .into_iter()
        .rev()
        .map(|delivery| (delivery.kind, delivery.lane))
        .collect();
    let expected = [
        ("friend.requested", "f:ann:bob".to_owned()),
        ("friend.accepted", "f:ann:bob".to_owned()),
        ("friend.requested", "f:cat:dan".to_owned()),
        ("friend.accepted", "f:cat:dan".to_owned()),
        ("moment.posted", format!("m:{post}")),
        ("moment.liked", format!("m:{post}")),
    ];
    let expected: Vec<(String, String)> = expected.into_iter().map(|(kind, lane)| (kind.to_owned(), lane)).collect();
    assert_eq!(lanes, expected);
}

/// Ten conversations named one after the other fall in most of an endpoint's partitions,
/// so a slow receiver is sent several requests at once, not one or two.
async fn conversations_named_alike_spread_over_the_partitions(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Hold);
    add_endpoint(&app, &receiver.url(), &["message.created"]).await;
    for i in 0..10 {
        app.user(&format!("alice{i}")).await;
        app.user(&format!("peer{i}")).await;
    }
    for i in 0..10 {
        send(&app, &format!("alice{i}"), &format!("peer{i}"), &format!("hello {i}")).await;
    }
    // One request at a time per partition: how many are held at once says how many
    // partitions the ten conversations fell in.
    receiver.wait_seen(5).await;
    receiver.set(Mode::Accept);
    let received = receiver.wait_for("every message", |r| r.len() == 10).await;
    for i in 0..10 {
        assert_eq!(texts_in_lane(&received, (&format!("alice{i}"), &format!("peer{i}"))), [format!("hello {i}")]);
    }
}

/// The partition gim filed an event under before its partitions were spread by a hash
/// that mixes every bit (FNV-1a of the lane, mod 8).
fn partition_before_the_spread(lane: &str) -> i64 {
    let hash = lane
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    (hash % 8) as i64
}

/// Where an endpoint's events are filed: (id, partition, lane).
async fn filed(conn: &mut sqlx::AnyConnection, endpoint: u64) -> Vec<(i64, i64, String)> {
    sqlx::query_as("SELECT id, part, lane FROM webhook_outbox WHERE endpoint_id = ?")
        .bind(i64::try_from(endpoint).unwrap())
        .fetch_all(conn)
        .await
        .unwrap()
}

/// Events waiting (or dead) under the partitions of the earlier hash are filed under
/// today's when gim next starts, so that each lane's old and new events share one
/// partition and go out in order.
async fn events_filed_by_an_earlier_version_are_refiled_at_the_next_start(backend: Backend) {
    use sqlx::Connection as _;
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let mut receiver = Receiver::start().await;
    receiver.stop();
    let endpoint = add_endpoint(&app, &receiver.url(), &["message.created"]).await.endpoint_id;
    for i in 0..10 {
        app.user(&format!("alice{i}")).await;
        app.user(&format!("peer{i}")).await;
        send(&app, &format!("alice{i}"), &format!("peer{i}"), &format!("first {i}")).await;
    }
    let url = server.config.store.url.expose().to_owned();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let rows = filed(&mut conn, endpoint).await;
    assert_eq!(rows.len(), 10);
    let mut moved = 0;
    for (id, part, lane) in &rows {
        assert_eq!(*part, i64::from(gim::webhooks::partition_of(lane)), "{lane} filed by today's hash");
        let earlier = partition_before_the_spread(lane);
        moved += usize::from(earlier != *part);
        sqlx::query("UPDATE webhook_outbox SET part = ? WHERE id = ?")
            .bind(earlier)
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    assert!(moved >= 5, "the two hashes differ for most of these lanes");
    sqlx::query("UPDATE schema_tasks SET done_at_ms = 0 WHERE name = 'refile_webhook_events'")
        .execute(&mut conn)
        .await
        .unwrap();

    let store = gim::store::SqlStore::connect(&url, &gim::store::StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    for (_, part, lane) in filed(&mut conn, endpoint).await {
        assert_eq!(part, i64::from(gim::webhooks::partition_of(&lane)), "{lane} refiled");
    }
    for i in 0..10 {
        send(&app, &format!("alice{i}"), &format!("peer{i}"), &format!("second {i}")).await;
    }
    receiver.restart().await;
    let received = receiver.wait_for("every message", |r| r.len() == 20).await;
    for i in 0..10 {
        let texts = texts_in_lane(&received, (&format!("alice{i}"), &format!("peer{i}")));
        assert_eq!(texts, [format!("first {i}"), format!("second {i}")]);
    }
}

/// A replay gives its events a retry window of their own: one that fails again after the
/// replay is retried, not dead at once for having been written long ago.
async fn a_replayed_event_is_retried_for_a_window_of_its_own(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        fast_retries(config);
        config.webhooks.retry_for_secs = 1;
    })
    .await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Answer(500));
    let endpoint = add_endpoint(&app, &receiver.url(), &["message.created"]).await.endpoint_id;
    app.user("alice").await;
    app.user("bob").await;
    send(&app, "alice", "bob", "one").await;
    let is_dead = |d: &WebhookDelivery| d.state == WebhookDeliveryState::Dead as i32;
    let dead = delivery_when(&app, endpoint, is_dead).await;
    assert!(dead.attempts > 1);
    // Until the event is well past its first window.
    let past_window = dead.created_at_ms + 2000 - gim::model::now_ms();
    tokio::time::sleep(Duration::from_millis(past_window.max(0).unsigned_abs())).await;

    let mut admin = admin_client(app.addr, ADMIN_TOKEN).await;
    let replay = ReplayWebhookDeliveriesRequest { app_id: app.app_id, endpoint_id: endpoint, delivery_ids: vec![] };
    assert_eq!(admin.replay_webhook_deliveries(replay.clone()).await.unwrap().into_inner().replayed, 1);
    let failed_again = delivery_when(&app, endpoint, |d| d.attempts >= 1).await;
    assert_eq!(failed_again.state, WebhookDeliveryState::Waiting as i32, "retried after the replay: {failed_again:?}");
    let dead_again = delivery_when(&app, endpoint, is_dead).await;
    assert!(dead_again.attempts > 1, "retried within the replay's window: {dead_again:?}");

    receiver.set(Mode::Accept);
    assert_eq!(admin.replay_webhook_deliveries(replay).await.unwrap().into_inner().replayed, 1);
    receiver.wait_for("the replayed event", |r| r.len() == 1).await;
}

/// While an endpoint is disabled, changes write nothing for it; what was waiting when it
/// was disabled stays, untried, and goes out in order once it is enabled, retried for a
/// window of its own however long it waited.
async fn a_disabled_endpoint_keeps_what_was_waiting_and_gets_nothing_meanwhile(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        fast_retries(config);
        config.webhooks.retry_for_secs = 2;
    })
    .await;
    let app = server.new_app().await;
    let mut receiver = Receiver::start().await;
    receiver.stop();
    let endpoint = add_endpoint(&app, &receiver.url(), &["message.created"]).await.endpoint_id;
    app.user("alice").await;
    app.user("bob").await;
    send(&app, "alice", "bob", "before 1").await;
    send(&app, "alice", "bob", "before 2").await;
    let mut admin = admin_client(app.addr, ADMIN_TOKEN).await;
    let switch = |enabled| UpdateWebhookRequest {
        app_id: app.app_id,
        endpoint_id: endpoint,
        enabled: Some(enabled),
        ..Default::default()
    };
    admin.update_webhook(switch(false)).await.unwrap();
    send(&app, "alice", "bob", "while disabled").await;
    let waiting = deliveries(&app, endpoint, WebhookDeliveryState::Waiting).await;
    assert_eq!(waiting.len(), 2, "nothing written while disabled: {waiting:?}");
    // Until the waiting events are well past their retry window.
    let past_window = waiting[1].created_at_ms + 3000 - gim::model::now_ms();
    tokio::time::sleep(Duration::from_millis(past_window.max(0).unsigned_abs())).await;
    assert_eq!(deliveries(&app, endpoint, WebhookDeliveryState::Waiting).await.len(), 2, "untried, so not dead");

    receiver.restart().await;
    receiver.set(Mode::Answer(503));
    admin.update_webhook(switch(true)).await.unwrap();
    // Until now its attempts failed to connect (status 0).
    let tried = delivery_when(&app, endpoint, |d| d.last_status == 503).await;
    assert_eq!(tried.state, WebhookDeliveryState::Waiting as i32, "retried after the enabling: {tried:?}");
    receiver.set(Mode::Accept);
    send(&app, "alice", "bob", "after").await;
    let received = receiver.wait_for("what was kept", |r| r.len() >= 3).await;
    assert_eq!(texts_in_lane(&received, ("alice", "bob")), ["before 1", "before 2", "after"]);
    let kept = deliveries(&app, endpoint, WebhookDeliveryState::Unspecified).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
}

/// Broadcast copies and announcements are reported with the client_msg_id the app gave,
/// not the ids gim stores each copy under.
async fn broadcasts_are_reported_with_the_apps_client_msg_id(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url(), &["message.created"]).await;
    app.user("alice").await;
    app.user("bob").await;
    let mut business = app.business().await;
    let to_some = BroadcastRequest {
        user_ids: vec!["alice".into(), "bob".into()],
        body: text("maintenance at 9"),
        client_msg_id: "maintenance-1".into(),
        ..Default::default()
    };
    business.broadcast(to_some).await.unwrap();
    let to_all = BroadcastRequest { body: text("we are live"), client_msg_id: "launch-1".into(), ..Default::default() };
    business.broadcast(to_all).await.unwrap();
    let received = receiver.wait_for("three messages", |r| r.len() == 3).await;
    let mut reported: Vec<(&str, &str)> = received
        .iter()
        .map(|r| {
            let message = &r.json["data"]["message"];
            (message["body"]["text"].as_str().unwrap(), message["client_msg_id"].as_str().unwrap())
        })
        .collect();
    reported.sort_unstable();
    assert_eq!(
        reported,
        [("maintenance at 9", "maintenance-1"), ("maintenance at 9", "maintenance-1"), ("we are live", "launch-1")]
    );
}

/// A rotated secret signs beside the one it replaced while the overlap asked for lasts (a
/// receiver with either verifies every request), then alone.
async fn a_rotated_secret_overlaps_the_previous_one(backend: Backend) {
    use gim::store::WebhookStore;
    let server = TestServer::start_with(backend, fast_retries).await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    let first = add_endpoint(&app, &receiver.url(), &["message.created"]).await;
    let endpoint = first.endpoint_id;
    app.user("alice").await;
    app.user("bob").await;
    send(&app, "alice", "bob", "before").await;
    let received = receiver.wait_for("the first message", |r| r.len() == 1).await;
    assert!(received[0].verifies_with(&first.secret));
    assert!(!received[0].headers["webhook-signature"].to_str().unwrap().contains(' '), "one signature");

    let mut admin = admin_client(app.addr, ADMIN_TOKEN).await;
    let rotate = |keep_old_for_seconds, secret: &str| RotateWebhookSecretRequest {
        app_id: app.app_id,
        endpoint_id: endpoint,
        keep_old_for_seconds,
        secret: secret.into(),
    };
    let rotated = admin.rotate_webhook_secret(rotate(2, "")).await.unwrap().into_inner();
    assert!(rotated.secret.starts_with("whsec_") && rotated.secret != first.secret, "the new secret, shown once");
    let overlap_ends = rotated.previous_secret_expires_at_ms;
    assert!(overlap_ends > gim::model::now_ms());
    let listed = admin.list_webhooks(ListWebhooksRequest { app_id: app.app_id }).await.unwrap().into_inner();
    assert!(listed.endpoints[0].secret.is_empty());
    assert_eq!(listed.endpoints[0].previous_secret_expires_at_ms, overlap_ends);

    send(&app, "alice", "bob", "during").await;
    let received = receiver.wait_for("the message during the overlap", |r| r.len() == 2).await;
    let during = &received[1];
    assert!(during.verifies_with(&rotated.secret) && during.verifies_with(&first.secret), "{:?}", during.headers);
    assert_eq!(during.headers["webhook-signature"].to_str().unwrap().matches("v1,").count(), 2);

    let until_overlap_ends = overlap_ends - gim::model::now_ms();
    tokio::time::sleep(Duration::from_millis(until_overlap_ends.max(0).unsigned_abs())).await;
    send(&app, "alice", "bob", "after").await;
    let received = receiver.wait_for("the message after the overlap", |r| r.len() == 3).await;
    assert!(received[2].verifies_with(&rotated.secret));
    assert!(!received[2].verifies_with(&first.secret), "the previous secret no longer signs");
    let listed = admin.list_webhooks(ListWebhooksRequest { app_id: app.app_id }).await.unwrap().into_inner();
    assert_eq!(listed.endpoints[0].previous_secret_expires_at_ms, 0);
    // The dispatcher's pruning erases it (a minute apart; here at once).
    let store = server.node.store();
    assert_eq!(store.forget_previous_secrets(gim::model::now_ms()).await.unwrap(), 1);
    assert!(store.endpoint(endpoint).await.unwrap().unwrap().previous_secret.is_empty());

    // A secret of the operator's own, with no overlap.
    let own = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let replaced = admin.rotate_webhook_secret(rotate(0, own)).await.unwrap().into_inner();
    assert_eq!((replaced.secret.as_str(), replaced.previous_secret_expires_at_ms), (own, 0));
    send(&app, "alice", "bob", "own").await;
    let received = receiver.wait_for("the message signed with the own secret", |r| r.len() == 4).await;
    assert!(received[3].verifies_with(own) && !received[3].verifies_with(&rotated.secret));
    assert_eq!(texts_in_lane(&received, ("alice", "bob")), ["before", "during", "after", "own"]);

    // Bad rotations change nothing.
    let max = u32::try_from(server.config.webhooks.max_secret_overlap_secs).unwrap();
    assert_eq!(code(admin.rotate_webhook_secret(rotate(max + 1, "")).await), tonic::Code::InvalidArgument);
    assert_eq!(code(admin.rotate_webhook_secret(rotate(60, "not-a-secret")).await), tonic::Code::InvalidArgument);
    let other = server.new_app().await;
    let foreign = RotateWebhookSecretRequest { app_id: other.app_id, ..rotate(60, "") };
    assert_eq!(code(admin.rotate_webhook_secret(foreign).await), tonic::Code::NotFound);
    let missing = RotateWebhookSecretRequest { endpoint_id: endpoint + 1000, ..rotate(60, "") };
    assert_eq!(code(admin.rotate_webhook_secret(missing).await), tonic::Code::NotFound);
    let mut stranger = admin_client(app.addr, "wrong").await;
    assert_eq!(code(stranger.rotate_webhook_secret(rotate(60, "")).await), tonic::Code::Unauthenticated);
    send(&app, "alice", "bob", "still own").await;
    let received = receiver.wait_for("the last message", |r| r.len() == 5).await;
    assert!(received[4].verifies_with(own), "the refused rotations changed nothing");
    assert!(!received[4].headers["webhook-signature"].to_str().unwrap().contains(' '));
}
