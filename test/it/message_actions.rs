//! What users do to messages after sending them, on both stores and over real
//! WebSockets: recall (counts, tombstones, who may, offline devices), edit, replies,
//! reactions, forwards, delete for me, typing; and bad input that changes nothing.

use std::time::Duration;

use gim::proto::{
    client::v1::{client_frame::Payload, event_push::Event},
    common::v1::{
        ConversationType, ImageBody, Message, MessageBody, MessageStatus, MessageType, RevisionKind, TextBody,
        message_body::Content,
    },
    logic::v1::{
        BusinessHistoryRequest, BusinessSendRequest, BusinessSyncRequest, ClearHistoryRequest, ConversationRef,
        DeleteMessagesRequest, EditMessageRequest, ForwardMessageRequest, GroupHistoryRequest, GroupSendRequest,
        ListConversationsRequest, MessageRef, ReactionRequest, SearchMessagesRequest, SyncGroupRequest, TypingRequest,
        conversations_client::ConversationsClient, messages_client::MessagesClient,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Intercepted, Meta, ServeServer, TestApp, TestServer, channel, make_group, text, text_of},
    ws::{WAIT, WsClient},
};

both_stores!(
    a_recall_erases_the_message_and_corrects_every_count,
    a_device_offline_during_a_recall_sees_the_tombstone_after_sync,
    edits_replies_reactions_and_forwards_follow_their_rules,
    a_large_groups_timeline_carries_its_revisions,
    clearing_history_hides_it_from_the_user_alone,
    delete_for_me_hides_messages_from_the_users_devices_only,
    typing_reaches_the_other_side_only_and_is_rate_limited,
);

type Messages = MessagesClient<Intercepted>;

/// The Messages API as the business, acting as `user` (or as the app when `None`).
async fn messages_as(app: &TestApp, user: Option<&str>) -> Messages {
    let app_id = app.app_id.to_string();
    let mut pairs = vec![("x-gim-app-id", app_id.as_str()), ("x-gim-app-secret", app.secret.as_str())];
    if let Some(user) = user {
        pairs.push(("x-gim-acting-user", user));
    }
    MessagesClient::with_interceptor(channel(app.addr).await, Meta::new(&pairs))
}

async fn send(app: &TestApp, from: &str, to: &str, id: &str, reply_to: u64) -> Result<u64, tonic::Status> {
    let request = BusinessSendRequest {
        sender_user_id: from.into(),
        receiver_user_id: to.into(),
        client_msg_id: id.replace(' ', "-"),
        body: text(id),
        reply_to_message_id: reply_to,
    };
    Ok(app.business().await.send_message(request).await?.into_inner().message_id)
}

async fn group_send(app: &TestApp, from: &str, group: &str, id: &str, body: Option<MessageBody>) -> u64 {
    let request = GroupSendRequest { group_id: group.into(), client_msg_id: id.into(), body, reply_to_message_id: 0 };
    app.groups(Some(from)).await.send_message(request).await.unwrap().into_inner().message_id
}

async fn inbox(app: &TestApp, user: &str) -> Vec<Message> {
    let request = BusinessSyncRequest { user_id: user.into(), after_seq: 0, limit: 200 };
    app.business().await.sync(request).await.unwrap().into_inner().messages
}

async fn history(app: &TestApp, user: &str, peer: &str) -> Vec<Message> {
    let request = BusinessHistoryRequest { user_id: user.into(), peer_user_id: peer.into(), ..Default::default() };
    app.business().await.get_history(request).await.unwrap().into_inner().messages
}

async fn group_history(app: &TestApp, user: &str, group: &str) -> Vec<Message> {
    let request = GroupHistoryRequest { group_id: group.into(), ..Default::default() };
    app.groups(Some(user)).await.get_history(request).await.unwrap().into_inner().messages
}

/// (unread, mentions, last message id, last message status) of one of `user`'s conversations.
async fn conversation(app: &TestApp, user: &str, kind: ConversationType, id: &str) -> (u64, u64, u64, i32) {
    let app_id = app.app_id.to_string();
    let meta = Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret), ("x-gim-acting-user", user)]);
    let mut client = ConversationsClient::with_interceptor(channel(app.addr).await, meta);
    let list = client.list_conversations(ListConversationsRequest::default()).await.unwrap().into_inner();
    let found = list
        .conversations
        .into_iter()
        .find(|c| c.conversation_type == kind as i32 && c.conversation_id == id)
        .unwrap_or_else(|| panic!("{user} has no conversation {id}"));
    let last = found.last_message.unwrap_or_default();
    (found.unread_count, found.mention_count, last.id, last.status)
}

fn revision_of(message: &Message) -> Option<(RevisionKind, Vec<u64>, String)> {
    match message.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(Content::Revision(revision)) => {
            Some((revision.kind(), revision.message_ids.clone(), revision.actor_user_id.clone()))
        }
        _ => None,
    }
}

fn by_id(messages: &[Message], id: u64) -> &Message {
    messages.iter().find(|m| m.id == id).unwrap_or_else(|| panic!("message {id} is not in {messages:#?}"))
}

fn recall(id: u64) -> MessageRef {
    MessageRef { message_id: id }
}

async fn a_recall_erases_the_message_and_corrects_every_count(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.messages.recall_window_secs = 2).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol", "dave"] {
        app.user(user).await;
    }
    let a1 = send(&app, "alice", "bob", "a1", 0).await.unwrap();
    let a2 = send(&app, "alice", "bob", "a2", 0).await.unwrap();
    make_group(&app, "alice", "team", &["bob", "carol"]).await;
    let mention_bob = Some(MessageBody {
        content: Some(Content::Text(TextBody {
            text: "@bob".into(),
            mention_user_ids: vec!["bob".into()],
            mention_all: false,
        })),
    });
    let g1 = group_send(&app, "carol", "team", "g1", mention_bob).await;
    assert_eq!(conversation(&app, "bob", ConversationType::Direct, "alice").await, (2, 0, a2, 1));
    assert_eq!(conversation(&app, "bob", ConversationType::Group, "team").await.0, 1);
    assert_eq!(conversation(&app, "bob", ConversationType::Group, "team").await.1, 1);

    // Who may not: the receiver, a stranger, a plain member, another app; nothing changes.
    let other = server.new_app().await;
    for (mut client, id, code) in [
        (messages_as(&app, Some("bob")).await, a2, Code::PermissionDenied),
        (messages_as(&app, Some("carol")).await, a2, Code::NotFound),
        (messages_as(&app, Some("bob")).await, g1, Code::PermissionDenied),
        (messages_as(&app, Some("dave")).await, g1, Code::NotFound),
        (messages_as(&other, None).await, a2, Code::NotFound),
        (messages_as(&app, Some("alice")).await, 999, Code::NotFound),
    ] {
        assert_eq!(client.recall_message(recall(id)).await.unwrap_err().code(), code, "recall of {id}");
    }
    assert_eq!(conversation(&app, "bob", ConversationType::Direct, "alice").await, (2, 0, a2, 1));

    // The sender, in time: the body is gone, the tombstone says who, the counts follow.
    let recalled = messages_as(&app, Some("alice")).await.recall_message(recall(a2)).await.unwrap().into_inner();
    assert_eq!(recalled.status, MessageStatus::Recalled as i32);
    assert_eq!((recalled.recalled_by.as_str(), recalled.body.unwrap_or_default()), ("alice", MessageBody::default()));
    assert_eq!(recalled.r#type, MessageType::Text as i32, "the tombstone keeps the kind of message it was");
    assert!(recalled.recalled_at_ms > 0);
    let again = messages_as(&app, Some("alice")).await.recall_message(recall(a2)).await.unwrap().into_inner();
    assert_eq!(again.recalled_at_ms, recalled.recalled_at_ms, "a second recall repeats the first");
    assert_eq!(
        conversation(&app, "bob", ConversationType::Direct, "alice").await,
        (1, 0, a2, MessageStatus::Recalled as i32),
        "the last message is the tombstone, a1 is left unread"
    );
    for user in ["alice", "bob"] {
        let peer = if user == "alice" { "bob" } else { "alice" };
        let shown = history(&app, user, peer).await;
        assert_eq!(shown.iter().map(|m| m.id).collect::<Vec<_>>(), [a2, a1], "{user}: no revision in history");
        assert_eq!(by_id(&shown, a2).status, MessageStatus::Recalled as i32);
        let synced = inbox(&app, user).await;
        let revisions: Vec<_> = synced.iter().filter_map(revision_of).collect();
        assert_eq!(revisions, [(RevisionKind::Recall, vec![a2], "alice".to_owned())], "{user}: one revision");
        assert_eq!(by_id(&synced, a2).body, Some(MessageBody::default()), "erased in storage, not hidden");
    }
    let edit = EditMessageRequest { message_id: a2, text: Some(TextBody { text: "x".into(), ..Default::default() }) };
    assert_eq!(
        messages_as(&app, Some("alice")).await.edit_message(edit).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // The group's owner recalls a member's message at any time; the mention goes too.
    messages_as(&app, Some("alice")).await.recall_message(recall(g1)).await.unwrap();
    assert_eq!(conversation(&app, "bob", ConversationType::Group, "team").await.0, 0);
    assert_eq!(conversation(&app, "bob", ConversationType::Group, "team").await.1, 0);
    let shown = group_history(&app, "carol", "team").await;
    assert_eq!(by_id(&shown, g1).status, MessageStatus::Recalled as i32);
    assert!(shown.iter().all(|m| revision_of(m).is_none()), "no revision in group history");

    // Past the window the sender may not; the app always may; the app's notices never.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let late = messages_as(&app, Some("alice")).await.recall_message(recall(a1)).await.unwrap_err();
    assert_eq!(late.code(), Code::PermissionDenied);
    let by_app = messages_as(&app, None).await.recall_message(recall(a1)).await.unwrap().into_inner();
    assert_eq!((by_app.status, by_app.recalled_by.as_str()), (MessageStatus::Recalled as i32, ""));
    assert_eq!(conversation(&app, "bob", ConversationType::Direct, "alice").await.0, 0);
    let notice = inbox(&app, "bob").await.into_iter().find(|m| m.r#type == MessageType::System as i32).unwrap();
    let refused = messages_as(&app, None).await.recall_message(recall(notice.id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // A revision is not a message anyone can act on.
    let revision = inbox(&app, "bob").await.into_iter().find(|m| revision_of(m).is_some()).unwrap();
    let refused = messages_as(&app, None).await.recall_message(recall(revision.id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
}

/// Bob's phone holds a message, goes offline, the message is recalled; back online, its
/// sync brings the revision, and a fresh device sees the tombstone in place.
async fn a_device_offline_during_a_recall_sees_the_tombstone_after_sync(backend: Backend) {
    let server = ServeServer::start(backend).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let (phone, laptop) = (app.device_token("bob", "phone").await, app.device_token("bob", "laptop").await);
    let (mut laptop_session, _) = WsClient::online(server.ws_addr(), &laptop, 0).await;
    let (mut phone_session, _) = WsClient::online(server.ws_addr(), &phone, 0).await;
    let id = send(&app, "alice", "bob", "secret", 0).await.unwrap();
    let held = phone_session.next_message(WAIT).await.expect("the phone gets the message");
    assert_eq!((held.id, text_of(&held)), (id, "secret"));
    drop(phone_session);
    assert_eq!(laptop_session.next_message(WAIT).await.map(|m| m.id), Some(id));

    messages_as(&app, Some("alice")).await.recall_message(recall(id)).await.unwrap();
    // The laptop, online, is told at once, as the next message of its inbox.
    let told = laptop_session.next_message(WAIT).await.expect("a revision push");
    assert_eq!(told.seq, held.seq + 1);
    assert_eq!(revision_of(&told), Some((RevisionKind::Recall, vec![id], "alice".into())));

    let (_phone_session, synced) = WsClient::online(server.ws_addr(), &phone, held.seq).await;
    assert_eq!(synced.len(), 1, "only the revision is new to the phone");
    assert_eq!(revision_of(&synced[0]), Some((RevisionKind::Recall, vec![id], "alice".into())));
    let tablet = app.device_token("bob", "tablet").await;
    let (_tablet_session, all) = WsClient::online(server.ws_addr(), &tablet, 0).await;
    let tombstone = by_id(&all, id);
    assert_eq!((tombstone.status, tombstone.recalled_by.as_str()), (MessageStatus::Recalled as i32, "alice"));
    assert_eq!(tombstone.body, Some(MessageBody::default()));
}

async fn edits_replies_reactions_and_forwards_follow_their_rules(backend: Backend) {
    let server = ServeServer::start(backend).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    make_group(&app, "alice", "team", &["bob"]).await;
    let bob_token = app.device_token("bob", "phone").await;
    let (mut bob_session, _) = WsClient::online(server.ws_addr(), &bob_token, 0).await;
    let hello = send(&app, "alice", "bob", "hello", 0).await.unwrap();
    let other = send(&app, "alice", "carol", "for carol", 0).await.unwrap();
    let image = app
        .business()
        .await
        .send_message(BusinessSendRequest {
            sender_user_id: "alice".into(),
            receiver_user_id: "bob".into(),
            client_msg_id: "img".into(),
            body: Some(MessageBody {
                content: Some(Content::Image(ImageBody { url: "https://x.test/a.png".into(), ..Default::default() })),
            }),
            reply_to_message_id: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .message_id;

    // Nobody sends a revision: gim writes them.
    let forged = BusinessSendRequest {
        sender_user_id: "alice".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: "forged".into(),
        body: Some(MessageBody {
            content: Some(Content::Revision(gim::proto::common::v1::RevisionBody {
                kind: RevisionKind::Recall as i32,
                message_ids: vec![hello],
                ..Default::default()
            })),
        }),
        reply_to_message_id: 0,
    };
    let refused = app.business().await.send_message(forged).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    // Replies: to a message the sender may see, in the same conversation; the snippet is
    // the original as it is now. One it may not see is answered as one that does not exist.
    let reply = send(&app, "bob", "alice", "hi back", hello).await.unwrap();
    assert_eq!(send(&app, "bob", "alice", "bad", other).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(send(&app, "bob", "alice", "bad2", 424_242).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(send(&app, "carol", "bob", "bad3", other).await.unwrap_err().code(), Code::InvalidArgument);
    let pushed = bob_session.messages_until_quiet(Duration::from_millis(300)).await;
    let pushed_reply = pushed.iter().find(|m| m.id == reply).expect("bob's other devices get his reply");
    assert_eq!(pushed_reply.reply_to.as_ref().map(|r| r.snippet.as_str()), Some("hello"));

    // Edits: the sender's text messages, in time; mentions stay as sent.
    let edit = |id: u64, text: &str| EditMessageRequest {
        message_id: id,
        text: Some(TextBody { text: text.into(), mention_user_ids: vec!["carol".into()], ..Default::default() }),
    };
    let mut alice = messages_as(&app, Some("alice")).await;
    let mut bob = messages_as(&app, Some("bob")).await;
    assert_eq!(bob.edit_message(edit(hello, "mine now")).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(alice.edit_message(edit(image, "an image")).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(alice.edit_message(edit(hello, " ")).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(alice.edit_message(edit(hello, &"x".repeat(5001))).await.unwrap_err().code(), Code::InvalidArgument);
    let edited = alice.edit_message(edit(hello, "hello, edited")).await.unwrap().into_inner();
    assert_eq!(text_of(&edited), "hello, edited");
    assert!(edited.edited_at_ms > 0);
    let mentions = match edited.body.and_then(|b| b.content) {
        Some(Content::Text(text)) => text.mention_user_ids,
        other => panic!("{other:?}"),
    };
    assert_eq!(mentions, Vec::<String>::new(), "an edit mentions no one anew");
    let told = bob_session.next_message(WAIT).await.expect("bob is told of the edit");
    match told.body.and_then(|b| b.content) {
        Some(Content::Revision(revision)) => {
            assert_eq!((revision.kind(), revision.message_ids), (RevisionKind::Edit, vec![hello]));
            assert_eq!(revision.text.map(|t| t.text).as_deref(), Some("hello, edited"));
        }
        other => panic!("expected an edit revision, got {other:?}"),
    }
    let shown = history(&app, "bob", "alice").await;
    assert_eq!(text_of(by_id(&shown, hello)), "hello, edited");
    assert_eq!(by_id(&shown, reply).reply_to.as_ref().unwrap().snippet, "hello, edited");

    // Reactions: from the configured set, a few per user, counted per message.
    let react = |id: u64, emoji: &str| ReactionRequest { message_id: id, emoji: emoji.into() };
    let counts = bob.add_reaction(react(hello, "👍")).await.unwrap().into_inner().reactions;
    assert_eq!(counts.iter().map(|r| (r.emoji.as_str(), r.count, r.mine)).collect::<Vec<_>>(), [("👍", 1, true)]);
    bob.add_reaction(react(hello, "👍")).await.unwrap();
    for emoji in ["👍", "❤️", "🎉"] {
        alice.add_reaction(react(hello, emoji)).await.unwrap();
    }
    assert_eq!(alice.add_reaction(react(hello, "🔥")).await.unwrap_err().code(), Code::InvalidArgument, "a 4th");
    assert_eq!(bob.add_reaction(react(hello, "🦀")).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(bob.add_reaction(react(other, "👍")).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(messages_as(&app, None).await.add_reaction(react(hello, "👍")).await.unwrap_err().code(), {
        Code::InvalidArgument
    });
    let counts = alice.remove_reaction(react(hello, "🎉")).await.unwrap().into_inner().reactions;
    let summary: Vec<_> = counts.iter().map(|r| (r.emoji.as_str(), r.count, r.mine)).collect();
    assert_eq!(summary, [("👍", 2, true), ("❤️", 1, true)]);
    let shown = history(&app, "bob", "alice").await;
    let summary: Vec<_> = by_id(&shown, hello).reactions.iter().map(|r| (r.emoji.as_str(), r.count, r.mine)).collect();
    assert_eq!(summary, [("👍", 2, true), ("❤️", 1, false)], "bob's view");
    let mut events = Vec::new();
    while let Some(event) = bob_session.next_event(Duration::from_millis(300)).await {
        events.push(event);
    }
    let reactions: Vec<(String, String, bool)> = events
        .into_iter()
        .filter_map(|event| match event {
            Event::Reaction(r) => Some((r.user_id, r.emoji, r.added)),
            _ => None,
        })
        .collect();
    let changes = |user: &str, changes: &[(&str, bool)]| -> Vec<(String, String, bool)> {
        changes.iter().map(|(emoji, added)| (user.to_owned(), (*emoji).to_owned(), *added)).collect()
    };
    let mut expected = changes("bob", &[("👍", true)]);
    expected.extend(changes("alice", &[("👍", true), ("❤️", true), ("🎉", true), ("🎉", false)]));
    assert_eq!(reactions, expected, "every change once (bob's repeated 👍 changed nothing), in order");

    // Forwards: to the user's other conversations, with where it came from.
    let forward = |id: u64, targets: &[(ConversationType, &str)], client: &str| ForwardMessageRequest {
        message_id: id,
        targets: targets
            .iter()
            .map(|(kind, id)| ConversationRef { conversation_type: *kind as i32, conversation_id: (*id).into() })
            .collect(),
        client_msg_id: client.into(),
    };
    let targets = [(ConversationType::Direct, "carol"), (ConversationType::Group, "team")];
    let sent = bob.forward_message(forward(hello, &targets, "fw1")).await.unwrap().into_inner().sent;
    assert_eq!(sent.len(), 2);
    let again = bob.forward_message(forward(hello, &targets, "fw1")).await.unwrap().into_inner().sent;
    assert_eq!(again, sent, "a retry sends nothing twice");
    let copy = by_id(&inbox(&app, "carol").await, sent[0].message_id).clone();
    assert_eq!((copy.sender_user_id.as_str(), text_of(&copy)), ("bob", "hello, edited"));
    let origin = copy.forwarded_from.expect("the copy says where it came from");
    assert_eq!((origin.message_id, origin.sender_user_id.as_str()), (hello, "alice"));
    assert_eq!(bob.forward_message(forward(other, &targets, "fw2")).await.unwrap_err().code(), Code::NotFound);
    make_group(&app, "carol", "carols", &[]).await;
    let outside = [(ConversationType::Group, "carols")];
    let refused = bob.forward_message(forward(hello, &outside, "fw5")).await.unwrap_err();
    assert!(matches!(refused.code(), Code::PermissionDenied | Code::NotFound), "{refused:?}");
    let too_many: Vec<(ConversationType, &str)> = vec![(ConversationType::Direct, "carol"); 11];
    assert_eq!(bob.forward_message(forward(hello, &too_many, "fw3")).await.unwrap_err().code(), {
        Code::InvalidArgument
    });

    // A recall takes the reactions with it, and replies show the original as recalled.
    alice.recall_message(recall(hello)).await.unwrap();
    let shown = history(&app, "bob", "alice").await;
    assert_eq!(by_id(&shown, hello).reactions, []);
    let quoted = by_id(&shown, reply).reply_to.clone().unwrap();
    assert!(quoted.recalled && quoted.snippet.is_empty(), "{quoted:?}");
    assert_eq!(bob.add_reaction(react(hello, "👍")).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(bob.forward_message(forward(hello, &targets, "fw4")).await.unwrap_err().code(), {
        Code::FailedPrecondition
    });
}

async fn delete_for_me_hides_messages_from_the_users_devices_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        for id in ["a1", "a2", "a3"] {
            ids.push(send(&app, "alice", "bob", id, 0).await.unwrap());
        }
        ids
    };
    make_group(&app, "alice", "team", &["bob"]).await;
    let g1 = group_send(&app, "alice", "team", "g1", text("g1")).await;
    let mut bob = messages_as(&app, Some("bob")).await;
    let delete = |kind: ConversationType, id: &str, ids: Vec<u64>| DeleteMessagesRequest {
        conversation_type: kind as i32,
        conversation_id: id.into(),
        message_ids: ids,
    };

    // Refused, and nothing changes: another conversation's message, too many, no user.
    for (request, code) in [
        (delete(ConversationType::Direct, "carol", vec![ids[0]]), Code::NotFound),
        (delete(ConversationType::Group, "team", vec![ids[0]]), Code::NotFound),
        (delete(ConversationType::Direct, "alice", vec![ids[0], 777]), Code::NotFound),
        (delete(ConversationType::Direct, "alice", (1..=101).collect()), Code::InvalidArgument),
        (delete(ConversationType::Direct, "alice", vec![]), Code::InvalidArgument),
        (delete(ConversationType::Unspecified, "alice", vec![ids[0]]), Code::InvalidArgument),
    ] {
        assert_eq!(bob.delete_messages(request).await.unwrap_err().code(), code);
    }
    let mut as_app = messages_as(&app, None).await;
    let refused = as_app.delete_messages(delete(ConversationType::Direct, "alice", vec![ids[0]])).await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument, "the app has no messages of its own");
    assert_eq!(conversation(&app, "bob", ConversationType::Direct, "alice").await, (3, 0, ids[2], 1));

    let seq = bob
        .delete_messages(delete(ConversationType::Direct, "alice", vec![ids[2], ids[0]]))
        .await
        .unwrap()
        .into_inner();
    let shown = history(&app, "bob", "alice").await;
    assert_eq!(shown.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[1]], "bob's history");
    assert_eq!(history(&app, "alice", "bob").await.len(), 3, "alice keeps hers");
    assert_eq!(
        conversation(&app, "bob", ConversationType::Direct, "alice").await,
        (1, 0, ids[1], 1),
        "the last message and the count follow"
    );
    let synced = inbox(&app, "bob").await;
    for id in [ids[0], ids[2]] {
        let gone = by_id(&synced, id);
        assert_eq!((gone.status, gone.body.clone()), (MessageStatus::Deleted as i32, Some(MessageBody::default())));
    }
    let told = synced.iter().find(|m| m.seq == seq.seq).expect("the revision is in bob's inbox");
    assert_eq!(revision_of(told), Some((RevisionKind::Delete, vec![ids[0], ids[2]], "bob".into())));
    assert!(inbox(&app, "alice").await.iter().all(|m| revision_of(m).is_none()), "alice hears nothing of it");

    bob.delete_messages(delete(ConversationType::Group, "team", vec![g1])).await.unwrap();
    assert!(group_history(&app, "bob", "team").await.iter().all(|m| m.id != g1));
    assert!(group_history(&app, "alice", "team").await.iter().any(|m| m.id == g1));
    assert!(
        inbox(&app, "alice").await.iter().all(|m| revision_of(m).is_none()),
        "a group deletion reaches no other member"
    );
}

async fn typing_reaches_the_other_side_only_and_is_rate_limited(backend: Backend) {
    let server = ServeServer::start_with(backend, |config| config.rates.typing_per_minute = 3).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol", "stranger"] {
        app.user(user).await;
    }
    send(&app, "alice", "bob", "hi", 0).await.unwrap();
    make_group(&app, "alice", "team", &["bob", "carol"]).await;
    let token = |user: &'static str| {
        let app = app.clone();
        async move { app.device_token(user, "phone").await }
    };
    let (mut alice, _) = WsClient::online(server.ws_addr(), &token("alice").await, 0).await;
    let (mut bob, _) = WsClient::online(server.ws_addr(), &token("bob").await, 0).await;
    let (mut carol, _) = WsClient::online(server.ws_addr(), &token("carol").await, 0).await;
    let typing = |kind: ConversationType, id: &str| {
        Payload::Typing(TypingRequest { conversation_type: kind as i32, conversation_id: id.into() })
    };

    assert_eq!(alice.request(typing(ConversationType::Direct, "bob")).await.code, 0);
    match bob.next_event(WAIT).await {
        Some(Event::Typing(event)) => {
            assert_eq!((event.user_id.as_str(), event.conversation_id.as_str()), ("alice", "alice"));
            assert_eq!(event.conversation_type, ConversationType::Direct as i32);
        }
        other => panic!("expected a typing event, got {other:?}"),
    }
    assert_eq!(carol.next_event(Duration::from_millis(300)).await, None, "not carol's conversation");

    assert_eq!(alice.request(typing(ConversationType::Group, "team")).await.code, 0);
    for member in [&mut bob, &mut carol] {
        match member.next_event(WAIT).await {
            Some(Event::Typing(event)) => assert_eq!(event.conversation_id, "team"),
            other => panic!("expected a typing event, got {other:?}"),
        }
    }
    assert_eq!(alice.next_event(Duration::from_millis(300)).await, None, "not to the typist");

    // The same over gRPC, for a device without a session.
    let bearer = format!("Bearer {}", token("carol").await);
    let mut carol_grpc =
        MessagesClient::with_interceptor(channel(app.addr).await, Meta::new(&[("authorization", &bearer)]));
    let request = TypingRequest { conversation_type: ConversationType::Group as i32, conversation_id: "team".into() };
    carol_grpc.typing(request).await.unwrap();
    match bob.next_event(WAIT).await {
        Some(Event::Typing(event)) => assert_eq!(event.user_id, "carol"),
        other => panic!("expected carol typing, got {other:?}"),
    }

    // No conversation, no typing: a stranger is not reached this way.
    let refused = alice.request(typing(ConversationType::Direct, "stranger")).await;
    assert_eq!(refused.code, Code::NotFound as i32);
    let refused = alice.request(typing(ConversationType::System, "")).await;
    assert_eq!(refused.code, Code::InvalidArgument as i32);
    // Three a minute in this test: the fourth is refused with the time to wait.
    let limited = alice.request(typing(ConversationType::Direct, "bob")).await;
    assert_eq!(limited.code, Code::ResourceExhausted as i32, "{}", limited.message);
}

/// In a large group (one timeline that members read), a recall and an edit are timeline
/// entries every member syncs; a deletion is the deleter's alone.
async fn a_large_groups_timeline_carries_its_revisions(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 2).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    make_group(&app, "alice", "hall", &["bob", "carol"]).await;
    let (m1, m2) = (
        group_send(&app, "bob", "hall", "m1", text("m1")).await,
        group_send(&app, "bob", "hall", "m2", text("m2")).await,
    );
    let timeline = |user: &'static str| {
        let app = app.clone();
        async move {
            let request = SyncGroupRequest { group_id: "hall".into(), after_group_seq: 0, limit: 100 };
            app.groups(Some(user)).await.sync_group(request).await.unwrap().into_inner().messages
        }
    };
    let before = timeline("carol").await;
    assert!(before.iter().all(|m| m.seq == 0 && m.group_seq > 0), "a timeline, not inboxes");

    messages_as(&app, Some("bob")).await.recall_message(recall(m1)).await.unwrap();
    let edit = EditMessageRequest { message_id: m2, text: Some(TextBody { text: "m2!".into(), ..Default::default() }) };
    messages_as(&app, Some("bob")).await.edit_message(edit).await.unwrap();
    let after = timeline("carol").await;
    let revisions: Vec<_> = after.iter().filter_map(revision_of).map(|(kind, ids, _)| (kind, ids)).collect();
    assert_eq!(revisions, [(RevisionKind::Recall, vec![m1]), (RevisionKind::Edit, vec![m2])]);
    assert_eq!(by_id(&after, m1).status, MessageStatus::Recalled as i32);
    assert_eq!(text_of(by_id(&after, m2)), "m2!");
    let seqs: Vec<u64> = after.iter().map(|m| m.group_seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gap-free: {seqs:?}");

    let request = DeleteMessagesRequest {
        conversation_type: ConversationType::Group as i32,
        conversation_id: "hall".into(),
        message_ids: vec![m2],
    };
    messages_as(&app, Some("carol")).await.delete_messages(request).await.unwrap();
    let carols = timeline("carol").await;
    assert_eq!(by_id(&carols, m2).status, MessageStatus::Deleted as i32, "deleted in carol's view");
    assert_eq!(carols.len(), after.len(), "her deletion is not on the timeline");
    assert_eq!(text_of(by_id(&timeline("alice").await, m2)), "m2!", "alice still has it");
    assert!(group_history(&app, "carol", "hall").await.iter().all(|m| m.id != m2));
    let revision = inbox(&app, "carol").await.into_iter().find_map(|m| revision_of(&m));
    assert_eq!(revision, Some((RevisionKind::Delete, vec![m2], "carol".into())), "told to carol's devices");
}

async fn clearing_history_hides_it_from_the_user_alone(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 3).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol", "dave"] {
        app.user(user).await;
    }
    let mut direct = Vec::new();
    for id in ["apple one", "apple two", "apple three"] {
        direct.push(send(&app, "alice", "bob", id, 0).await.unwrap());
    }
    direct.push(send(&app, "bob", "alice", "banana", 0).await.unwrap());
    make_group(&app, "alice", "team", &["bob"]).await;
    let g1 = group_send(&app, "alice", "team", "g1", text("cherry")).await;
    let seq_of = |messages: &[Message], id: u64| by_id(messages, id).seq;
    let two = seq_of(&inbox(&app, "bob").await, direct[1]);
    let app_id = app.app_id.to_string();
    let meta = Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret), ("x-gim-acting-user", "bob")]);
    let mut bob = ConversationsClient::with_interceptor(channel(app.addr).await, meta);
    let clear = |kind: ConversationType, id: &str, up_to_seq: u64| ClearHistoryRequest {
        conversation_type: kind as i32,
        conversation_id: id.into(),
        up_to_seq,
    };

    // Refused, and nothing changes.
    let g1_seq = seq_of(&inbox(&app, "bob").await, g1);
    for (request, code) in [
        (clear(ConversationType::Direct, "alice", g1_seq), Code::InvalidArgument),
        (clear(ConversationType::Direct, "alice", 10_000), Code::InvalidArgument),
        (clear(ConversationType::Unspecified, "alice", 0), Code::InvalidArgument),
        (clear(ConversationType::Direct, "carol", 0), Code::FailedPrecondition),
        (clear(ConversationType::Group, "nowhere", 0), Code::NotFound),
    ] {
        assert_eq!(bob.clear_history(request).await.unwrap_err().code(), code);
    }
    make_group(&app, "carol", "theirs", &["dave"]).await;
    let outside = bob.clear_history(clear(ConversationType::Group, "theirs", 0)).await.unwrap_err();
    assert_eq!(outside.code(), Code::NotFound);
    assert_eq!(conversation(&app, "bob", ConversationType::Direct, "alice").await.0, 3);

    let cleared = bob.clear_history(clear(ConversationType::Direct, "alice", two)).await.unwrap().into_inner();
    assert_eq!(cleared.cleared_seq, two);
    assert_eq!(cleared.unread_count, 1, "what was cleared is not unread");
    assert_eq!(cleared.last_message.map(|m| m.id), Some(direct[3]));
    let shown: Vec<u64> = history(&app, "bob", "alice").await.iter().map(|m| m.id).collect();
    assert_eq!(shown, [direct[3], direct[2]], "bob's history starts after the clearing");
    assert_eq!(history(&app, "alice", "bob").await.len(), 4, "alice keeps hers");
    let told = inbox(&app, "bob").await.into_iter().find_map(|m| match m.body.and_then(|b| b.content) {
        Some(Content::Revision(revision)) => Some((revision.kind(), revision.up_to_seq, m.receiver_id)),
        _ => None,
    });
    assert_eq!(told, Some((RevisionKind::Clear, two, "alice".to_owned())), "bob's devices are told");
    let search = |user: &'static str, words: &'static str| {
        let app = app.clone();
        async move {
            let request = SearchMessagesRequest { query: words.into(), ..Default::default() };
            messages_as(&app, Some(user)).await.search_messages(request).await.unwrap().into_inner().messages.len()
        }
    };
    assert_eq!(search("bob", "apple").await, 1, "search leaves the cleared out");
    assert_eq!(search("alice", "apple").await, 3);

    // A group, up to now; what comes later shows.
    let all = bob.clear_history(clear(ConversationType::Group, "team", 0)).await.unwrap().into_inner();
    assert_eq!((all.unread_count, all.last_message), (0, None));
    assert_eq!(group_history(&app, "bob", "team").await, []);
    assert!(!group_history(&app, "alice", "team").await.is_empty());
    let g2 = group_send(&app, "alice", "team", "g2", text("cherry again")).await;
    assert_eq!(group_history(&app, "bob", "team").await.iter().map(|m| m.id).collect::<Vec<_>>(), [g2]);
    assert_eq!(search("bob", "cherry").await, 1);

    // A large group (a timeline), by group seq.
    make_group(&app, "alice", "hall", &["bob", "carol", "dave"]).await;
    let h1 = group_send(&app, "alice", "hall", "h1", text("h1")).await;
    let h2 = group_send(&app, "alice", "hall", "h2", text("h2")).await;
    let timeline = app
        .groups(Some("bob"))
        .await
        .sync_group(SyncGroupRequest { group_id: "hall".into(), after_group_seq: 0, limit: 100 })
        .await
        .unwrap()
        .into_inner()
        .messages;
    let h1_seq = by_id(&timeline, h1).group_seq;
    bob.clear_history(clear(ConversationType::Group, "hall", h1_seq)).await.unwrap();
    let shown: Vec<u64> = group_history(&app, "bob", "hall").await.iter().map(|m| m.id).collect();
    assert_eq!(shown, [h2]);
    let past = bob.clear_history(clear(ConversationType::Group, "hall", 10_000)).await.unwrap_err();
    assert_eq!(past.code(), Code::InvalidArgument);
}
