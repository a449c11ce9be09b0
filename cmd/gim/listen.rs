//! `gim listen`: a device session that prints what arrives. It does what
//! docs/protocol.md asks of a device: syncs the inbox from the seq the device
//! acknowledged last and each large group (the app's announcements among them) from the
//! group seq it printed last, then prints pushes in order, once each, and acknowledges
//! them, with a heartbeat.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use gim::proto::{
    client::v1::{
        Auth, ClientFrame, EventPush, Heartbeat, Kicked, ServerFrame, client_frame::Payload, event_push::Event,
        response::Result as Answer, server_frame::Payload as Down,
    },
    common::v1::{ConversationType, Message},
    logic::v1::{
        AckRequest, Empty, JoinRoomRequest, RoomEvent, RoomMessage, SyncGroupRequest, SyncRequest, SyncResponse,
        device_client::DeviceClient,
    },
};
use prost::Message as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, protocol::CloseFrame};

use crate::{
    client::{answer, business, describe, describe_body, issue_token, register_device},
    cursors::GroupCursors,
    remote::{self, Remote},
};

#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// The device token to listen with.
    #[arg(long, required_unless_present = "user", conflicts_with = "user")]
    token: Option<String>,
    /// Listen as this user (business credentials: registers --device and issues a token).
    #[arg(long, requires = "device")]
    user: Option<String>,
    #[arg(long, requires = "user")]
    device: Option<String>,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// Start the inbox after this seq [default: the last seq this device acknowledged].
    /// Large groups and announcements go on from the last one this device printed.
    #[arg(long)]
    after_seq: Option<u64>,
    /// Exit after printing this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Also join this live room, with its last messages (repeat the flag for more).
    #[arg(long = "room")]
    rooms: Vec<String>,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a sync request in flight reads.
enum Reading {
    Inbox,
    Group(String),
}

struct Listener {
    socket: Socket,
    json: bool,
    next_request: u64,
    /// The last inbox seq printed.
    seq: u64,
    /// The last group seq printed, per large group.
    cursors: GroupCursors,
    /// Sync requests in flight, by request id.
    reading: HashMap<u64, Reading>,
    /// Large groups being read, with their pushes that came meanwhile (printed once the
    /// read reaches them).
    catching_up: HashMap<String, BTreeMap<u64, Message>>,
    printed: u64,
    count: Option<u64>,
    rooms: Vec<String>,
}

pub async fn listen(remote: &Remote, args: ListenArgs) -> anyhow::Result<()> {
    let token = match (args.token, args.user, args.device) {
        (Some(token), _, _) => token,
        (None, Some(user), Some(device)) => {
            let mut client = business(remote, None).await?;
            register_device(&mut client, &user, &device, crate::client::Kind::Other, "gim listen").await?;
            issue_token(&mut client, &user, &device, 0).await?
        }
        _ => bail!("give --token, or --user and --device"),
    };
    let seq = match args.after_seq {
        Some(seq) => seq,
        None => {
            let mut device = DeviceClient::with_interceptor(remote.channel().await?, remote::device(&token)?);
            answer(device.get_me(Empty {}).await)?.device.map_or(0, |device| device.acked_seq)
        }
    };
    let claims = gim::auth::Claims::read_unverified(&token).context("that is not a gim device token")?;
    let cursors = GroupCursors::load(&remote::cursor_dir(), &remote.server, &claims)?;
    let (mut socket, _) = tokio_tungstenite::connect_async(remote.ws.as_str())
        .await
        .with_context(|| format!("opening a session at {} (--ws or GIM_WS)", remote.ws))?;
    // The token goes in the first frame, not in the URL, where proxies and logs keep it; a
    // refusal closes the session with 4001, which `run` reports.
    let auth = ClientFrame { request_id: 0, payload: Some(Payload::Auth(Auth { token: token.clone() })) };
    socket.send(tungstenite::Message::binary(auth.encode_to_vec())).await.context("authenticating the session")?;
    let mut listener = Listener {
        socket,
        json: args.json,
        next_request: 0,
        seq,
        cursors,
        reading: HashMap::new(),
        catching_up: HashMap::new(),
        printed: 0,
        count: args.count,
        rooms: args.rooms,
    };
    listener.run().await
}

impl Listener {
    /// Sends a frame; returns its request id.
    async fn send(&mut self, payload: Payload) -> anyhow::Result<u64> {
        self.next_request += 1;
        let frame = ClientFrame { request_id: self.next_request, payload: Some(payload) };
        self.socket.send(tungstenite::Message::binary(frame.encode_to_vec())).await?;
        Ok(self.next_request)
    }

    async fn sync_inbox(&mut self) -> anyhow::Result<()> {
        let request = self.send(Payload::Sync(SyncRequest { after_seq: self.seq, limit: 0 })).await?;
        self.reading.insert(request, Reading::Inbox);
        Ok(())
    }

    /// Reads a large group from the last group seq printed, unless it is being read.
    async fn catch_up(&mut self, group: &str) -> anyhow::Result<()> {
        if self.catching_up.contains_key(group) {
            return Ok(());
        }
        self.catching_up.insert(group.to_owned(), BTreeMap::new());
        self.read_group(group).await
    }

    async fn read_group(&mut self, group: &str) -> anyhow::Result<()> {
        let after_group_seq = self.cursors.held(group);
        let request = SyncGroupRequest { group_id: group.to_owned(), after_group_seq, limit: 0 };
        let request = self.send(Payload::SyncGroup(request)).await?;
        self.reading.insert(request, Reading::Group(group.to_owned()));
        Ok(())
    }

    fn done(&self) -> bool {
        self.count.is_some_and(|count| self.printed >= count)
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        self.sync_inbox().await?;
        for room_id in self.rooms.clone() {
            self.send(Payload::JoinRoom(JoinRoomRequest { room_id, replay: true })).await?;
        }
        let mut heartbeat = tokio::time::interval(Duration::from_secs(30));
        heartbeat.tick().await;
        while !self.done() {
            let frame = tokio::select! {
                frame = self.socket.next() => frame,
                _ = heartbeat.tick() => {
                    self.send(Payload::Heartbeat(Heartbeat {})).await?;
                    continue;
                }
                _ = tokio::signal::ctrl_c() => break,
            };
            match frame {
                Some(Ok(tungstenite::Message::Binary(bytes))) => {
                    let frame =
                        ServerFrame::decode(bytes).context("the server sent a frame that is not a ServerFrame")?;
                    self.handle(frame).await?;
                }
                Some(Ok(tungstenite::Message::Close(close))) => return closed(close),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err).context("the session broke"),
                None => bail!("the server closed the connection"),
            }
        }
        let _ = self.socket.close(None).await;
        Ok(())
    }

    async fn handle(&mut self, frame: ServerFrame) -> anyhow::Result<()> {
        match frame.payload {
            Some(Down::Response(response)) => {
                let reading = self.reading.remove(&response.request_id);
                if response.code != 0 {
                    eprintln!("request {} failed: code {}: {}", response.request_id, response.code, response.message);
                    if let Some(Reading::Group(group)) = reading {
                        // The user may no longer read it (left, or the group is gone).
                        self.catching_up.remove(&group);
                        self.cursors.forget(&group)?;
                    }
                    return Ok(());
                }
                match (reading, response.result) {
                    (Some(Reading::Inbox), Some(Answer::Sync(page))) => self.inbox_page(page).await?,
                    (Some(Reading::Group(group)), Some(Answer::Sync(page))) => self.group_page(&group, page).await?,
                    _ => {}
                }
            }
            Some(Down::Message(push)) => {
                if let Some(message) = push.message {
                    if message.seq == 0 && message.group_seq != 0 {
                        self.group_push(message).await?;
                    } else {
                        self.print_message(&message);
                        self.ack().await?;
                    }
                }
            }
            Some(Down::Event(EventPush { event: Some(event) })) => self.print_event(event),
            Some(Down::RoomMessage(message)) => self.print_room_message(&message),
            Some(Down::RoomEvent(event)) => self.print_room_event(&event),
            Some(Down::Kicked(kicked)) => self.print_kicked(&kicked),
            _ => {}
        }
        Ok(())
    }

    /// A page of the inbox; once it is read to the end, the large groups listed with new
    /// messages are read.
    async fn inbox_page(&mut self, page: SyncResponse) -> anyhow::Result<()> {
        for message in &page.messages {
            self.print_message(message);
        }
        if page.has_more {
            if !self.done() {
                self.sync_inbox().await?;
            }
        } else {
            for group in &page.large_groups {
                if group.latest_group_seq > self.cursors.held(&group.group_id) {
                    self.catch_up(&group.group_id).await?;
                }
            }
        }
        self.ack().await
    }

    /// A page of a large group's timeline; at its end, the group's pushes that came
    /// meanwhile (those past what was read: what came before them is not the user's to
    /// read, such as messages from before it joined).
    async fn group_page(&mut self, group: &str, page: SyncResponse) -> anyhow::Result<()> {
        for message in &page.messages {
            self.print_group_message(group, message)?;
        }
        if page.has_more && !page.messages.is_empty() && !self.done() {
            return self.read_group(group).await;
        }
        for message in self.catching_up.remove(group).unwrap_or_default().into_values() {
            self.print_group_message(group, &message)?;
        }
        Ok(())
    }

    /// A large group's push: printed if it is the next one, dropped if printed already,
    /// held until the group is read up to it otherwise.
    async fn group_push(&mut self, message: Message) -> anyhow::Result<()> {
        let group = message.receiver_id.clone();
        let held = self.cursors.held(&group);
        if message.group_seq <= held {
            return Ok(());
        }
        if message.group_seq == held + 1 && !self.catching_up.contains_key(&group) {
            return self.print_group_message(&group, &message);
        }
        self.catch_up(&group).await?;
        self.catching_up.entry(group).or_default().insert(message.group_seq, message);
        Ok(())
    }

    fn print_group_message(&mut self, group: &str, message: &Message) -> anyhow::Result<()> {
        if message.group_seq > self.cursors.held(group) && self.print_message(message) {
            self.cursors.advance(group, message.group_seq)?;
        }
        Ok(())
    }

    async fn ack(&mut self) -> anyhow::Result<()> {
        if self.seq > 0 {
            self.send(Payload::Ack(AckRequest { seq: self.seq })).await?;
        }
        Ok(())
    }

    /// Prints a message unless it was printed already or enough were; whether it did.
    fn print_message(&mut self, message: &Message) -> bool {
        if self.done() || (message.seq != 0 && message.seq <= self.seq) {
            return false;
        }
        self.seq = self.seq.max(message.seq);
        self.printed += 1;
        let kind = ConversationType::try_from(message.conversation_type).unwrap_or_default();
        let from = if message.sender_user_id.is_empty() { "(system)" } else { &message.sender_user_id };
        if self.json {
            let line = json!({
                "type": "message",
                "message_id": message.id.to_string(),
                "seq": message.seq,
                "group_seq": message.group_seq,
                "conversation_type": conversation_name(kind),
                "from": message.sender_user_id,
                "to": message.receiver_id,
                "text": describe(message),
                "sent_at_ms": message.sent_at_ms,
            });
            println!("{line}");
            return true;
        }
        let place = match kind {
            ConversationType::Group if message.group_seq != 0 => {
                format!("group {} #{}", message.receiver_id, message.group_seq)
            }
            ConversationType::Group => format!("group {}", message.receiver_id),
            _ => message.receiver_id.clone(),
        };
        let seq = if message.seq == 0 { String::new() } else { format!("#{} ", message.seq) };
        println!("{seq}{from} -> {place}: {}", describe(message));
        true
    }

    fn print_event(&self, event: Event) {
        let line = match event {
            Event::Read(read) => json!({
                "type": "read", "reader": read.reader_user_id, "conversation_id": read.conversation_id,
                "conversation_type": conversation_name(ConversationType::try_from(read.conversation_type).unwrap_or_default()),
                "seq": read.seq,
            }),
            Event::Presence(presence) => json!({
                "type": "presence", "user_id": presence.user_id, "online": presence.online,
            }),
            Event::Conversation(changed) => json!({
                "type": "conversation", "conversation_id": changed.conversation_id, "version": changed.version,
            }),
            Event::Reaction(reaction) => json!({
                "type": "reaction", "message_id": reaction.message_id, "user_id": reaction.user_id,
                "emoji": reaction.emoji, "added": reaction.added,
            }),
            Event::Typing(typing) => json!({
                "type": "typing", "user_id": typing.user_id, "conversation_id": typing.conversation_id,
            }),
            Event::Custom(custom) => json!({
                "type": "event", "kind": custom.kind, "data": String::from_utf8_lossy(&custom.data),
            }),
        };
        if self.json {
            println!("{line}");
        } else {
            let kind = line["type"].as_str().unwrap_or_default().to_owned();
            let mut fields = line.as_object().cloned().unwrap_or_default();
            fields.remove("type");
            let text: Vec<String> = fields.iter().map(|(key, value)| format!("{key}={value}")).collect();
            println!("({kind}) {}", text.join(" "));
        }
    }

    fn print_room_message(&mut self, message: &RoomMessage) {
        if self.done() {
            return;
        }
        self.printed += 1;
        let from = if message.sender_user_id.is_empty() { "(app)" } else { &message.sender_user_id };
        let text = describe_body(message.body.as_ref());
        if self.json {
            let line = json!({
                "type": "room_message", "room_id": message.room_id, "seq": message.seq, "from": message.sender_user_id,
                "text": text, "sent_at_ms": message.sent_at_ms,
            });
            println!("{line}");
        } else {
            println!("room {} #{} {from}: {text}", message.room_id, message.seq);
        }
    }

    fn print_room_event(&self, event: &RoomEvent) {
        let kind = event.kind().as_str_name().trim_start_matches("ROOM_EVENT_KIND_").to_lowercase();
        if self.json {
            let line = json!({
                "type": "room_event", "room_id": event.room_id, "kind": kind, "reason": event.reason,
                "custom_kind": event.custom_kind, "data": String::from_utf8_lossy(&event.data),
            });
            println!("{line}");
        } else {
            let detail = if event.custom_kind.is_empty() { event.reason.clone() } else { event.custom_kind.clone() };
            println!("(room {kind}) {} {detail}", event.room_id);
        }
    }

    fn print_kicked(&self, kicked: &Kicked) {
        let reason = kicked.reason().as_str_name();
        if self.json {
            println!("{}", json!({"type": "kicked", "reason": reason, "message": kicked.message}));
        } else {
            println!("(kicked) {reason}: {}", kicked.message);
        }
    }
}

fn conversation_name(kind: ConversationType) -> &'static str {
    match kind {
        ConversationType::Direct => "direct",
        ConversationType::Group => "group",
        ConversationType::System => "system",
        ConversationType::Unspecified => "unspecified",
    }
}

/// The server ended the session: a normal close ends the command well, any other says why.
fn closed(close: Option<CloseFrame>) -> anyhow::Result<()> {
    match close {
        Some(frame) if u16::from(frame.code) != 1000 => {
            bail!("the server closed the session: {} {}", u16::from(frame.code), frame.reason)
        }
        _ => Ok(()),
    }
}
