//! Large groups in the conversation list, on both stores: their messages are on one
//! timeline, and their unread and mention counts come from the group's running totals and
//! each member's read point. Counts after sends, own messages, mentions, reads on the
//! timeline, recalls, deletions, clearing, leaving, joining, the switch from a small
//! group, and incremental sync; bad reads.

use gim::proto::{
    common::v1::{ConversationType, MessageBody, MessageStatus, MessageType, message_body::Content},
    logic::v1::{
        BusinessSendRequest, BusinessSyncRequest, ClearHistoryRequest, Conversation, DeleteMessagesRequest, Empty,
        GroupRef, GroupSendRequest, ListConversationsRequest, ListConversationsResponse, MarkReadRequest,
        MembersRequest, MessageRef, SyncConversationsRequest, SyncGroupRequest, UpdateConversationRequest,
        conversations_client::ConversationsClient, device_client::DeviceClient, messages_client::MessagesClient,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{
        Backend, Intercepted, Meta, ServeServer, TestApp, TestServer, channel, device_client, make_group, mentioning,
        text,
    },
    ws::{WAIT, WsClient},
};

both_stores!(
    a_large_groups_counts_come_from_its_timeline,
    a_group_that_grows_large_keeps_what_was_unread,
    the_counts_match_the_timeline_after_random_sends_reads_recalls_and_deletions,
    a_large_group_is_read_over_the_websocket,
);

const HALL: &str = "hall";

fn as_user(app: &TestApp, user: &str) -> Meta {
    let app_id = app.app_id.to_string();
    Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret), ("x-gim-acting-user", user)])
}

async fn list_of(app: &TestApp, user: &str) -> ListConversationsResponse {
    let mut client = ConversationsClient::with_interceptor(channel(app.addr).await, as_user(app, user));
    client.list_conversations(ListConversationsRequest::default()).await.unwrap().into_inner()
}

/// `user`'s conversation of `group`, if its list has it.
async fn group_row(app: &TestApp, user: &str, group: &str) -> Option<Conversation> {
    list_of(app, user)
        .await
        .conversations
        .into_iter()
        .find(|c| c.conversation_type == ConversationType::Group as i32 && c.conversation_id == group)
}

/// (unread, mentions) of `user`'s conversation of `group`.
async fn counts(app: &TestApp, user: &str, group: &str) -> (u64, u64) {
    let row = group_row(app, user, group).await.unwrap_or_else(|| panic!("{user} has no row of {group}"));
    (row.unread_count, row.mention_count)
}

/// Sends to a group as `from`; (message id, group seq).
async fn say(app: &TestApp, from: &str, group: &str, id: &str, body: Option<MessageBody>) -> (u64, u64) {
    let request = GroupSendRequest { group_id: group.into(), client_msg_id: id.into(), body, reply_to_message_id: 0 };
    let sent = app.groups(Some(from)).await.send_message(request).await.unwrap().into_inner();
    (sent.message_id, sent.group_seq)
}

async fn messages_as(app: &TestApp, user: &str) -> MessagesClient<Intercepted> {
    MessagesClient::with_interceptor(channel(app.addr).await, as_user(app, user))
}

fn read(group: &str, seq: u64) -> MarkReadRequest {
    MarkReadRequest { conversation_type: ConversationType::Group as i32, conversation_id: group.into(), seq }
}

async fn device(app: &TestApp, user: &str, device: &str) -> DeviceClient<Intercepted> {
    device_client(app.addr, &app.device_token(user, device).await).await
}

async fn a_large_groups_counts_come_from_its_timeline(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 2).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        app.user(user).await;
    }
    make_group(&app, "alice", HALL, &["bob", "carol", "dave"]).await;
    let joined = group_row(&app, "bob", HALL).await.expect("a member has the group in its list from the start");
    assert_eq!((joined.unread_count, joined.mention_count), (0, 0), "the group's notice is not counted");
    assert_eq!(joined.last_message.as_ref().map(|m| (m.seq, m.group_seq > 0)), Some((0, true)), "on the timeline");

    let (a1, _) = say(&app, "alice", HALL, "a1", text("a1")).await;
    let (_, s2) = say(&app, "alice", HALL, "a2", text("a2")).await;
    let (_, s3) = say(&app, "alice", HALL, "a3", mentioning("a3 @bob", &["bob"], false)).await;
    let (a4, s4) = say(&app, "alice", HALL, "a4", mentioning("a4 @all", &[], true)).await;
    assert_eq!(counts(&app, "bob", HALL).await, (4, 2), "@bob and @all");
    assert_eq!(counts(&app, "carol", HALL).await, (4, 1), "@all only");
    assert_eq!(counts(&app, "alice", HALL).await, (0, 0), "her own");
    let (b1, _) = say(&app, "bob", HALL, "b1", mentioning("b1 @alice", &["alice"], false)).await;
    assert_eq!(counts(&app, "bob", HALL).await, (4, 2), "his own message is not unread for him");
    assert_eq!(counts(&app, "alice", HALL).await, (1, 1));
    let bobs = list_of(&app, "bob").await;
    assert_eq!(bobs.total_unread, 4, "the badge counts the large group");
    let last = bobs.conversations[0].last_message.as_ref().unwrap();
    assert_eq!((bobs.conversations[0].conversation_id.as_str(), last.id), (HALL, b1), "latest activity first");

    // Reads on the timeline, from two devices: a read point never moves back.
    let (mut phone, mut laptop) = (device(&app, "bob", "phone").await, device(&app, "bob", "laptop").await);
    let cursor = phone.mark_read(read(HALL, s2)).await.unwrap().into_inner();
    assert_eq!(cursor.seq, s2);
    assert_eq!(counts(&app, "bob", HALL).await, (2, 2), "a3 and a4 are left");
    laptop.mark_read(read(HALL, s3)).await.unwrap();
    assert_eq!(counts(&app, "bob", HALL).await, (1, 1));
    phone.mark_read(read(HALL, s2)).await.unwrap();
    assert_eq!(counts(&app, "bob", HALL).await, (1, 1), "going back changes nothing");
    assert_eq!(group_row(&app, "bob", HALL).await.unwrap().read_seq, s3, "the read point is a group seq");

    // Recalls leave every count they were in, and only those.
    messages_as(&app, "alice").await.recall_message(MessageRef { message_id: a4 }).await.unwrap();
    assert_eq!(counts(&app, "bob", HALL).await, (0, 0));
    assert_eq!(counts(&app, "carol", HALL).await, (4, 0), "a1, a2, a3, b1");
    let delete = DeleteMessagesRequest {
        conversation_type: ConversationType::Group as i32,
        conversation_id: HALL.into(),
        message_ids: vec![a1],
    };
    messages_as(&app, "carol").await.delete_messages(delete.clone()).await.unwrap();
    assert_eq!(counts(&app, "carol", HALL).await, (3, 0), "what she deleted is not unread");
    messages_as(&app, "carol").await.delete_messages(delete).await.unwrap();
    assert_eq!(counts(&app, "carol", HALL).await, (3, 0), "deleting again changes nothing");
    messages_as(&app, "alice").await.recall_message(MessageRef { message_id: a1 }).await.unwrap();
    assert_eq!(counts(&app, "carol", HALL).await, (3, 0), "deleted, then recalled: gone once");
    assert_eq!(counts(&app, "dave", HALL).await, (3, 0), "a2, a3, b1 (a1 and a4 recalled)");
    messages_as(&app, "bob").await.recall_message(MessageRef { message_id: b1 }).await.unwrap();
    assert_eq!(counts(&app, "alice", HALL).await, (0, 0), "bob's recalled message, with its mention");
    assert_eq!(counts(&app, "bob", HALL).await, (0, 0), "his own recall changes nothing for him");
    assert_eq!(counts(&app, "carol", HALL).await, (2, 0));
    assert_eq!(counts(&app, "dave", HALL).await, (2, 0));

    // A member who leaves keeps the row, counting what its inbox holds: the timeline's
    // messages, which it can no longer open, stop counting; the group goes on without it.
    let versions_before = list_of(&app, "bob").await.version;
    app.groups(Some("dave")).await.leave_group(GroupRef { group_id: HALL.into() }).await.unwrap();
    say(&app, "alice", HALL, "a5", text("a5")).await;
    assert_eq!(counts(&app, "dave", HALL).await, (0, 0), "nothing of the timeline counts after the leave");
    assert_eq!(counts(&app, "bob", HALL).await, (1, 0));
    assert_eq!(counts(&app, "carol", HALL).await, (3, 0));

    // Incremental sync: the group's new message bumped no version of bob's, yet his row comes.
    let mut bobs_lists = ConversationsClient::with_interceptor(channel(app.addr).await, as_user(&app, "bob"));
    let changes = bobs_lists
        .sync_conversations(SyncConversationsRequest { after_version: versions_before, limit: 0 })
        .await
        .unwrap()
        .into_inner();
    let hall = changes.conversations.iter().find(|c| c.conversation_id == HALL).expect("the hall changed");
    assert_eq!(hall.unread_count, 1);
    assert_eq!(changes.total_unread, 1);

    // Clearing is reading up to the point cleared, for the clearer alone.
    let clear = ClearHistoryRequest {
        conversation_type: ConversationType::Group as i32,
        conversation_id: HALL.into(),
        up_to_seq: 0,
    };
    let mut carols = ConversationsClient::with_interceptor(channel(app.addr).await, as_user(&app, "carol"));
    carols.clear_history(clear).await.unwrap();
    assert_eq!(counts(&app, "carol", HALL).await, (0, 0));
    assert_eq!(counts(&app, "bob", HALL).await, (1, 0));

    // A new member counts from its join.
    let invite = MembersRequest { group_id: HALL.into(), user_ids: vec!["erin".into()] };
    app.groups(Some("alice")).await.invite_members(invite).await.unwrap();
    assert_eq!(counts(&app, "erin", HALL).await, (0, 0));
    let (_, s6) = say(&app, "alice", HALL, "a6", mentioning("a6 @erin", &["erin"], false)).await;
    assert_eq!(counts(&app, "erin", HALL).await, (1, 1));
    assert_eq!(counts(&app, "carol", HALL).await, (1, 0));
    let mut erins = device(&app, "erin", "phone").await;
    erins.mark_read(read(HALL, s6)).await.unwrap();
    assert_eq!(counts(&app, "erin", HALL).await, (0, 0));

    // Bad reads change nothing.
    let beyond = phone.mark_read(read(HALL, s6 + 100)).await.unwrap_err();
    assert_eq!(beyond.code(), Code::InvalidArgument, "{beyond:?}");
    assert_eq!(phone.mark_read(read(HALL, 0)).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(phone.mark_read(read("nowhere", 1)).await.unwrap_err().code(), Code::InvalidArgument);
    // A former member reads what it kept: its inbox, up to the news of its leave.
    let mut daves = device(&app, "dave", "phone").await;
    let refused = daves.mark_read(read(HALL, s4 + 1000)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "no longer on the timeline: {refused:?}");
    let request = BusinessSyncRequest { user_id: "dave".into(), after_seq: 0, limit: 200 };
    let inbox = app.business().await.sync(request).await.unwrap().into_inner().messages;
    let left = inbox.iter().rev().find(|m| m.receiver_id == HALL).expect("the news of his leave");
    daves.mark_read(read(HALL, left.seq)).await.unwrap();
    assert_eq!(counts(&app, "dave", HALL).await, (0, 0), "the news of the leave is read");
    assert_eq!(counts(&app, "bob", HALL).await, (2, 0), "a5 and a6");

    // Pages interleave inbox rows and timeline rows by activity.
    let direct = BusinessSendRequest {
        sender_user_id: "carol".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: "c1".into(),
        body: text("c1"),
        reply_to_message_id: 0,
    };
    app.business().await.send_message(direct).await.unwrap();
    say(&app, "alice", HALL, "a7", text("a7")).await;
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListConversationsRequest { page_token: page_token.clone(), limit: 1 };
        let page = bobs_lists.list_conversations(request).await.unwrap().into_inner();
        pages.extend(page.conversations.into_iter().map(|c| c.conversation_id));
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, [HALL, "carol"], "the hall's a7 is the latest");
}

async fn a_group_that_grows_large_keeps_what_was_unread(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 2).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    make_group(&app, "alice", "grow", &["bob"]).await;
    // Bob reads a message of the small days at an inbox seq larger than the group seqs
    // to come, and leaves one unread.
    for i in 0..5 {
        say(&app, "alice", "grow", &format!("old{i}"), text("old")).await;
    }
    say(&app, "alice", "grow", "g0", text("g0")).await;
    let request = BusinessSyncRequest { user_id: "bob".into(), after_seq: 0, limit: 200 };
    let inbox = app.business().await.sync(request).await.unwrap().into_inner().messages;
    let g0 = inbox.last().expect("g0 in bob's inbox").seq;
    device(&app, "bob", "phone").await.mark_read(read("grow", g0)).await.unwrap();
    let (_, small_seq) = say(&app, "alice", "grow", "g1", mentioning("g1 @bob", &["bob"], false)).await;
    assert_eq!(small_seq, 0, "small: in the inboxes");
    assert_eq!(counts(&app, "bob", "grow").await, (1, 1));
    let invite = MembersRequest { group_id: "grow".into(), user_ids: vec!["carol".into()] };
    app.groups(Some("alice")).await.invite_members(invite).await.unwrap();
    let (_, s2) = say(&app, "alice", "grow", "g2", text("g2")).await;
    assert!(s2 > 0, "large now: on the timeline");
    assert_eq!(counts(&app, "bob", "grow").await, (2, 1), "one from each way of delivering");
    assert_eq!(counts(&app, "carol", "grow").await, (1, 0), "carol joined with the switch");
    let row = group_row(&app, "bob", "grow").await.unwrap();
    assert_eq!(row.last_message.as_ref().map(|m| m.group_seq), Some(s2));
    let cursor = device(&app, "bob", "phone").await.mark_read(read("grow", s2)).await.unwrap().into_inner();
    assert_eq!(cursor.seq, s2, "the cursor moves to the group seq, whatever inbox seq it held before");
    assert_eq!(counts(&app, "bob", "grow").await, (0, 0), "a read on the timeline reads what came before it");

    // Hidden until the group's next message, and shown for good after it, reads included.
    let mut bobs = ConversationsClient::with_interceptor(channel(app.addr).await, as_user(&app, "bob"));
    let hide = UpdateConversationRequest {
        conversation_type: ConversationType::Group as i32,
        conversation_id: "grow".into(),
        hidden: Some(true),
        ..Default::default()
    };
    bobs.update_conversation(hide).await.unwrap();
    assert!(group_row(&app, "bob", "grow").await.is_none(), "hidden");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (_, s3) = say(&app, "alice", "grow", "g3", text("g3")).await;
    assert_eq!(group_row(&app, "bob", "grow").await.map(|row| row.unread_count), Some(1), "back with g3");
    device(&app, "bob", "phone").await.mark_read(read("grow", s3)).await.unwrap();
    assert!(group_row(&app, "bob", "grow").await.is_some(), "still shown after the read");
}

/// Random sends (with mentions), reads, recalls and deletions in a large group; then every
/// member's row says what the timeline as that member sees it and its read cursor say.
async fn the_counts_match_the_timeline_after_random_sends_reads_recalls_and_deletions(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 2).await;
    let app = server.new_app().await;
    let users = ["u0", "u1", "u2", "u3"];
    let mut devices = Vec::new();
    for user in users {
        app.user(user).await;
        devices.push(device(&app, user, "d").await);
    }
    make_group(&app, "u0", "big", &users[1..]).await;
    let timeline = |user: &'static str| {
        let app = app.clone();
        async move {
            let mut all: Vec<gim::proto::common::v1::Message> = Vec::new();
            loop {
                let after_group_seq = all.last().map_or(0, |m| m.group_seq);
                let request = SyncGroupRequest { group_id: "big".into(), after_group_seq, limit: 200 };
                let page = app.groups(Some(user)).await.sync_group(request).await.unwrap().into_inner();
                all.extend(page.messages);
                if !page.has_more {
                    break all;
                }
            }
        }
    };
    let mut state = 0x9e37_79b9_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let (mut recalls, mut deletions, mut reads) = (0, 0, 0);
    for step in 0..150 {
        let who = next(4) as usize;
        let user = users[who];
        match next(8) {
            0..=3 => {
                let body = match next(4) {
                    0 => mentioning("hey", &[users[next(4) as usize]], false),
                    1 if who == 0 => mentioning("all", &[], true),
                    _ => text("hi"),
                };
                say(&app, user, "big", &format!("m{step}"), body).await;
            }
            4 | 5 => {
                let live: Vec<_> = timeline(user)
                    .await
                    .into_iter()
                    .filter(|m| !m.sender_user_id.is_empty() && m.status == MessageStatus::Normal as i32)
                    .filter(|m| m.r#type != MessageType::Revision as i32)
                    .collect();
                if live.is_empty() {
                    continue;
                }
                let target = live[next(live.len() as u64) as usize].id;
                if next(2) == 0 {
                    let app_id = app.app_id.to_string();
                    let as_app = Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &app.secret)]);
                    let mut as_app = MessagesClient::with_interceptor(channel(app.addr).await, as_app);
                    as_app.recall_message(MessageRef { message_id: target }).await.unwrap();
                    recalls += 1;
                } else {
                    let request = DeleteMessagesRequest {
                        conversation_type: ConversationType::Group as i32,
                        conversation_id: "big".into(),
                        message_ids: vec![target],
                    };
                    messages_as(&app, user).await.delete_messages(request).await.unwrap();
                    deletions += 1;
                }
            }
            _ => {
                let seen = timeline(user).await;
                if seen.is_empty() {
                    continue;
                }
                let seq = seen[next(seen.len() as u64) as usize].group_seq;
                devices[who].mark_read(read("big", seq)).await.unwrap();
                reads += 1;
            }
        }
    }
    assert!(recalls > 3 && deletions > 3 && reads > 10, "{recalls} recalls, {deletions} deletions, {reads} reads");
    for (who, user) in users.into_iter().enumerate() {
        let cursors = devices[who].list_read_cursors(Empty {}).await.unwrap().into_inner().cursors;
        let read_point = cursors.iter().find(|c| c.conversation_id == "big").map_or(0, |c| c.seq);
        let (mut unread, mut mentions) = (0, 0);
        for message in timeline(user).await {
            let counted = message.group_seq > read_point
                && message.sender_user_id != user
                && !message.sender_user_id.is_empty()
                && message.r#type != MessageType::Revision as i32
                && message.status == MessageStatus::Normal as i32;
            if counted {
                unread += 1;
                let mentioned = matches!(
                    message.body.as_ref().and_then(|b| b.content.as_ref()),
                    Some(Content::Text(t)) if t.mention_all || t.mention_user_ids.iter().any(|m| m == user)
                );
                mentions += u64::from(mentioned);
            }
        }
        assert_eq!(counts(&app, user, "big").await, (unread, mentions), "{user}'s row and timeline");
    }
}

/// Over real WebSockets: a member's two devices get the group's push, one reads it with
/// the `read` frame and its group seq, the other hears of it, and the list shows it read.
async fn a_large_group_is_read_over_the_websocket(backend: Backend) {
    use gim::proto::client::v1::{client_frame::Payload, event_push::Event};
    let server = ServeServer::start_with(backend, |config| config.groups.large_threshold = 2).await;
    let app = server.new_app().await;
    for user in ["alice", "bob", "carol"] {
        app.user(user).await;
    }
    make_group(&app, "alice", HALL, &["bob", "carol"]).await;
    let (phone, laptop) = (app.device_token("bob", "phone").await, app.device_token("bob", "laptop").await);
    let (mut phone, _) = WsClient::online(server.ws_addr(), &phone, 0).await;
    let (mut laptop, _) = WsClient::online(server.ws_addr(), &laptop, 0).await;
    let (id, group_seq) = say(&app, "alice", HALL, "hi", mentioning("hi @bob", &["bob"], false)).await;
    assert_eq!(counts(&app, "bob", HALL).await, (1, 1));
    let pushed = phone.next_message(WAIT).await.expect("the group's push");
    assert_eq!((pushed.id, pushed.group_seq), (id, group_seq));
    let answer = phone.request(Payload::Read(read(HALL, group_seq))).await;
    assert_eq!(answer.code, 0, "{}", answer.message);
    loop {
        match laptop.next_event(WAIT).await {
            Some(Event::Read(event)) => {
                assert_eq!((event.conversation_id.as_str(), event.seq, event.message_id), (HALL, group_seq, id));
                break;
            }
            Some(_) => continue,
            None => panic!("the laptop heard nothing of the read"),
        }
    }
    assert_eq!(counts(&app, "bob", HALL).await, (0, 0));
    assert_eq!(counts(&app, "carol", HALL).await, (1, 0), "carol has not read it");
    let wrong = phone.request(Payload::Read(read(HALL, group_seq + 5))).await;
    assert_eq!(wrong.code, Code::InvalidArgument as i32, "{}", wrong.message);
}
