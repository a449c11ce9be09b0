//! One app can neither read nor change another's users, devices or messages.

use gim::proto::logic::v1::{
    BusinessHistoryRequest, BusinessSendRequest, BusinessSyncRequest, DeviceSendRequest, GetUserRequest,
    GetUsersRequest, IssueTokenRequest, ListDevicesRequest, ListUsersRequest, RegisterDeviceRequest,
    RemoveDeviceRequest, RevokeTokensRequest, SyncRequest, UpdateUserRequest,
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, TestApp, TestServer, code, text, text_of},
};

both_stores!(apps_never_see_each_others_users_devices_or_messages);

async fn apps_never_see_each_others_users_devices_or_messages(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.new_app().await;
    let b = server.new_app().await;
    let mut alice = a.user_with_device("alice", "phone").await;
    a.user("bob").await;
    alice
        .send_message(DeviceSendRequest {
            receiver_user_id: "bob".into(),
            client_msg_id: "m1".into(),
            body: text("secret"),
            reply_to_message_id: 0,
        })
        .await
        .unwrap();

    let mut intruder = b.business().await;
    assert_eq!(code(intruder.get_user(GetUserRequest { user_id: "alice".into() }).await), Code::NotFound, "get");
    assert_eq!(
        code(
            intruder
                .update_user(UpdateUserRequest {
                    user_id: "alice".into(),
                    nickname: Some("pwned".into()),
                    ..Default::default()
                })
                .await
        ),
        Code::NotFound,
        "update",
    );
    assert_eq!(
        code(
            intruder
                .register_device(RegisterDeviceRequest {
                    user_id: "alice".into(),
                    device_id: "evil".into(),
                    ..Default::default()
                })
                .await
        ),
        Code::NotFound,
        "register a device",
    );
    assert_eq!(
        code(
            intruder
                .issue_token(IssueTokenRequest { user_id: "alice".into(), device_id: "phone".into(), ttl_seconds: 0 })
                .await
        ),
        Code::NotFound,
        "issue a token",
    );
    assert_eq!(
        code(intruder.list_devices(ListDevicesRequest { user_id: "alice".into() }).await),
        Code::NotFound,
        "list devices",
    );
    assert_eq!(
        code(intruder.remove_device(RemoveDeviceRequest { user_id: "alice".into(), device_id: "phone".into() }).await),
        Code::NotFound,
        "remove a device",
    );
    assert_eq!(
        code(intruder.revoke_tokens(RevokeTokensRequest { user_id: "alice".into(), device_id: String::new() }).await),
        Code::NotFound,
        "revoke tokens",
    );
    assert_eq!(
        code(
            intruder
                .send_message(BusinessSendRequest {
                    sender_user_id: String::new(),
                    receiver_user_id: "bob".into(),
                    client_msg_id: "x".into(),
                    body: text("spam"),
                    reply_to_message_id: 0,
                })
                .await
        ),
        Code::NotFound,
        "send to another app's user",
    );
    assert_eq!(
        code(intruder.sync(BusinessSyncRequest { user_id: "bob".into(), after_seq: 0, limit: 10 }).await),
        Code::NotFound,
        "sync another app's inbox",
    );
    let batch = intruder.get_users(GetUsersRequest { user_ids: vec!["alice".into(), "bob".into()] }).await.unwrap();
    assert!(batch.into_inner().users.is_empty());
    let listed = intruder.list_users(ListUsersRequest { after_user_id: String::new(), limit: 100 }).await.unwrap();
    assert!(listed.into_inner().users.is_empty());
    let history = intruder
        .get_history(BusinessHistoryRequest {
            user_id: "bob".into(),
            peer_user_id: "alice".into(),
            before_seq: 0,
            before_time_ms: 0,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(history.into_inner().messages.is_empty());

    // B may have users with the same ids: they are different users.
    let mut b_bob = b.user_with_device("bob", "phone").await;
    b.user("alice").await;
    let b_inbox = b_bob.sync(SyncRequest { after_seq: 0, limit: 10 }).await.unwrap().into_inner();
    assert!(b_inbox.messages.is_empty());
    assert_eq!(b_inbox.latest_seq, 0);

    // A's secret does not open B, and B's does not open A.
    let mixed = TestApp { secret: b.secret.clone(), ..a.clone() };
    let status = mixed.business().await.get_user(GetUserRequest { user_id: "alice".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // A's data is intact.
    let a_bob = a
        .business()
        .await
        .sync(BusinessSyncRequest { user_id: "bob".into(), after_seq: 0, limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a_bob.messages.iter().map(text_of).collect::<Vec<_>>(), ["secret"]);
    let a_alice = a.business().await.get_user(GetUserRequest { user_id: "alice".into() }).await.unwrap().into_inner();
    assert_eq!(a_alice.nickname, "");
}
