//! Where gim sends requests and what links it stores: webhook endpoints and before-send
//! hooks reach public addresses only, unless the operator allows a range
//! (`outbound.allowed_ranges`), checked when they are set and again at every connect;
//! URLs are read as the web reads them; message bodies and profiles link to http(s) only.

use gim::{
    proto::{
        common::v1::{FileBody, ImageBody, MessageBody, message_body::Content},
        logic::v1::{
            AppSettings, BeforeSendHook, BusinessSendRequest, CreateUserRequest, CreateWebhookRequest,
            UpdateAppRequest, WebhookDeliveryState,
        },
    },
    store::WebhookStore,
    webhooks::{Kinds, NewEndpoint},
};
use tonic::Code;

use crate::{
    both_stores,
    support::{ADMIN_TOKEN, Backend, TestServer, admin_client, code, text},
    webhooks::{Receiver, deliveries},
};

both_stores!(webhooks_and_hooks_reach_public_addresses_only_unless_allowed, bodies_and_profiles_link_to_http_only);

async fn webhooks_and_hooks_reach_public_addresses_only_unless_allowed(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.outbound.allowed_ranges = Vec::new();
        config.webhooks.poll_ms = 50;
        config.webhooks.first_retry_ms = 100;
    })
    .await;
    let app = server.new_app().await;
    let receiver = Receiver::start().await;
    let port = receiver.url().split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    let mut admin = admin_client(server.addr(), ADMIN_TOKEN).await;

    // Refused when they are set: addresses off the public internet, in every form.
    let private = [
        receiver.url(),
        format!("http://localhost:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://0251.0376.0251.0376/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "https://192.168.1.10/hook".to_owned(),
        "http://[fd00::1]/hook".to_owned(),
        "http://[fe80::1]/hook".to_owned(),
        "http://0.0.0.0/hook".to_owned(),
    ];
    for url in &private {
        let request = CreateWebhookRequest { app_id: app.app_id, url: url.clone(), ..Default::default() };
        let refused = admin.create_webhook(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{url}: {refused:?}");
        assert!(refused.message().contains("outbound.allowed_ranges"), "names the setting: {}", refused.message());
        let hook = BeforeSendHook { url: url.clone(), direct: true, ..Default::default() };
        let settings = AppSettings { before_send: Some(hook), ..Default::default() };
        let request = UpdateAppRequest { app_id: app.app_id, settings: Some(settings), ..Default::default() };
        assert_eq!(code(admin.update_app(request).await), Code::InvalidArgument, "before_send {url}");
    }
    for url in ["http://example.com:99999/hook", "javascript:alert(1)", "file:///etc/passwd", "http://"] {
        let request = CreateWebhookRequest { app_id: app.app_id, url: url.into(), ..Default::default() };
        assert_eq!(code(admin.create_webhook(request).await), Code::InvalidArgument, "{url}");
    }
    assert!(server.services().integrations.list_webhooks(app.app_id).await.unwrap().is_empty(), "nothing was stored");
    assert!(server.services().apps.get_app(app.app_id).await.unwrap().settings.before_send.is_none());

    // Refused when gim connects: a name that passed (its DNS changed since, or it was
    // stored before the check) resolves to an address the policy refuses.
    let sneaky = NewEndpoint {
        url: format!("http://localhost:{port}/hook"),
        secret: gim::webhooks::signature::generate_secret(),
        kinds: Kinds::parse("*").unwrap(),
        enabled: true,
        description: String::new(),
    };
    let endpoint = server.node.store().create_endpoint(app.app_id, &sneaky, gim::model::now_ms()).await.unwrap();
    app.user("alice").await;
    app.user("bob").await;
    let hello = BusinessSendRequest {
        sender_user_id: "alice".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: "hello".into(),
        body: text("hello"),
        reply_to_message_id: 0,
    };
    app.business().await.send_message(hello).await.unwrap();
    let mut failed = Vec::new();
    for _ in 0..100 {
        failed = deliveries(&app, endpoint.id, WebhookDeliveryState::Waiting).await;
        if failed.iter().any(|d| d.attempts > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let error = failed.iter().find(|d| d.attempts > 0).map(|d| d.last_error.clone()).unwrap_or_default();
    assert!(error.contains("outbound.allowed_ranges"), "the attempt failed on the policy: {failed:?}");
    assert_eq!(receiver.seen(), 0, "nothing reached the receiver");
}

async fn bodies_and_profiles_link_to_http_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let image = |url: &str| {
        Some(MessageBody { content: Some(Content::Image(ImageBody { url: url.into(), ..Default::default() })) })
    };
    let file = |url: &str| {
        let body = FileBody { url: url.into(), name: "report.pdf".into(), ..Default::default() };
        Some(MessageBody { content: Some(Content::File(body)) })
    };
    let send = |body: Option<MessageBody>, id: &str| BusinessSendRequest {
        sender_user_id: "alice".into(),
        receiver_user_id: "bob".into(),
        client_msg_id: id.into(),
        body,
        reply_to_message_id: 0,
    };
    let mut business = app.business().await;
    for (n, body) in [
        image("javascript:alert(1)"),
        image("data:image/png;base64,AAAA"),
        file("file:///etc/passwd"),
        file("https://cdn.example.com:99999/x"),
        image("//cdn.example.com/x.png"),
    ]
    .into_iter()
    .enumerate()
    {
        let refused = business.send_message(send(body.clone(), &format!("bad{n}"))).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{body:?}");
    }
    assert!(app.inbox("bob").await.is_empty(), "nothing was stored");
    business.send_message(send(image("https://cdn.example.com/cat.png"), "good1")).await.unwrap();
    business.send_message(send(file("http://files.example.com/report.pdf"), "good2")).await.unwrap();
    business.send_message(send(text("plain text needs no URL"), "good3")).await.unwrap();

    let user =
        |avatar: &str| CreateUserRequest { user_id: "carol".into(), avatar_url: avatar.into(), ..Default::default() };
    assert_eq!(code(business.create_user(user("javascript:alert(1)")).await), Code::InvalidArgument);
    business.create_user(user("https://cdn.example.com/carol.png")).await.unwrap();
}
