//! Apps: the admin API, business authentication and secret rotation.

use gim::proto::logic::v1::{AppSettings, CreateAppRequest, GetUserRequest, RotateSecretRequest, UpdateAppRequest};
use tonic::Code;

use crate::{
    both_stores,
    support::{ADMIN_TOKEN, Backend, TestApp, TestServer, admin_client},
};

both_stores!(
    an_operator_creates_an_app_and_the_secret_authenticates_business_calls,
    the_admin_api_refuses_a_wrong_token_and_is_off_without_one,
    a_rotated_secret_replaces_the_old_one_after_the_grace_period,
);

async fn an_operator_creates_an_app_and_the_secret_authenticates_business_calls(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = admin_client(server.addr(), ADMIN_TOKEN).await;
    let created = admin
        .create_app(CreateAppRequest {
            name: "chat".into(),
            settings: Some(AppSettings { accounts_enabled: true, ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    let app = created.app.unwrap();
    assert!(app.app_id > 0);
    assert_eq!(app.name, "chat");
    assert!(created.secret.len() >= 40, "a secret carries at least 256 bits");

    let listed = admin.list_apps(gim::proto::logic::v1::ListAppsRequest {}).await.unwrap().into_inner();
    assert!(
        listed.apps.iter().any(|a| a.app_id == app.app_id
            && a.settings == Some(AppSettings { accounts_enabled: true, ..Default::default() }))
    );

    let good = TestApp { app_id: app.app_id, secret: created.secret.clone(), addr: server.addr() };
    good.user("alice").await;

    let wrong = TestApp { secret: "gs_wrong".into(), ..good.clone() };
    let status = wrong.business().await.get_user(GetUserRequest { user_id: "alice".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let renamed = admin
        .update_app(UpdateAppRequest { app_id: app.app_id, name: "chat 2".into(), settings: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "chat 2");
    assert_eq!(
        renamed.settings,
        Some(AppSettings { accounts_enabled: true, ..Default::default() }),
        "settings left unset stay"
    );

    let missing = admin.get_app(gim::proto::logic::v1::GetAppRequest { app_id: 999_999 }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let unnamed = admin.create_app(CreateAppRequest { name: " ".into(), settings: None }).await.unwrap_err();
    assert_eq!(unnamed.code(), Code::InvalidArgument);
}

async fn the_admin_api_refuses_a_wrong_token_and_is_off_without_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut wrong = admin_client(server.addr(), "not-the-token").await;
    let status = wrong.list_apps(gim::proto::logic::v1::ListAppsRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let disabled = TestServer::start_with(backend, |config| config.admin.token = Default::default()).await;
    let mut admin = admin_client(disabled.addr(), "").await;
    let status = admin.create_app(CreateAppRequest { name: "x".into(), settings: None }).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("admin.token"), "{}", status.message());
    assert!(disabled.logic().list_apps().await.unwrap().is_empty(), "nothing was created");
}

async fn a_rotated_secret_replaces_the_old_one_after_the_grace_period(backend: Backend) {
    let server = TestServer::start(backend).await;
    let old = server.new_app().await;
    old.user("alice").await;
    let mut admin = admin_client(server.addr(), ADMIN_TOKEN).await;

    let graceful = admin
        .rotate_secret(RotateSecretRequest { app_id: old.app_id, keep_old_for_seconds: 3600 })
        .await
        .unwrap()
        .into_inner();
    let new = TestApp { secret: graceful.secret, ..old.clone() };
    for app in [&old, &new] {
        app.business().await.get_user(GetUserRequest { user_id: "alice".into() }).await.expect("both secrets work");
    }

    let immediate = admin
        .rotate_secret(RotateSecretRequest { app_id: old.app_id, keep_old_for_seconds: 0 })
        .await
        .unwrap()
        .into_inner();
    let newest = TestApp { secret: immediate.secret, ..old.clone() };
    newest.business().await.get_user(GetUserRequest { user_id: "alice".into() }).await.expect("the newest works");
    for app in [&old, &new] {
        let status = app.business().await.get_user(GetUserRequest { user_id: "alice".into() }).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}
