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
use gim::proto::logic::v1::{
    BusinessSendRequest, CreateWebhookRequest, DeleteWebhookRequest, ListWebhookDeliveriesRequest, ListWebhooksRequest,
    MessageRef, RegisterDeviceRequest, RemoveDeviceRequest, ReplayWebhookDeliveriesRequest, SendFriendRequestRequest,
    UpdateWebhookRequest, WebhookDeliveryState, WebhookEndpoint, messages_client::MessagesClient,
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

pub async fn deliveries(
    app: &TestApp,
    endpoint: u64,
    state: WebhookDeliveryState,
) -> Vec<gim::proto::logic::v1::WebhookDelivery> {
    let request = ListWebhookDeliveriesRequest {
        app_id: app.app_id,
        endpoint_id: endpoint,
        state: state as i32,
        before_delivery_id: 0,
        limit: 100,
    };
    admin_client(app.addr, ADMIN_TOKEN).await.list_webhook_deliveries(request).await.unwrap().into_inner().deliveries
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
    // Each conversation retrying alone would have made about 5 attempts each (320);
    // resting partitions make a few failures, then one probe per rest.
    let attempts = receiver.seen();
    assert!(attempts <= 8 * 11, "{attempts} attempts on a dead endpoint");
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
