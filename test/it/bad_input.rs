//! Bad input gets the right status and changes nothing.

use gim::{
    auth::{Claims, TokenKey},
    proto::{
        common::v1::{CustomBody, MessageBody, SystemBody, message_body::Content},
        logic::v1::{
            BusinessSendRequest, BusinessSyncRequest, CreateUserRequest, DeviceSendRequest, Empty, HistoryRequest,
            ListUsersRequest, SyncRequest, UpdateUserRequest,
        },
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Meta, TestApp, TestServer, channel, code, device_client, text},
};

both_stores!(
    bad_messages_are_refused_and_store_nothing,
    bad_credentials_are_unauthenticated,
    bad_users_and_limits_are_refused,
    every_list_argument_is_bounded_before_any_query,
    nothing_is_done_in_the_name_of_a_user_that_does_not_exist,
    names_that_would_show_other_than_they_read_are_refused,
);

fn body(content: Content) -> Option<MessageBody> {
    Some(MessageBody { content: Some(content) })
}

async fn bad_messages_are_refused_and_store_nothing(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.max_text_chars = 100;
        config.limits.max_message_bytes = 1024;
    })
    .await;
    let app = server.new_app().await;
    let other = server.new_app().await;
    other.user("carol").await;
    let mut alice = app.user_with_device("alice", "phone").await;
    app.user("bob").await;

    let send = |receiver: &str, client_msg_id: &str, body: Option<MessageBody>| DeviceSendRequest {
        receiver_user_id: receiver.into(),
        client_msg_id: client_msg_id.into(),
        body,
        reply_to_message_id: 0,
    };
    let cases = [
        ("no body", send("bob", "m", None), Code::InvalidArgument),
        ("a body with no content", send("bob", "m", Some(MessageBody::default())), Code::InvalidArgument),
        ("blank text", send("bob", "m", text("  ")), Code::InvalidArgument),
        ("text over the limit", send("bob", "m", text(&"x".repeat(101))), Code::InvalidArgument),
        (
            "a body over the size limit",
            send("bob", "m", body(Content::Custom(CustomBody { kind: "blob".into(), data: vec![7; 2000] }))),
            Code::InvalidArgument,
        ),
        (
            "a system body",
            send(
                "bob",
                "m",
                body(Content::System(SystemBody { event: "group.dismissed".into(), ..Default::default() })),
            ),
            Code::InvalidArgument,
        ),
        ("an empty client_msg_id", send("bob", "", text("hi")), Code::InvalidArgument),
        ("a client_msg_id over the limit", send("bob", &"c".repeat(65), text("hi")), Code::InvalidArgument),
        ("a client_msg_id with spaces", send("bob", "a b", text("hi")), Code::InvalidArgument),
        ("an invalid receiver id", send("bob smith", "m", text("hi")), Code::InvalidArgument),
        ("an unknown receiver", send("nobody", "m", text("hi")), Code::NotFound),
        ("another app's user", send("carol", "m", text("hi")), Code::NotFound),
    ];
    for (what, request, expected) in cases {
        assert_eq!(code(alice.send_message(request).await), expected, "{what}");
    }
    let as_unknown = app
        .business()
        .await
        .send_message(BusinessSendRequest {
            sender_user_id: "ghost".into(),
            receiver_user_id: "bob".into(),
            client_msg_id: "g".into(),
            body: text("boo"),
            reply_to_message_id: 0,
        })
        .await;
    assert_eq!(code(as_unknown), Code::NotFound, "sending as a user who does not exist");

    let mut business = app.business().await;
    for user in ["alice", "bob"] {
        let inbox = business
            .sync(BusinessSyncRequest { user_id: user.into(), after_seq: 0, limit: 10 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((inbox.latest_seq, inbox.messages.len()), (0, 0), "{user}'s inbox is untouched");
    }
    assert!(server.delivery.pushes().is_empty(), "nothing was delivered");

    // The client_msg_ids of refused sends are still free.
    let sent = alice.send_message(send("bob", "m", text("now valid"))).await.unwrap().into_inner();
    assert_eq!(sent.seq, 1);
}

async fn bad_credentials_are_unauthenticated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "phone").await;
    let key = TokenKey::new(b"some-other-key-0123456789abcdef-xyz");
    let (_, rest) = token.split_once('.').unwrap();
    let claims: Claims = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, rest.split_once('.').unwrap().0)
            .unwrap(),
    )
    .unwrap();
    let forged = key.sign(&claims);

    for (what, token) in [("garbage", "not-a-token"), ("a token of another key", forged.as_str()), ("empty", "")] {
        let status = device_client(server.addr(), token).await.get_me(Empty {}).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}");
    }
    let no_header = gim::proto::logic::v1::device_client::DeviceClient::new(channel(server.addr()).await)
        .get_me(Empty {})
        .await
        .unwrap_err();
    assert_eq!(no_header.code(), Code::Unauthenticated);

    let wrong_secret = TestApp { secret: "gs_guess".into(), ..app.clone() };
    let missing_secret = gim::proto::logic::v1::business_client::BusinessClient::with_interceptor(
        channel(server.addr()).await,
        Meta::new(&[("x-gim-app-id", &app.app_id.to_string())]),
    );
    let bad_app_id = gim::proto::logic::v1::business_client::BusinessClient::with_interceptor(
        channel(server.addr()).await,
        Meta::new(&[("x-gim-app-id", "one"), ("x-gim-app-secret", &app.secret)]),
    );
    for (what, mut client) in
        [("a wrong secret", wrong_secret.business().await), ("no secret", missing_secret), ("a bad app id", bad_app_id)]
    {
        let status = client.create_user(CreateUserRequest { user_id: "mallory".into(), ..Default::default() }).await;
        assert_eq!(code(status), Code::Unauthenticated, "{what}");
    }
    let listed = app.business().await.list_users(ListUsersRequest { after_user_id: String::new(), limit: 10 }).await;
    assert_eq!(listed.unwrap().into_inner().users.len(), 1, "no user was created");
}

async fn bad_users_and_limits_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut alice = app.user_with_device("alice", "phone").await;
    let mut business = app.business().await;

    let bad_users = [
        CreateUserRequest { user_id: "has space".into(), ..Default::default() },
        CreateUserRequest { user_id: "x".repeat(65), ..Default::default() },
        CreateUserRequest { user_id: "bob".into(), extra: "[1, 2]".into(), ..Default::default() },
        CreateUserRequest { user_id: "bob".into(), nickname: "n".repeat(65), ..Default::default() },
        CreateUserRequest { user_id: "bob".into(), avatar_url: "a b".into(), ..Default::default() },
    ];
    for request in bad_users {
        assert_eq!(code(business.create_user(request.clone()).await), Code::InvalidArgument, "{request:?}");
    }
    let bad_update = business.update_user(UpdateUserRequest {
        user_id: "alice".into(),
        extra: Some("{".into()),
        ..Default::default()
    });
    assert_eq!(code(bad_update.await), Code::InvalidArgument);

    for limit in [-1, i32::MIN, 201, i32::MAX] {
        assert_eq!(code(alice.sync(SyncRequest { after_seq: 0, limit }).await), Code::InvalidArgument, "sync {limit}");
        let history = alice.get_history(HistoryRequest { peer_user_id: "bob".into(), limit, ..Default::default() });
        assert_eq!(code(history.await), Code::InvalidArgument, "history {limit}");
        let listed = business.list_users(ListUsersRequest { after_user_id: String::new(), limit });
        assert_eq!(code(listed.await), Code::InvalidArgument, "list {limit}");
    }
    let negative_time =
        alice.get_history(HistoryRequest { peer_user_id: "bob".into(), before_time_ms: -5, ..Default::default() });
    assert_eq!(code(negative_time.await), Code::InvalidArgument);

    let users = business.list_users(ListUsersRequest { after_user_id: String::new(), limit: 0 }).await.unwrap();
    let ids: Vec<_> = users.into_inner().users.into_iter().map(|u| u.user_id).collect();
    assert_eq!(ids, ["alice"], "nothing was created");
}

/// Every RPC that takes a list refuses one past its limit with INVALID_ARGUMENT, before
/// any query sees it (100,000 ids once made SQLite fail with "too many SQL variables").
async fn every_list_argument_is_bounded_before_any_query(backend: Backend) {
    use gim::proto::{
        common::v1::TextBody,
        logic::v1::{
            CreateGroupRequest, FriendPairsRequest, GetPresenceRequest, GetUsersRequest, GroupSendRequest,
            ImportUsersRequest, Media, MembersRequest, PostContent, PublishRequest, PushEventRequest, Visibility,
            friend_pairs_request::Pair,
        },
    };
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    app.user("bob").await;
    let ids = |n: usize| (0..n).map(|i| format!("user-{i}")).collect::<Vec<String>>();
    let huge = ids(100_000);
    let mut business = app.business().await;
    let mut friends_as_app = app.friends(None).await;
    let mut groups_as_app = app.groups(None).await;
    let mut alice = app.social_user("alice").await;
    let mut alice_groups = app.groups(Some("alice")).await;
    alice_groups
        .create_group(CreateGroupRequest { group_id: "g".into(), name: "g".into(), ..Default::default() })
        .await
        .unwrap();
    let mut alice_device = device_client(app.addr, &app.device_token("alice", "phone").await).await;
    let mentions = |n: usize| {
        Some(MessageBody {
            content: Some(Content::Text(TextBody { text: "hi".into(), mention_user_ids: ids(n), mention_all: false })),
        })
    };
    let pairs = |n: usize| FriendPairsRequest {
        pairs: (0..n).map(|i| Pair { user_id: format!("a{i}"), friend_id: format!("b{i}") }).collect(),
    };

    let cases = vec![
        (
            "ImportUsers",
            code(
                business
                    .import_users(ImportUsersRequest {
                        users: ids(1001)
                            .into_iter()
                            .map(|user_id| CreateUserRequest { user_id, ..Default::default() })
                            .collect(),
                    })
                    .await,
            ),
        ),
        ("GetUsers", code(business.get_users(GetUsersRequest { user_ids: huge.clone() }).await)),
        ("Business.GetPresence", code(business.get_presence(GetPresenceRequest { user_ids: huge.clone() }).await)),
        (
            "PushEvent",
            code(
                business.push_event(PushEventRequest { user_ids: ids(201), kind: "k".into(), data: Vec::new() }).await,
            ),
        ),
        (
            "Friends.GetPresence (device)",
            code(alice.friends.get_presence(GetPresenceRequest { user_ids: huge.clone() }).await),
        ),
        (
            "Friends.GetPresence (app)",
            code(friends_as_app.get_presence(GetPresenceRequest { user_ids: huge.clone() }).await),
        ),
        ("MakeFriends", code(friends_as_app.make_friends(pairs(1001)).await)),
        ("BreakFriends", code(friends_as_app.break_friends(pairs(1001)).await)),
        (
            "CreateGroup",
            code(
                groups_as_app
                    .create_group(CreateGroupRequest {
                        group_id: "big".into(),
                        name: "big".into(),
                        owner_id: "alice".into(),
                        member_ids: ids(1001),
                        ..Default::default()
                    })
                    .await,
            ),
        ),
        (
            "InviteMembers",
            code(alice_groups.invite_members(MembersRequest { group_id: "g".into(), user_ids: ids(201) }).await),
        ),
        (
            "RemoveMembers",
            code(alice_groups.remove_members(MembersRequest { group_id: "g".into(), user_ids: huge.clone() }).await),
        ),
        (
            "Publish (audience)",
            code(
                alice
                    .moments
                    .publish(PublishRequest {
                        content: Some(PostContent { text: "hi".into(), ..Default::default() }),
                        visibility: Visibility::Chosen as i32,
                        audience: huge.clone(),
                        client_post_id: "p1".into(),
                    })
                    .await,
            ),
        ),
        (
            "Publish (media)",
            code(
                alice
                    .moments
                    .publish(PublishRequest {
                        content: Some(PostContent {
                            text: "hi".into(),
                            media: (0..10)
                                .map(|i| Media { url: format!("https://x/{i}"), ..Default::default() })
                                .collect(),
                            place: None,
                        }),
                        visibility: Visibility::Public as i32,
                        audience: Vec::new(),
                        client_post_id: "p2".into(),
                    })
                    .await,
            ),
        ),
        (
            "Device.SendMessage (mentions)",
            code(
                alice_device
                    .send_message(DeviceSendRequest {
                        receiver_user_id: "bob".into(),
                        client_msg_id: "m1".into(),
                        body: mentions(201),
                        reply_to_message_id: 0,
                    })
                    .await,
            ),
        ),
        (
            "Groups.SendMessage (mentions)",
            code(
                alice_groups
                    .send_message(GroupSendRequest {
                        group_id: "g".into(),
                        client_msg_id: "m2".into(),
                        body: mentions(201),
                        reply_to_message_id: 0,
                    })
                    .await,
            ),
        ),
    ];
    let wrong: Vec<_> = cases.iter().filter(|(_, got)| *got != Code::InvalidArgument).collect();
    assert!(wrong.is_empty(), "oversized lists not refused with INVALID_ARGUMENT: {wrong:?}");
    assert!(app.inbox("bob").await.is_empty(), "nothing was sent");
}

/// `x-gim-acting-user` must name a user of the app: NOT_FOUND otherwise, on every API
/// that acts for a user, and nothing is written (no post or notification by a ghost).
async fn nothing_is_done_in_the_name_of_a_user_that_does_not_exist(backend: Backend) {
    use gim::proto::logic::v1::{
        BusinessSendRequest, CreateGroupRequest, FeedRequest, JoinGroupRequest, ListFriendsRequest, PostContent,
        PublishRequest, SendFriendRequestRequest, UserRef, Visibility,
    };
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let other = server.new_app().await;
    app.user("bob").await;
    other.user("ghost").await;
    app.groups(None)
        .await
        .create_group(CreateGroupRequest {
            group_id: "open".into(),
            name: "open".into(),
            owner_id: "bob".into(),
            join_policy: gim::proto::logic::v1::JoinPolicy::Free as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let post = PublishRequest {
        content: Some(PostContent { text: "boo".into(), ..Default::default() }),
        visibility: Visibility::Public as i32,
        audience: Vec::new(),
        client_post_id: "p".into(),
    };
    // "ghost" exists, but in another app.
    let (mut moments, mut friends, mut groups) =
        (app.moments(Some("ghost")).await, app.friends(Some("ghost")).await, app.groups(Some("ghost")).await);
    let cases = [
        ("Moments.Publish", code(moments.publish(post).await)),
        ("Moments.Feed", code(moments.feed(FeedRequest { before_post_id: 0, limit: 10 }).await)),
        (
            "Friends.SendRequest",
            code(friends.send_request(SendFriendRequestRequest { user_id: "bob".into(), greeting: "hi".into() }).await),
        ),
        ("Friends.Block", code(friends.block(UserRef { user_id: "bob".into() }).await)),
        ("Friends.ListFriends", code(friends.list_friends(ListFriendsRequest::default()).await)),
        (
            "Groups.CreateGroup",
            code(
                groups
                    .create_group(CreateGroupRequest { group_id: "g".into(), name: "g".into(), ..Default::default() })
                    .await,
            ),
        ),
        (
            "Groups.JoinGroup",
            code(groups.join_group(JoinGroupRequest { group_id: "open".into(), message: String::new() }).await),
        ),
        (
            "Business.SendMessage",
            code(
                app.business()
                    .await
                    .send_message(BusinessSendRequest {
                        sender_user_id: "ghost".into(),
                        receiver_user_id: "bob".into(),
                        client_msg_id: "m".into(),
                        body: text("boo"),
                        reply_to_message_id: 0,
                    })
                    .await,
            ),
        ),
    ];
    let wrong: Vec<_> = cases.iter().filter(|(_, got)| *got != Code::NotFound).collect();
    assert!(wrong.is_empty(), "acting as a user that does not exist: {wrong:?}");
    let inbox = app.inbox("bob").await;
    assert!(!format!("{inbox:?}").contains("ghost"), "no notification or message from a ghost: {inbox:?}");
    let members = app
        .groups(None)
        .await
        .list_members(gim::proto::logic::v1::ListMembersRequest { group_id: "open".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(members.len(), 1, "no ghost joined");
    let bad_id = app.friends(Some("not an id")).await.list_friends(ListFriendsRequest::default()).await;
    assert_eq!(code(bad_id), Code::InvalidArgument);
}

/// Names people see refuse bidi overrides and invisible characters; message text refuses
/// NUL. Each refusal is INVALID_ARGUMENT and changes nothing.
async fn names_that_would_show_other_than_they_read_are_refused(backend: Backend) {
    use gim::proto::logic::v1::{CreateGroupRequest, SetNicknameRequest, SetRemarkRequest};
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut business = app.business().await;
    let spoof = "adm\u{202E}nimda";
    let created = business
        .create_user(CreateUserRequest { user_id: "mallory".into(), nickname: spoof.into(), ..Default::default() })
        .await;
    assert_eq!(code(created), Code::InvalidArgument, "a nickname with a bidi override");
    let mut alice = app.user_with_device("alice", "phone").await;
    app.user("bob").await;
    app.make_friends(&[("alice", "bob")]).await;
    let mut groups = app.groups(Some("alice")).await;
    let group = |name: &str| CreateGroupRequest { group_id: "g".into(), name: name.into(), ..Default::default() };
    assert_eq!(code(groups.create_group(group("\u{200B}")).await), Code::InvalidArgument, "an invisible group name");
    groups.create_group(group("Team")).await.unwrap();
    let nickname = SetNicknameRequest { group_id: "g".into(), user_id: String::new(), nickname: "x\u{2066}y".into() };
    assert_eq!(code(groups.set_nickname(nickname).await), Code::InvalidArgument, "a group nickname with an isolate");
    let remark = SetRemarkRequest { user_id: "bob".into(), remark: Some("b\u{FEFF}ob".into()), ..Default::default() };
    assert_eq!(code(app.friends(Some("alice")).await.set_remark(remark).await), Code::InvalidArgument);
    let nul = DeviceSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: "m".into(),
        body: text("hi\0there"),
        reply_to_message_id: 0,
    };
    assert_eq!(code(alice.send_message(nul).await), Code::InvalidArgument, "message text with NUL");
    assert!(app.inbox("bob").await.iter().all(|m| m.receiver_id == "g"), "no message reached bob");
    let emoji =
        CreateUserRequest {
            user_id: "family".into(), nickname: "👨\u{200D}👩\u{200D}👧".into(), ..Default::default()
        };
    business.create_user(emoji).await.expect("joiners that emoji need are fine");
}
