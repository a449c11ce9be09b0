//! The store's write path, below the API: batches, duplicates and per-user seqs.

use gim::{
    model::{ConversationType, NewMessage, Recipient, SendState},
    store::{AppStore, AppendError, Backfill, FriendStore, MessageStore, NewUser, SqlStore, StoreOptions, UserStore},
};

use crate::{
    both_stores,
    support::{Backend, TestDb, text},
};

both_stores!(
    a_batch_dedups_isolates_failures_and_numbers_each_inbox,
    a_value_that_does_not_fit_its_column_is_an_error_that_names_it,
    each_message_of_a_batch_is_decided_on_its_own_pairs_relation,
);

async fn open(db: &TestDb) -> SqlStore {
    let store = SqlStore::connect(&db.url, &StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn direct(id: u64, client: &str, from: &str, to: &str) -> NewMessage {
    NewMessage {
        id,
        client_msg_id: client.into(),
        sender_user_id: from.into(),
        sender_device_id: "d".into(),
        conversation_type: ConversationType::Direct,
        receiver_id: to.into(),
        body: text(client).unwrap_or_default(),
        sent_at_ms: 1_000 + id as i64,
        meta: Default::default(),
        reply_to: None,
        recipients: vec![
            Recipient { user_id: to.into(), conversation_id: from.into() },
            Recipient { user_id: from.into(), conversation_id: to.into() },
        ],
    }
}

async fn a_batch_dedups_isolates_failures_and_numbers_each_inbox(backend: Backend) {
    let db = TestDb::create(backend).await;
    let store = open(&db).await;
    // Running migrations twice is harmless (every node runs them at start).
    store.migrate().await.unwrap();
    let app = store.create_app("a", &Default::default(), "hash", 1).await.unwrap().id;
    let other_app = store.create_app("b", &Default::default(), "hash2", 1).await.unwrap().id;
    let users: Vec<NewUser> = ["alice", "bob"]
        .iter()
        .map(|id| NewUser {
            user_id: (*id).into(),
            nickname: String::new(),
            avatar_url: String::new(),
            extra: String::new(),
        })
        .collect();
    store.create_users(app, &users, 1).await.unwrap();
    store.create_users(other_app, &users[..1], 1).await.unwrap();

    let batch = vec![
        direct(1, "m1", "alice", "bob"),
        direct(2, "m2", "alice", "nobody"),
        direct(3, "m1", "alice", "bob"),
        direct(4, "m3", "bob", "alice"),
    ];
    let outcomes = store.append(app, &batch, &mut |_, _| true).await.unwrap();
    let first = outcomes[0].clone().unwrap();
    let inboxes =
        |a: &gim::model::Appended| a.inboxes.iter().map(|(u, s)| (u.as_str().to_owned(), *s)).collect::<Vec<_>>();
    assert_eq!((first.id, first.duplicate, first.sender_seq), (1, false, 1));
    assert_eq!(inboxes(&first), [("bob".to_owned(), 1), ("alice".to_owned(), 1)]);
    assert_eq!(outcomes[1], Err(AppendError::UnknownUser("nobody".into())));
    let repeat = outcomes[2].clone().unwrap();
    assert_eq!((repeat.id, repeat.duplicate, repeat.sender_seq), (1, true, 1), "a repeat within the batch");
    let reply = outcomes[3].clone().unwrap();
    assert_eq!(inboxes(&reply), [("alice".to_owned(), 2), ("bob".to_owned(), 2)]);
    assert_eq!(reply.sender_seq, 2);

    let again = store.append(app, &[direct(9, "m1", "alice", "bob")], &mut |_, _| true).await.unwrap();
    let again = again[0].clone().unwrap();
    assert_eq!((again.id, again.duplicate, again.sender_seq, again.sent_at_ms), (1, true, 1, 1_001));

    let bob = store.inbox_after(app, "bob", 0, 10).await.unwrap();
    assert_eq!(bob.iter().map(|m| (m.seq, m.id)).collect::<Vec<_>>(), [(1, 1), (2, 4)]);
    assert_eq!(store.latest_seq(app, "alice").await.unwrap(), Some(2));
    assert_eq!(store.latest_seq(other_app, "alice").await.unwrap(), Some(0), "another app's alice is untouched");
    assert_eq!(store.latest_seq(app, "nobody").await.unwrap(), None);

    // The same ids in another app are another app's business.
    let elsewhere = store.append(other_app, &[direct(1, "m1", "alice", "alice")], &mut |_, _| true).await;
    assert!(elsewhere.is_ok());
    store.close().await;
}

/// Ids and seqs are unsigned, BIGINT columns signed: a value past `i64::MAX` is refused
/// (never written as -1), and a negative value read back is an error (never read as 0).
async fn a_value_that_does_not_fit_its_column_is_an_error_that_names_it(backend: Backend) {
    use gim::store::{MomentStore, StoreError};
    use sqlx::Connection as _;
    let db = TestDb::create(backend).await;
    let store = open(&db).await;
    let app = store.create_app("a", &Default::default(), "hash", 1).await.unwrap().id;
    let user =
        NewUser { user_id: "alice".into(), nickname: String::new(), avatar_url: String::new(), extra: String::new() };
    store.create_users(app, &[user], 1).await.unwrap();

    match store.get_post(app, u64::MAX).await {
        Err(StoreError::OutOfRange { column: "post_id", value }) => assert_eq!(value, u64::MAX),
        other => panic!("a post id past i64::MAX is refused: {other:?}"),
    }
    // A seq corrupted to a negative value: reading it says so.
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE user_seqs SET seq = -5 WHERE user_id = 'alice'").execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
    match store.latest_seq(app, "alice").await {
        Err(StoreError::Corrupt(what)) => assert!(what.contains("seq") && what.contains("-5"), "{what}"),
        other => panic!("a negative seq is corrupt data: {other:?}"),
    }
}

/// The relations of a batch are read for all its pairs at once: each message must still
/// get its own pair's, not one of another pair that shares its sender or receiver.
async fn each_message_of_a_batch_is_decided_on_its_own_pairs_relation(backend: Backend) {
    let db = TestDb::create(backend).await;
    let store = open(&db).await;
    let app = store.create_app("a", &Default::default(), "hash", 1).await.unwrap().id;
    let other_app = store.create_app("b", &Default::default(), "hash2", 1).await.unwrap().id;
    let users: Vec<NewUser> = ["ann", "ben", "xia", "yan"]
        .iter()
        .map(|id| NewUser {
            user_id: (*id).into(),
            nickname: String::new(),
            avatar_url: String::new(),
            extra: String::new(),
        })
        .collect();
    store.create_users(app, &users, 1).await.unwrap();
    store.create_users(other_app, &users, 1).await.unwrap();
    let backfill = Backfill { posts: 0, shown: &|_, _, _| false };
    let pairs =
        |list: &[(&str, &str)]| list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>();
    // In this app: ann-xia and ben-yan are friends, xia blocked ben.
    assert!(
        store.make_friends(app, &pairs(&[("ann", "xia"), ("ben", "yan")]), backfill, 1, &mut |_| true).await.unwrap()
    );
    assert!(store.block(app, "xia", "ben", 1).await.unwrap());
    // In the other app, the crossed pairs are friends and blocked: none of it counts here.
    let backfill = Backfill { posts: 0, shown: &|_, _, _| false };
    assert!(
        store
            .make_friends(other_app, &pairs(&[("ann", "yan"), ("ben", "xia")]), backfill, 1, &mut |_| true)
            .await
            .unwrap()
    );
    assert!(store.block(other_app, "yan", "ann", 1).await.unwrap());

    let batch = vec![
        direct(1, "1", "ann", "xia"),
        direct(2, "2", "ann", "yan"),
        direct(3, "3", "ben", "xia"),
        direct(4, "4", "ben", "yan"),
        direct(5, "5", "xia", "ben"),
        direct(6, "6", "ann", "ann"),
    ];
    let mut seen = Vec::new();
    let outcomes = store
        .append(app, &batch, &mut |index, state: &SendState<'_>| {
            let relation = match *state {
                SendState::Direct { friends, blocked } => Some((friends, blocked)),
                _ => None,
            };
            seen.push((index, relation));
            true
        })
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    let direct = |friends, blocked| Some((friends, blocked));
    assert_eq!(
        seen,
        [
            (0, direct(true, false)),
            (1, direct(false, false)),
            (2, direct(false, true)),
            (3, direct(true, false)),
            (4, direct(false, false)),
            (5, None),
        ],
        "ben is blocked by xia, not xia by ben; only ann-xia and ben-yan are friends here"
    );
    store.close().await;
}
