//! The web chat app (`clients/web`), built into the binary and served at `/` on the
//! connect port beside `/ws`, so that a browser is all a newcomer needs after
//! `gim serve`. A connection is looked at before the WebSocket handshake: a plain `GET`
//! of anything but `/ws` gets a file (or the app's page, for the app's own routes) and
//! the connection is closed; everything else goes on to the handshake untouched.

use std::time::Duration;

use tokio::{io::AsyncWriteExt, net::TcpStream};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Where the page finds the APIs: served as `/config.json`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebSettings {
    /// The app users sign up and in to.
    pub app_id: u64,
    /// gRPC-Web base URL; empty: the page's own host at `api_port`.
    pub api_url: String,
    pub api_port: u16,
}

/// The app's files and its settings, ready to serve.
#[derive(Debug)]
pub struct WebApp {
    config_json: Vec<u8>,
}

/// A request head is small; anything longer is left to the WebSocket handshake to refuse.
const MAX_HEAD: usize = 8 * 1024;

impl WebApp {
    pub fn new(settings: &WebSettings) -> Self {
        Self { config_json: serde_json::to_vec(settings).expect("plain struct serializes") }
    }

    /// Whether the binary was built with the app in it (`clients/web/dist`).
    pub fn built_in() -> bool {
        ASSETS.iter().any(|(path, _)| *path == "/index.html")
    }

    /// Serves the connection if it is a page request; `false` hands it on to the
    /// WebSocket handshake, with nothing read from it.
    pub async fn serve_if_page(&self, stream: &mut TcpStream, within: Duration) -> bool {
        let Ok(Some(head)) = tokio::time::timeout(within, peek_head(stream)).await else {
            return false;
        };
        let Some(request) = PageRequest::parse(&head) else {
            return false;
        };
        let response = self.respond(&request);
        let _ = tokio::time::timeout(within, async {
            // The request was only peeked: read it off so that closing does not reset
            // the connection before the browser has the response.
            let mut sink = vec![0; head.len()];
            let _ = tokio::io::AsyncReadExt::read_exact(stream, &mut sink).await;
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        })
        .await;
        true
    }

    fn respond(&self, request: &PageRequest) -> Vec<u8> {
        if request.method != "GET" && request.method != "HEAD" {
            return response(405, "text/plain; charset=utf-8", "no-store", b"only GET", request.head_only);
        }
        if request.path == "/config.json" {
            return response(200, "application/json", "no-store", &self.config_json, request.head_only);
        }
        let path = if request.path == "/" { "/index.html" } else { request.path.as_str() };
        if let Some((_, body)) = ASSETS.iter().find(|(asset, _)| *asset == path) {
            // Vite names assets by their content hash: they never change under a name.
            let cache = if path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
            return response(200, content_type(path), cache, body, request.head_only);
        }
        // The app's own routes (no file extension) get the app's page.
        let is_route = !path.rsplit('/').next().unwrap_or("").contains('.');
        match ASSETS.iter().find(|(asset, _)| *asset == "/index.html") {
            Some((_, page)) if is_route => {
                response(200, "text/html; charset=utf-8", "no-cache", page, request.head_only)
            }
            _ => response(404, "text/plain; charset=utf-8", "no-store", b"not found", request.head_only),
        }
    }
}

/// The request head, once it has all arrived (`None`: the peer closed first, or it is
/// too long to be a page request).
async fn peek_head(stream: &TcpStream) -> Option<Vec<u8>> {
    let mut buf = vec![0; MAX_HEAD];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end + 4);
            return Some(buf);
        }
        if n == MAX_HEAD {
            return None;
        }
        // `peek` returns at once while unread bytes wait: give the rest time to come.
        if n == seen {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
}

#[derive(Debug, PartialEq)]
struct PageRequest {
    method: String,
    path: String,
    head_only: bool,
}

impl PageRequest {
    /// A request for a page: anything but a WebSocket upgrade or `/ws`.
    fn parse(head: &[u8]) -> Option<Self> {
        let head = std::str::from_utf8(head).ok()?;
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let (method, target) = (first.next()?, first.next()?);
        let path = target.split(['?', '#']).next().unwrap_or("/");
        let upgrade = lines.any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("upgrade") && value.trim().eq_ignore_ascii_case("websocket")
            })
        });
        if upgrade || path == "/ws" || !path.starts_with('/') || path.contains("..") {
            return None;
        }
        Some(Self { method: method.to_owned(), path: path.to_owned(), head_only: method == "HEAD" })
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn response(status: u16, content_type: &str, cache: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: {cache}\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
         Content-Security-Policy: default-src 'self'; connect-src 'self' http: https: ws: wss:; \
         img-src 'self' data: https:; frame-ancestors 'none'\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests_are_told_from_session_handshakes() {
        let page = PageRequest::parse(b"GET /chat?x=1 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(page.path, "/chat");
        for head in [
            &b"GET /ws?token=t HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET /../etc/passwd HTTP/1.1\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert_eq!(PageRequest::parse(head), None, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn unknown_files_are_not_found_and_routes_get_the_page() {
        let app = WebApp::new(&WebSettings { app_id: 7, api_url: String::new(), api_port: 7070 });
        let get = |path: &str| {
            let raw = app.respond(&PageRequest { method: "GET".into(), path: path.into(), head_only: false });
            String::from_utf8_lossy(&raw).into_owned()
        };
        assert!(get("/config.json").contains(r#""appId":7"#));
        assert!(get("/missing.js").starts_with("HTTP/1.1 404"));
        let post = app.respond(&PageRequest { method: "POST".into(), path: "/".into(), head_only: false });
        assert!(post.starts_with(b"HTTP/1.1 405"));
        // clients/web/dist is committed, so every build has the app in it.
        assert!(WebApp::built_in());
        assert!(get("/").starts_with("HTTP/1.1 200"));
        assert!(get("/chats/alice").contains("text/html"));
    }
}
