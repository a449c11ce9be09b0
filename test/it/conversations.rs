//! The conversation list on both stores: counts exact after sends, mentions, reads on
//! two devices and settings; paging by activity; incremental sync by version; bad
//! input; and the list against the inbox after a random soak of sends, reads, recalls and
//! deletions.

use std::collections::{BTreeMap, HashMap};

use gim::proto::{
    common::v1::{ConversationType, MessageBody, MessageStatus, MessageType, message_body::Content},
    logic::v1::{
        BusinessSendRequest, BusinessSyncRequest, Conversation, CreateGroupRequest, DeleteMessagesRequest,
        DeviceSendRequest, GroupSendRequest, ListConversationsRequest, ListConversationsResponse,
        ListReadCursorsResponse, MarkReadRequest, MessageRef, SyncConversationsRequest, UpdateConversationRequest,
        conversations_client::ConversationsClient, messages_client::MessagesClient,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{
        Backend, Intercepted, Meta, ServeServer, TestApp, TestServer, channel, device_client, mentioning, text, text_of,
    },
    ws::{WAIT, WsClient},
};

both_stores!(
    a_setting_changed_on_one_device_reaches_the_others,
    counts_follow_messages_mentions_reads_and_settings,
    the_list_pages_by_activity_and_refuses_what_is_not_a_users,
    the_list_matches_the_inbox_after_random_sends_reads_recalls_and_deletions,
);

type Conversations = ConversationsClient<Intercepted>;

async fn conversations_of(app: &TestApp, token: &str) -> Conversations {
    let bearer = format!("Bearer {token}");
    ConversationsClient::with_interceptor(channel(app.addr).await, Meta::new(&[("authorization", &bearer)]))
}

async fn list(client: &mut Conversations) -> ListConversationsResponse {
    client
        .list_conversations(ListConversationsRequest { page_token: String::new(), limit: 0 })
        .await
        .unwrap()
        .into_inner()
}

fn find<'a>(list: &'a [Conversation], kind: ConversationType, id: &str) -> &'a Conversation {
    list.iter()
        .find(|c| c.conversation_type == kind as i32 && c.conversation_id == id)
        .unwrap_or_else(|| panic!("no {kind:?} conversation {id:?} in {list:#?}"))
}

fn counts(conversation: &Conversation) -> (u64, u64) {
    (conversation.unread_count, conversation.mention_count)
}

async fn business_send(app: &TestApp, from: &str, to: &str, id: &str) -> u64 {
    let request = BusinessSendRequest {
        sender_user_id: from.into(),
        receiver_user_id: to.into(),
        client_msg_id: id.into(),
        body: text(id),
        reply_to_message_id: 0,
    };
    app.business().await.send_message(request).await.unwrap().into_inner().message_id
}

async fn group_send(app: &TestApp, from: &str, group: &str, id: &str, body: Option<MessageBody>) {
    let request = GroupSendRequest { group_id: group.into(), client_msg_id: id.into(), body, reply_to_message_id: 0 };
    app.groups(Some(from)).await.send_message(request).await.unwrap();
}

async fn counts_follow_messages_mentions_reads_and_settings(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    for user in ["alice", "carol"] {
        app.user(user).await;
    }
    let mut phone = app.user_with_device("bob", "phone").await;
    let phone_token = app.device_token("bob", "phone").await;
    let laptop = device_client(app.addr, &app.device_token("bob", "laptop").await).await;
    let mut bob = conversations_of(&app, &phone_token).await;
    assert_eq!(list(&mut bob).await.conversations, [], "nothing yet");

    for id in ["a1", "a2", "a3"] {
        business_send(&app, "alice", "bob", id).await;
    }
    business_send(&app, "carol", "bob", "c1").await;
    let request = CreateGroupRequest {
        group_id: "team".into(),
        name: "Team".into(),
        member_ids: vec!["bob".into(), "carol".into()],
        ..Default::default()
    };
    app.groups(Some("alice")).await.create_group(request).await.unwrap();
    group_send(&app, "alice", "team", "g1", text("g1")).await;
    group_send(&app, "alice", "team", "g2", mentioning("g2 @bob", &["bob"], false)).await;
    group_send(&app, "alice", "team", "g3", mentioning("g3 @all", &[], true)).await;
    group_send(&app, "carol", "team", "g4", mentioning("g4 @alice", &["alice"], false)).await;
    let request = BusinessSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: "s1".into(),
        body: text("welcome"),
        ..Default::default()
    };
    app.business().await.send_message(request).await.unwrap();

    let first = list(&mut bob).await;
    let all = &first.conversations;
    let order: Vec<(i32, &str)> = all.iter().map(|c| (c.conversation_type, c.conversation_id.as_str())).collect();
    let (direct, group, system) =
        (ConversationType::Direct as i32, ConversationType::Group as i32, ConversationType::System as i32);
    assert_eq!(order, [(system, ""), (group, "team"), (direct, "carol"), (direct, "alice")], "latest first");
    let alice = find(all, ConversationType::Direct, "alice");
    assert_eq!(counts(alice), (3, 0));
    assert_eq!(text_of(alice.last_message.as_ref().unwrap()), "a3");
    assert_eq!(alice.peer.as_ref().unwrap().user_id, "alice");
    let team = find(all, ConversationType::Group, "team");
    assert_eq!(counts(team), (4, 2), "the group's notice is not counted; @bob and @all are");
    assert_eq!(team.group_name, "Team");
    assert_eq!(counts(find(all, ConversationType::System, "")), (1, 0));
    assert_eq!(first.total_unread, 3 + 1 + 4 + 1);

    // Bob writes from his phone: his own message changes the last message, not the count.
    let request = DeviceSendRequest {
        receiver_user_id: "alice".into(),
        client_msg_id: "b1".into(),
        body: text("b1"),
        reply_to_message_id: 0,
    };
    phone.send_message(request).await.unwrap();
    // Reads from the laptop: alice's conversation up to a2, the group to its end.
    let seq_of = |conversation: &Conversation| conversation.last_message.as_ref().unwrap().seq;
    let mut laptop = laptop;
    let read = |kind: ConversationType, id: &str, seq: u64| MarkReadRequest {
        conversation_type: kind as i32,
        conversation_id: id.into(),
        seq,
    };
    laptop.mark_read(read(ConversationType::Direct, "alice", seq_of(alice) - 1)).await.unwrap();
    laptop.mark_read(read(ConversationType::Group, "team", seq_of(team))).await.unwrap();
    let after = list(&mut bob).await;
    let alice = find(&after.conversations, ConversationType::Direct, "alice");
    assert_eq!(counts(alice), (1, 0), "a3 is left");
    assert_eq!(text_of(alice.last_message.as_ref().unwrap()), "b1");
    assert_eq!(counts(find(&after.conversations, ConversationType::Group, "team")), (0, 0));
    assert_eq!(after.total_unread, 1 + 1 + 1);
    // A read that goes back changes nothing.
    laptop.mark_read(read(ConversationType::Direct, "alice", 1)).await.unwrap();
    assert_eq!(counts(find(&list(&mut bob).await.conversations, ConversationType::Direct, "alice")), (1, 0));

    // Only what changed since the first list comes back.
    let changes = bob
        .sync_conversations(SyncConversationsRequest { after_version: first.version, limit: 0 })
        .await
        .unwrap()
        .into_inner();
    let changed: Vec<&str> = changes.conversations.iter().map(|c| c.conversation_id.as_str()).collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed.contains(&"alice") && changed.contains(&"team"));
    assert!(!changes.has_more);
    assert_eq!(changes.version, after.version);
    let none = bob
        .sync_conversations(SyncConversationsRequest { after_version: changes.version, limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.conversations, []);

    // Settings: mute, hide (until the next message), pin with a draft.
    let update = |kind: ConversationType, id: &str| UpdateConversationRequest {
        conversation_type: kind as i32,
        conversation_id: id.into(),
        ..Default::default()
    };
    let muted = bob
        .update_conversation(UpdateConversationRequest {
            muted: Some(true),
            ..update(ConversationType::Direct, "carol")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(muted.muted && muted.version > after.version);
    assert_eq!(list(&mut bob).await.total_unread, 2, "a muted conversation is not in the badge");
    bob.update_conversation(UpdateConversationRequest { hidden: Some(true), ..update(ConversationType::System, "") })
        .await
        .unwrap();
    let shown = list(&mut bob).await;
    assert!(shown.conversations.iter().all(|c| c.conversation_type != system), "hidden");
    let pinned = bob
        .update_conversation(UpdateConversationRequest {
            pinned: Some(true),
            draft: Some("half a thought".into()),
            ..update(ConversationType::Direct, "alice")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(pinned.pinned && pinned.draft == "half a thought" && !pinned.muted);
    assert_eq!(counts(&pinned), (1, 0), "settings leave the counts alone");
    let request = BusinessSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: "s2".into(),
        body: text("again"),
        ..Default::default()
    };
    app.business().await.send_message(request).await.unwrap();
    let back = list(&mut bob).await;
    let notices = find(&back.conversations, ConversationType::System, "");
    assert!(!notices.hidden);
    assert_eq!(counts(notices), (2, 0));

    // Bad input changes nothing.
    let too_long = "x".repeat(5001);
    for (request, code) in [
        (
            UpdateConversationRequest { draft: Some(too_long), ..update(ConversationType::Direct, "alice") },
            Code::InvalidArgument,
        ),
        (
            UpdateConversationRequest { draft: Some("nul\0".into()), ..update(ConversationType::Direct, "alice") },
            Code::InvalidArgument,
        ),
        (
            UpdateConversationRequest { pinned: Some(true), ..update(ConversationType::Unspecified, "alice") },
            Code::InvalidArgument,
        ),
        (
            UpdateConversationRequest { pinned: Some(true), ..update(ConversationType::System, "x") },
            Code::InvalidArgument,
        ),
        (
            UpdateConversationRequest { pinned: Some(true), ..update(ConversationType::Direct, "") },
            Code::InvalidArgument,
        ),
        (UpdateConversationRequest { pinned: Some(true), ..update(ConversationType::Direct, "zed") }, Code::NotFound),
        (
            UpdateConversationRequest { pinned: Some(true), ..update(ConversationType::Group, "no-such-group") },
            Code::NotFound,
        ),
    ] {
        assert_eq!(bob.update_conversation(request).await.unwrap_err().code(), code);
    }
    // A group bob is not in is no conversation of his.
    let request = CreateGroupRequest { group_id: "others".into(), name: "Others".into(), ..Default::default() };
    app.groups(Some("carol")).await.create_group(request).await.unwrap();
    let outside = UpdateConversationRequest { pinned: Some(true), ..update(ConversationType::Group, "others") };
    assert_eq!(bob.update_conversation(outside).await.unwrap_err().code(), Code::NotFound);
    let ahead = SyncConversationsRequest { after_version: back.version + 1, limit: 0 };
    assert_eq!(bob.sync_conversations(ahead).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(list(&mut bob).await.version, back.version, "refusals bump no version");
}

async fn the_list_pages_by_activity_and_refuses_what_is_not_a_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let token = {
        app.user("bob").await;
        app.device_token("bob", "phone").await
    };
    let peers = ["p1", "p2", "p3", "p4", "p5"];
    for peer in peers {
        app.user(peer).await;
        business_send(&app, peer, "bob", &format!("from-{peer}")).await;
    }
    let mut bob = conversations_of(&app, &token).await;
    let (mut seen, mut token_) = (Vec::new(), String::new());
    loop {
        let page = bob
            .list_conversations(ListConversationsRequest { page_token: token_.clone(), limit: 2 })
            .await
            .unwrap()
            .into_inner();
        assert!(page.conversations.len() <= 2);
        seen.extend(page.conversations.into_iter().map(|c| c.conversation_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token_ = page.next_page_token;
    }
    let newest_first: Vec<&str> = peers.iter().rev().copied().collect();
    assert_eq!(seen, newest_first);

    let garbage = ListConversationsRequest { page_token: "not a token".into(), limit: 0 };
    assert_eq!(bob.list_conversations(garbage).await.unwrap_err().code(), Code::InvalidArgument);
    let too_many = ListConversationsRequest { page_token: String::new(), limit: 100_000 };
    assert_eq!(bob.list_conversations(too_many).await.unwrap_err().code(), Code::InvalidArgument);

    // The business acts as a user, or is refused; another app sees none of this.
    let app_id = app.app_id.to_string();
    let as_app = Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret)]);
    let mut business = ConversationsClient::with_interceptor(channel(app.addr).await, as_app);
    let refused = business.list_conversations(ListConversationsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let as_bob =
        Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret), ("x-gim-acting-user", "bob")]);
    let mut business = ConversationsClient::with_interceptor(channel(app.addr).await, as_bob);
    assert_eq!(
        business
            .list_conversations(ListConversationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .conversations
            .len(),
        5
    );
    let other = server.new_app().await;
    other.user("bob").await;
    let mut other_bob = conversations_of(&other, &other.device_token("bob", "phone").await).await;
    assert_eq!(list(&mut other_bob).await.conversations, []);
}

/// Random sends (direct and group), reads, recalls and deletions; then every user's list
/// says what its inbox and read cursors say.
async fn the_list_matches_the_inbox_after_random_sends_reads_recalls_and_deletions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let users = ["u0", "u1", "u2", "u3"];
    let mut devices = HashMap::new();
    let mut lists = HashMap::new();
    for user in users {
        devices.insert(user, app.user_with_device(user, "d").await);
        lists.insert(user, conversations_of(&app, &app.device_token(user, "d").await).await);
    }
    let request = CreateGroupRequest {
        group_id: "g".into(),
        name: "g".into(),
        member_ids: vec!["u1".into(), "u2".into()],
        ..Default::default()
    };
    app.groups(Some("u0")).await.create_group(request).await.unwrap();
    let mut state = 0x2545_f491_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let app_id = app.app_id.to_string();
    let as_app = Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret)]);
    let mut recaller = MessagesClient::with_interceptor(channel(app.addr).await, as_app);
    let (mut recalls, mut deletions) = (0, 0);
    for step in 0..200 {
        let from = users[next(4) as usize];
        match next(7) {
            0 | 1 => {
                let to = users[next(4) as usize];
                if to != from {
                    business_send(&app, from, to, &format!("m{step}")).await;
                }
            }
            2 if from != "u3" => {
                let body = if next(3) == 0 { mentioning("hey", &["u1"], false) } else { text("hi") };
                group_send(&app, from, "g", &format!("m{step}"), body).await;
            }
            5 | 6 => {
                // The app recalls one of the user's messages, or the user deletes one for itself.
                let inbox: Vec<_> = inbox_of(&app, from).await.into_iter().filter(is_user_message).collect();
                if inbox.is_empty() {
                    continue;
                }
                let target = &inbox[next(inbox.len() as u64) as usize];
                if next(2) == 0 {
                    recaller.recall_message(MessageRef { message_id: target.id }).await.unwrap();
                    recalls += 1;
                } else {
                    let (kind, id) = conversation_key(target, from);
                    let request = DeleteMessagesRequest {
                        conversation_type: kind as i32,
                        conversation_id: id,
                        message_ids: vec![target.id],
                    };
                    messages_of(&app, &app.device_token(from, "d").await).await.delete_messages(request).await.unwrap();
                    deletions += 1;
                }
            }
            _ => {
                let inbox: Vec<_> = inbox_of(&app, from).await.into_iter().filter(is_message).collect();
                if inbox.is_empty() {
                    continue;
                }
                let target = &inbox[next(inbox.len() as u64) as usize];
                let (kind, id) = conversation_key(target, from);
                let read = MarkReadRequest { conversation_type: kind as i32, conversation_id: id, seq: target.seq };
                devices.get_mut(from).unwrap().mark_read(read).await.unwrap();
            }
        }
    }
    assert!(recalls > 5 && deletions > 5, "{recalls} recalls and {deletions} deletions");
    for user in users {
        let inbox = inbox_of(&app, user).await;
        let cursors: ListReadCursorsResponse = devices
            .get_mut(user)
            .unwrap()
            .list_read_cursors(gim::proto::logic::v1::Empty {})
            .await
            .unwrap()
            .into_inner();
        let read: HashMap<(i32, String), u64> =
            cursors.cursors.into_iter().map(|c| ((c.conversation_type, c.conversation_id), c.seq)).collect();
        let mut expected: BTreeMap<(i32, String), (u64, u64, u64)> = BTreeMap::new();
        for message in inbox.iter().filter(|m| is_message(m)) {
            let (kind, id) = conversation_key(message, user);
            let entry = expected.entry((kind as i32, id.clone())).or_default();
            // A message deleted for the user is not its conversation's last one; a recalled one is.
            let deleted = message.status == MessageStatus::Deleted as i32;
            if !deleted {
                entry.0 = entry.0.max(message.seq);
            }
            let unread = message.seq > read.get(&(kind as i32, id)).copied().unwrap_or(0)
                && message.sender_user_id != user
                && !message.sender_user_id.is_empty()
                && message.status == MessageStatus::Normal as i32;
            if unread {
                entry.1 += 1;
                let mentioned = matches!(
                    message.body.as_ref().and_then(|b| b.content.as_ref()),
                    Some(Content::Text(t)) if t.mention_user_ids.iter().any(|m| m == user)
                );
                entry.2 += u64::from(mentioned);
            }
        }
        let listed = list(lists.get_mut(user).unwrap()).await;
        let got: BTreeMap<(i32, String), (u64, u64, u64)> = listed
            .conversations
            .iter()
            .map(|c| {
                let last = c.last_message.as_ref().map_or(0, |m| m.seq);
                ((c.conversation_type, c.conversation_id.clone()), (last, c.unread_count, c.mention_count))
            })
            .collect();
        assert_eq!(got, expected, "{user}'s list and inbox");
        assert_eq!(listed.total_unread, expected.values().map(|e| e.1).sum::<u64>());
    }
}

/// Not a revision: a message of its conversation.
fn is_message(message: &gim::proto::common::v1::Message) -> bool {
    message.r#type != MessageType::Revision as i32
}

/// A message a user sent that is still there to recall or delete.
fn is_user_message(message: &gim::proto::common::v1::Message) -> bool {
    is_message(message) && !message.sender_user_id.is_empty() && message.status == MessageStatus::Normal as i32
}

async fn messages_of(app: &TestApp, token: &str) -> MessagesClient<Intercepted> {
    let bearer = format!("Bearer {token}");
    MessagesClient::with_interceptor(channel(app.addr).await, Meta::new(&[("authorization", &bearer)]))
}

async fn inbox_of(app: &TestApp, user: &str) -> Vec<gim::proto::common::v1::Message> {
    let request = BusinessSyncRequest { user_id: user.into(), after_seq: 0, limit: 200 };
    app.business().await.sync(request).await.unwrap().into_inner().messages
}

fn conversation_key(message: &gim::proto::common::v1::Message, user: &str) -> (ConversationType, String) {
    match ConversationType::try_from(message.conversation_type).unwrap() {
        ConversationType::Group => (ConversationType::Group, message.receiver_id.clone()),
        ConversationType::Direct if message.sender_user_id == user => {
            (ConversationType::Direct, message.receiver_id.clone())
        }
        ConversationType::Direct => (ConversationType::Direct, message.sender_user_id.clone()),
        other => (other, String::new()),
    }
}

/// Pinning on the phone tells the laptop (not the phone's own session), with the version
/// to sync from; a change by the business tells every device.
async fn a_setting_changed_on_one_device_reaches_the_others(backend: Backend) {
    use gim::proto::client::v1::event_push::Event;
    let server = ServeServer::start(backend).await;
    let app = server.new_app().await;
    app.user("bob").await;
    app.user("ann").await;
    let (phone, laptop) = (app.device_token("bob", "phone").await, app.device_token("bob", "laptop").await);
    let (mut phone_session, _) = WsClient::online(server.ws_addr(), &phone, 0).await;
    let (mut laptop_session, _) = WsClient::online(server.ws_addr(), &laptop, 0).await;
    let request = UpdateConversationRequest {
        conversation_type: ConversationType::Direct as i32,
        conversation_id: "ann".into(),
        pinned: Some(true),
        ..Default::default()
    };
    let pinned = conversations_of(&app, &phone).await.update_conversation(request.clone()).await.unwrap().into_inner();
    match laptop_session.next_event(WAIT).await {
        Some(Event::Conversation(event)) => {
            assert_eq!((event.conversation_id.as_str(), event.version), ("ann", pinned.version));
        }
        other => panic!("expected a conversation event, got {other:?}"),
    }
    assert_eq!(
        phone_session.next_event(std::time::Duration::from_millis(300)).await,
        None,
        "not to the device that did it"
    );

    let app_id = app.app_id.to_string();
    let as_bob =
        Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret), ("x-gim-acting-user", "bob")]);
    let mut business = ConversationsClient::with_interceptor(channel(app.addr).await, as_bob);
    business.update_conversation(UpdateConversationRequest { pinned: Some(false), ..request }).await.unwrap();
    for session in [&mut phone_session, &mut laptop_session] {
        assert!(matches!(session.next_event(WAIT).await, Some(Event::Conversation(_))));
    }
}
