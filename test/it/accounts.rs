//! Usernames and passwords kept by gim.

use gim::{
    model::AppSettings,
    proto::logic::v1::{ChangePasswordRequest, DeviceInfo, Empty, SignInRequest, SignUpRequest},
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, TestServer, device_client},
};

both_stores!(a_user_signs_up_signs_in_and_changes_password, accounts_are_refused_where_the_app_does_not_keep_them);

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
