//! One-to-one messages: send, idempotency, sync, ack, history and the delivery seam.

use std::time::Duration;

use gim::proto::{
    common::v1::{ConversationType, MessageType},
    logic::v1::{
        AckRequest, BusinessHistoryRequest, BusinessSendRequest, BusinessSyncRequest, DeviceSendRequest,
        HistoryRequest, ListDevicesRequest, SyncRequest,
    },
};

use crate::{
    both_stores,
    support::{Backend, TestServer, pushed_message, text, text_of},
};

both_stores!(
    a_message_lands_once_in_both_inboxes_and_is_handed_to_delivery,
    resending_a_client_msg_id_returns_the_first_result_and_stores_nothing,
    sync_pages_in_seq_order_and_ack_only_moves_forward,
    history_pages_backwards_by_seq_and_by_time,
    a_business_sends_as_a_user_or_as_the_system,
);

async fn a_message_lands_once_in_both_inboxes_and_is_handed_to_delivery(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut alice = app.user_with_device("alice", "alice-phone").await;
    let mut bob = app.user_with_device("bob", "bob-phone").await;

    let sent = alice
        .send_message(DeviceSendRequest {
            receiver_user_id: "bob".into(),
            client_msg_id: "m1".into(),
            body: text("hi bob"),
            reply_to_message_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.seq, 1, "the sender's own inbox seq");
    assert!(sent.message_id > 0 && sent.sent_at_ms > 0);

    let inbox = bob.sync(SyncRequest { after_seq: 0, limit: 0 }).await.unwrap().into_inner();
    assert_eq!(inbox.messages.len(), 1);
    let received = &inbox.messages[0];
    assert_eq!(received.seq, 1);
    assert_eq!(received.id, sent.message_id);
    assert_eq!(received.sender_user_id, "alice");
    assert_eq!(received.sender_device_id, "alice-phone");
    assert_eq!(received.receiver_id, "bob");
    assert_eq!(received.conversation_type, ConversationType::Direct as i32);
    assert_eq!(received.r#type, MessageType::Text as i32);
    assert_eq!(text_of(received), "hi bob");
    assert_eq!(inbox.latest_seq, 1);
    assert!(!inbox.has_more);

    let own = alice.sync(SyncRequest { after_seq: 0, limit: 10 }).await.unwrap().into_inner();
    assert_eq!(own.messages.len(), 1);
    assert_eq!(own.messages[0].id, sent.message_id);

    let pushes = server.delivery.wait_for(2, Duration::from_secs(5)).await;
    let mut seen: Vec<_> = pushes
        .iter()
        .map(|push| {
            let message = pushed_message(push);
            assert_eq!(push.app, app.app_id);
            assert_eq!((message.id, message.seq), (sent.message_id, push.seq), "each recipient's own seq");
            (push.users.clone(), push.seq, push.skip.as_ref().map(|d| d.device_id.clone()))
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [(vec!["alice".to_owned()], 1, Some("alice-phone".to_owned())), (vec!["bob".to_owned()], 1, None)],
        "the sending device is skipped"
    );
}

async fn resending_a_client_msg_id_returns_the_first_result_and_stores_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut alice = app.user_with_device("alice", "phone").await;
    let mut bob = app.user_with_device("bob", "phone").await;

    let request = DeviceSendRequest {
        receiver_user_id: "bob".into(),
        client_msg_id: "dup-1".into(),
        body: text("once"),
        reply_to_message_id: 0,
    };
    let first = alice.send_message(request.clone()).await.unwrap().into_inner();
    // Resends, some of them at the same time.
    let resends: Vec<_> = (0..3)
        .map(|_| {
            let (mut client, request) = (alice.clone(), request.clone());
            tokio::spawn(async move { client.send_message(request).await })
        })
        .collect();
    for resend in resends {
        assert_eq!(resend.await.unwrap().unwrap().into_inner(), first);
    }
    // Another sender may use the same client_msg_id: ids are the sender's own.
    bob.send_message(DeviceSendRequest {
        receiver_user_id: "alice".into(),
        client_msg_id: "dup-1".into(),
        body: text("mine"),
        reply_to_message_id: 0,
    })
    .await
    .unwrap();

    let inbox = bob.sync(SyncRequest { after_seq: 0, limit: 10 }).await.unwrap().into_inner();
    let texts: Vec<_> = inbox.messages.iter().map(|m| (m.seq, text_of(m))).collect();
    assert_eq!(texts, [(1, "once"), (2, "mine")]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pushed = server.delivery.pushes().iter().filter(|p| pushed_message(p).id == first.message_id).count();
    assert_eq!(pushed, 2, "one push each for bob and alice's other devices; the duplicates none");
}

async fn sync_pages_in_seq_order_and_ack_only_moves_forward(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut alice = app.user_with_device("alice", "phone").await;
    let mut bob = app.user_with_device("bob", "phone").await;
    for i in 0..7 {
        alice
            .send_message(DeviceSendRequest {
                receiver_user_id: "bob".into(),
                client_msg_id: format!("m{i}"),
                body: text(&format!("message {i}")),
                reply_to_message_id: 0,
            })
            .await
            .unwrap();
    }

    let mut after = 0;
    let mut texts = Vec::new();
    loop {
        let page = bob.sync(SyncRequest { after_seq: after, limit: 3 }).await.unwrap().into_inner();
        assert!(page.messages.len() <= 3);
        for message in &page.messages {
            assert_eq!(message.seq, after + 1, "gap-free and in order");
            after = message.seq;
            texts.push(text_of(message).to_owned());
        }
        if !page.has_more {
            assert_eq!(page.latest_seq, 7);
            break;
        }
    }
    assert_eq!(texts, (0..7).map(|i| format!("message {i}")).collect::<Vec<_>>());
    let tail = bob.sync(SyncRequest { after_seq: u64::MAX, limit: 10 }).await.unwrap().into_inner();
    assert_eq!(
        (tail.messages.len(), tail.has_more, tail.latest_seq),
        (0, false, 7),
        "after any seq: nothing, and the latest"
    );

    assert_eq!(bob.ack(AckRequest { seq: 5 }).await.unwrap().into_inner().acked_seq, 5);
    assert_eq!(bob.ack(AckRequest { seq: 3 }).await.unwrap().into_inner().acked_seq, 5, "never backwards");
    let beyond = bob.ack(AckRequest { seq: 8 }).await.unwrap_err();
    assert_eq!(beyond.code(), tonic::Code::InvalidArgument);
    let devices =
        app.business().await.list_devices(ListDevicesRequest { user_id: "bob".into() }).await.unwrap().into_inner();
    assert_eq!(devices.devices[0].acked_seq, 5, "the cursor is kept per device");
}

async fn history_pages_backwards_by_seq_and_by_time(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut alice = app.user_with_device("alice", "phone").await;
    let mut bob = app.user_with_device("bob", "phone").await;
    app.user("carol").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let (from, to) = if i % 2 == 0 { (&mut alice, "bob") } else { (&mut bob, "alice") };
        let reply = from
            .send_message(DeviceSendRequest {
                receiver_user_id: to.into(),
                client_msg_id: format!("h{i}"),
                body: text(&format!("h{i}")),
                reply_to_message_id: 0,
            })
            .await
            .unwrap()
            .into_inner();
        sent.push(reply);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    alice
        .send_message(DeviceSendRequest {
            receiver_user_id: "carol".into(),
            client_msg_id: "c".into(),
            body: text("other"),
            reply_to_message_id: 0,
        })
        .await
        .unwrap();

    let page = alice
        .get_history(HistoryRequest { peer_user_id: "bob".into(), before_seq: 0, before_time_ms: 0, limit: 2 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.messages.iter().map(text_of).collect::<Vec<_>>(), ["h4", "h3"]);
    assert!(page.has_more);
    let before = page.messages.last().unwrap().seq;
    let rest = alice
        .get_history(HistoryRequest { peer_user_id: "bob".into(), before_seq: before, before_time_ms: 0, limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.messages.iter().map(text_of).collect::<Vec<_>>(), ["h2", "h1", "h0"]);
    assert!(!rest.has_more);

    let by_time = app
        .business()
        .await
        .get_history(BusinessHistoryRequest {
            user_id: "bob".into(),
            peer_user_id: "alice".into(),
            before_seq: 0,
            before_time_ms: sent[2].sent_at_ms,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_time.messages.iter().map(text_of).collect::<Vec<_>>(), ["h1", "h0"]);
}

async fn a_business_sends_as_a_user_or_as_the_system(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let mut business = app.business().await;

    let as_alice = business
        .send_message(BusinessSendRequest {
            sender_user_id: "alice".into(),
            receiver_user_id: "bob".into(),
            client_msg_id: "b1".into(),
            body: text("from the backend"),
            reply_to_message_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(as_alice.seq, 1);
    let as_system = business
        .send_message(BusinessSendRequest {
            sender_user_id: String::new(),
            receiver_user_id: "bob".into(),
            client_msg_id: "s1".into(),
            body: text("welcome"),
            reply_to_message_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(as_system.seq, 0, "the system has no inbox");

    let inbox = business
        .sync(BusinessSyncRequest { user_id: "bob".into(), after_seq: 0, limit: 10 })
        .await
        .unwrap()
        .into_inner();
    let seen: Vec<_> =
        inbox.messages.iter().map(|m| (m.seq, m.sender_user_id.as_str(), m.conversation_type, text_of(m))).collect();
    assert_eq!(
        seen,
        [
            (1, "alice", ConversationType::Direct as i32, "from the backend"),
            (2, "", ConversationType::System as i32, "welcome"),
        ]
    );
    let alice_inbox = business
        .sync(BusinessSyncRequest { user_id: "alice".into(), after_seq: 0, limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alice_inbox.latest_seq, 1, "only the message alice sent");
}
