//! Groups over the gRPC API: lifecycle, policies, roles, mutes, events, and messages in
//! both fan-out modes, on both stores.

use gim::proto::{
    common::v1::{ConversationType, Message, SystemBody, message_body::Content},
    logic::v1::{
        BusinessSyncRequest, CreateGroupRequest, GroupHistoryRequest, GroupRef, GroupRole, GroupSendRequest,
        JoinGroupRequest, JoinPolicy, ListMembersRequest, ListMyGroupsRequest, MembersRequest, MuteMemberRequest,
        ReviewJoinRequest, SetNicknameRequest, SetRoleRequest, SyncGroupRequest, TransferOwnershipRequest,
        UpdateGroupRequest,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Intercepted, TestApp, TestServer, code, events, text, text_of},
};

type Groups = gim::proto::logic::v1::groups_client::GroupsClient<Intercepted>;

both_stores!(
    a_group_is_created_updated_listed_and_dismissed,
    join_policies_decide_who_gets_in,
    roles_decide_who_may_do_what,
    mutes_silence_a_member_or_everyone_but_admins,
    a_small_group_writes_every_message_to_every_member_inbox,
    a_large_group_keeps_one_timeline_that_members_read_from_their_join,
    a_group_crossing_the_threshold_loses_and_repeats_nothing,
    member_limits_and_mentions_are_enforced,
    a_conversation_keeps_one_order_when_node_clocks_disagree,
);

async fn send(client: &mut Groups, group: &str, id: &str, body: &str) -> Result<(u64, u64), Code> {
    let request =
        GroupSendRequest { group_id: group.into(), client_msg_id: id.into(), body: text(body), reply_to_message_id: 0 };
    client.send_message(request).await.map(|r| (r.get_ref().seq, r.get_ref().group_seq)).map_err(|s| s.code())
}

async fn history(client: &mut Groups, group: &str) -> Vec<Message> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .get_history(GroupHistoryRequest { group_id: group.into(), page_token: token.clone(), limit: 3 })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.messages);
        if page.next_page_token.is_empty() {
            all.reverse();
            return all;
        }
        token = page.next_page_token;
    }
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(text_of).filter(|t| !t.is_empty()).collect()
}

async fn inbox(app: &TestApp, user: &str) -> Vec<Message> {
    app.business()
        .await
        .sync(BusinessSyncRequest { user_id: user.into(), after_seq: 0, limit: 200 })
        .await
        .unwrap()
        .into_inner()
        .messages
}

fn create(group: &str, members: &[&str], policy: JoinPolicy) -> CreateGroupRequest {
    CreateGroupRequest {
        group_id: group.into(),
        name: format!("group {group}"),
        join_policy: policy as i32,
        member_ids: members.iter().map(|m| (*m).to_owned()).collect(),
        ..Default::default()
    }
}

async fn a_group_is_created_updated_listed_and_dismissed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut clients = app.group_users(&["owner", "bob", "carol"]).await;
    let (owner, rest) = clients.split_first_mut().unwrap();
    let bob = &mut rest[0];

    let created = owner.create_group(create("g1", &["bob", "carol"], JoinPolicy::Free)).await.unwrap().into_inner();
    assert_eq!((created.owner_id.as_str(), created.member_count, created.large), ("owner", 3, false));
    let again = owner.create_group(create("g1", &[], JoinPolicy::Free)).await;
    assert_eq!(code(again), Code::AlreadyExists);
    let missing = owner.create_group(create("g2", &["ghost"], JoinPolicy::Free)).await;
    assert_eq!(code(missing), Code::NotFound, "members must exist");

    let by_member = bob
        .update_group(UpdateGroupRequest { group_id: "g1".into(), name: Some("mine".into()), ..Default::default() })
        .await;
    assert_eq!(code(by_member), Code::PermissionDenied);
    let updated = owner
        .update_group(UpdateGroupRequest {
            group_id: "g1".into(),
            name: Some("Renamed".into()),
            introduction: Some("hello".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((updated.name.as_str(), updated.introduction.as_str()), ("Renamed", "hello"));
    assert_eq!(updated.join_policy, JoinPolicy::Free as i32, "fields not set stay");

    let mine = bob.list_my_groups(ListMyGroupsRequest { after_group_id: String::new(), limit: 10 }).await.unwrap();
    assert_eq!(mine.into_inner().groups.iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(), ["g1"]);
    let page = bob
        .list_members(ListMembersRequest { group_id: "g1".into(), after_user_id: String::new(), limit: 2 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.members.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(), ["bob", "carol"]);
    assert!(page.has_more);

    assert_eq!(code(bob.dismiss_group(GroupRef { group_id: "g1".into() }).await), Code::PermissionDenied);
    send(owner, "g1", "before", "last words").await.unwrap();
    owner.dismiss_group(GroupRef { group_id: "g1".into() }).await.unwrap();
    assert_eq!(send(owner, "g1", "after", "too late").await, Err(Code::FailedPrecondition));
    let gone = owner.get_group(GroupRef { group_id: "g1".into() }).await.unwrap().into_inner();
    assert!(gone.dismissed);
    assert_eq!(gone.member_count, 0);
    let bob_inbox = inbox(&app, "bob").await;
    assert_eq!(events(&bob_inbox), ["group.created", "group.updated", "group.dismissed"]);
    assert_eq!(texts(&bob_inbox), ["last words"]);
    assert_eq!(
        code(bob.list_members(ListMembersRequest { group_id: "g1".into(), ..Default::default() }).await),
        Code::PermissionDenied
    );
}

async fn join_policies_decide_who_gets_in(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut c = app.group_users(&["owner", "ann", "ben", "cat", "dan"]).await;
    c[0].create_group(create("free", &[], JoinPolicy::Free)).await.unwrap();
    c[0].create_group(create("gated", &[], JoinPolicy::Approval)).await.unwrap();
    c[0].create_group(create("closed", &["ann"], JoinPolicy::InviteOnly)).await.unwrap();

    let joined = c[1].join_group(JoinGroupRequest { group_id: "free".into(), message: String::new() }).await.unwrap();
    assert!(joined.into_inner().joined);
    // Any member may bring people into a free group.
    let invited = c[1].invite_members(MembersRequest { group_id: "free".into(), user_ids: vec!["ben".into()] }).await;
    assert_eq!(invited.unwrap().into_inner().user_ids, ["ben"]);

    let asked =
        c[2].join_group(JoinGroupRequest { group_id: "gated".into(), message: "let me in".into() }).await.unwrap();
    assert!(!asked.into_inner().joined);
    c[3].join_group(JoinGroupRequest { group_id: "gated".into(), message: String::new() }).await.unwrap();
    let requests = c[0].list_join_requests(GroupRef { group_id: "gated".into() }).await.unwrap().into_inner().requests;
    assert_eq!(
        requests.iter().map(|r| (r.user_id.as_str(), r.message.as_str())).collect::<Vec<_>>(),
        [("ben", "let me in"), ("cat", "")]
    );
    assert_eq!(code(c[2].list_join_requests(GroupRef { group_id: "gated".into() }).await), Code::PermissionDenied);
    c[0].review_join(ReviewJoinRequest { group_id: "gated".into(), user_id: "ben".into(), approve: true })
        .await
        .unwrap();
    c[0].review_join(ReviewJoinRequest { group_id: "gated".into(), user_id: "cat".into(), approve: false })
        .await
        .unwrap();
    let again =
        c[0].review_join(ReviewJoinRequest { group_id: "gated".into(), user_id: "cat".into(), approve: true }).await;
    assert_eq!(code(again), Code::NotFound, "a rejected request is gone");
    let members =
        c[0].list_members(ListMembersRequest { group_id: "gated".into(), ..Default::default() }).await.unwrap();
    assert_eq!(members.into_inner().members.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(), ["ben", "owner"]);

    let refused = c[4].join_group(JoinGroupRequest { group_id: "closed".into(), message: String::new() }).await;
    assert_eq!(code(refused), Code::PermissionDenied);
    let by_member =
        c[1].invite_members(MembersRequest { group_id: "closed".into(), user_ids: vec!["dan".into()] }).await;
    assert_eq!(code(by_member), Code::PermissionDenied, "members do not invite into an invite-only group");
    // The business can act as the app, above every role.
    app.groups(None)
        .await
        .invite_members(MembersRequest { group_id: "closed".into(), user_ids: vec!["dan".into()] })
        .await
        .unwrap();
    assert_eq!(send(&mut c[4], "closed", "hi", "thanks").await.map(|r| r.0 > 0), Ok(true));
}

async fn roles_decide_who_may_do_what(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut c = app.group_users(&["owner", "adm", "m1", "m2"]).await;
    c[0].create_group(create("g", &["adm", "m1", "m2"], JoinPolicy::InviteOnly)).await.unwrap();

    let set_role =
        |user: &str, role: GroupRole| SetRoleRequest { group_id: "g".into(), user_id: user.into(), role: role as i32 };
    assert_eq!(
        code(c[1].set_role(set_role("m1", GroupRole::Admin)).await),
        Code::PermissionDenied,
        "only the owner names admins"
    );
    c[0].set_role(set_role("adm", GroupRole::Admin)).await.unwrap();
    assert_eq!(code(c[0].set_role(set_role("owner", GroupRole::Member)).await), Code::FailedPrecondition);

    let remove = |users: &[&str]| MembersRequest {
        group_id: "g".into(),
        user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
    };
    assert_eq!(code(c[2].remove_members(remove(&["m2"])).await), Code::PermissionDenied);
    assert_eq!(code(c[1].remove_members(remove(&["owner"])).await), Code::FailedPrecondition);
    c[1].remove_members(remove(&["m2"])).await.unwrap();
    c[0].set_role(set_role("m1", GroupRole::Admin)).await.unwrap();
    assert_eq!(code(c[1].remove_members(remove(&["m1"])).await), Code::PermissionDenied, "admins do not remove admins");

    let nick =
        c[2].set_nickname(SetNicknameRequest { group_id: "g".into(), user_id: "adm".into(), nickname: "boss".into() });
    assert_eq!(code(nick.await), Code::Ok, "m1 is an admin now and may rename others");
    assert_eq!(code(c[0].leave_group(GroupRef { group_id: "g".into() }).await), Code::FailedPrecondition);
    c[0].transfer_ownership(TransferOwnershipRequest { group_id: "g".into(), new_owner_id: "adm".into() })
        .await
        .unwrap();
    let group = c[1].get_group(GroupRef { group_id: "g".into() }).await.unwrap().into_inner();
    assert_eq!(group.owner_id, "adm");
    c[0].leave_group(GroupRef { group_id: "g".into() }).await.unwrap();
    let members = c[1].list_members(ListMembersRequest { group_id: "g".into(), ..Default::default() }).await.unwrap();
    let roles: Vec<(String, i32, String)> =
        members.into_inner().members.into_iter().map(|m| (m.user_id, m.role, m.nickname)).collect();
    assert_eq!(
        roles,
        [
            ("adm".to_owned(), GroupRole::Owner as i32, "boss".to_owned()),
            ("m1".to_owned(), GroupRole::Admin as i32, String::new())
        ]
    );
    let all_events = events(&history(&mut c[1], "g").await);
    assert_eq!(
        all_events,
        [
            "group.created",
            "group.role_changed",
            "group.members_removed",
            "group.role_changed",
            "group.nickname_changed",
            "group.owner_changed",
            "group.member_left",
        ]
    );
}

async fn mutes_silence_a_member_or_everyone_but_admins(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut c = app.group_users(&["owner", "loud", "quiet"]).await;
    c[0].create_group(create("g", &["loud", "quiet"], JoinPolicy::Free)).await.unwrap();

    c[0].mute_member(MuteMemberRequest { group_id: "g".into(), user_id: "loud".into(), duration_seconds: 600 })
        .await
        .unwrap();
    assert_eq!(send(&mut c[1], "g", "m1", "can I speak?").await, Err(Code::PermissionDenied));
    assert!(send(&mut c[2], "g", "m2", "I can").await.is_ok());
    c[0].mute_member(MuteMemberRequest { group_id: "g".into(), user_id: "loud".into(), duration_seconds: 0 })
        .await
        .unwrap();
    assert!(send(&mut c[1], "g", "m3", "back").await.is_ok());
    let mute_owner =
        c[1].mute_member(MuteMemberRequest { group_id: "g".into(), user_id: "owner".into(), duration_seconds: 60 });
    assert_eq!(code(mute_owner.await), Code::PermissionDenied);

    c[0].update_group(UpdateGroupRequest { group_id: "g".into(), muted_all: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(send(&mut c[2], "g", "m4", "hello?").await, Err(Code::PermissionDenied));
    assert!(send(&mut c[0], "g", "m5", "announcement").await.is_ok(), "the owner still speaks");
    let loud = inbox(&app, "loud").await;
    assert_eq!(texts(&loud), ["I can", "back", "announcement"]);
    assert_eq!(
        events(&loud),
        ["group.created", "group.member_muted", "group.member_unmuted", "group.muted_all"],
        "each change is in the conversation"
    );
    let SystemBody { target_user_ids, actor_user_id, .. } = loud
        .iter()
        .find_map(|m| match m.body.as_ref().and_then(|b| b.content.clone()) {
            Some(Content::System(system)) if system.event == "group.member_muted" => Some(system),
            _ => None,
        })
        .unwrap();
    assert_eq!((actor_user_id.as_str(), target_user_ids), ("owner", vec!["loud".to_owned()]));
}

async fn a_small_group_writes_every_message_to_every_member_inbox(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut c = app.group_users(&["a", "b", "c", "outsider"]).await;
    c[0].create_group(create("g", &["b", "c"], JoinPolicy::Free)).await.unwrap();

    let (seq, group_seq) = send(&mut c[1], "g", "m1", "one").await.unwrap();
    assert!(seq > 0 && group_seq == 0, "a small group's message is in the sender's inbox");
    assert_eq!(send(&mut c[3], "g", "x", "let me in").await, Err(Code::PermissionDenied));
    assert_eq!(send(&mut c[1], "g", "m1", "one").await.unwrap().0, seq, "a repeat returns the first result");
    c[0].remove_members(MembersRequest { group_id: "g".into(), user_ids: vec!["c".into()] }).await.unwrap();
    send(&mut c[0], "g", "m2", "two").await.unwrap();
    c[3].join_group(JoinGroupRequest { group_id: "g".into(), message: String::new() }).await.unwrap();
    send(&mut c[0], "g", "m3", "three").await.unwrap();

    for (user, expected) in [
        ("a", vec!["one", "two", "three"]),
        ("b", vec!["one", "two", "three"]),
        ("c", vec!["one"]),
        ("outsider", vec!["three"]),
    ] {
        let messages = inbox(&app, user).await;
        assert_eq!(texts(&messages), expected, "{user}'s inbox");
        assert!(messages.iter().all(|m| m.conversation_type == ConversationType::Group as i32 && m.receiver_id == "g"));
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{user}: gap-free seqs");
    }
    assert_eq!(
        events(&inbox(&app, "c").await),
        ["group.created", "group.members_removed"],
        "c hears it was removed, then nothing"
    );
    // A late joiner's history starts at the join, unless the group shows its history.
    assert_eq!(texts(&history(&mut c[3], "g").await), ["three"]);
    c[0].update_group(UpdateGroupRequest { group_id: "g".into(), history_visible: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(texts(&history(&mut c[3], "g").await), ["one", "two", "three"]);
}

async fn a_large_group_keeps_one_timeline_that_members_read_from_their_join(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 3).await;
    let app = server.new_app().await;
    let mut c = app.group_users(&["a", "b", "c", "d", "late"]).await;
    let created = c[0].create_group(create("big", &["b", "c", "d"], JoinPolicy::Free)).await.unwrap().into_inner();
    assert!(created.large, "4 members is past a threshold of 3");

    let (seq, first) = send(&mut c[1], "big", "m1", "one").await.unwrap();
    assert_eq!(seq, 0, "nothing in the sender's inbox");
    let (_, second) = send(&mut c[2], "big", "m2", "two").await.unwrap();
    assert_eq!(second, first + 1, "timeline seqs follow each other");
    assert!(inbox(&app, "d").await.iter().all(|m| text_of(m).is_empty()), "members' inboxes hold no timeline message");

    let synced = c[3]
        .sync_group(SyncGroupRequest { group_id: "big".into(), after_group_seq: 0, limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(texts(&synced.messages), ["one", "two"]);
    assert_eq!(synced.latest_seq, second);
    let seqs: Vec<u64> = synced.messages.iter().map(|m| m.group_seq).collect();
    assert_eq!(seqs, (1..=second).collect::<Vec<_>>(), "the creation event takes seq 1: {seqs:?}");
    let state = app
        .business()
        .await
        .sync(BusinessSyncRequest { user_id: "d".into(), after_seq: 0, limit: 10 })
        .await
        .unwrap()
        .into_inner()
        .large_groups;
    assert_eq!(state.iter().map(|g| (g.group_id.as_str(), g.latest_group_seq)).collect::<Vec<_>>(), [("big", second)]);

    c[4].join_group(JoinGroupRequest { group_id: "big".into(), message: String::new() }).await.unwrap();
    send(&mut c[0], "big", "m3", "three").await.unwrap();
    let late = c[4]
        .sync_group(SyncGroupRequest { group_id: "big".into(), after_group_seq: 0, limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(texts(&late.messages), ["three"], "a late joiner reads from its join");
    assert_eq!(events(&late.messages), ["group.member_joined"]);

    c[0].remove_members(MembersRequest { group_id: "big".into(), user_ids: vec!["d".into()] }).await.unwrap();
    let removed = c[3].sync_group(SyncGroupRequest { group_id: "big".into(), after_group_seq: 0, limit: 10 }).await;
    assert_eq!(code(removed), Code::PermissionDenied);
    assert_eq!(
        events(&inbox(&app, "d").await),
        ["group.members_removed"],
        "the removed member hears of it in its inbox"
    );
    assert_eq!(texts(&history(&mut c[0], "big").await), ["one", "two", "three"]);
}

async fn a_group_crossing_the_threshold_loses_and_repeats_nothing(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 3).await;
    let app = server.new_app().await;
    let mut c = app.group_users(&["a", "b", "c", "d"]).await;
    c[0].create_group(create("g", &["b"], JoinPolicy::Free)).await.unwrap();
    send(&mut c[0], "g", "m1", "small 1").await.unwrap();
    send(&mut c[1], "g", "m2", "small 2").await.unwrap();
    let grown =
        c[0].invite_members(MembersRequest { group_id: "g".into(), user_ids: vec!["c".into(), "d".into()] }).await;
    assert_eq!(grown.unwrap().into_inner().user_ids, ["c", "d"]);
    assert!(c[0].get_group(GroupRef { group_id: "g".into() }).await.unwrap().into_inner().large);
    let (seq, group_seq) = send(&mut c[1], "g", "m3", "large 1").await.unwrap();
    assert_eq!(seq, 0);
    assert!(group_seq > 0);
    send(&mut c[0], "g", "m4", "large 2").await.unwrap();

    // b reads the small part in its inbox and the rest on the timeline: each once.
    let inbox_part = inbox(&app, "b").await;
    let timeline = c[1]
        .sync_group(SyncGroupRequest { group_id: "g".into(), after_group_seq: 0, limit: 50 })
        .await
        .unwrap()
        .into_inner();
    let mut seen: Vec<&str> = texts(&inbox_part);
    seen.extend(texts(&timeline.messages));
    assert_eq!(seen, ["small 1", "small 2", "large 1", "large 2"]);
    let mut ids: Vec<u64> = inbox_part.iter().chain(&timeline.messages).map(|m| m.id).collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "no message in both places");
    assert_eq!(texts(&history(&mut c[1], "g").await), ["small 1", "small 2", "large 1", "large 2"]);
}

async fn member_limits_and_mentions_are_enforced(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.max_members = 3).await;
    let app = server.new_app().await;
    let mut c = app.group_users(&["owner", "a", "b", "c"]).await;
    c[0].create_group(create("g", &["a"], JoinPolicy::Free)).await.unwrap();
    let full =
        c[0].invite_members(MembersRequest { group_id: "g".into(), user_ids: vec!["b".into(), "c".into()] }).await;
    assert_eq!(code(full), Code::ResourceExhausted, "3 members at most");
    let members = c[0].list_members(ListMembersRequest { group_id: "g".into(), ..Default::default() }).await.unwrap();
    assert_eq!(members.into_inner().members.len(), 2, "a refused invitation adds nobody");
    c[2].join_group(JoinGroupRequest { group_id: "g".into(), message: String::new() }).await.unwrap();
    let late = c[3].join_group(JoinGroupRequest { group_id: "g".into(), message: String::new() }).await;
    assert_eq!(code(late), Code::ResourceExhausted);

    let mention = |all: bool| {
        Some(gim::proto::common::v1::MessageBody {
            content: Some(Content::Text(gim::proto::common::v1::TextBody {
                text: "look".into(),
                mention_user_ids: vec!["b".into()],
                mention_all: all,
            })),
        })
    };
    let everyone = c[1].send_message(GroupSendRequest {
        group_id: "g".into(),
        client_msg_id: "x".into(),
        body: mention(true),
        reply_to_message_id: 0,
    });
    assert_eq!(code(everyone.await), Code::PermissionDenied, "only the owner or an admin mentions everyone");
    c[1].send_message(GroupSendRequest {
        group_id: "g".into(),
        client_msg_id: "y".into(),
        body: mention(false),
        reply_to_message_id: 0,
    })
    .await
    .unwrap();
    c[0].send_message(GroupSendRequest {
        group_id: "g".into(),
        client_msg_id: "z".into(),
        body: mention(true),
        reply_to_message_id: 0,
    })
    .await
    .unwrap();
    let mentions: Vec<(Vec<String>, bool)> = inbox(&app, "b")
        .await
        .into_iter()
        .filter_map(|m| match m.body.and_then(|b| b.content) {
            Some(Content::Text(text)) => Some((text.mention_user_ids, text.mention_all)),
            _ => None,
        })
        .collect();
    assert_eq!(
        mentions,
        [(vec!["b".to_owned()], false), (vec!["b".to_owned()], true)],
        "mentions reach the members as sent"
    );
}

/// Two logic nodes, the second's clock an hour behind: its messages get smaller ids
/// than earlier ones of the first. History, sync and pushes follow the order the group's
/// lock gave, never the ids.
async fn a_conversation_keeps_one_order_when_node_clocks_disagree(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 3).await;
    let behind = server.skewed_node(-3_600_000).await;
    let app = server.new_app().await;
    let mut c = app.group_users(&["a", "b"]).await;
    let on_behind = TestApp { addr: behind.addr(), ..app.clone() };
    let token = on_behind.device_token("b", "laptop").await;
    let mut b_behind = crate::support::groups_client(behind.addr(), &token).await;
    c[0].create_group(create("small", &["b"], JoinPolicy::Free)).await.unwrap();
    c[0].create_group(create("large", &["b"], JoinPolicy::Free)).await.unwrap();
    for user in ["c", "d"] {
        app.user(user).await;
    }
    c[0].invite_members(MembersRequest { group_id: "large".into(), user_ids: vec!["c".into(), "d".into()] })
        .await
        .unwrap();

    for group in ["small", "large"] {
        let mut sent = Vec::new();
        for i in 0..6 {
            let text = format!("{group} {i}");
            let client = if i % 2 == 0 { &mut c[0] } else { &mut b_behind };
            send(client, group, &format!("{group}-{i}"), &text).await.unwrap();
            sent.push(text);
        }
        let order: Vec<&str> = sent.iter().map(String::as_str).collect();
        let shown = history(&mut c[1], group).await;
        assert_eq!(texts(&shown), order, "{group}: history in the order sent");
        let ids: Vec<u64> = shown.iter().filter(|m| !text_of(m).is_empty()).map(|m| m.id).collect();
        assert!(ids.windows(2).any(|w| w[0] > w[1]), "{group}: the ids really disagree with the order: {ids:?}");
        let synced = if group == "small" {
            inbox(&app, "b").await.into_iter().filter(|m| m.receiver_id == group).collect::<Vec<_>>()
        } else {
            let request = SyncGroupRequest { group_id: group.into(), after_group_seq: 0, limit: 50 };
            c[1].sync_group(request).await.unwrap().into_inner().messages
        };
        assert_eq!(texts(&synced), order, "{group}: sync in the order sent");
    }
    behind.shutdown().await.unwrap();
}
