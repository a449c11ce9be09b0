//! Users, devices and device tokens.

use std::time::Duration;

use gim::proto::{
    common::v1::DeviceType,
    logic::v1::{
        CreateUserRequest, Empty, GetUserRequest, GetUsersRequest, ImportUsersRequest, IssueTokenRequest,
        ListDevicesRequest, ListUsersRequest, RegisterDeviceRequest, RemoveDeviceRequest, RevokeTokensRequest,
        UpdateMeRequest, UpdateUserRequest,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, TestServer, device_client},
};

both_stores!(
    users_are_created_with_business_ids_read_updated_and_listed,
    import_creates_the_missing_users_and_leaves_the_others,
    devices_register_idempotently_up_to_the_limit,
    a_token_works_until_it_is_revoked_for_the_device_or_the_user,
    a_token_expires_and_dies_with_its_device,
);

async fn users_are_created_with_business_ids_read_updated_and_listed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut business = app.business().await;

    let alice = business
        .create_user(CreateUserRequest {
            user_id: "alice@corp".into(),
            nickname: "Alice".into(),
            avatar_url: "https://cdn.example/a.png".into(),
            extra: r#"{"level":3}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alice.user_id, "alice@corp");
    assert_eq!(alice.nickname, "Alice");
    assert!(alice.created_at_ms > 0);

    let generated = business.create_user(CreateUserRequest::default()).await.unwrap().into_inner();
    assert!(generated.user_id.starts_with("u_") && generated.user_id.len() > 10, "{}", generated.user_id);

    let again = business.create_user(CreateUserRequest { user_id: "alice@corp".into(), ..Default::default() }).await;
    assert_eq!(again.unwrap_err().code(), Code::AlreadyExists);

    let updated = business
        .update_user(UpdateUserRequest {
            user_id: "alice@corp".into(),
            nickname: Some("Al".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.nickname, "Al");
    assert_eq!(updated.avatar_url, "https://cdn.example/a.png", "fields not set stay as they were");
    assert_eq!(updated.extra, r#"{"level":3}"#);

    let fetched = business.get_user(GetUserRequest { user_id: "alice@corp".into() }).await.unwrap().into_inner();
    assert_eq!(fetched, updated);

    for id in ["bob", "carol", "dave"] {
        business.create_user(CreateUserRequest { user_id: id.into(), ..Default::default() }).await.unwrap();
    }
    let batch = business
        .get_users(GetUsersRequest { user_ids: vec!["dave".into(), "nobody".into(), "bob".into()] })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = batch.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids, ["dave", "bob"], "request order, unknown ids left out");

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = business
            .list_users(ListUsersRequest { after_user_id: after.clone(), limit: 2 })
            .await
            .unwrap()
            .into_inner();
        assert!(page.users.len() <= 2);
        seen.extend(page.users.iter().map(|u| u.user_id.clone()));
        if !page.has_more {
            break;
        }
        after = page.users.last().unwrap().user_id.clone();
    }
    let mut expected = vec!["alice@corp".to_owned(), "bob".into(), "carol".into(), "dave".into(), generated.user_id];
    expected.sort();
    assert_eq!(seen, expected);
}

async fn import_creates_the_missing_users_and_leaves_the_others(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let mut business = app.business().await;
    business
        .create_user(CreateUserRequest { user_id: "old".into(), nickname: "Old".into(), ..Default::default() })
        .await
        .unwrap();

    let users = ["old", "new1", "new2", "new1"]
        .iter()
        .map(|id| CreateUserRequest { user_id: (*id).into(), nickname: "Imported".into(), ..Default::default() })
        .collect();
    let result = business.import_users(ImportUsersRequest { users }).await.unwrap().into_inner();
    assert_eq!(result.created_user_ids, ["new1", "new2"]);
    assert_eq!(result.existing_user_ids, ["old", "new1"]);
    let old = business.get_user(GetUserRequest { user_id: "old".into() }).await.unwrap().into_inner();
    assert_eq!(old.nickname, "Old", "an existing user is left unchanged");

    let too_many = (0..1001).map(|i| CreateUserRequest { user_id: format!("u{i}"), ..Default::default() }).collect();
    let status = business.import_users(ImportUsersRequest { users: too_many }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = business
        .import_users(ImportUsersRequest {
            users: vec![
                CreateUserRequest { user_id: "fine".into(), ..Default::default() },
                CreateUserRequest { user_id: "not fine".into(), ..Default::default() },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = business.get_user(GetUserRequest { user_id: "fine".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "a refused import creates nobody");
}

async fn devices_register_idempotently_up_to_the_limit(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.max_devices_per_user = 2).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let mut business = app.business().await;

    let phone = business
        .register_device(RegisterDeviceRequest {
            user_id: "alice".into(),
            device_id: "phone".into(),
            r#type: DeviceType::Ios as i32,
            model: "iPhone 15".into(),
            os_version: "17.1".into(),
            sdk_version: "1.0.0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (phone.device_id.as_str(), phone.r#type, phone.model.as_str()),
        ("phone", DeviceType::Ios as i32, "iPhone 15")
    );

    let upgraded = business
        .register_device(RegisterDeviceRequest {
            user_id: "alice".into(),
            device_id: "phone".into(),
            r#type: DeviceType::Ios as i32,
            os_version: "18.0".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(upgraded.os_version, "18.0");
    assert_eq!(upgraded.created_at_ms, phone.created_at_ms);

    let generated = business
        .register_device(RegisterDeviceRequest {
            user_id: "alice".into(),
            r#type: DeviceType::Web as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(generated.device_id.starts_with("d_"));

    let third = business
        .register_device(RegisterDeviceRequest {
            user_id: "alice".into(),
            device_id: "laptop".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted);

    let listed = business.list_devices(ListDevicesRequest { user_id: "alice".into() }).await.unwrap().into_inner();
    assert_eq!(listed.devices.len(), 2);

    let nobody = business
        .register_device(RegisterDeviceRequest {
            user_id: "nobody".into(),
            device_id: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound);
}

async fn a_token_works_until_it_is_revoked_for_the_device_or_the_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    app.user("alice").await;
    let phone_token = app.device_token("alice", "phone").await;
    let laptop_token = app.device_token("alice", "laptop").await;
    let mut phone = device_client(server.addr(), &phone_token).await;
    let mut laptop = device_client(server.addr(), &laptop_token).await;

    let me = phone.get_me(Empty {}).await.unwrap().into_inner();
    assert_eq!(me.user.unwrap().user_id, "alice");
    assert_eq!(me.device.unwrap().device_id, "phone");
    let renamed =
        phone.update_me(UpdateMeRequest { nickname: Some("Alice".into()), ..Default::default() }).await.unwrap();
    assert_eq!(renamed.into_inner().nickname, "Alice");

    let mut business = app.business().await;
    business.revoke_tokens(RevokeTokensRequest { user_id: "alice".into(), device_id: "phone".into() }).await.unwrap();
    assert_eq!(phone.get_me(Empty {}).await.unwrap_err().code(), Code::Unauthenticated);
    laptop.get_me(Empty {}).await.expect("the other device keeps its token");

    let fresh = business
        .issue_token(IssueTokenRequest { user_id: "alice".into(), device_id: "phone".into(), ttl_seconds: 60 })
        .await
        .unwrap()
        .into_inner();
    device_client(server.addr(), &fresh.token).await.get_me(Empty {}).await.expect("a new token works");

    business.revoke_tokens(RevokeTokensRequest { user_id: "alice".into(), device_id: String::new() }).await.unwrap();
    for token in [&fresh.token, &laptop_token] {
        let status = device_client(server.addr(), token).await.get_me(Empty {}).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

async fn a_token_expires_and_dies_with_its_device(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.device_token("alice", "phone").await;
    let mut business = app.business().await;

    let short = business
        .issue_token(IssueTokenRequest { user_id: "alice".into(), device_id: "phone".into(), ttl_seconds: 1 })
        .await
        .unwrap()
        .into_inner();
    let mut phone = device_client(server.addr(), &short.token).await;
    phone.get_me(Empty {}).await.expect("valid at first");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = phone.get_me(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());

    let too_long = business
        .issue_token(IssueTokenRequest { user_id: "alice".into(), device_id: "phone".into(), ttl_seconds: u32::MAX })
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Code::InvalidArgument);
    let unregistered = business
        .issue_token(IssueTokenRequest { user_id: "alice".into(), device_id: "tablet".into(), ttl_seconds: 0 })
        .await
        .unwrap_err();
    assert_eq!(unregistered.code(), Code::NotFound);

    let token = app.device_token("alice", "phone").await;
    business.remove_device(RemoveDeviceRequest { user_id: "alice".into(), device_id: "phone".into() }).await.unwrap();
    let status = device_client(server.addr(), &token).await.get_me(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
