//! A member's points in a group's conversation (read, clear, join) across the group's
//! switch from small (inbox fan-out) to large (one timeline) and a member's leave; and the
//! one behaviour of reads and clears that move nothing, for every kind of conversation.

use gim::proto::{
    client::v1::event_push::Event,
    common::v1::{ConversationType, Message},
    logic::v1::{
        BusinessSendRequest, ClearHistoryRequest, Conversation, Empty, GroupHistoryRequest, GroupRef, GroupSendRequest,
        ListConversationsRequest, MarkReadRequest, MembersRequest, conversations_client::ConversationsClient,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Meta, ServeServer, TestApp, channel, device_client, make_group, text},
    ws::WsClient,
};

both_stores!(
    a_clear_point_follows_the_group_into_and_out_of_its_timeline,
    reads_and_clears_that_move_nothing_tell_nobody,
    rows_written_before_follow_the_same_rules_once_migrated,
);

fn as_user(app: &TestApp, user: &str) -> Meta {
    let app_id = app.app_id.to_string();
    Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret), ("x-gim-acting-user", user)])
}

async fn row(app: &TestApp, user: &str, kind: ConversationType, id: &str) -> Conversation {
    let mut client = ConversationsClient::with_interceptor(channel(app.addr).await, as_user(app, user));
    let list = client.list_conversations(ListConversationsRequest { page_token: String::new(), limit: 100 }).await;
    let list = list.unwrap().into_inner().conversations;
    list.into_iter()
        .find(|c| c.conversation_type == kind as i32 && c.conversation_id == id)
        .unwrap_or_else(|| panic!("{user} has no conversation {id}"))
}

async fn clear(
    app: &TestApp,
    user: &str,
    kind: ConversationType,
    id: &str,
    up_to_seq: u64,
) -> Result<Conversation, tonic::Status> {
    let mut client = ConversationsClient::with_interceptor(channel(app.addr).await, as_user(app, user));
    let request = ClearHistoryRequest { conversation_type: kind as i32, conversation_id: id.into(), up_to_seq };
    client.clear_history(request).await.map(|answer| answer.into_inner())
}

/// Sends to a group as `from`; returns the message's id and group seq (0 in a small group).
async fn say(app: &TestApp, from: &str, group: &str, id: &str) -> (u64, u64) {
    let request =
        GroupSendRequest { group_id: group.into(), client_msg_id: id.into(), body: text(id), reply_to_message_id: 0 };
    let sent = app.groups(Some(from)).await.send_message(request).await.unwrap().into_inner();
    (sent.message_id, sent.group_seq)
}

async fn history(app: &TestApp, user: &str, group: &str) -> Vec<Message> {
    let request = GroupHistoryRequest { group_id: group.into(), page_token: String::new(), limit: 100 };
    app.groups(Some(user)).await.get_history(request).await.unwrap().into_inner().messages
}

async fn a_clear_point_follows_the_group_into_and_out_of_its_timeline(backend: Backend) {
    // Three members make a group large.
    let server = ServeServer::start_with(backend, |config| config.groups.large_threshold = 2).await;
    let app = server.new_app().await;
    for user in ["a", "b", "c"] {
        app.user(user).await;
    }
    // Direct messages first, so that a's inbox seqs run ahead of the group's seqs.
    for n in 0..12 {
        let request = BusinessSendRequest {
            sender_user_id: "b".into(),
            receiver_user_id: "a".into(),
            client_msg_id: format!("d{n}"),
            body: text("hi"),
            reply_to_message_id: 0,
        };
        app.business().await.send_message(request).await.unwrap();
    }
    make_group(&app, "b", "g", &["a"]).await;
    for n in 0..3 {
        say(&app, "b", "g", &format!("small{n}")).await;
    }
    let cleared = clear(&app, "a", ConversationType::Group, "g", 0).await.unwrap();
    assert!(cleared.cleared_seq > 12, "an inbox seq past the direct messages: {cleared:?}");
    assert_eq!(clear_code(&app, "a", ConversationType::Group, "g", 0).await, Code::FailedPrecondition);

    // The group turns large: the clear point is now a group seq, before every timeline message.
    let invite = MembersRequest { group_id: "g".into(), user_ids: vec!["c".into()] };
    app.groups(Some("b")).await.invite_members(invite).await.unwrap();
    let group = app.groups(Some("a")).await.get_group(GroupRef { group_id: "g".into() }).await.unwrap().into_inner();
    assert!(group.large);
    let mut sent = Vec::new();
    for n in 0..4 {
        sent.push(say(&app, "b", "g", &format!("large{n}")).await);
    }
    let on_timeline = row(&app, "a", ConversationType::Group, "g").await;
    assert_eq!(on_timeline.unread_count, 4);
    assert_eq!(on_timeline.last_message.as_ref().map(|m| m.id), Some(sent[3].0), "the last message shows");
    assert!(on_timeline.cleared_seq < sent[0].1, "the clear point is a group seq now: {on_timeline:?}");

    // A later clear, by group seq, moves it; the read point follows; repeating it moves nothing.
    let cleared = clear(&app, "a", ConversationType::Group, "g", sent[1].1).await.unwrap();
    assert_eq!((cleared.cleared_seq, cleared.read_seq, cleared.unread_count), (sent[1].1, sent[1].1, 2));
    assert_eq!(cleared.last_message.map(|m| m.id), Some(sent[3].0));
    let shown: Vec<u64> = history(&app, "a", "g").await.iter().map(|m| m.id).collect();
    assert_eq!(shown, [sent[3].0, sent[2].0], "history starts after the clear point");
    assert_eq!(clear_code(&app, "a", ConversationType::Group, "g", sent[1].1).await, Code::FailedPrecondition);
    assert_eq!(clear_code(&app, "a", ConversationType::Group, "g", sent[0].1).await, Code::FailedPrecondition);

    // Many more on the timeline, so that its seqs run ahead of a's inbox; a clears them and leaves.
    for n in 0..20 {
        sent.push(say(&app, "b", "g", &format!("more{n}")).await);
    }
    let last = sent.last().unwrap().1;
    clear(&app, "a", ConversationType::Group, "g", last - 1).await.unwrap();
    app.groups(Some("a")).await.leave_group(GroupRef { group_id: "g".into() }).await.unwrap();
    // Off the timeline the row is the inbox's again: its clear point an inbox seq, before
    // the news of the leave, which shows and can be cleared.
    let left = row(&app, "a", ConversationType::Group, "g").await;
    let leave = left.last_message.clone().expect("the news of the leave is the last message");
    assert!(left.cleared_seq < leave.seq, "{left:?}");
    let cleared = clear(&app, "a", ConversationType::Group, "g", 0).await.unwrap();
    assert_eq!((cleared.cleared_seq, cleared.last_message), (leave.seq, None));
}

async fn reads_and_clears_that_move_nothing_tell_nobody(backend: Backend) {
    let server = ServeServer::start_with(backend, |config| config.groups.large_threshold = 2).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    let (phone, laptop) = (app.device_token("bob", "phone").await, app.device_token("bob", "laptop").await);
    let mut phone = device_client(app.addr, &phone).await;
    let (mut laptop, _) = WsClient::online(server.ws_addr(), &laptop, 0).await;
    let (mut alice_ws, _) = WsClient::online(server.ws_addr(), &app.device_token("alice", "phone").await, 0).await;

    // A direct conversation and a large group, each with a message from alice.
    let request = BusinessSendRequest {
        sender_user_id: "alice".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: "d1".into(),
        body: text("hi bob"),
        reply_to_message_id: 0,
    };
    app.business().await.send_message(request).await.unwrap();
    make_group(&app, "alice", "hall", &["bob", "carol"]).await;
    let joined = row(&app, "bob", ConversationType::Group, "hall").await.read_seq;
    let (_, first) = say(&app, "alice", "hall", "h1").await;
    let direct = row(&app, "bob", ConversationType::Direct, "alice").await;
    let direct_seq = direct.last_message.map(|m| m.seq).expect("a last message");
    let read = |kind: ConversationType, id: &str, seq: u64| MarkReadRequest {
        conversation_type: kind as i32,
        conversation_id: id.into(),
        seq,
    };

    // Reads that move the read point tell bob's other device (and alice, of the direct one).
    phone.mark_read(read(ConversationType::Direct, "alice", direct_seq)).await.unwrap();
    phone.mark_read(read(ConversationType::Group, "hall", first)).await.unwrap();
    // Reads that move nothing tell nobody: again, behind it, at the join.
    phone.mark_read(read(ConversationType::Direct, "alice", direct_seq)).await.unwrap();
    phone.mark_read(read(ConversationType::Group, "hall", first)).await.unwrap();
    phone.mark_read(read(ConversationType::Group, "hall", joined)).await.unwrap();
    let mut heard = Vec::new();
    while let Some(event) = laptop.next_event(std::time::Duration::from_millis(500)).await {
        if let Event::Read(read) = event {
            heard.push((read.conversation_id, read.seq));
        }
    }
    assert_eq!(heard, [("alice".to_owned(), direct_seq), ("hall".to_owned(), first)]);
    let mut receipts = 0;
    while let Some(event) = alice_ws.next_event(std::time::Duration::from_millis(300)).await {
        receipts += usize::from(matches!(event, Event::Read(_)));
    }
    assert_eq!(receipts, 1, "alice heard of bob's read once");

    // A clear makes everything up to it read, in every kind of conversation, on the row and
    // the read cursor, with no receipt to the other user; repeating it moves nothing.
    let request = BusinessSendRequest {
        sender_user_id: "alice".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: "d2".into(),
        body: text("still there?"),
        reply_to_message_id: 0,
    };
    app.business().await.send_message(request).await.unwrap();
    make_group(&app, "alice", "team", &["bob"]).await;
    say(&app, "alice", "team", "t1").await;
    say(&app, "alice", "hall", "h2").await;
    for (kind, id) in
        [(ConversationType::Direct, "alice"), (ConversationType::Group, "team"), (ConversationType::Group, "hall")]
    {
        let before = row(&app, "bob", kind, id).await;
        assert!(before.unread_count > 0, "{id}: {before:?}");
        let cleared = clear(&app, "bob", kind, id, 0).await.unwrap();
        assert_eq!((cleared.unread_count, cleared.read_seq), (0, cleared.cleared_seq), "{id}: {cleared:?}");
        let cursors = phone.list_read_cursors(Empty {}).await.unwrap().into_inner().cursors;
        let cursor = cursors.iter().find(|c| c.conversation_type == kind as i32 && c.conversation_id == id);
        assert_eq!(cursor.map(|c| c.seq), Some(cleared.cleared_seq), "{id}'s read cursor");
        assert_eq!(clear_code(&app, "bob", kind, id, 0).await, Code::FailedPrecondition, "{id} again");
    }
    while let Some(event) = alice_ws.next_event(std::time::Duration::from_millis(300)).await {
        assert!(!matches!(event, Event::Read(_)), "a clear is no read receipt: {event:?}");
    }
}

/// The code a clear answers.
async fn clear_code(app: &TestApp, user: &str, kind: ConversationType, id: &str, up_to_seq: u64) -> Code {
    clear(app, user, kind, id, up_to_seq).await.map_or_else(|status| status.code(), |_| Code::Ok)
}

/// The points of rows written by earlier versions (a clear that did not move the read
/// point, a timeline row's clear point left an inbox seq, a former member's count of the
/// timeline) follow today's rules once the migration has run.
async fn rows_written_before_follow_the_same_rules_once_migrated(backend: Backend) {
    use sqlx::Connection as _;
    let server = ServeServer::start_with(backend, |config| config.groups.large_threshold = 2).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    let request = BusinessSendRequest {
        sender_user_id: "alice".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: "d1".into(),
        body: text("hi"),
        reply_to_message_id: 0,
    };
    app.business().await.send_message(request).await.unwrap();
    let direct = clear(&app, "bob", ConversationType::Direct, "alice", 0).await.unwrap();
    make_group(&app, "alice", "hall", &["bob", "carol"]).await;
    let (_, h1) = say(&app, "alice", "hall", "h1").await;
    let (_, h2) = say(&app, "alice", "hall", "h2").await;
    clear(&app, "carol", ConversationType::Group, "hall", h1).await.unwrap();
    app.groups(Some("bob")).await.leave_group(GroupRef { group_id: "hall".into() }).await.unwrap();

    // The rows as earlier versions left them.
    let url = server.store_url();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    for old in [
        "UPDATE conversations SET read_seq = 0 WHERE user_id = 'bob' AND conversation_type = 1",
        "UPDATE conversations SET cleared_seq = 77 WHERE user_id = 'carol' AND conversation_id = 'hall'",
        "UPDATE conversations SET unread = 2 WHERE user_id = 'bob' AND conversation_id = 'hall'",
    ] {
        sqlx::query(old).execute(&mut conn).await.unwrap();
    }
    let migration = match backend {
        Backend::Sqlite => include_str!("../../sql/sqlite/0013_conversation_points.sql"),
        Backend::MySql => include_str!("../../sql/mysql/0013_conversation_points.sql"),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(migration)).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;

    let bobs = row(&app, "bob", ConversationType::Direct, "alice").await;
    assert_eq!((bobs.read_seq, bobs.cleared_seq), (direct.cleared_seq, direct.cleared_seq), "a clear is a read");
    let carols = row(&app, "carol", ConversationType::Group, "hall").await;
    assert_eq!((carols.cleared_seq, carols.unread_count), (h1, 1), "the clear point is a group seq again");
    let left = row(&app, "bob", ConversationType::Group, "hall").await;
    assert_eq!(left.unread_count, 0, "a former member counts what its inbox holds");
    assert!(h2 > h1);
}
