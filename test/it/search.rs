//! Full-text search on both stores: what a user can see (its direct conversations, its
//! groups from its join on), in any script; filters and pages; recall, edit and
//! delete-for-me; the index rebuilt for messages stored before it; bad input.

use gim::proto::{
    common::v1::{ConversationType, FileBody, Message, MessageBody, message_body::Content},
    logic::v1::{
        BusinessSendRequest, CreateGroupRequest, DeleteMessagesRequest, EditMessageRequest, GroupSendRequest,
        JoinGroupRequest, MessageRef, SearchMessagesRequest, messages_client::MessagesClient,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Intercepted, Meta, TestApp, TestServer, channel, text, text_of},
};

both_stores!(
    search_finds_what_the_user_can_see_in_any_script,
    search_follows_recalls_edits_and_deletions_and_refuses_bad_input,
    messages_stored_before_the_index_are_indexed_at_the_next_start,
    a_user_in_hundreds_of_groups_finds_matches_in_all_of_them,
);

async fn messages_as(app: &TestApp, user: Option<&str>) -> MessagesClient<Intercepted> {
    let app_id = app.app_id.to_string();
    let mut pairs = vec![("x-gim-app-id", app_id.as_str()), ("x-gim-app-secret", app.secret.as_str())];
    if let Some(user) = user {
        pairs.push(("x-gim-acting-user", user));
    }
    MessagesClient::with_interceptor(channel(app.addr).await, Meta::new(&pairs))
}

async fn send(app: &TestApp, from: &str, to: &str, body: Option<MessageBody>) -> u64 {
    let request = BusinessSendRequest {
        sender_user_id: from.into(),
        receiver_user_id: to.into(),
        client_msg_id: format!("c{}", rand::random::<u32>()),
        body,
        reply_to_message_id: 0,
    };
    app.business().await.send_message(request).await.unwrap().into_inner().message_id
}

async fn group_send(app: &TestApp, from: &str, group: &str, words: &str) -> u64 {
    let request = GroupSendRequest {
        group_id: group.into(),
        client_msg_id: format!("c{}", rand::random::<u32>()),
        body: text(words),
        reply_to_message_id: 0,
    };
    app.groups(Some(from)).await.send_message(request).await.unwrap().into_inner().message_id
}

fn query(words: &str) -> SearchMessagesRequest {
    SearchMessagesRequest { query: words.into(), ..Default::default() }
}

async fn search(app: &TestApp, user: &str, request: SearchMessagesRequest) -> Vec<Message> {
    messages_as(app, Some(user)).await.search_messages(request).await.unwrap().into_inner().messages
}

/// The texts found, newest first.
async fn found(app: &TestApp, user: &str, words: &str) -> Vec<String> {
    search(app, user, query(words)).await.iter().map(|m| text_or_name(m).to_owned()).collect()
}

fn text_or_name(message: &Message) -> &str {
    match message.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(Content::File(file)) => &file.name,
        _ => text_of(message),
    }
}

/// alice and bob talk; carol and dave talk; alice's group `team` with bob, which carol
/// joins later (the group hides its history from newcomers).
async fn conversations(app: &TestApp) -> Vec<u64> {
    for user in ["alice", "bob", "carol", "dave"] {
        app.user(user).await;
    }
    let mut ids = vec![
        send(app, "alice", "bob", text("Meeting tomorrow at 3pm?")).await,
        send(app, "bob", "alice", text("明天下午三点开会")).await,
        send(app, "carol", "dave", text("the secret meeting")).await,
    ];
    let file =
        FileBody { url: "https://files.test/q3".into(), name: "Quarterly-Report.pdf".into(), ..Default::default() };
    ids.push(send(app, "alice", "bob", Some(MessageBody { content: Some(Content::File(file)) })).await);
    let request = CreateGroupRequest {
        group_id: "team".into(),
        name: "Team".into(),
        member_ids: vec!["bob".into()],
        join_policy: gim::proto::logic::v1::JoinPolicy::Free as i32,
        ..Default::default()
    };
    app.groups(Some("alice")).await.create_group(request).await.unwrap();
    ids.push(group_send(app, "alice", "team", "team meeting notes: 東京タワーで会いましょう").await);
    let join = JoinGroupRequest { group_id: "team".into(), ..Default::default() };
    app.groups(Some("carol")).await.join_group(join).await.unwrap();
    ids.push(group_send(app, "bob", "team", "second meeting, 안녕하세요").await);
    ids
}

async fn search_finds_what_the_user_can_see_in_any_script(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    conversations(&app).await;

    assert_eq!(
        found(&app, "bob", "meeting").await,
        ["second meeting, 안녕하세요", "team meeting notes: 東京タワーで会いましょう", "Meeting tomorrow at 3pm?"],
        "newest first; not carol's and dave's"
    );
    assert_eq!(
        found(&app, "carol", "MEETING").await,
        ["second meeting, 안녕하세요", "the secret meeting"],
        "from her join on, in any case"
    );
    assert_eq!(found(&app, "dave", "meeting").await, ["the secret meeting"]);
    assert_eq!(found(&app, "alice", "meeting tomorrow").await, ["Meeting tomorrow at 3pm?"], "every word");
    assert_eq!(found(&app, "alice", "meeting yesterday").await, Vec::<String>::new());
    assert_eq!(found(&app, "alice", "三点").await, ["明天下午三点开会"]);
    assert_eq!(found(&app, "alice", "下午三点开会").await, ["明天下午三点开会"]);
    assert_eq!(found(&app, "alice", "会").await, ["team meeting notes: 東京タワーで会いましょう", "明天下午三点开会"]);
    assert_eq!(found(&app, "alice", "三点半").await, Vec::<String>::new());
    assert_eq!(found(&app, "bob", "タワー").await, ["team meeting notes: 東京タワーで会いましょう"]);
    assert_eq!(found(&app, "alice", "안녕").await, ["second meeting, 안녕하세요"]);
    assert_eq!(found(&app, "bob", "report").await, ["Quarterly-Report.pdf"], "a file by its name");

    // Filters: one conversation, one sender, a time range; pages.
    let direct = SearchMessagesRequest {
        conversation_type: ConversationType::Direct as i32,
        conversation_id: "alice".into(),
        ..query("meeting")
    };
    assert_eq!(search(&app, "bob", direct).await.len(), 1);
    let in_team = SearchMessagesRequest {
        conversation_type: ConversationType::Group as i32,
        conversation_id: "team".into(),
        ..query("meeting")
    };
    assert_eq!(search(&app, "bob", in_team).await.len(), 2);
    let by_bob = SearchMessagesRequest { sender_user_id: "bob".into(), ..query("meeting") };
    assert_eq!(search(&app, "bob", by_bob).await.len(), 1);
    let all = search(&app, "bob", query("meeting")).await;
    let newest_time = all[0].sent_at_ms;
    let before = SearchMessagesRequest { before_ms: newest_time, ..query("meeting") };
    assert_eq!(search(&app, "bob", before).await.len(), 2);
    let after = SearchMessagesRequest { after_ms: newest_time, ..query("meeting") };
    assert_eq!(search(&app, "bob", after).await.len(), 1);
    let (mut pages, mut token) = (Vec::new(), String::new());
    loop {
        let request = SearchMessagesRequest { page_token: token.clone(), limit: 1, ..query("meeting") };
        let page = messages_as(&app, Some("bob")).await.search_messages(request).await.unwrap().into_inner();
        pages.extend(page.messages.into_iter().map(|m| m.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, all.iter().map(|m| m.id).collect::<Vec<_>>(), "pages of one, the same order");

    // Another app, with users of the same names, finds nothing of this one.
    let other = server.new_app().await;
    other.user("bob").await;
    assert_eq!(found(&other, "bob", "meeting").await, Vec::<String>::new());
}

async fn search_follows_recalls_edits_and_deletions_and_refuses_bad_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let ids = conversations(&app).await;
    let (tomorrow, notes, second) = (ids[0], ids[4], ids[5]);

    messages_as(&app, Some("alice")).await.recall_message(MessageRef { message_id: tomorrow }).await.unwrap();
    assert_eq!(found(&app, "bob", "tomorrow").await, Vec::<String>::new(), "a recall leaves nothing to find");
    let edit = EditMessageRequest { message_id: second, text: text("second gathering").and_then(text_body) };
    messages_as(&app, Some("bob")).await.edit_message(edit).await.unwrap();
    assert_eq!(found(&app, "carol", "meeting").await, ["the secret meeting"]);
    assert_eq!(found(&app, "carol", "gathering").await, ["second gathering"]);
    let delete = DeleteMessagesRequest {
        conversation_type: ConversationType::Group as i32,
        conversation_id: "team".into(),
        message_ids: vec![notes],
    };
    messages_as(&app, Some("bob")).await.delete_messages(delete).await.unwrap();
    assert_eq!(found(&app, "bob", "notes").await, Vec::<String>::new(), "deleted for bob");
    assert_eq!(found(&app, "alice", "notes").await.len(), 1, "not for alice");

    let mut alice = messages_as(&app, Some("alice")).await;
    for (request, code) in [
        (query(""), Code::InvalidArgument),
        (query(" ,.!? "), Code::InvalidArgument),
        (query(&"word ".repeat(50)), Code::InvalidArgument),
        (query(&(0..20).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")), Code::InvalidArgument),
        (SearchMessagesRequest { page_token: "x".into(), ..query("meeting") }, Code::InvalidArgument),
        (SearchMessagesRequest { limit: 100_000, ..query("meeting") }, Code::InvalidArgument),
        (SearchMessagesRequest { after_ms: -1, ..query("meeting") }, Code::InvalidArgument),
        (
            SearchMessagesRequest { conversation_type: ConversationType::System as i32, ..query("meeting") },
            Code::InvalidArgument,
        ),
        (
            SearchMessagesRequest { conversation_type: ConversationType::Direct as i32, ..query("meeting") },
            Code::InvalidArgument,
        ),
    ] {
        assert_eq!(alice.search_messages(request).await.unwrap_err().code(), code);
    }
    let as_app = messages_as(&app, None).await.search_messages(query("meeting")).await.unwrap_err();
    assert_eq!(as_app.code(), Code::InvalidArgument, "search is a user's");
}

fn text_body(body: MessageBody) -> Option<gim::proto::common::v1::TextBody> {
    match body.content {
        Some(Content::Text(text)) => Some(text),
        _ => None,
    }
}

/// A store whose index lost its rows (as one migrated from before the index) gets them
/// back when gim next starts, once.
async fn messages_stored_before_the_index_are_indexed_at_the_next_start(backend: Backend) {
    use sqlx::Connection as _;
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    conversations(&app).await;
    let url = server.config.store.url.expose().to_owned();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM message_search").execute(&mut conn).await.unwrap();
    sqlx::query("UPDATE schema_tasks SET done_at_ms = 0").execute(&mut conn).await.unwrap();
    assert_eq!(found(&app, "bob", "meeting").await.len(), 0);

    let store = gim::store::SqlStore::connect(&url, &gim::store::StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(found(&app, "bob", "meeting").await.len(), 3);
    assert_eq!(found(&app, "alice", "三点").await.len(), 1);
    let done: i64 = sqlx::query_scalar("SELECT done_at_ms FROM schema_tasks").fetch_one(&mut conn).await.unwrap();
    assert!(done > 0, "done once");
    store.close().await;
}

/// A search names the user and each of its groups to the engine; past 500 groups, SQL
/// alone decides who sees a match. Both find the same.
async fn a_user_in_hundreds_of_groups_finds_matches_in_all_of_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    for user in ["alice", "bob"] {
        app.user(user).await;
    }
    let groups: Vec<String> = (0..502).map(|i| format!("g{i:03}")).collect();
    let mut needles = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        let request = CreateGroupRequest {
            group_id: group.clone(),
            name: group.clone(),
            member_ids: vec!["bob".into()],
            ..Default::default()
        };
        app.groups(Some("alice")).await.create_group(request).await.unwrap();
        if index == 0 || index == 499 {
            needles.push(group_send(&app, "alice", group, "needle in a group").await);
        }
    }
    needles.push(send(&app, "alice", "bob", text("needle in private")).await);
    needles.reverse();
    let ids: Vec<u64> = search(&app, "bob", query("needle")).await.iter().map(|m| m.id).collect();
    assert_eq!(ids, needles, "bob, in 502 groups");
    let request = CreateGroupRequest { group_id: "few".into(), name: "few".into(), ..Default::default() };
    app.groups(Some("alice")).await.create_group(request).await.unwrap();
    let in_few = group_send(&app, "alice", "few", "needle among few").await;
    let ids: Vec<u64> = search(&app, "alice", query("needle")).await.iter().map(|m| m.id).collect();
    assert_eq!(ids.first(), Some(&in_few), "alice, in 503 groups too");
    assert_eq!(ids.len(), 4);
}
