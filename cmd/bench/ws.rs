//! A lean WebSocket client for load: small buffers, an optional source address (to
//! spread many connections over loopback addresses), binary gim frames.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use gim::proto::client::v1::{ClientFrame, ServerFrame, client_frame::Payload, server_frame};
use prost::Message as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message as WsMessage, protocol::WebSocketConfig},
};

pub type Ws = WebSocketStream<TcpStream>;

fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0)
}

/// Opens `/ws` on `addr` as the device of `token`.
pub async fn open(addr: SocketAddr, token: &str, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0)).context("binding the source address")?;
    }
    let stream = socket.connect(addr).await.context("connecting")?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/ws?token={token}");
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config())).await.context("handshake")?;
    Ok(ws)
}

pub async fn send(ws: &mut Ws, request_id: u64, payload: Payload) -> anyhow::Result<()> {
    let frame = ClientFrame { request_id, payload: Some(payload) };
    ws.send(WsMessage::Binary(frame.encode_to_vec().into())).await?;
    Ok(())
}

/// The next server frame, or why the session ended (close code and reason, or error).
pub async fn next(ws: &mut Ws) -> Result<Option<server_frame::Payload>, String> {
    loop {
        match ws.next().await {
            None => return Err("connection ended".into()),
            Some(Ok(WsMessage::Binary(bytes))) => {
                return ServerFrame::decode(bytes).map(|frame| frame.payload).map_err(|err| err.to_string());
            }
            Some(Ok(WsMessage::Close(frame))) => {
                return Err(frame.map_or("closed".into(), |f| format!("closed {} {}", u16::from(f.code), f.reason)));
            }
            Some(Err(err)) => return Err(err.to_string()),
            Some(Ok(_)) => continue,
        }
    }
}
