//! A WebSocket client of the gim protocol, for tests: it speaks `gim.client.v1` frames
//! over a real socket, keeps pushes that arrive while it waits for a response, and
//! reports how the server closed.

use std::{net::SocketAddr, time::Duration};

use tokio::time::Instant;

use futures_util::{SinkExt, StreamExt};
use gim::proto::{
    client::v1::{
        ClientFrame, Heartbeat, Response, ServerFrame, client_frame::Payload, event_push, response::Result as Reply,
        server_frame,
    },
    common::v1::Message,
    logic::v1::{
        AckRequest, DeviceSendRequest, GroupSendRequest, GroupSendResponse, SendMessageResponse, SyncGroupRequest,
        SyncRequest, SyncResponse,
    },
};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message as WsMessage};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_request: u64,
    /// Server frames that are not responses, in arrival order.
    pub pushes: std::collections::VecDeque<server_frame::Payload>,
}

/// How the server ended a session.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl WsClient {
    /// Opens `/ws` with the token in the query string.
    pub async fn connect(addr: SocketAddr, token: &str) -> Self {
        Self::open(&format!("ws://{addr}/ws?token={token}")).await.expect("opening a WebSocket")
    }

    /// Opens `/ws` without a token (it must then come in an Auth frame).
    pub async fn connect_anonymous(addr: SocketAddr) -> Self {
        Self::open(&format!("ws://{addr}/ws")).await.expect("opening a WebSocket")
    }

    pub async fn open(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self { ws, next_request: 0, pushes: Default::default() })
    }

    /// Opens `/ws` with the token in an `Authorization: Bearer` header.
    pub async fn connect_with_header(addr: SocketAddr, token: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{addr}/ws").into_client_request().expect("a request");
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("a header"));
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("opening a WebSocket");
        Self { ws, next_request: 0, pushes: Default::default() }
    }

    /// Opens `/ws` (token in the query) on a socket with a receive buffer as small as the
    /// kernel allows, so that a client that stops reading soon leaves the server's
    /// writes nowhere to go.
    pub async fn connect_with_a_small_receive_buffer(addr: SocketAddr, token: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_recv_buffer_size(4096).expect("setting SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("connecting");
        let url = format!("ws://{addr}/ws?token={token}");
        let (ws, _) =
            tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.expect("opening a WebSocket");
        Self { ws, next_request: 0, pushes: Default::default() }
    }

    /// Connects and completes the first sync from `after_seq`; returns what it synced.
    pub async fn online(addr: SocketAddr, token: &str, after_seq: u64) -> (Self, Vec<Message>) {
        let mut client = Self::connect(addr, token).await;
        let synced = client.sync_all(after_seq).await;
        (client, synced)
    }

    /// Connects and completes a first sync, or reports how the server refused the
    /// session (a close before the sync's answer, or a refused handshake as 1006).
    pub async fn try_online(addr: SocketAddr, token: &str) -> Result<Self, Closed> {
        let mut client = Self::open(&format!("ws://{addr}/ws?token={token}"))
            .await
            .map_err(|err| Closed { code: 1006, reason: err.to_string() })?;
        let id = client.send_frame(Payload::Sync(SyncRequest { after_seq: u64::MAX, limit: 1 })).await;
        loop {
            match client.next_frame(WAIT).await? {
                Some(server_frame::Payload::Response(response)) if response.request_id == id => return Ok(client),
                Some(other) => client.pushes.push_back(other),
                None => return Err(Closed { code: 0, reason: "no answer to the first sync".into() }),
            }
        }
    }

    pub async fn send_frame(&mut self, payload: Payload) -> u64 {
        self.next_request += 1;
        let frame = ClientFrame { request_id: self.next_request, payload: Some(payload) };
        self.ws.send(WsMessage::Binary(frame.encode_to_vec().into())).await.expect("sending a frame");
        self.next_request
    }

    pub async fn send_raw(&mut self, message: WsMessage) {
        self.ws.send(message).await.expect("sending a raw frame");
    }

    /// The next server frame, or the close.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Option<server_frame::Payload>, Closed> {
        loop {
            let message = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(Closed { code: 1006, reason: "connection ended".into() }),
                Ok(Some(Err(err))) => return Err(Closed { code: 1006, reason: err.to_string() }),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                WsMessage::Binary(bytes) => {
                    let frame = ServerFrame::decode(bytes).expect("a ServerFrame");
                    return Ok(frame.payload);
                }
                WsMessage::Close(frame) => {
                    let (code, reason) =
                        frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    return Err(Closed { code, reason });
                }
                _ => continue,
            }
        }
    }

    /// Sends a request and waits for its response, keeping pushes that come first.
    pub async fn request(&mut self, payload: Payload) -> Response {
        let id = self.send_frame(payload).await;
        loop {
            match self.next_frame(WAIT).await {
                Ok(Some(server_frame::Payload::Response(response))) if response.request_id == id => return response,
                Ok(Some(other)) => self.pushes.push_back(other),
                Ok(None) => panic!("no response to request {id}"),
                Err(closed) => panic!("closed while waiting for request {id}: {closed:?}"),
            }
        }
    }

    pub async fn heartbeat(&mut self) -> Response {
        self.request(Payload::Heartbeat(Heartbeat {})).await
    }

    pub async fn send(&mut self, to: &str, client_msg_id: &str, text: &str) -> SendMessageResponse {
        let request = DeviceSendRequest {
            receiver_user_id: to.into(),
            client_msg_id: client_msg_id.into(),
            body: crate::support::text(text),
            reply_to_message_id: 0,
        };
        let response = self.request(Payload::Send(request)).await;
        match response.result {
            Some(Reply::Send(sent)) => sent,
            _ => panic!("send failed: {} {}", response.code, response.message),
        }
    }

    pub async fn group_send(&mut self, group: &str, client_msg_id: &str, text: &str) -> GroupSendResponse {
        let request = GroupSendRequest {
            group_id: group.into(),
            client_msg_id: client_msg_id.into(),
            body: crate::support::text(text),
            reply_to_message_id: 0,
        };
        let response = self.request(Payload::GroupSend(request)).await;
        match response.result {
            Some(Reply::GroupSend(sent)) => sent,
            _ => panic!("group send failed: {} {}", response.code, response.message),
        }
    }

    pub async fn sync_group(&mut self, group: &str, after_group_seq: u64) -> SyncResponse {
        let request = SyncGroupRequest { group_id: group.into(), after_group_seq, limit: 200 };
        let response = self.request(Payload::SyncGroup(request)).await;
        match response.result {
            Some(Reply::Sync(page)) => page,
            _ => panic!("group sync failed: {} {}", response.code, response.message),
        }
    }

    pub async fn sync(&mut self, after_seq: u64, limit: i32) -> SyncResponse {
        let response = self.request(Payload::Sync(SyncRequest { after_seq, limit })).await;
        match response.result {
            Some(Reply::Sync(page)) => page,
            _ => panic!("sync failed: {} {}", response.code, response.message),
        }
    }

    /// Pages through the inbox after `after_seq` (in pages of the server's default
    /// size) until `has_more` is false.
    pub async fn sync_all(&mut self, mut after_seq: u64) -> Vec<Message> {
        let mut messages = Vec::new();
        loop {
            let page = self.sync(after_seq, 0).await;
            if let Some(last) = page.messages.last() {
                after_seq = last.seq;
            }
            messages.extend(page.messages);
            if !page.has_more {
                return messages;
            }
        }
    }

    pub async fn ack(&mut self, seq: u64) -> Response {
        self.request(Payload::Ack(AckRequest { seq })).await
    }

    /// The next message push (earlier non-message frames are kept in `pushes`).
    pub async fn next_message(&mut self, wait: Duration) -> Option<Message> {
        if let Some(index) = self.pushes.iter().position(|p| matches!(p, server_frame::Payload::Message(_)))
            && let Some(server_frame::Payload::Message(push)) = self.pushes.remove(index)
        {
            return push.message;
        }
        loop {
            match self.next_frame(wait).await {
                Ok(Some(server_frame::Payload::Message(push))) => return push.message,
                Ok(Some(other)) => self.pushes.push_back(other),
                Ok(None) => return None,
                Err(closed) => panic!("closed while waiting for a message: {closed:?}"),
            }
        }
    }

    /// Message pushes until none comes for `quiet`.
    pub async fn messages_until_quiet(&mut self, quiet: Duration) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(message) = self.next_message(quiet).await {
            messages.push(message);
        }
        messages
    }

    /// The next event push.
    pub async fn next_event(&mut self, wait: Duration) -> Option<event_push::Event> {
        if let Some(index) = self.pushes.iter().position(|p| matches!(p, server_frame::Payload::Event(_)))
            && let Some(server_frame::Payload::Event(event)) = self.pushes.remove(index)
        {
            return event.event;
        }
        loop {
            match self.next_frame(wait).await {
                Ok(Some(server_frame::Payload::Event(event))) => return event.event,
                Ok(Some(other)) => self.pushes.push_back(other),
                Ok(None) => return None,
                Err(closed) => panic!("closed while waiting for an event: {closed:?}"),
            }
        }
    }

    /// Sends nothing but WebSocket pings, one every `every`, and reads until the server
    /// closes, at most `within`; returns the close, when it came and the frames before it
    /// with when each came (wall clock, in milliseconds, as token expiries are).
    pub async fn ping_until_closed(
        &mut self,
        every: Duration,
        within: Duration,
    ) -> (Closed, i64, Vec<(i64, server_frame::Payload)>) {
        let deadline = Instant::now() + within;
        let mut ping = tokio::time::interval(every);
        let mut before = Vec::new();
        loop {
            let read = tokio::select! {
                _ = ping.tick() => None,
                read = self.next_frame(deadline.saturating_duration_since(Instant::now())) => Some(read),
            };
            match read {
                None => self.send_raw(WsMessage::Ping(Vec::new().into())).await,
                Some(Ok(Some(frame))) => before.push((gim::model::now_ms(), frame)),
                Some(Ok(None)) => panic!("the server did not close the session within {within:?}"),
                Some(Err(closed)) => return (closed, gim::model::now_ms(), before),
            }
        }
    }

    /// Reads until the server closes; returns the close and any frames before it.
    pub async fn closed(&mut self) -> (Closed, Vec<server_frame::Payload>) {
        let mut before = Vec::new();
        loop {
            match self.next_frame(WAIT).await {
                Ok(Some(frame)) => before.push(frame),
                Ok(None) => panic!("the server did not close the session"),
                Err(closed) => return (closed, before),
            }
        }
    }
}
