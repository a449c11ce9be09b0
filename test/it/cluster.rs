//! A cluster on loopback: two `gim logic` and two `gim connect` processes sharing
//! MariaDB and Redis. Alice's devices are on connect node 1, Bob's on node 2; then node
//! 2 is killed with SIGKILL while messages flow, Bob's devices move to node 1, and
//! nothing is lost or repeated.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use gim::proto::{
    common::v1::Message,
    logic::v1::{CreateAppRequest, GetPresenceRequest},
};
use tokio::process::{Child, Command};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    support::{ADMIN_TOKEN, Backend, Server, TOKEN_SECRET, TestApp, TestDb, admin_client, free_addr, servers_missing},
    ws::{WAIT, WsClient},
};

fn redis_url() -> String {
    Server::Redis.url().expect("a cluster test checks servers_missing first")
}

/// Processes started on ports `free_addr` found free: another test process may still take
/// one first, and the process then exits; it is started again on other ports.
const PORT_ATTEMPTS: usize = 3;

/// Whether a process has ended (it could not bind its ports, for one).
fn exited(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(Some(_)))
}

struct Cluster {
    env: Vec<(String, String)>,
    logic: Vec<SocketAddr>,
    /// The logic nodes' internal APIs, in the same order.
    internal: Vec<SocketAddr>,
    _db: TestDb,
}

impl Cluster {
    /// A cluster's shared parts, or `None` when MySQL or Redis is not configured (the test
    /// then skips).
    async fn new() -> Option<Self> {
        if servers_missing(&[Server::MySql, Server::Redis]) {
            return None;
        }
        let db = TestDb::create(Backend::MySql).await;
        let env = vec![
            ("GIM_STORE__URL".to_owned(), db.url.clone()),
            ("GIM_ROUTE__REDIS_URL".to_owned(), redis_url()),
            ("GIM_ROUTE__KEY_PREFIX".to_owned(), format!("gimtest{}", rand::random::<u32>())),
            ("GIM_ROUTE__TTL_SECS".to_owned(), "6".to_owned()),
            ("GIM_AUTH__TOKEN_SECRET".to_owned(), TOKEN_SECRET.to_owned()),
            ("GIM_ADMIN__TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
            ("GIM_DATA_DIR".to_owned(), db.dir.path().display().to_string()),
            ("GIM_TELEMETRY__LOG_FILTER".to_owned(), "warn".to_owned()),
            // The test sends faster than a person would.
            ("GIM_CONNECT__MAX_FRAMES_PER_SECOND".to_owned(), "10000".to_owned()),
            ("GIM_RATES__DEVICE_CALLS_PER_SECOND".to_owned(), "0".to_owned()),
            ("GIM_RATES__USER_CALLS_PER_SECOND".to_owned(), "0".to_owned()),
            ("GIM_CONNECT__GROUP_PUSH_MAX_DELAY_MS".to_owned(), "20".to_owned()),
        ];
        Some(Self { env, logic: Vec::new(), internal: Vec::new(), _db: db })
    }

    /// A gim process of `role` with the cluster's settings and then `extra`, to be spawned.
    fn prepare(&self, role: &str, extra: &[(&str, String)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gim"));
        command.arg(role).env_remove("GIM_CONFIG").kill_on_drop(true);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        for (key, value) in extra {
            command.env(key, value);
        }
        command
    }

    fn command(&self, role: &str, extra: &[(&str, String)]) -> Child {
        self.prepare(role, extra).spawn().expect("starting a gim process")
    }

    async fn start_logic(&mut self) -> Child {
        self.start_logic_on(None).await
    }

    /// A logic node whose internal API listens on the address given, or on a free one.
    async fn start_logic_on(&mut self, internal: Option<SocketAddr>) -> Child {
        for _ in 0..PORT_ATTEMPTS {
            let (addr, internal) = (free_addr(), internal.unwrap_or_else(free_addr));
            let mut child = self.command(
                "logic",
                &[("GIM_LOGIC__LISTEN", addr.to_string()), ("GIM_LOGIC__INTERNAL_LISTEN", internal.to_string())],
            );
            for _ in 0..150 {
                if exited(&mut child) {
                    break;
                }
                if let Ok(channel) =
                    tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await
                    && HealthClient::new(channel).check(HealthCheckRequest::default()).await.is_ok()
                    && !exited(&mut child)
                {
                    self.logic.push(addr);
                    self.internal.push(internal);
                    return child;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("gim logic did not start");
    }

    /// An app, created through the admin API, whose business calls go to `addr`.
    async fn new_app(&self, addr: SocketAddr) -> TestApp {
        let request = CreateAppRequest { name: "cluster".into(), settings: None };
        let created = admin_client(self.logic[0], ADMIN_TOKEN).await.create_app(request).await.unwrap().into_inner();
        TestApp { app_id: created.app.unwrap().app_id, secret: created.secret, addr }
    }

    /// A connect node; returns it with its WebSocket address.
    async fn start_connect(&self) -> (Child, SocketAddr) {
        let (child, ws, _) = self.start_connect_on(None).await;
        (child, ws)
    }

    /// A connect node on the internal address given (the node's name), or a free one;
    /// returns it with its WebSocket and internal addresses.
    async fn start_connect_on(&self, internal: Option<SocketAddr>) -> (Child, SocketAddr, SocketAddr) {
        for _ in 0..PORT_ATTEMPTS {
            let (ws, internal) = (free_addr(), internal.unwrap_or_else(free_addr));
            let mut child = self.command(
                "connect",
                &[
                    ("GIM_CONNECT__LISTEN", ws.to_string()),
                    ("GIM_CONNECT__INTERNAL_LISTEN", internal.to_string()),
                    ("GIM_CONNECT__LOGIC_ADDRS", list(&self.logic)),
                    ("GIM_CONNECT__LOGIC_INTERNAL_ADDRS", list(&self.internal)),
                ],
            );
            for _ in 0..150 {
                if exited(&mut child) {
                    break;
                }
                if tokio::net::TcpStream::connect(ws).await.is_ok()
                    && tokio::net::TcpStream::connect(internal).await.is_ok()
                    && !exited(&mut child)
                {
                    return (child, ws, internal);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("gim connect did not start");
    }
}

/// A list of addresses as a `GIM_*` variable holding a list takes it.
fn list(addrs: &[SocketAddr]) -> String {
    let quoted: Vec<String> = addrs.iter().map(|addr| format!("\"http://{addr}\"")).collect();
    format!("[{}]", quoted.join(","))
}

/// Receives until `count` messages arrived (or the socket breaks); returns them.
async fn receive(client: &mut WsClient, into: &mut Vec<Message>, count: usize) -> bool {
    // Pushes that came while the client waited for its own responses.
    while let Some(frame) = client.pushes.pop_front() {
        if let gim::proto::client::v1::server_frame::Payload::Message(push) = frame {
            into.extend(push.message);
        }
    }
    while into.len() < count {
        match client.next_frame(WAIT).await {
            Ok(Some(gim::proto::client::v1::server_frame::Payload::Message(push))) => into.extend(push.message),
            Ok(Some(_)) => {}
            Ok(None) => panic!("no push within {WAIT:?}; have {} of {count}", into.len()),
            Err(_) => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logic_and_two_connect_nodes_survive_a_killed_connect_node() {
    let Some(mut cluster) = Cluster::new().await else { return };
    let _logic1 = cluster.start_logic().await;
    let _logic2 = cluster.start_logic().await;
    let (_connect1, ws1) = cluster.start_connect().await;
    let (mut connect2, ws2) = cluster.start_connect().await;
    // Members alternate between the nodes: 0 and 2 on node 1, 1 and 3 on node 2.

    let app = cluster.new_app(cluster.logic[1]).await;
    app.user("alice").await;
    app.user("bob").await;
    let alice_tokens = [app.device_token("alice", "a1").await, app.device_token("alice", "a2").await];
    let bob_tokens =
        [app.device_token("bob", "b1").await, app.device_token("bob", "b2").await, app.device_token("bob", "b3").await];

    let mut alice = Vec::new();
    for token in &alice_tokens {
        alice.push(WsClient::online(ws1, token, 0).await.0);
    }
    let mut bob = Vec::new();
    for token in &bob_tokens {
        bob.push(WsClient::online(ws2, token, 0).await.0);
    }
    let presence = app
        .business()
        .await
        .get_presence(GetPresenceRequest { user_ids: vec!["alice".into(), "bob".into()] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(presence.users.iter().map(|u| u.devices.len()).collect::<Vec<_>>(), [2, 3], "routes are in Redis");

    // Both ways across nodes: every device gets everything once, in order.
    for i in 0..5 {
        alice[0].send("bob", &format!("a{i}"), "to bob").await;
        bob[0].send("alice", &format!("b{i}"), "to alice").await;
    }
    let mut alice_seen = Vec::new();
    assert!(receive(&mut alice[1], &mut alice_seen, 10).await);
    assert_eq!(alice_seen.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    let mut bob_seen: Vec<Vec<Message>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for (client, seen) in bob.iter_mut().zip(bob_seen.iter_mut()).skip(1) {
        assert!(receive(client, seen, 10).await);
        assert_eq!(seen.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    }

    // Alice keeps sending while node 2 dies.
    const TOTAL: usize = 120;
    let sender_token = alice_tokens[0].clone();
    let sender = tokio::spawn(async move {
        let (mut alice, _) = WsClient::online(ws1, &sender_token, 0).await;
        for i in 0..TOTAL {
            alice.send("bob", &format!("c{i}"), "during the failure").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    connect2.start_kill().expect("SIGKILL node 2");
    connect2.wait().await.unwrap();

    // Bob's devices notice, reconnect to node 1 from the last seq they hold, sync, and
    // then live on pushes. (b1 sent messages itself; the other two are checked.)
    let expected = 10 + TOTAL;
    for (index, seen) in bob_seen.iter_mut().enumerate().skip(1) {
        receive(&mut bob[index], seen, expected).await;
        let held = seen.last().map_or(0, |m| m.seq);
        let (mut client, synced) = WsClient::online(ws1, &bob_tokens[index], held).await;
        seen.extend(synced);
        assert!(receive(&mut client, seen, expected).await, "node 1 keeps the session");
    }
    sender.await.unwrap();
    for seen in bob_seen.iter().skip(1) {
        let seqs: Vec<u64> = seen.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=expected as u64).collect::<Vec<_>>(), "nothing lost, nothing twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_group_reaches_its_members_on_every_connect_node() {
    let Some(mut cluster) = Cluster::new().await else { return };
    cluster.env.push(("GIM_GROUPS__LARGE_THRESHOLD".to_owned(), "2".to_owned()));
    let _logic1 = cluster.start_logic().await;
    let _logic2 = cluster.start_logic().await;
    let (_connect1, ws1) = cluster.start_connect().await;
    let (_connect2, ws2) = cluster.start_connect().await;
    let app = cluster.new_app(cluster.logic[0]).await;
    for user in ["a", "b", "c", "late"] {
        app.user(user).await;
    }
    app.groups(Some("a"))
        .await
        .create_group(gim::proto::logic::v1::CreateGroupRequest {
            group_id: "big".into(),
            name: "big".into(),
            join_policy: gim::proto::logic::v1::JoinPolicy::Free as i32,
            member_ids: vec!["b".into(), "c".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    // a on node 1; b and c on node 2; "late" joins later, on node 2.
    let (mut a, _) = WsClient::online(ws1, &app.device_token("a", "d").await, 0).await;
    let (mut b, _) = WsClient::online(ws2, &app.device_token("b", "d").await, 0).await;
    let (mut c, _) = WsClient::online(ws2, &app.device_token("c", "d").await, 0).await;
    let (mut late, _) = WsClient::online(ws2, &app.device_token("late", "d").await, 0).await;

    for i in 0..5 {
        a.group_send("big", &format!("a{i}"), &format!("a{i}")).await;
        b.group_send("big", &format!("b{i}"), &format!("b{i}")).await;
    }
    let mut seen_by_c = Vec::new();
    assert!(receive(&mut c, &mut seen_by_c, 10).await);
    let seqs: Vec<u64> = seen_by_c.iter().map(|m| m.group_seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "timeline order, once each: {seqs:?}");
    let mut seen_by_a = Vec::new();
    assert!(receive(&mut a, &mut seen_by_a, 5).await, "a (node 1) gets b's five");

    app.groups(Some("late"))
        .await
        .join_group(gim::proto::logic::v1::JoinGroupRequest { group_id: "big".into(), message: String::new() })
        .await
        .unwrap();
    a.group_send("big", "welcome", "welcome").await;
    let mut seen_by_late = Vec::new();
    assert!(receive(&mut late, &mut seen_by_late, 2).await, "the join event and the next message");
    assert_eq!(seen_by_late.last().map(crate::support::text_of), Some("welcome"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_hear_presence_across_devices_and_connect_nodes() {
    use gim::proto::{
        client::v1::{PresenceEvent, event_push::Event},
        common::v1::DeviceType,
        logic::v1::{IssueTokenRequest, RegisterDeviceRequest},
    };
    let Some(mut cluster) = Cluster::new().await else { return };
    cluster.env.push(("GIM_SOCIAL__PRESENCE_DEBOUNCE_MS".to_owned(), "300".to_owned()));
    let _logic1 = cluster.start_logic().await;
    let _logic2 = cluster.start_logic().await;
    let (_connect1, ws1) = cluster.start_connect().await;
    let (_connect2, ws2) = cluster.start_connect().await;
    let app = cluster.new_app(cluster.logic[1]).await;
    app.user("ann").await;
    app.user("bob").await;
    app.make_friends(&[("ann", "bob")]).await;
    let token = |device: &'static str, kind: DeviceType| {
        let app = app.clone();
        async move {
            let mut business = app.business().await;
            let register = RegisterDeviceRequest {
                user_id: "ann".into(),
                device_id: device.into(),
                r#type: kind as i32,
                ..Default::default()
            };
            business.register_device(register).await.unwrap();
            let issue = IssueTokenRequest { user_id: "ann".into(), device_id: device.into(), ttl_seconds: 0 };
            business.issue_token(issue).await.unwrap().into_inner().token
        }
    };
    let (mut bob, _) = WsClient::online(ws2, &app.device_token("bob", "phone").await, 0).await;
    // Long enough for a killed node's routes to run out and be claimed (see below).
    let mut next = async || match bob.next_event(Duration::from_secs(20)).await {
        Some(Event::Presence(event)) => event,
        other => panic!("expected a presence event, got {other:?}"),
    };

    let phone = WsClient::online(ws1, &token("phone", DeviceType::Ios).await, 0).await.0;
    let ios = DeviceType::Ios as i32;
    assert_eq!(next().await, PresenceEvent { user_id: "ann".into(), online: true, device_types: vec![ios] });
    let desk = WsClient::online(ws2, &token("desk", DeviceType::Desktop).await, 0).await.0;
    assert_eq!(next().await.device_types, [ios, DeviceType::Desktop as i32], "a device on the other node counts");
    drop(phone);
    assert_eq!(next().await.device_types, [DeviceType::Desktop as i32]);
    drop(desk);
    assert_eq!(next().await, PresenceEvent { user_id: "ann".into(), online: false, device_types: vec![] });

    // A connect node killed unseen: its routes run out, a logic node claims it dead and
    // drops them, and Bob hears Ann went offline without any session closing.
    let (mut doomed, ws3, node) = cluster.start_connect_on(None).await;
    let phone = WsClient::online(ws3, &token("phone", DeviceType::Ios).await, 0).await.0;
    assert!(next().await.online);
    doomed.start_kill().expect("SIGKILL a connect node");
    let killed_at = Instant::now();
    let offline = next().await;
    assert!(!offline.online, "{offline:?}");
    // Within the route ttl (6 s), a sweep (2 s) and the settling time, with room to spare.
    assert!(killed_at.elapsed() < Duration::from_secs(12), "{:?}", killed_at.elapsed());
    drop(phone);
    let _ = doomed.wait().await;

    // Killed and started again under the same name before its routes ran out: the new
    // process drops the old routes as it starts, and Bob hears it at once.
    let (mut doomed, ws3, _) = cluster.start_connect_on(Some(node)).await;
    let phone = WsClient::online(ws3, &token("phone", DeviceType::Ios).await, 0).await.0;
    assert!(next().await.online);
    doomed.start_kill().expect("SIGKILL the node again");
    let _ = doomed.wait().await;
    let killed_at = Instant::now();
    drop(phone);
    let (_restarted, _, _) = cluster.start_connect_on(Some(node)).await;
    assert!(!next().await.online);
    assert!(killed_at.elapsed() < Duration::from_secs(5), "before the routes ran out: {:?}", killed_at.elapsed());
}

/// A device's second session on the same connect node replaces the first; the first
/// one's end leaves the second's route alone, so pushes through logic still reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_session_leaves_its_successor_reachable() {
    let Some(mut cluster) = Cluster::new().await else { return };
    let _logic = cluster.start_logic().await;
    let (_connect, ws) = cluster.start_connect().await;
    let app = cluster.new_app(cluster.logic[0]).await;
    app.user("alice").await;
    app.user("bob").await;
    let token = app.device_token("alice", "phone").await;
    let (mut first, _) = WsClient::online(ws, &token, 0).await;
    let (mut second, _) = WsClient::online(ws, &token, 0).await;
    assert_eq!(first.closed().await.0.code, 4002);
    tokio::time::sleep(Duration::from_millis(200)).await; // the first session's end is done
    let (mut bob, _) = WsClient::online(ws, &app.device_token("bob", "phone").await, 0).await;
    bob.send("alice", "after-replace", "still here?").await;
    let pushed = second.next_message(Duration::from_secs(3)).await.expect("the new session gets the push");
    assert_eq!(crate::support::text_of(&pushed), "still here?");
}

/// A logic node holds a presence report for the settling time before it looks; one
/// killed meanwhile loses it, and connect's second report reaches the other node. Logic
/// 1 is killed just after Ann's session opens (here her report goes to it: without the
/// second report Bob hears nothing): Bob hears she came online, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_survives_a_killed_logic_node() {
    use gim::proto::client::v1::event_push::Event;
    let Some(mut cluster) = Cluster::new().await else { return };
    cluster.env.push(("GIM_SOCIAL__PRESENCE_DEBOUNCE_MS".to_owned(), "1000".to_owned()));
    let mut doomed = cluster.start_logic().await;
    let _survivor = cluster.start_logic().await;
    let (_connect, ws) = cluster.start_connect().await;
    let app = cluster.new_app(cluster.logic[1]).await;
    app.user("ann").await;
    app.user("bob").await;
    app.make_friends(&[("ann", "bob")]).await;
    let (mut bob, _) = WsClient::online(ws, &app.device_token("bob", "phone").await, 0).await;
    let ann_token = app.device_token("ann", "phone").await;

    let _ann = WsClient::online(ws, &ann_token, 0).await.0;
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await; // the report is out
    doomed.start_kill().expect("SIGKILL logic 1");
    match bob.next_event(Duration::from_secs(10)).await {
        Some(Event::Presence(event)) => assert!(event.user_id == "ann" && event.online, "{event:?}"),
        other => panic!("expected Ann online, got {other:?}"),
    }
    // The first report settles after 1 s; the second goes out after 2 s and settles 1 s later.
    assert!(
        opened.elapsed() >= Duration::from_millis(2500),
        "Bob heard it after {:?}: the survivor took the first report, so this run did not test the second",
        opened.elapsed()
    );
    // The second look finds nothing new: no second event.
    assert_eq!(bob.next_event(Duration::from_secs(3)).await, None);
}

/// SIGKILL one of two logic nodes while a large group is busy and devices keep opening
/// sessions: connect moves its calls to the other node at once. No session is refused
/// for longer than detection takes, every send succeeds, and every online member device
/// gets every group message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_logic_node_refuses_no_session_and_loses_no_group_push() {
    let Some(mut cluster) = Cluster::new().await else { return };
    cluster.env.push(("GIM_GROUPS__LARGE_THRESHOLD".to_owned(), "2".to_owned()));
    let mut doomed = cluster.start_logic().await;
    let _survivor = cluster.start_logic().await;
    let (_connect1, ws1) = cluster.start_connect().await;
    let (_connect2, ws2) = cluster.start_connect().await;
    let nodes = [ws1, ws2];
    // Business calls go to the node that survives.
    let app = cluster.new_app(cluster.logic[1]).await;
    let members: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    for user in members.iter().map(String::as_str).chain(["sender", "opener"]) {
        app.user(user).await;
    }
    app.groups(Some("sender"))
        .await
        .create_group(gim::proto::logic::v1::CreateGroupRequest {
            group_id: "big".into(),
            name: "big".into(),
            member_ids: members.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut online = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let token = app.device_token(member, "phone").await;
        online.push(WsClient::online(nodes[i % 2], &token, u64::MAX).await.0);
    }
    let opener_tokens: Vec<String> = {
        let mut tokens = Vec::new();
        for i in 0..4 {
            tokens.push(app.device_token("opener", &format!("d{i}")).await);
        }
        tokens
    };

    // Load: the sender sends to the group all along; new sessions open all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender_token = app.device_token("sender", "phone").await;
    let sending = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut sender, _) = WsClient::online(ws1, &sender_token, u64::MAX).await;
            let mut sent = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sent.push(sender.group_send("big", &format!("load-{i}"), "load").await.group_seq);
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sent
        })
    };
    let opening = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut refusals = Vec::new();
            let mut opened = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let token = &opener_tokens[opened % opener_tokens.len()];
                match WsClient::try_online(nodes[opened % 2], token).await {
                    Ok(client) => drop(client),
                    Err(closed) => refusals.push((Instant::now(), closed)),
                }
                opened += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (opened, refusals)
        })
    };

    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed_at = Instant::now();
    doomed.start_kill().expect("SIGKILL a logic node");
    doomed.wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A session opened after the kill reads its large groups from the survivor.
    let late_token = app.device_token("m0", "tablet").await;
    let mut late = WsClient::online(ws2, &late_token, u64::MAX).await.0;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sending.await.expect("every send succeeded (a failed one panics)");
    let (opened, refusals) = opening.await.unwrap();

    assert!(sent.len() > 100, "the group was busy: {} messages", sent.len());
    assert!(opened > 50, "sessions kept opening: {opened}");
    if let (Some(first), Some(last)) = (refusals.first(), refusals.last()) {
        let span = last.0.duration_since(first.0);
        assert!(span <= Duration::from_secs(2), "sessions refused for {span:?} after the kill: {refusals:?}");
        assert!(first.0 >= killed_at, "no refusal before the kill: {refusals:?}");
    }
    let expected: Vec<u64> = sent.clone();
    for (i, client) in online.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < expected.len() {
            match client.next_message(WAIT).await {
                Some(message) => got.push(message.group_seq),
                None => break,
            }
        }
        assert_eq!(got, expected, "member device {i} got every group message once, in order");
    }
    let after_kill: Vec<u64> =
        late.messages_until_quiet(Duration::from_millis(500)).await.iter().map(|m| m.group_seq).collect();
    assert!(!after_kill.is_empty(), "a session opened after the kill gets the group's pushes");
    assert!(after_kill.iter().all(|seq| sent.contains(seq)));
}

/// Webhooks in a cluster: both logic nodes deliver; one is killed while users on both
/// connect nodes keep writing. Every message reaches the receiver, in order per
/// conversation; the survivor takes the dead node's partitions over once their leases lapse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_survive_a_killed_logic_node() {
    use crate::webhooks::{Receiver, add_endpoint, texts_in_lane};
    let Some(mut cluster) = Cluster::new().await else { return };
    for (key, value) in [
        ("GIM_WEBHOOKS__TIMEOUT_SECS", "1"),
        ("GIM_WEBHOOKS__LEASE_SECS", "3"),
        ("GIM_WEBHOOKS__POLL_MS", "100"),
        ("GIM_WEBHOOKS__FIRST_RETRY_MS", "100"),
        ("GIM_SOCIAL__PRESENCE_DEBOUNCE_MS", "200"),
        ("GIM_OUTBOUND__ALLOWED_RANGES", r#"["loopback"]"#),
    ] {
        cluster.env.push((key.to_owned(), value.to_owned()));
    }
    let mut doomed = cluster.start_logic().await;
    let _survivor = cluster.start_logic().await;
    let (_connect1, ws1) = cluster.start_connect().await;
    let (_connect2, ws2) = cluster.start_connect().await;
    let app = cluster.new_app(cluster.logic[1]).await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url(), &["message.created", "user.*"]).await;
    // The other node learns of the endpoint within a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.user("alice").await;
    app.user("bob").await;
    let (mut alice, _) = WsClient::online(ws1, &app.device_token("alice", "phone").await, 0).await;
    let (mut bob, _) = WsClient::online(ws2, &app.device_token("bob", "phone").await, 0).await;
    // (A presence report waits out its settling time on the node that got it; a node
    // killed before then loses it, so the kill comes after.)
    receiver.wait_for("both users online", |r| r.iter().filter(|r| r.kind() == "user.online").count() == 2).await;
    const EACH: usize = 40;
    for i in 0..EACH {
        if i == EACH / 2 {
            doomed.start_kill().expect("SIGKILL a logic node");
            doomed.wait().await.unwrap();
        }
        alice.send("bob", &format!("a{i}"), &format!("a{i}")).await;
        bob.send("alice", &format!("b{i}"), &format!("b{i}")).await;
    }
    receiver
        .wait_for("every message", |r| {
            let ids: std::collections::HashSet<&str> =
                r.iter().filter(|r| r.kind() == "message.created").map(|r| r.id()).collect();
            ids.len() >= 2 * EACH
        })
        .await;
    // At least once: a repeat (same webhook-id) is possible if the kill cut an attempt short.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.accepted();
    let mut seen = std::collections::HashSet::new();
    let first_copies: Vec<_> = received.into_iter().filter(|r| seen.insert(r.id().to_owned())).collect();
    let wanted: Vec<String> = (0..EACH).flat_map(|i| [format!("a{i}"), format!("b{i}")]).collect();
    assert_eq!(texts_in_lane(&first_copies, ("alice", "bob")), wanted, "one lane, in the order written");
    let online: Vec<&str> = first_copies
        .iter()
        .filter(|r| r.kind() == "user.online")
        .map(|r| r.json["data"]["user_id"].as_str().unwrap())
        .collect();
    let mut online = online;
    online.sort_unstable();
    assert_eq!(online, ["alice", "bob"], "each user came online once, whichever node saw it");
}

/// An event broadcast to every device of an app reaches the sessions on every connect node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_and_a_message_to_everyone_reach_every_connect_node() {
    use gim::proto::{client::v1::event_push::Event, logic::v1::BroadcastRequest};
    let Some(mut cluster) = Cluster::new().await else { return };
    let _logic = cluster.start_logic().await;
    let (_connect1, ws1) = cluster.start_connect().await;
    let (_connect2, ws2) = cluster.start_connect().await;
    let app = cluster.new_app(cluster.logic[0]).await;
    app.user("ann").await;
    app.user("ben").await;
    let mut ann = WsClient::online(ws1, &app.device_token("ann", "phone").await, 0).await.0;
    let mut ben = WsClient::online(ws2, &app.device_token("ben", "phone").await, 0).await.0;
    let request = BroadcastRequest { event_kind: "hello-all".into(), ..Default::default() };
    app.business().await.broadcast(request).await.unwrap();
    for session in [&mut ann, &mut ben] {
        let Some(Event::Custom(event)) = session.next_event(WAIT).await else { panic!("no event") };
        assert_eq!(event.kind, "hello-all");
    }
    // A message to every user: stored once, pushed to the sessions of both nodes, and
    // read through either logic node.
    let request =
        BroadcastRequest { body: crate::support::text("welcome"), client_msg_id: "w1".into(), ..Default::default() };
    app.business().await.broadcast(request).await.unwrap();
    for session in [&mut ann, &mut ben] {
        let message = session.next_message(WAIT).await.expect("the announcement");
        assert_eq!((message.receiver_id.as_str(), message.group_seq), (gim::logic::ANNOUNCEMENTS, 1));
        let page = session.sync_group(gim::logic::ANNOUNCEMENTS, 0).await;
        assert_eq!(page.messages.len(), 1);
    }
}

/// A live room with members on both connect nodes: a device's messages (through either
/// logic node) reach every member once, in order; the business's put-in, count and
/// close work across nodes; and a killed connect node takes only its own sessions out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_room_spans_connect_nodes() {
    use gim::proto::{
        client::v1::{client_frame::Payload, response::Result as Reply, server_frame},
        logic::v1::{
            CloseRoomRequest, GetRoomRequest, JoinRoomRequest, PushRoomRequest, RoomEventKind, RoomMemberRequest,
            RoomSendRequest,
        },
    };
    let Some(mut cluster) = Cluster::new().await else { return };
    cluster.env.push(("GIM_ROOMS__REPORT_MS".to_owned(), "100".to_owned()));
    cluster.env.push(("GIM_ROOMS__SESSION_MESSAGES_PER_SECOND".to_owned(), "0".to_owned()));
    let _logic1 = cluster.start_logic().await;
    let _logic2 = cluster.start_logic().await;
    let (_connect1, ws1) = cluster.start_connect().await;
    let (mut connect2, ws2) = cluster.start_connect().await;
    // Members alternate between the nodes: 0 and 2 on node 1, 1 and 3 on node 2.
    let app = cluster.new_app(cluster.logic[1]).await;
    let mut members = Vec::new();
    for (i, node) in [ws1, ws2, ws1, ws2].into_iter().enumerate() {
        let user = format!("fan{i}");
        app.user(&user).await;
        let mut client = WsClient::connect(node, &app.device_token(&user, "phone").await).await;
        let joined =
            client.request(Payload::JoinRoom(JoinRoomRequest { room_id: "match".into(), replay: false })).await;
        assert_eq!(joined.code, 0, "{}", joined.message);
        members.push(client);
    }
    app.user("talker").await;
    let mut talker = WsClient::connect(ws1, &app.device_token("talker", "phone").await).await;
    talker.request(Payload::JoinRoom(JoinRoomRequest { room_id: "match".into(), replay: false })).await;

    let mut business = app.business().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut counted = 0;
    while counted != 5 && tokio::time::Instant::now() < deadline {
        let room = business.get_room(GetRoomRequest { room_id: "match".into() }).await.unwrap().into_inner();
        counted = room.members;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 5, "members on both nodes, counted once each");

    // Room sends reach logic round robin; every member gets each once.
    let say = |n: usize| {
        let body = crate::support::text(&format!("goal {n}"));
        Payload::RoomSend(RoomSendRequest { room_id: "match".into(), client_msg_id: format!("g{n}"), body })
    };
    for n in 1..=20 {
        let sent = talker.request(say(n)).await;
        assert!(matches!(sent.result, Some(Reply::RoomSend(ref s)) if s.seq == n as u64), "{n}: {}", sent.message);
    }
    for member in &mut members {
        let mut seqs = Vec::new();
        while seqs.len() < 20 {
            match member.next_frame(WAIT).await {
                Ok(Some(server_frame::Payload::RoomMessage(message))) => seqs.push(message.seq),
                Ok(Some(_)) => {}
                other => panic!("after {} messages: {other:?}", seqs.len()),
            }
        }
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "each once, in order");
    }

    // The business puts fan1 (on node 2) in a private room and talks to it.
    let put = RoomMemberRequest { room_id: "private:box".into(), user_id: "fan1".into(), ..Default::default() };
    business.join_room(put).await.unwrap();
    let event = loop {
        match members[1].next_frame(WAIT).await {
            Ok(Some(server_frame::Payload::RoomEvent(event))) => break event,
            Ok(Some(_)) => {}
            other => panic!("no room event: {other:?}"),
        }
    };
    assert_eq!((event.room_id.as_str(), event.kind()), ("private:box", RoomEventKind::Joined));

    // Node 2 dies: node 1's members still get the room's messages.
    connect2.kill().await.unwrap();
    let push =
        PushRoomRequest { room_id: "match".into(), body: crate::support::text("half time"), ..Default::default() };
    assert_eq!(business.push_room(push).await.unwrap().into_inner().seq, 21);
    for member in members.iter_mut().step_by(2) {
        let seq = loop {
            match member.next_frame(WAIT).await {
                Ok(Some(server_frame::Payload::RoomMessage(message))) => break message.seq,
                Ok(Some(_)) => {}
                other => panic!("no message after the kill: {other:?}"),
            }
        };
        assert_eq!(seq, 21);
    }

    // Closing reaches the members left.
    business.close_room(CloseRoomRequest { room_id: "match".into(), reason: "full time".into() }).await.unwrap();
    for member in members.iter_mut().step_by(2).chain([&mut talker]) {
        let event = loop {
            match member.next_frame(WAIT).await {
                Ok(Some(server_frame::Payload::RoomEvent(event))) => break event,
                Ok(Some(_)) => {}
                other => panic!("no close: {other:?}"),
            }
        };
        assert_eq!((event.kind(), event.reason.as_str()), (RoomEventKind::Closed, "full time"));
    }
}

/// A connect node told a wrong address for logic's internal API (the trap of a recipe
/// that leaves `connect.logic_internal_addrs` out while logic listens elsewhere) cannot
/// report sessions, so presence events would never fire: it says it is not ready, and
/// why, for as long as that lasts, and is ready once a logic node answers there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_node_that_reaches_no_logic_internal_api_is_not_ready_and_says_why_until_it_does() {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, BufReader};
    use tonic_health::pb::health_check_response::ServingStatus;

    let Some(mut cluster) = Cluster::new().await else { return };
    let _logic = cluster.start_logic().await;
    let nowhere = free_addr();
    let (ws, internal) = (free_addr(), free_addr());
    let mut connect = cluster
        .prepare(
            "connect",
            &[
                ("GIM_CONNECT__LISTEN", ws.to_string()),
                ("GIM_CONNECT__INTERNAL_LISTEN", internal.to_string()),
                ("GIM_CONNECT__LOGIC_ADDRS", list(&cluster.logic)),
                ("GIM_CONNECT__LOGIC_INTERNAL_ADDRS", list(&[nowhere])),
                ("GIM_TELEMETRY__LOG_FILTER", "info".to_owned()),
                ("NO_COLOR", "1".to_owned()),
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting gim connect");
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut lines = BufReader::new(connect.stdout.take().unwrap()).lines();
    let kept = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    let complaints = || {
        let log = log.lock().unwrap();
        log.iter().filter(|line| line.contains("ERROR") && line.contains("connect.logic_internal_addrs")).count()
    };
    let health = async || -> Option<i32> {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{internal}")).unwrap().connect().await.ok()?;
        let reply = HealthClient::new(channel).check(HealthCheckRequest::default()).await.ok()?;
        Some(reply.into_inner().status)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let wait_for = async |what: &str, done: &mut dyn FnMut(Option<i32>) -> bool| loop {
        if done(health().await) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}; the node logged: {:#?}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // `gim health`, as the README's recipe asks it, exits 1 unless the node is ready.
    let gim_health = async || {
        let output = Command::new(env!("CARGO_BIN_EXE_gim"))
            .args(["health", "--server", &format!("http://{internal}")])
            .env_clear()
            .output()
            .await
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };

    wait_for("health says NOT_SERVING", &mut |status| status == Some(ServingStatus::NotServing as i32)).await;
    assert_eq!(gim_health().await, (false, "NOT_SERVING".to_owned()));
    wait_for("the error, repeated", &mut |status| {
        assert_eq!(status, Some(ServingStatus::NotServing as i32), "not ready while it lasts");
        complaints() >= 2
    })
    .await;

    // A logic node comes up where the connect node looks: it is ready, and says so.
    let _found = cluster.start_logic_on(Some(nowhere)).await;
    wait_for("health says SERVING", &mut |status| status == Some(ServingStatus::Serving as i32)).await;
    assert_eq!(gim_health().await, (true, "SERVING".to_owned()));
    let log = log.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    let recovered = "answers again at the addresses of connect.logic_internal_addrs";
    while !log.lock().unwrap().iter().any(|line| line.contains(recovered)) {
        assert!(Instant::now() < deadline, "no word of the recovery: {:#?}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// README.md's cluster recipe, run as written by scripts/cluster-recipe.sh: its commands,
/// in namespaces of their own where the recipe's addresses are this machine's, with a
/// private MariaDB and Redis where the recipe puts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_recipe_of_the_readme_works_as_written() {
    if recipe_cannot_run() {
        return;
    }
    let run = Command::new("bash")
        .arg("scripts/cluster-recipe.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIM_BIN", env!("CARGO_BIN_EXE_gim"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run).await.expect("the recipe ends").unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Whether this machine lacks what scripts/cluster-recipe.sh needs; says what, once.
fn recipe_cannot_run() -> bool {
    use std::io::Write as _;
    let on_path = |tool: &str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
    };
    let tools = ["unshare", "ip", "mariadbd", "mariadb-install-db", "mysql", "redis-server", "redis-cli"];
    let mut missing: Vec<&str> = tools.into_iter().filter(|tool| !on_path(tool)).collect();
    if missing.is_empty() {
        // As the script makes them.
        let namespaces = "as_root=(); ((EUID == 0)) || as_root=(--map-root-user); \
                          exec unshare --net --mount --pid --fork \"${as_root[@]}\" true";
        let probe =
            std::process::Command::new("bash").args(["-c", namespaces]).stderr(std::process::Stdio::null()).status();
        if !probe.is_ok_and(|status| status.success()) {
            missing.push("namespaces (root, or unprivileged user namespaces)");
        }
    }
    if missing.is_empty() {
        return false;
    }
    let _ =
        writeln!(std::io::stderr(), "skipping the cluster recipe's test: this machine lacks {}", missing.join(", "));
    true
}
