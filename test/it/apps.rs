//! Apps: the admin API, business authentication and secret rotation.

use gim::proto::logic::v1::{
    AppQuotas, AppSettings, BeforeSendHook, BusinessSendRequest, CreateAppRequest, CreateWebhookRequest, GetAppRequest,
    GetUserRequest, ListAppsRequest, ListWebhooksRequest, RotateSecretRequest, UpdateAppRequest,
};
use tonic::Code;

use crate::{
    both_stores,
    support::{ADMIN_TOKEN, Backend, ServeServer, TestApp, TestServer, admin_client, code, text},
};

both_stores!(
    an_operator_creates_an_app_and_the_secret_authenticates_business_calls,
    the_admin_api_refuses_a_wrong_token_and_is_off_without_one,
    a_rotated_secret_replaces_the_old_one_after_the_grace_period,
    an_update_changes_only_what_it_names,
    secrets_and_credentials_are_never_shown_back,
    each_app_has_quotas_of_its_own,
);

/// The switches as answers carry them: every one set.
fn switches(accounts: bool, friends_only: bool, no_presence_events: bool) -> AppSettings {
    AppSettings {
        accounts_enabled: Some(accounts),
        friendship_required: Some(friends_only),
        presence_events_disabled: Some(no_presence_events),
        ..Default::default()
    }
}

const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hook(url: &str, secret: &str) -> BeforeSendHook {
    BeforeSendHook { url: url.into(), secret: secret.into(), direct: true, ..Default::default() }
}

async fn update(server: &TestServer, app: u64, settings: AppSettings) -> gim::proto::logic::v1::App {
    let request = UpdateAppRequest { app_id: app, settings: Some(settings), ..Default::default() };
    admin_client(server.addr(), ADMIN_TOKEN).await.update_app(request).await.unwrap().into_inner()
}

async fn an_update_changes_only_what_it_names(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = admin_client(server.addr(), ADMIN_TOKEN).await;
    let settings = AppSettings {
        before_send: Some(hook("https://hooks.example/moderate", HOOK_SECRET)),
        ..switches(true, true, false)
    };
    let request = CreateAppRequest { name: "chat".into(), settings: Some(settings) };
    let app = admin.create_app(request).await.unwrap().into_inner().app.unwrap().app_id;

    // One switch: the others, the hook and its secret stay.
    let changed = update(&server, app, AppSettings { friendship_required: Some(false), ..Default::default() }).await;
    let shown = changed.settings.unwrap();
    assert_eq!((shown.accounts_enabled, shown.friendship_required), (Some(true), Some(false)));
    let stored = server.services().apps.get_app(app).await.unwrap().settings;
    assert!(stored.accounts_enabled, "accounts stay on");
    assert_eq!(stored.before_send.as_ref().map(|h| h.secret.as_str()), Some(HOOK_SECRET), "the hook stays");

    // The hook with a new URL and no secret keeps its secret.
    update(&server, app, AppSettings { before_send: Some(hook("https://hooks.example/v2", "")), ..Default::default() })
        .await;
    let stored = server.services().apps.get_app(app).await.unwrap().settings.before_send.unwrap();
    assert_eq!((stored.url.as_str(), stored.secret.as_str()), ("https://hooks.example/v2", HOOK_SECRET));

    // Off with an empty URL; a new one without a secret gets one, shown in that answer only.
    let off = update(&server, app, AppSettings { before_send: Some(hook("", "")), ..Default::default() }).await;
    assert_eq!(off.settings.unwrap().before_send, None);
    let on = update(
        &server,
        app,
        AppSettings { before_send: Some(hook("https://hooks.example/v3", "")), ..Default::default() },
    )
    .await;
    let made = on.settings.unwrap().before_send.unwrap().secret;
    assert!(made.starts_with("whsec_"), "gim made a secret: {made:?}");
    let stored = server.services().apps.get_app(app).await.unwrap().settings.before_send.unwrap();
    assert_eq!(stored.secret, made);

    // A refused update changes nothing.
    let bad =
        AppSettings { accounts_enabled: Some(false), before_send: Some(hook("ftp://x", "")), ..Default::default() };
    let request = UpdateAppRequest { app_id: app, settings: Some(bad), ..Default::default() };
    assert_eq!(code(admin.update_app(request).await), Code::InvalidArgument);
    let stored = server.services().apps.get_app(app).await.unwrap().settings;
    assert!(stored.accounts_enabled && stored.before_send.is_some(), "{stored:?}");
}

async fn secrets_and_credentials_are_never_shown_back(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = admin_client(server.addr(), ADMIN_TOKEN).await;
    let settings = AppSettings {
        before_send: Some(hook("https://gim:hunter2@hooks.example/h", HOOK_SECRET)),
        ..Default::default()
    };
    let created = admin.create_app(CreateAppRequest { name: "chat".into(), settings: Some(settings) }).await;
    let app = created.unwrap().into_inner().app.unwrap();
    let masked = Some(hook("https://***@hooks.example/h", ""));
    assert_eq!(
        app.settings.as_ref().unwrap().before_send.as_ref().map(|h| (&h.url, &h.secret)),
        masked.as_ref().map(|h| (&h.url, &h.secret))
    );
    let got = admin.get_app(GetAppRequest { app_id: app.app_id }).await.unwrap().into_inner();
    let listed = admin.list_apps(ListAppsRequest {}).await.unwrap().into_inner().apps;
    let renamed = admin
        .update_app(UpdateAppRequest { app_id: app.app_id, name: "chat 2".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    for shown in [&got, &listed[0], &renamed] {
        let hook = shown.settings.as_ref().unwrap().before_send.as_ref().unwrap();
        assert_eq!((hook.url.as_str(), hook.secret.as_str()), ("https://***@hooks.example/h", ""), "{shown:?}");
    }
    let stored = server.services().apps.get_app(app.app_id).await.unwrap().settings.before_send.unwrap();
    assert_eq!(stored.url, "https://gim:hunter2@hooks.example/h", "gim keeps what it needs to call");

    let endpoint = CreateWebhookRequest {
        app_id: app.app_id,
        url: "https://gim:hunter2@receiver.example/events".into(),
        ..Default::default()
    };
    let created = admin.create_webhook(endpoint).await.unwrap().into_inner();
    assert_eq!(created.url, "https://***@receiver.example/events");
    assert!(created.secret.starts_with("whsec_"), "an endpoint's secret is shown once, at creation");
    let listed = admin.list_webhooks(ListWebhooksRequest { app_id: app.app_id }).await.unwrap().into_inner();
    assert_eq!(listed.endpoints[0].url, "https://***@receiver.example/events");
    assert_eq!(listed.endpoints[0].secret, "");
}

async fn each_app_has_quotas_of_its_own(backend: Backend) {
    let server = ServeServer::start_with(backend, |config| config.rates.app_calls_per_second = 1000).await;
    let (busy, quiet) = (server.new_app().await, server.new_app().await);
    for app in [&busy, &quiet] {
        app.user("alice").await;
        app.user("bob").await;
    }
    let mut admin = admin_client(server.addr(), ADMIN_TOKEN).await;
    let quotas = AppQuotas { sends_per_second: Some(2), max_webhook_endpoints: Some(1), ..Default::default() };
    let request = UpdateAppRequest {
        app_id: busy.app_id,
        settings: Some(AppSettings { quotas: Some(quotas), ..Default::default() }),
        ..Default::default()
    };
    let updated = admin.update_app(request).await.unwrap().into_inner();
    let in_effect =
        AppQuotas { business_calls_per_second: Some(1000), sends_per_second: Some(2), max_webhook_endpoints: Some(1) };
    assert_eq!(updated.quotas, Some(in_effect), "its own quotas, and the deployment's for the rest");

    let send = |app: &TestApp, n: usize| {
        let app = app.clone();
        async move {
            let request = BusinessSendRequest {
                sender_user_id: "alice".into(),
                receiver_user_id: "bob".into(),
                client_msg_id: format!("m{n}"),
                body: text("hi"),
                reply_to_message_id: 0,
            };
            code(app.business().await.send_message(request).await)
        }
    };
    // Two a second, in bursts of four.
    let mut codes = Vec::new();
    for n in 0..5 {
        codes.push(send(&busy, n).await);
    }
    assert_eq!(codes, [Code::Ok, Code::Ok, Code::Ok, Code::Ok, Code::ResourceExhausted]);
    for n in 0..5 {
        assert_eq!(send(&quiet, n).await, Code::Ok, "another app is not held back");
    }
    let metrics = server.process.metrics().encode();
    let refused = format!("gim_app_usage_total{{app=\"{}\",kind=\"send\",outcome=\"refused\"}} 1", busy.app_id);
    assert!(metrics.contains(&refused), "usage is reported per app: {metrics}");

    let endpoint = |n: u32| CreateWebhookRequest {
        app_id: busy.app_id,
        url: format!("https://receiver.example/{n}"),
        ..Default::default()
    };
    admin.create_webhook(endpoint(1)).await.unwrap();
    assert_eq!(code(admin.create_webhook(endpoint(2)).await), Code::ResourceExhausted, "one endpoint");

    // Calls of the business API: raised for one app, then back to the deployment's.
    let quotas = AppQuotas { business_calls_per_second: Some(1), ..Default::default() };
    let request = UpdateAppRequest {
        app_id: quiet.app_id,
        settings: Some(AppSettings { quotas: Some(quotas), ..Default::default() }),
        ..Default::default()
    };
    admin.update_app(request).await.unwrap();
    let get = || GetUserRequest { user_id: "alice".into() };
    let mut business = quiet.business().await;
    let codes: Vec<Code> = futures_util::future::join_all((0..3).map(|_| {
        let mut business = business.clone();
        async move { code(business.get_user(get()).await) }
    }))
    .await;
    assert_eq!(codes.iter().filter(|c| **c == Code::ResourceExhausted).count(), 1, "bursts of two: {codes:?}");
    let reset = UpdateAppRequest { app_id: quiet.app_id, reset_quotas: true, ..Default::default() };
    let back = admin.update_app(reset).await.unwrap().into_inner();
    assert_eq!(back.quotas.and_then(|q| q.business_calls_per_second), Some(1000));
    assert_eq!(back.settings.and_then(|s| s.quotas), None, "no quota of its own");
    assert_eq!(code(business.get_user(get()).await), Code::Ok);
}

async fn an_operator_creates_an_app_and_the_secret_authenticates_business_calls(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = admin_client(server.addr(), ADMIN_TOKEN).await;
    let created = admin
        .create_app(CreateAppRequest {
            name: "chat".into(),
            settings: Some(AppSettings { accounts_enabled: Some(true), ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    let app = created.app.unwrap();
    assert!(app.app_id > 0);
    assert_eq!(app.name, "chat");
    assert!(created.secret.len() >= 40, "a secret carries at least 256 bits");

    let listed = admin.list_apps(gim::proto::logic::v1::ListAppsRequest {}).await.unwrap().into_inner();
    assert!(listed.apps.iter().any(|a| a.app_id == app.app_id && a.settings == Some(switches(true, false, false))));

    let good = TestApp { app_id: app.app_id, secret: created.secret.clone(), addr: server.addr() };
    good.user("alice").await;

    let wrong = TestApp { secret: "gs_wrong".into(), ..good.clone() };
    let status = wrong.business().await.get_user(GetUserRequest { user_id: "alice".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let renamed = admin
        .update_app(UpdateAppRequest { app_id: app.app_id, name: "chat 2".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "chat 2");
    assert_eq!(renamed.settings, Some(switches(true, false, false)), "settings left unset stay");

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
    assert!(disabled.services().apps.list_apps().await.unwrap().is_empty(), "nothing was created");
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
