//! Accepting device connections: the WebSocket handshake on `GET /ws`. Devices send
//! their token in the session's first frame (`session::authenticate`), which keeps it
//! out of URLs; clients that cannot may present it in the handshake, in an
//! `Authorization: Bearer` header or a `token` query parameter (browsers cannot set
//! headers). A token in the handshake is checked for signature and expiry before the
//! upgrade (HTTP 401 otherwise); revocation is checked right after it.

use std::sync::Arc;

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http::{HeaderValue, StatusCode},
};

use super::{Context, session};
use crate::model::now_ms;

/// The subprotocol a client may ask for; echoed when asked.
const SUBPROTOCOL: &str = "gim.v1";

pub(super) async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Context>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        tokio::spawn(handshake(stream, ctx.clone(), slot));
    }
}

/// Every session slot is taken.
async fn refuse(mut stream: TcpStream) {
    let body = "this node is at connect.max_sessions; try another";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.write_all(response.as_bytes())).await;
}

fn reject(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

/// The token of a handshake request, if it carries one.
fn token_of(request: &Request) -> Option<String> {
    let header = request.headers().get("authorization").and_then(|v| v.to_str().ok());
    if let Some(token) = header.and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(token.trim().to_owned());
    }
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| pair.strip_prefix("token=")).filter(|t| !t.is_empty()).map(str::to_owned)
}

/// Upgrades a connection, then hands it to a session task of its own: the handshake's
/// state is freed when it ends instead of being sized into the session's task.
// The callback's error type is tungstenite's HTTP response, large or not.
#[allow(clippy::result_large_err)]
async fn handshake(mut stream: TcpStream, ctx: Arc<Context>, slot: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    if let Some(web) = &ctx.web
        && web.serve_if_page(&mut stream, ctx.limits.handshake_timeout).await
    {
        return;
    }
    let mut token = None;
    let callback = |request: &Request, mut response: Response| {
        if request.uri().path() != "/ws" {
            return Err(reject(StatusCode::NOT_FOUND, "the WebSocket endpoint is /ws"));
        }
        if !ctx.origins.allows(request.headers().get("origin")) {
            return Err(reject(
                StatusCode::FORBIDDEN,
                "pages of this origin may not connect (connect.allowed_origins)",
            ));
        }
        if let Some(presented) = token_of(request) {
            if let Err(err) = ctx.token_key.verify(&presented, now_ms() / 1000) {
                return Err(reject(StatusCode::UNAUTHORIZED, &err.to_string()));
            }
            token = Some(presented);
        }
        let offered = request.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
        if offered.split(',').any(|p| p.trim() == SUBPROTOCOL) {
            response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        }
        Ok(response)
    };
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ctx.ws_config));
    match tokio::time::timeout(ctx.limits.handshake_timeout, upgrade).await {
        Ok(Ok(ws)) => {
            // Boxed so that the session's task does not keep a second copy of the socket.
            tokio::spawn(async move {
                session::run(Box::new(ws), token, ctx).await;
                drop(slot);
            });
        }
        Ok(Err(err)) => tracing::debug!(error = %err, "WebSocket handshake failed"),
        Err(_) => tracing::debug!("WebSocket handshake timed out"),
    }
}
