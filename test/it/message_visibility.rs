//! Every call that names a message by id applies the visibility of history: a message the
//! caller may not see (from before its join in a group that hides its history, past its
//! clear point, deleted for itself, of others' conversations, a revision, another app's)
//! answers NOT_FOUND exactly like one that does not exist, and nothing changes.

use gim::proto::{
    common::v1::{ConversationType, Message, MessageStatus, MessageType, TextBody},
    logic::v1::{
        BusinessSendRequest, ClearHistoryRequest, ConversationRef, DeleteMessagesRequest, EditMessageRequest,
        ForwardMessageRequest, GroupRef, GroupRole, GroupSendRequest, MembersRequest, MessageRef, ReactionRequest,
        SetRoleRequest, conversations_client::ConversationsClient, messages_client::MessagesClient,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Intercepted, Meta, TestApp, TestServer, channel, make_group, text},
};

both_stores!(a_message_the_caller_may_not_see_is_not_found_by_any_call);

/// A message a user may see is one of this many calls away from being changed or copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Forward,
    Reply,
    React,
    Unreact,
    Recall,
    Edit,
    DeleteForMe,
}

const CALLS: [Call; 7] =
    [Call::Forward, Call::Reply, Call::React, Call::Unreact, Call::Recall, Call::Edit, Call::DeleteForMe];

const VIEWER: &str = "vic";

fn acting(app: &TestApp, user: &str) -> Meta {
    let app_id = app.app_id.to_string();
    Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret), ("x-gim-acting-user", user)])
}

async fn messages_as(app: &TestApp, user: &str) -> MessagesClient<Intercepted> {
    MessagesClient::with_interceptor(channel(app.addr).await, acting(app, user))
}

async fn direct(app: &TestApp, from: &str, to: &str, client_msg_id: &str, reply_to: u64) -> Result<u64, tonic::Status> {
    let request = BusinessSendRequest {
        sender_user_id: from.into(),
        receiver_user_id: to.into(),
        client_msg_id: client_msg_id.into(),
        body: text(client_msg_id),
        reply_to_message_id: reply_to,
    };
    Ok(app.business().await.send_message(request).await?.into_inner().message_id)
}

async fn in_group(
    app: &TestApp,
    from: &str,
    group: &str,
    client_msg_id: &str,
    reply_to: u64,
) -> Result<u64, tonic::Status> {
    let request = GroupSendRequest {
        group_id: group.into(),
        client_msg_id: client_msg_id.into(),
        body: text(client_msg_id),
        reply_to_message_id: reply_to,
    };
    Ok(app.groups(Some(from)).await.send_message(request).await?.into_inner().message_id)
}

/// Adds the viewer to `group` as an admin (who may recall others' messages there).
async fn join_as_admin(app: &TestApp, owner: &str, group: &str) {
    let mut groups = app.groups(Some(owner)).await;
    let invite = MembersRequest { group_id: group.into(), user_ids: vec![VIEWER.into()] };
    groups.invite_members(invite).await.unwrap();
    let role = SetRoleRequest { group_id: group.into(), user_id: VIEWER.into(), role: GroupRole::Admin as i32 };
    groups.set_role(role).await.unwrap();
}

async fn clear(app: &TestApp, kind: ConversationType, id: &str) {
    let mut conversations = ConversationsClient::with_interceptor(channel(app.addr).await, acting(app, VIEWER));
    let request = ClearHistoryRequest { conversation_type: kind as i32, conversation_id: id.into(), up_to_seq: 0 };
    conversations.clear_history(request).await.unwrap();
}

async fn delete_for_me(app: &TestApp, (kind, id): (ConversationType, &str), message: u64) -> Result<(), tonic::Status> {
    let request = DeleteMessagesRequest {
        conversation_type: kind as i32,
        conversation_id: id.into(),
        message_ids: vec![message],
    };
    messages_as(app, VIEWER).await.delete_messages(request).await.map(drop)
}

/// Makes `call` as the viewer on `message`, from the viewer's conversation `home` (where
/// a reply is sent and a deletion is asked).
async fn attempt(app: &TestApp, call: Call, message: u64, home: (ConversationType, &str)) -> Code {
    let mut messages = messages_as(app, VIEWER).await;
    let reaction = || ReactionRequest { message_id: message, emoji: "👍".into() };
    let result = match call {
        Call::Forward => {
            let target =
                ConversationRef { conversation_type: ConversationType::Group as i32, conversation_id: "mine".into() };
            let request = ForwardMessageRequest {
                message_id: message,
                targets: vec![target],
                client_msg_id: format!("fw{message}"),
            };
            messages.forward_message(request).await.map(drop)
        }
        Call::Reply => match home {
            (ConversationType::Group, group) => {
                in_group(app, VIEWER, group, &format!("re{message}"), message).await.map(drop)
            }
            (_, peer) => direct(app, VIEWER, peer, &format!("re{message}"), message).await.map(drop),
        },
        Call::React => messages.add_reaction(reaction()).await.map(drop),
        Call::Unreact => messages.remove_reaction(reaction()).await.map(drop),
        Call::Recall => messages.recall_message(MessageRef { message_id: message }).await.map(drop),
        Call::Edit => {
            let edit = TextBody { text: "changed".into(), ..Default::default() };
            messages.edit_message(EditMessageRequest { message_id: message, text: Some(edit) }).await.map(drop)
        }
        Call::DeleteForMe => delete_for_me(app, home, message).await,
    };
    result.map_or_else(|status| status.code(), |()| Code::Ok)
}

/// Every message the viewer's inbox holds that the viewer sent (revisions aside).
async fn sent_by_viewer(app: &TestApp) -> Vec<Message> {
    app.inbox(VIEWER)
        .await
        .into_iter()
        .filter(|m| m.sender_user_id == VIEWER && m.r#type != MessageType::Revision as i32)
        .collect()
}

async fn a_message_the_caller_may_not_see_is_not_found_by_any_call(backend: Backend) {
    // Groups of four or more members read one timeline (large).
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 4).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol", "dave", VIEWER] {
        app.user(user).await;
    }
    make_group(&app, VIEWER, "mine", &["bob"]).await;

    // Before the viewer's join, in groups that hide their history from newcomers.
    make_group(&app, "alice", "small", &["bob"]).await;
    let before_join_small = in_group(&app, "alice", "small", "s1", 0).await.unwrap();
    join_as_admin(&app, "alice", "small").await;
    make_group(&app, "alice", "big", &["bob", "carol", "dave"]).await;
    let before_join_large = in_group(&app, "alice", "big", "b1", 0).await.unwrap();
    join_as_admin(&app, "alice", "big").await;
    let big = app.groups(Some(VIEWER)).await.get_group(GroupRef { group_id: "big".into() }).await.unwrap();
    assert!(big.into_inner().large, "big reads one timeline");

    // Past the viewer's clear point: its own messages, which it could otherwise recall and edit.
    let cleared_direct = direct(&app, VIEWER, "alice", "c1", 0).await.unwrap();
    clear(&app, ConversationType::Direct, "alice").await;
    make_group(&app, VIEWER, "team", &["alice"]).await;
    let cleared_group = in_group(&app, VIEWER, "team", "t1", 0).await.unwrap();
    clear(&app, ConversationType::Group, "team").await;

    // Deleted for itself.
    let deleted = direct(&app, VIEWER, "bob", "d1", 0).await.unwrap();
    delete_for_me(&app, (ConversationType::Direct, "bob"), deleted).await.unwrap();
    let revision = app
        .inbox(VIEWER)
        .await
        .into_iter()
        .find(|m| m.r#type == MessageType::Revision as i32)
        .expect("the deletion's revision")
        .id;

    // Others' conversations, and another app.
    let between_others = direct(&app, "alice", "bob", "o1", 0).await.unwrap();
    make_group(&app, "alice", "theirs", &["bob"]).await;
    let group_not_in = in_group(&app, "alice", "theirs", "o2", 0).await.unwrap();
    let other_app = server.new_app().await;
    for user in ["alice", "bob"] {
        other_app.user(user).await;
    }
    let another_apps = direct(&other_app, "alice", "bob", "x1", 0).await.unwrap();

    let group_home = |id: &'static str| (ConversationType::Group, id);
    let alice = (ConversationType::Direct, "alice");
    let cases: [(&str, u64, (ConversationType, &str)); 11] = [
        ("joined after it (small group)", before_join_small, group_home("small")),
        ("joined after it (large group)", before_join_large, group_home("big")),
        ("cleared past it (direct)", cleared_direct, alice),
        ("cleared past it (group)", cleared_group, group_home("team")),
        ("deleted it for itself", deleted, (ConversationType::Direct, "bob")),
        ("between two others", between_others, alice),
        ("in a group it is not in", group_not_in, group_home("mine")),
        ("a revision", revision, (ConversationType::Direct, "bob")),
        ("no such message", 987_654_321_987, alice),
        ("another app's", another_apps, alice),
        ("another app's, named from a group", another_apps, group_home("mine")),
    ];
    let before = sent_by_viewer(&app).await;
    let mut wrong = Vec::new();
    for (reason, message, home) in cases {
        for call in CALLS {
            // Deleting again repeats a deletion, so that a retried call succeeds.
            let expected = if call == Call::DeleteForMe && message == deleted { Code::Ok } else { Code::NotFound };
            let got = attempt(&app, call, message, home).await;
            if got != expected {
                wrong.push(format!("{call:?} of a message the viewer {reason}: {got:?}, not {expected:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Nothing changed: no reply, forward or edit was stored, nothing was recalled or reacted to.
    assert_eq!(sent_by_viewer(&app).await, before, "the viewer sent nothing");
    let untouched = |message: Option<&Message>| {
        message
            .is_some_and(|m| m.status == MessageStatus::Normal as i32 && m.reactions.is_empty() && m.edited_at_ms == 0)
    };
    let alices = app.inbox("alice").await;
    assert!(untouched(alices.iter().find(|m| m.id == between_others)), "{between_others} is as sent");
    for (group, id) in [("small", before_join_small), ("big", before_join_large), ("theirs", group_not_in)] {
        let request = gim::proto::logic::v1::GroupHistoryRequest { group_id: group.into(), ..Default::default() };
        let history = app.groups(Some("alice")).await.get_history(request).await.unwrap().into_inner().messages;
        assert!(untouched(history.iter().find(|m| m.id == id)), "{id} in {group} is as sent");
    }
    let theirs = app.inbox("bob").await;
    assert!(theirs.iter().all(|m| m.forwarded_from.is_none() && m.reply_to.is_none()), "bob got no copy or reply");

    // The same calls on a message the viewer may see get past visibility to their own rules.
    let visible = direct(&app, "alice", VIEWER, "v1", 0).await.unwrap();
    let mut outcomes = Vec::new();
    for call in CALLS {
        outcomes.push((call, attempt(&app, call, visible, alice).await));
    }
    assert_eq!(
        outcomes,
        [
            (Call::Forward, Code::Ok),
            (Call::Reply, Code::Ok),
            (Call::React, Code::Ok),
            (Call::Unreact, Code::Ok),
            (Call::Recall, Code::PermissionDenied),
            (Call::Edit, Code::PermissionDenied),
            (Call::DeleteForMe, Code::Ok),
        ]
    );
}
