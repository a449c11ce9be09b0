//! Group messages over real WebSockets, in both fan-out modes: every member device gets
//! each message once and in the group's order; removal and joining take effect at once;
//! an offline device catches up.

use std::time::Duration;

use gim::proto::{
    common::v1::Message,
    logic::v1::{CreateGroupRequest, GroupSendRequest, JoinGroupRequest, JoinPolicy, MembersRequest},
};

use crate::{
    both_stores,
    support::{Backend, ServeServer, TestApp, text, text_of},
    ws::{WAIT, WsClient},
};

both_stores!(
    small_group_messages_reach_every_device_once_in_order,
    large_group_messages_reach_every_device_once_in_order,
    large_group_pushes_that_never_came_are_read_and_a_missed_removal_stops_them,
);

const QUIET: Duration = Duration::from_millis(300);

async fn small_group_messages_reach_every_device_once_in_order(backend: Backend) {
    group_messages_reach_every_device_once_in_order(backend, false).await;
}

async fn large_group_messages_reach_every_device_once_in_order(backend: Backend) {
    group_messages_reach_every_device_once_in_order(backend, true).await;
}

/// The seq a device orders this message by: the inbox seq (small group) or the
/// timeline seq (large group).
fn order_seq(message: &Message, large: bool) -> u64 {
    if large { message.group_seq } else { message.seq }
}

/// Group text messages among pushes (events left out), checked to be in order with no
/// repeat, and with no gap unless the device sent messages itself (those come back in
/// its send responses).
fn group_texts(messages: &[Message], large: bool, sent_some: bool) -> Vec<String> {
    let seqs: Vec<u64> = messages.iter().map(|m| order_seq(m, large)).collect();
    let ordered = seqs.windows(2).all(|w| if sent_some { w[1] > w[0] } else { w[1] == w[0] + 1 });
    assert!(ordered, "pushes in order without gaps or repeats: {seqs:?}");
    messages.iter().filter(|m| m.receiver_id == "g").map(text_of).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

async fn online(server: &ServeServer, app: &TestApp, user: &str, device: &str) -> WsClient {
    let token = app.device_token(user, device).await;
    WsClient::online(server.ws_addr(), &token, 0).await.0
}

async fn group_messages_reach_every_device_once_in_order(backend: Backend, large: bool) {
    let threshold = if large { 2 } else { 100 };
    let server = ServeServer::start_with(backend, |config| {
        config.groups.large_threshold = threshold;
        config.connect.max_frames_per_second = 10_000;
    })
    .await;
    let app = server.new_app().await;
    for user in ["a", "b", "c", "d"] {
        app.user(user).await;
    }
    let created = app
        .groups(Some("a"))
        .await
        .create_group(CreateGroupRequest {
            group_id: "g".into(),
            name: "g".into(),
            join_policy: JoinPolicy::Free as i32,
            member_ids: vec!["b".into(), "c".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.large, large);

    let mut a1 = online(&server, &app, "a", "a1").await;
    let mut a2 = online(&server, &app, "a", "a2").await;
    let mut b1 = online(&server, &app, "b", "b1").await;
    let mut b2 = online(&server, &app, "b", "b2").await;
    let mut c1 = online(&server, &app, "c", "c1").await;
    let mut d1 = online(&server, &app, "d", "d1").await;

    for i in 0..5 {
        a1.group_send("g", &format!("a{i}"), &format!("a{i}")).await;
        b2.group_send("g", &format!("b{i}"), &format!("b{i}")).await;
    }
    let all: Vec<String> = (0..5).flat_map(|i| [format!("a{i}"), format!("b{i}")]).collect();
    let without = |prefix: &str| all.iter().filter(|t| !t.starts_with(prefix)).cloned().collect::<Vec<_>>();
    assert_eq!(
        group_texts(&a1.messages_until_quiet(QUIET).await, large, true),
        without("a"),
        "a1 gets b's, not its own"
    );
    assert_eq!(group_texts(&a2.messages_until_quiet(QUIET).await, large, false), all, "a's other device gets all");
    assert_eq!(group_texts(&b1.messages_until_quiet(QUIET).await, large, false), all);
    assert_eq!(group_texts(&b2.messages_until_quiet(QUIET).await, large, true), without("b"));
    assert_eq!(group_texts(&c1.messages_until_quiet(QUIET).await, large, false), all);
    assert!(d1.messages_until_quiet(QUIET).await.is_empty(), "a non-member gets nothing");

    // c is removed and d joins: the next message reaches d, not c.
    let mut groups = app.groups(Some("a")).await;
    groups.remove_members(MembersRequest { group_id: "g".into(), user_ids: vec!["c".into()] }).await.unwrap();
    app.groups(Some("d"))
        .await
        .join_group(JoinGroupRequest { group_id: "g".into(), message: String::new() })
        .await
        .unwrap();
    // b2 goes offline meanwhile.
    let held = b2.messages_until_quiet(QUIET).await;
    drop(b2);
    a1.group_send("g", "after", "after the change").await;
    a1.group_send("g", "after2", "and again").await;

    let c_after = c1.messages_until_quiet(QUIET).await;
    assert!(c_after.iter().all(|m| text_of(m).is_empty()), "a removed member gets no message: {c_after:?}");
    let d_after = d1.messages_until_quiet(QUIET).await;
    let d_texts: Vec<&str> = d_after.iter().map(text_of).filter(|t| !t.is_empty()).collect();
    assert_eq!(d_texts, ["after the change", "and again"], "a new member gets what follows its join");

    // b2 comes back and catches up from what it held: once, in order.
    let last = held.last().map(|m| order_seq(m, large));
    let token = app.device_token("b", "b2").await;
    let (mut b2, synced) = WsClient::online(server.ws_addr(), &token, if large { 0 } else { last.unwrap_or(0) }).await;
    let caught_up = if large { b2.sync_group("g", last.unwrap_or_default()).await.messages } else { synced };
    let texts: Vec<&str> = caught_up.iter().map(text_of).filter(|t| !t.is_empty()).collect();
    assert_eq!(texts.last().copied(), Some("and again"));
    assert!(texts.contains(&"after the change"));
    a1.group_send("g", "live", "live again").await;
    let live = b2.next_message(WAIT).await.expect("a push after catching up");
    assert_eq!(text_of(&live), "live again");
    assert_eq!(order_seq(&live, large), order_seq(caught_up.last().unwrap(), large) + 1, "no gap, no repeat");
}

async fn large_group_pushes_that_never_came_are_read_and_a_missed_removal_stops_them(backend: Backend) {
    let server = ServeServer::start_with(backend, |config| {
        config.groups.large_threshold = 2;
        config.limits.default_page_size = 2;
    })
    .await;
    let app = server.new_app().await;
    for user in ["a", "b", "c"] {
        app.user(user).await;
    }
    let request = CreateGroupRequest {
        group_id: "g".into(),
        name: "g".into(),
        join_policy: JoinPolicy::Free as i32,
        member_ids: vec!["b".into(), "c".into()],
        ..Default::default()
    };
    assert!(app.groups(Some("a")).await.create_group(request).await.unwrap().into_inner().large);
    let mut a1 = online(&server, &app, "a", "a1").await;
    let mut b1 = online(&server, &app, "b", "b1").await;
    a1.group_send("g", "first", "first").await;
    let first = b1.next_message(WAIT).await.expect("the first push");

    // Three messages go through a node whose pushes reach no session.
    let pushless = server.pushless_node().await;
    let there = TestApp { addr: pushless.addr(), ..app.clone() };
    let mut a_there = there.groups(Some("a")).await;
    for i in 0..3 {
        let request = GroupSendRequest {
            group_id: "g".into(),
            client_msg_id: format!("lost{i}"),
            body: text(&format!("lost {i}")),
            reply_to_message_id: 0,
        };
        a_there.send_message(request).await.unwrap();
    }
    assert!(b1.next_message(QUIET).await.is_none(), "those three were never pushed");

    // The next push is past what b1's session wrote: it reads the timeline first.
    a1.group_send("g", "pushed", "pushed").await;
    let pushed = b1.messages_until_quiet(QUIET).await;
    let seqs: Vec<u64> = pushed.iter().map(|m| m.group_seq).collect();
    assert_eq!(seqs, (first.group_seq + 1..=first.group_seq + 4).collect::<Vec<_>>(), "{pushed:?}");
    assert_eq!(pushed.iter().map(text_of).collect::<Vec<_>>(), ["lost 0", "lost 1", "lost 2", "pushed"]);

    // b is removed through that node, so this one never hears of it: its next push for
    // b1 finds b no longer a member, and b1 gets no message of the group again.
    let request = MembersRequest { group_id: "g".into(), user_ids: vec!["b".into()] };
    a_there.remove_members(request).await.unwrap();
    a1.group_send("g", "after", "after the removal").await;
    a1.group_send("g", "after2", "and again").await;
    let after = b1.messages_until_quiet(QUIET).await;
    assert!(after.iter().all(|m| m.receiver_id != "g"), "a removed member gets nothing of the group: {after:?}");
    // One check per push that came (the second may already have been queued).
    assert!((2..=3).contains(&server.process.metrics().session_catch_ups.get()));

    // b joins again: pushes flow again, from the join on.
    let request = JoinGroupRequest { group_id: "g".into(), message: String::new() };
    app.groups(Some("b")).await.join_group(request).await.unwrap();
    a1.group_send("g", "back", "welcome back").await;
    let back = b1.messages_until_quiet(QUIET).await;
    let texts: Vec<&str> = back.iter().map(text_of).filter(|t| !t.is_empty()).collect();
    assert_eq!(texts, ["welcome back"], "{back:?}");
}
