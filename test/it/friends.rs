//! Friends over the gRPC API, as devices and as the app: requests and their expiry,
//! the friend list, remarks, blocks, and apps that allow messages between friends
//! only; on both stores.

use std::time::Duration;

use gim::{
    model::AppSettings,
    proto::logic::v1::{
        AnswerFriendRequest, DeviceSendRequest, Empty, FriendPairsRequest, GetPresenceRequest,
        ListFriendRequestsRequest, ListFriendsRequest, SendFriendRequestRequest, SetRemarkRequest, UserRef,
        friend_pairs_request::Pair,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Friends, TestApp, TestServer, code, system_bodies, text},
};

both_stores!(
    a_request_is_answered_and_friends_are_listed_with_remarks,
    requests_meet_halfway_and_lapse_after_their_time,
    a_block_refuses_requests_and_messages_without_saying_so,
    apps_may_allow_messages_between_friends_only,
    bad_friend_calls_change_nothing,
    requests_cannot_be_repeated_to_flood_a_user,
);

fn request(to: &str, greeting: &str) -> SendFriendRequestRequest {
    SendFriendRequestRequest { user_id: to.into(), greeting: greeting.into() }
}

fn answer(from: &str, accept: bool) -> AnswerFriendRequest {
    AnswerFriendRequest { user_id: from.into(), accept }
}

fn user(id: &str) -> UserRef {
    UserRef { user_id: id.into() }
}

async fn friend_ids(friends: &mut Friends) -> Vec<String> {
    let page = friends.list_friends(ListFriendsRequest::default()).await.unwrap().into_inner();
    page.friends.into_iter().map(|f| f.user.unwrap().user_id).collect()
}

async fn incoming(friends: &mut Friends) -> Vec<String> {
    let page = friends.list_requests(ListFriendRequestsRequest { incoming: true }).await.unwrap().into_inner();
    page.requests.into_iter().map(|r| r.from_user_id).collect()
}

/// `event` notices in a user's inbox, as `(event, actor)`.
async fn notices(app: &TestApp, user: &str) -> Vec<(String, String)> {
    system_bodies(&app.inbox(user).await).into_iter().map(|s| (s.event, s.actor_user_id)).collect()
}

async fn a_request_is_answered_and_friends_are_listed_with_remarks(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut ann = app.social_user("ann").await;
    let mut bob = app.social_user("bob").await;
    let mut cat = app.social_user("cat").await;

    let sent = ann.friends.send_request(request("bob", "hi, it's ann")).await.unwrap().into_inner();
    assert!(!sent.became_friends);
    let listed = bob.friends.list_requests(ListFriendRequestsRequest { incoming: true }).await.unwrap().into_inner();
    let [pending] = listed.requests.as_slice() else { panic!("one request: {listed:?}") };
    assert_eq!((pending.from_user_id.as_str(), pending.greeting.as_str()), ("ann", "hi, it's ann"));
    assert_eq!(pending.profile.as_ref().unwrap().user_id, "ann", "the sender's profile comes along");
    assert!(pending.expires_at_ms > pending.created_at_ms);
    let outgoing = ann.friends.list_requests(ListFriendRequestsRequest { incoming: false }).await.unwrap().into_inner();
    assert_eq!(outgoing.requests[0].profile.as_ref().unwrap().user_id, "bob");
    assert_eq!(notices(&app, "bob").await, [("friend.requested".to_owned(), "ann".to_owned())]);

    bob.friends.answer(answer("ann", true)).await.unwrap();
    assert_eq!(friend_ids(&mut ann.friends).await, ["bob"]);
    assert_eq!(friend_ids(&mut bob.friends).await, ["ann"]);
    assert!(incoming(&mut bob.friends).await.is_empty(), "an answered request is gone");
    for user in ["ann", "bob"] {
        let events = notices(&app, user).await;
        assert_eq!(events.last().unwrap(), &("friend.accepted".to_owned(), "bob".to_owned()), "{user}");
    }

    // A rejected request makes nothing.
    cat.friends.send_request(request("bob", "")).await.unwrap();
    bob.friends.answer(answer("cat", false)).await.unwrap();
    assert_eq!(friend_ids(&mut bob.friends).await, ["ann"]);
    assert_eq!(code(bob.friends.answer(answer("cat", true)).await), Code::NotFound, "nothing left to accept");

    // Remarks are each side's own.
    let remark =
        SetRemarkRequest { user_id: "bob".into(), remark: Some("Bobby".into()), extra: Some("{\"tag\":1}".into()) };
    let friend = ann.friends.set_remark(remark).await.unwrap().into_inner();
    assert_eq!((friend.remark.as_str(), friend.extra.as_str()), ("Bobby", "{\"tag\":1}"));
    let keep_extra = SetRemarkRequest { user_id: "bob".into(), remark: Some("B".into()), extra: None };
    assert_eq!(ann.friends.set_remark(keep_extra).await.unwrap().into_inner().extra, "{\"tag\":1}");
    let bobs = bob.friends.list_friends(ListFriendsRequest::default()).await.unwrap().into_inner();
    assert_eq!(bobs.friends[0].remark, "", "bob's side has no remark");

    // Paging by id.
    app.user("dan").await;
    app.make_friends(&[("ann", "cat"), ("ann", "dan")]).await;
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = ann
            .friends
            .list_friends(ListFriendsRequest { after_user_id: after.clone(), limit: 2 })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.friends.iter().map(|f| f.user.as_ref().unwrap().user_id.clone()));
        if !page.has_more {
            break;
        }
        after = seen.last().unwrap().clone();
    }
    assert_eq!(seen, ["bob", "cat", "dan"]);

    // Deleting ends both sides; the deleter's own devices hear of it.
    ann.friends.delete_friend(user("bob")).await.unwrap();
    assert_eq!(friend_ids(&mut ann.friends).await, ["cat", "dan"]);
    assert!(friend_ids(&mut bob.friends).await.is_empty());
    assert_eq!(notices(&app, "ann").await.last().unwrap().0, "friend.deleted");
    assert_eq!(code(ann.friends.delete_friend(user("bob")).await), Code::NotFound);
}

async fn requests_meet_halfway_and_lapse_after_their_time(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.social.friend_request_ttl_secs = 1).await;
    let app = server.new_app().await;
    let mut ann = app.social_user("ann").await;
    let mut bob = app.social_user("bob").await;
    let mut cat = app.social_user("cat").await;

    ann.friends.send_request(request("bob", "")).await.unwrap();
    let sent = bob.friends.send_request(request("ann", "")).await.unwrap().into_inner();
    assert!(sent.became_friends, "asking someone who asked first makes friends");
    assert_eq!(friend_ids(&mut ann.friends).await, ["bob"]);
    assert!(incoming(&mut ann.friends).await.is_empty() && incoming(&mut bob.friends).await.is_empty());

    cat.friends.send_request(request("ann", "")).await.unwrap();
    assert_eq!(incoming(&mut ann.friends).await, ["cat"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(incoming(&mut ann.friends).await.is_empty(), "a lapsed request is not listed");
    assert_eq!(code(ann.friends.answer(answer("cat", true)).await), Code::NotFound, "nor can it be accepted");
    let sent = ann.friends.send_request(request("cat", "")).await.unwrap().into_inner();
    assert!(!sent.became_friends, "a lapsed request does not meet a new one");
    cat.friends.send_request(request("ann", "again")).await.unwrap();
    assert_eq!(friend_ids(&mut cat.friends).await, ["ann"]);
}

async fn a_block_refuses_requests_and_messages_without_saying_so(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut ann = app.social_user("ann").await;
    let mut bob = app.social_user("bob").await;
    let mut ann_device = crate::support::device_client(app.addr, &app.device_token("ann", "phone").await).await;
    let mut bob_device = crate::support::device_client(app.addr, &app.device_token("bob", "phone").await).await;
    let message = |to: &str, id: &str| DeviceSendRequest {
        receiver_user_id: to.into(),
        client_msg_id: id.into(),
        body: text("hello"),
        reply_to_message_id: 0,
    };

    ann.friends.send_request(request("bob", "")).await.unwrap();
    bob.friends.block(user("ann")).await.unwrap();
    assert!(incoming(&mut bob.friends).await.is_empty(), "blocking drops the blocked user's request");
    let listed = bob.friends.list_blocked(Empty {}).await.unwrap().into_inner();
    assert_eq!(listed.user_ids, ["ann"]);

    let refused = ann.friends.send_request(request("bob", "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(!refused.message().contains("block"), "no hint beyond the status: {}", refused.message());
    let refused = ann_device.send_message(message("bob", "m1")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(!refused.message().contains("block"), "no hint beyond the status: {}", refused.message());
    assert!(app.inbox("bob").await.iter().all(|m| m.sender_user_id != "ann"), "nothing from ann reached bob");

    // The blocker still may write, but must unblock to ask.
    bob_device.send_message(message("ann", "m2")).await.unwrap();
    assert_eq!(code(bob.friends.send_request(request("ann", "")).await), Code::FailedPrecondition);

    bob.friends.unblock(user("ann")).await.unwrap();
    assert!(bob.friends.list_blocked(Empty {}).await.unwrap().into_inner().user_ids.is_empty());
    ann_device.send_message(message("bob", "m3")).await.unwrap();
    ann.friends.send_request(request("bob", "")).await.unwrap();
}

async fn apps_may_allow_messages_between_friends_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app_with(AppSettings { friendship_required: true, ..Default::default() }).await;
    let mut ann = app.user_with_device("ann", "phone").await;
    app.user("bob").await;
    let send = |id: &str| DeviceSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: id.into(),
        body: text("hi"),
        reply_to_message_id: 0,
    };

    assert_eq!(code(ann.send_message(send("m1")).await), Code::PermissionDenied);
    app.make_friends(&[("ann", "bob")]).await;
    ann.send_message(send("m2")).await.unwrap();
    let pairs = vec![Pair { user_id: "bob".into(), friend_id: "ann".into() }];
    app.friends(None).await.break_friends(FriendPairsRequest { pairs }).await.unwrap();
    assert_eq!(code(ann.send_message(send("m3")).await), Code::PermissionDenied);
    let texts: Vec<u64> = app.inbox("bob").await.iter().map(|m| m.seq).collect();
    assert_eq!(texts.len(), 1, "only the message between friends was stored");

    // The app may still write to anyone, and users of an open app may write freely.
    let open = server.new_app().await;
    let mut carl = open.user_with_device("carl", "phone").await;
    open.user("bob").await;
    carl.send_message(send("m4")).await.unwrap();
}

async fn bad_friend_calls_change_nothing(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.social.max_friends = 2).await;
    let app = server.new_app().await;
    let mut ann = app.social_user("ann").await;
    let mut bob = app.social_user("bob").await;
    let greeting = "x".repeat(201);

    assert_eq!(code(ann.friends.send_request(request("ann", "")).await), Code::InvalidArgument);
    assert_eq!(code(ann.friends.send_request(request("bob", &greeting)).await), Code::InvalidArgument);
    assert_eq!(code(ann.friends.send_request(request("nobody", "")).await), Code::NotFound);
    assert_eq!(code(ann.friends.send_request(request("bad id!", "")).await), Code::InvalidArgument);
    assert!(incoming(&mut bob.friends).await.is_empty() && app.inbox("bob").await.is_empty());

    let remark = SetRemarkRequest { user_id: "bob".into(), remark: Some("b".into()), extra: None };
    assert_eq!(code(ann.friends.set_remark(remark).await), Code::NotFound, "not a friend");
    app.make_friends(&[("ann", "bob")]).await;
    assert_eq!(code(ann.friends.send_request(request("bob", "")).await), Code::AlreadyExists);
    let long = SetRemarkRequest { user_id: "bob".into(), remark: Some("r".repeat(65)), extra: None };
    assert_eq!(code(ann.friends.set_remark(long).await), Code::InvalidArgument);
    let not_json = SetRemarkRequest { user_id: "bob".into(), remark: None, extra: Some("{".into()) };
    assert_eq!(code(ann.friends.set_remark(not_json).await), Code::InvalidArgument);

    // Friend limits hold for requests and imports alike.
    app.user("cat").await;
    app.make_friends(&[("ann", "cat")]).await;
    let mut dan = app.social_user("dan").await;
    dan.friends.send_request(request("ann", "")).await.unwrap();
    assert_eq!(code(ann.friends.answer(answer("dan", true)).await), Code::ResourceExhausted);
    let pairs = vec![Pair { user_id: "dan".into(), friend_id: "ann".into() }];
    assert_eq!(code(app.friends(None).await.make_friends(FriendPairsRequest { pairs }).await), Code::ResourceExhausted);
    assert_eq!(friend_ids(&mut ann.friends).await, ["bob", "cat"]);

    // Imports: the app only, known users only, all or nothing.
    let pairs = |a: &str, b: &str| FriendPairsRequest { pairs: vec![Pair { user_id: a.into(), friend_id: b.into() }] };
    assert_eq!(code(ann.friends.make_friends(pairs("bob", "dan")).await), Code::PermissionDenied);
    assert_eq!(code(app.friends(Some("ann")).await.make_friends(pairs("bob", "dan")).await), Code::PermissionDenied);
    let mixed = FriendPairsRequest {
        pairs: vec![
            Pair { user_id: "bob".into(), friend_id: "dan".into() },
            Pair { user_id: "bob".into(), friend_id: "ghost".into() },
        ],
    };
    assert_eq!(code(app.friends(None).await.make_friends(mixed).await), Code::NotFound);
    assert_eq!(friend_ids(&mut bob.friends).await, ["ann"], "nothing of a refused import is kept");
    assert_eq!(code(app.friends(None).await.make_friends(pairs("bob", "bob")).await), Code::InvalidArgument);
    assert_eq!(code(app.friends(None).await.make_friends(FriendPairsRequest::default()).await), Code::InvalidArgument);

    // Presence of friends only.
    let asked = GetPresenceRequest { user_ids: vec!["ann".into()] };
    let presence = bob.friends.get_presence(asked).await.unwrap().into_inner();
    assert!(!presence.users[0].online);
    let asked = GetPresenceRequest { user_ids: vec!["dan".into()] };
    assert_eq!(code(bob.friends.get_presence(asked).await), Code::PermissionDenied);

    // Acting calls need a user.
    assert_eq!(code(app.friends(None).await.list_friends(ListFriendsRequest::default()).await), Code::InvalidArgument);
}

/// A request waiting for an answer is not announced again; a request turned down holds
/// its sender off for the cool-down; a user's waiting requests are capped.
async fn requests_cannot_be_repeated_to_flood_a_user(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.social.friend_request_cooldown_secs = 1;
        config.social.max_pending_friend_requests = 2;
    })
    .await;
    let app = server.new_app().await;
    let mut ann = app.social_user("ann").await;
    let mut bob = app.social_user("bob").await;
    for user in ["cat", "dan"] {
        app.user(user).await;
    }
    let requested = |app: &TestApp, user: &'static str| {
        let app = app.clone();
        async move { notices(&app, user).await.into_iter().filter(|(event, _)| event == "friend.requested").count() }
    };

    for _ in 0..30 {
        ann.friends.send_request(request("bob", "hi")).await.unwrap();
    }
    assert_eq!(requested(&app, "bob").await, 1, "thirty requests, one notification");
    assert_eq!(incoming(&mut bob.friends).await, ["ann"]);

    bob.friends.answer(answer("ann", false)).await.unwrap();
    assert!(incoming(&mut bob.friends).await.is_empty(), "a request turned down is no longer listed");
    for _ in 0..5 {
        assert_eq!(code(ann.friends.send_request(request("bob", "again")).await), Code::ResourceExhausted);
    }
    assert_eq!(requested(&app, "bob").await, 1, "nothing reaches bob during the cool-down");
    let answered = bob.friends.answer(answer("ann", true)).await;
    assert_eq!(code(answered), Code::NotFound, "a request turned down cannot be accepted later");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    ann.friends.send_request(request("bob", "last try")).await.unwrap();
    assert_eq!(requested(&app, "bob").await, 2, "asking again after the cool-down is announced once");

    // Ann has one waiting (bob); one more is allowed, then the cap holds.
    ann.friends.send_request(request("cat", "")).await.unwrap();
    assert_eq!(code(ann.friends.send_request(request("dan", "")).await), Code::ResourceExhausted);
    assert_eq!(requested(&app, "dan").await, 0);
    bob.friends.answer(answer("ann", true)).await.unwrap();
    ann.friends.send_request(request("dan", "")).await.expect("an answer frees a place");
}
