//! The web chat app, served by `gim serve` at `/` on the connect port beside `/ws`, with
//! the settings the page reads from `/config.json`. (Its browser test is in
//! clients/web/test.)

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    support::{Backend, ServeServer},
    ws::WsClient,
};

/// One HTTP/1.1 request over a fresh connection; the whole response as text.
async fn get(addr: SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn page(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gim_serve_serves_the_web_app_and_its_settings_beside_the_sessions() {
    let server = ServeServer::start_with(Backend::Sqlite, |config| config.web.enabled = true).await;
    let ws = server.ws_addr();

    let index = get(ws, &page("/")).await;
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("text/html") && index.contains("<div id=\"app\">"), "{index}");
    assert!(index.contains("Content-Security-Policy"), "{index}");
    let script = index.split("src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a script tag");
    let asset = get(ws, &page(script)).await;
    assert!(asset.starts_with("HTTP/1.1 200") && asset.contains("text/javascript"), "{script}");
    assert!(asset.contains("immutable"), "hashed assets are cached for good");
    assert!(get(ws, &page("/chats")).await.contains("<div id=\"app\">"), "the app's routes get its page");
    assert!(get(ws, &page("/missing.png")).await.starts_with("HTTP/1.1 404"));
    assert!(get(ws, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await.starts_with("HTTP/1.1 405"));

    // The app users sign up in: made at the first start, accounts on, and the same after.
    let apps = server.services().apps.list_apps().await.unwrap();
    let web = apps.iter().find(|app| app.name == "web").expect("an app named web");
    assert!(web.settings.accounts_enabled);
    let settings = get(ws, &page("/config.json")).await;
    let body = settings.split("\r\n\r\n").nth(1).unwrap();
    let settings: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(settings["appId"], web.id);
    assert_eq!(settings["apiPort"], server.addr().port());

    // Sessions still open on the same port.
    let app = server.new_app().await;
    app.user("alice").await;
    let token = app.device_token("alice", "web").await;
    WsClient::online(ws, &token, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_web_app_off_the_connect_port_serves_sessions_only() {
    let server = ServeServer::start(Backend::Sqlite).await;
    let answer = get(server.ws_addr(), &page("/")).await;
    assert!(!answer.contains("<div id=\"app\">"), "{answer}");
    assert!(server.services().apps.list_apps().await.unwrap().iter().all(|app| app.name != "web"));
}
