//! Usernames and passwords kept by gim.

use gim::{
    model::AppSettings,
    proto::logic::v1::{ChangePasswordRequest, DeviceInfo, Empty, FindUserRequest, SignInRequest, SignUpRequest},
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, TestServer, device_client},
};

both_stores!(
    a_user_signs_up_signs_in_and_changes_password,
    a_refused_sign_up_takes_no_username,
    accounts_are_refused_where_the_app_does_not_keep_them,
    a_user_is_found_by_username_within_its_app_only
);

fn device(id: &str) -> Option<DeviceInfo> {
    Some(DeviceInfo { device_id: id.into(), ..Default::default() })
}

async fn a_user_signs_up_signs_in_and_changes_password(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app_with(AppSettings { accounts_enabled: true, ..Default::default() }).await;
    let mut account = app.account().await;

    let signed_up = account
        .sign_up(SignUpRequest {
            username: "Alice".into(),
            password: "correct horse".into(),
            nickname: "Alice".into(),
            device: device("phone"),
        })
        .await
        .unwrap()
        .into_inner();
    let user_id = signed_up.user.unwrap().user_id;
    let me = device_client(server.addr(), &signed_up.token).await.get_me(Empty {}).await.unwrap().into_inner();
    assert_eq!(me.user.unwrap().user_id, user_id);

    let taken = account
        .sign_up(SignUpRequest { username: "alice".into(), password: "another pass".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "usernames are case-insensitive");

    let signed_in = account
        .sign_in(SignInRequest { username: "alice".into(), password: "correct horse".into(), device: device("laptop") })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed_in.user.unwrap().user_id, user_id);
    assert_eq!(signed_in.device.unwrap().device_id, "laptop");

    let wrong_password = account
        .sign_in(SignInRequest { username: "alice".into(), password: "wrong horse".into(), device: device("x") })
        .await
        .unwrap_err();
    let unknown_user = account
        .sign_in(SignInRequest { username: "mallory".into(), password: "wrong horse".into(), device: device("x") })
        .await
        .unwrap_err();
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    assert_eq!(unknown_user.code(), Code::Unauthenticated);
    assert_eq!(wrong_password.message(), unknown_user.message(), "no hint of which usernames exist");

    let weak = account
        .sign_up(SignUpRequest { username: "bob".into(), password: "short".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(weak.code(), Code::InvalidArgument);

    let mut laptop = device_client(server.addr(), &signed_in.token).await;
    let refused = laptop
        .change_password(ChangePasswordRequest {
            old_password: "wrong horse".into(),
            new_password: "battery staple".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    laptop
        .change_password(ChangePasswordRequest {
            old_password: "correct horse".into(),
            new_password: "battery staple".into(),
        })
        .await
        .unwrap();
    assert_eq!(laptop.get_me(Empty {}).await.unwrap_err().code(), Code::Unauthenticated, "tokens are revoked");
    let old = account
        .sign_in(SignInRequest { username: "alice".into(), password: "correct horse".into(), device: device("x") })
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated);
    account
        .sign_in(SignInRequest { username: "alice".into(), password: "battery staple".into(), device: device("x") })
        .await
        .expect("the new password works");
}

async fn accounts_are_refused_where_the_app_does_not_keep_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let status = app
        .account()
        .await
        .sign_up(SignUpRequest { username: "alice".into(), password: "correct horse".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let missing = gim::proto::logic::v1::account_client::AccountClient::with_interceptor(
        crate::support::channel(server.addr()).await,
        crate::support::Meta::new(&[("x-gim-app-id", "424242")]),
    )
    .sign_in(SignInRequest { username: "alice".into(), password: "correct horse".into(), ..Default::default() })
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
}

/// Adding a friend by name: a signed-in user finds another by username (any case), and
/// never a user of another app, nor in an app that keeps no accounts.
async fn a_user_is_found_by_username_within_its_app_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let accounts = AppSettings { accounts_enabled: true, ..Default::default() };
    let (app, other) = (server.new_app_with(accounts.clone()).await, server.new_app_with(accounts).await);
    let sign_up = |username: &'static str| SignUpRequest {
        username: username.into(),
        password: "correct horse".into(),
        nickname: username.into(),
        device: device("web"),
    };
    let alice = app.account().await.sign_up(sign_up("alice")).await.unwrap().into_inner();
    let bob = app.account().await.sign_up(sign_up("bob")).await.unwrap().into_inner();
    other.account().await.sign_up(sign_up("carol")).await.unwrap();

    let mut friends = crate::support::friends_client(server.addr(), &bob.token).await;
    let found = friends.find_user(FindUserRequest { username: "ALICE".into() }).await.unwrap().into_inner();
    assert_eq!(found.user_id, alice.user.unwrap().user_id);
    assert_eq!(found.nickname, "alice");
    for (username, code) in
        [("carol", Code::NotFound), ("nobody", Code::NotFound), ("no spaces", Code::InvalidArgument)]
    {
        let status = friends.find_user(FindUserRequest { username: username.into() }).await.unwrap_err();
        assert_eq!(status.code(), code, "{username}");
    }

    let plain = server.new_app().await;
    plain.user("dave").await;
    let status = plain.friends(Some("dave")).await.find_user(FindUserRequest { username: "dave".into() }).await;
    assert_eq!(status.unwrap_err().code(), Code::PermissionDenied, "the app keeps no usernames");
}

async fn a_refused_sign_up_takes_no_username(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app_with(AppSettings { accounts_enabled: true, ..Default::default() }).await;
    let mut account = app.account().await;
    let sign_up = |device: Option<DeviceInfo>| SignUpRequest {
        username: "alice".into(),
        password: "correct horse".into(),
        nickname: "Alice".into(),
        device,
    };
    let bad_devices = [
        DeviceInfo { device_id: "no spaces here".into(), ..Default::default() },
        DeviceInfo { device_id: "x".repeat(65), ..Default::default() },
        DeviceInfo { device_id: "phone".into(), model: "bad\u{202e}model".into(), ..Default::default() },
    ];
    for bad in bad_devices {
        let refused = account.sign_up(sign_up(Some(bad.clone()))).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad:?}: {refused:?}");
    }
    let users = app.business().await.list_users(gim::proto::logic::v1::ListUsersRequest::default()).await;
    assert!(users.unwrap().into_inner().users.is_empty(), "no user was created");
    let found = app.friends(None).await.find_user(FindUserRequest { username: "alice".into() }).await;
    assert_eq!(found.map(drop).unwrap_err().code(), Code::NotFound, "the username is free");
    let signed_up = account.sign_up(sign_up(device("phone"))).await.expect("the name is still free").into_inner();
    assert_eq!(signed_up.device.map(|d| d.device_id).as_deref(), Some("phone"));
}
