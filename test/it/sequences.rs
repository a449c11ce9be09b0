//! Per-user sequences stay gap-free and strictly increasing under concurrent senders on
//! several logic nodes sharing one database.

use std::collections::BTreeSet;

use gim::proto::logic::v1::{BusinessSendRequest, BusinessSyncRequest};

use crate::{
    both_stores,
    support::{Backend, TestApp, TestServer, text},
};

both_stores!(concurrent_senders_on_two_nodes_get_gap_free_seqs);

const SENDERS: usize = 16;
const MESSAGES_EACH: usize = 25;

async fn concurrent_senders_on_two_nodes_get_gap_free_seqs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let second = server.another_node().await;
    let app = server.new_app().await;
    let via_second = TestApp { addr: second.addr(), ..app.clone() };
    app.user("inbox").await;
    for sender in 0..SENDERS {
        app.user(&format!("s{sender}")).await;
    }

    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let node = if sender % 2 == 0 { app.clone() } else { via_second.clone() };
        tasks.push(tokio::spawn(async move {
            let mut business = node.business().await;
            let mut seqs = Vec::new();
            for i in 0..MESSAGES_EACH {
                let sent = business
                    .send_message(BusinessSendRequest {
                        sender_user_id: format!("s{sender}"),
                        receiver_user_id: "inbox".into(),
                        client_msg_id: format!("{sender}-{i}"),
                        body: text(&format!("{sender}-{i}")),
                        reply_to_message_id: 0,
                    })
                    .await
                    .expect("send");
                seqs.push(sent.into_inner().seq);
            }
            seqs
        }));
    }
    for task in tasks {
        let seqs = task.await.unwrap();
        assert_eq!(seqs, (1..=MESSAGES_EACH as u64).collect::<Vec<_>>(), "each sender's own inbox counts 1, 2, 3...");
    }

    let mut business = app.business().await;
    let mut after = 0;
    let mut ids = BTreeSet::new();
    loop {
        let page = business
            .sync(BusinessSyncRequest { user_id: "inbox".into(), after_seq: after, limit: 200 })
            .await
            .unwrap()
            .into_inner();
        for message in &page.messages {
            assert_eq!(message.seq, after + 1, "gap-free and strictly increasing");
            after = message.seq;
            assert!(ids.insert(message.id), "each message once");
        }
        if !page.has_more {
            break;
        }
    }
    assert_eq!(after, (SENDERS * MESSAGES_EACH) as u64);
    second.shutdown().await.unwrap();
}
