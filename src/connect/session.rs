//! One device's WebSocket session, from authentication to close: upstream frames are
//! answered in order, queued pushes are written in seq order once each, and the
//! session ends on close, heartbeat timeout, overflow, kick or shutdown.
//!
//! Ordering rule: `floor` is the highest inbox seq this device has been sent. Until the
//! device's first sync completes (`has_more = false`) message pushes are held; after it,
//! a push at `floor + 1` is written, one at or below `floor` is a duplicate and dropped,
//! and one beyond `floor + 1` means a push is missing (dropped or still in flight), so
//! the session syncs from `floor` itself and writes what it finds. Messages the device
//! sent itself come back in its send responses: their seqs count as delivered.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::{net::TcpStream, time::Instant};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message as WsMessage};
use tracing::Instrument;

use super::{
    Context, SessionDevice, close,
    fanout::Topic,
    hub::{End, Outbound, RoomsFull, Session},
    order::{Step, Stream},
    rooms::RoomHere,
};
use crate::{
    frames,
    logic::{ANNOUNCEMENTS, DeviceCaller, Error, check_room_id},
    model::now_ms,
    proto::{
        client::v1::{
            ClientFrame, HeartbeatAck, KickReason, Response, client_frame::Payload, response::Result as Reply,
        },
        common::v1::Message,
        connect::v1::KickRequest,
        logic::v1::{
            Caller, JoinRoomRequest, JoinRoomResponse, LeaveRoomResponse, RoomEvent, RoomEventKind, RoomSendRequest,
            RoomSendResponse, SyncGroupRequest, SyncRequest, SyncResponse,
        },
    },
};

/// Rooms only the business puts sessions in.
const PRIVATE_ROOM: &str = "private:";

type Ws = WebSocketStream<TcpStream>;

/// How a session ends.
pub(super) enum Exit {
    /// Send this close frame (after what is queued), then close.
    Close(u16, String),
    /// The device sent a close frame: answer it, as RFC 6455 asks, then close.
    Closed,
    /// The connection broke: nothing more can be sent.
    Gone,
}

/// Ends the WebSocket as `exit` says, within the write timeout.
async fn goodbye(ws: &mut Ws, exit: Exit, ctx: &Context) {
    let within = ctx.limits.write_timeout;
    match exit {
        Exit::Close(code, reason) => {
            tracing::debug!(code, reason, "closing the session");
            let closed = tokio::time::timeout(within, ws.close(Some(close::frame(code, &reason)))).await;
            if closed.is_err() {
                // The device reads nothing, and the close frame is stuck behind what it
                // left unread: reset the connection, or the kernel would keep trying to
                // deliver all of it long after the socket is dropped.
                let _ = ws.get_ref().set_zero_linger();
            }
        }
        // tungstenite queued the reply when the device's close frame came in; a flush
        // sends it (a close would be refused: the device already closed).
        Exit::Closed => {
            let _ = tokio::time::timeout(within, SinkExt::flush(ws)).await;
        }
        Exit::Gone => {}
    }
}

/// The session's queue overflowed.
fn fell_behind() -> Exit {
    Exit::Close(close::SLOW_CONSUMER, "fell too far behind; reconnect and sync".into())
}

/// A seq space of the device: its inbox, or a large group's timeline.
enum Timeline {
    Inbox,
    Group(Arc<str>),
}

impl Timeline {
    fn seq_of(&self, message: &Message) -> u64 {
        match self {
            Self::Inbox => message.seq,
            Self::Group(_) => message.group_seq,
        }
    }
}

/// Runs a session on an upgraded socket. `token` came with the handshake, if at all.
///
/// Opening and closing are boxed: a session spends its life waiting, and while it waits
/// its task should hold only the boxed state and the wait itself.
pub(super) async fn run(ws: Box<Ws>, token: Option<String>, ctx: Arc<Context>) {
    let Some(mut state) = Box::pin(open(ws, token, &ctx)).await else { return };
    let span = tracing::debug_span!(
        "session",
        app = state.session.app,
        user = %state.session.user_id,
        device = %state.session.device_id
    );
    let exit = state.serve(&ctx).instrument(span.clone()).await;
    Box::pin(finish(state, exit, &ctx)).instrument(span).await;
}

/// Authenticates the device, adds the session to the hub and its route to the registry.
async fn open(mut ws: Box<Ws>, token: Option<String>, ctx: &Arc<Context>) -> Option<Box<State>> {
    let device = match authenticate(&mut ws, token, ctx).await {
        Ok(device) => device,
        Err(exit) => {
            goodbye(&mut ws, exit, ctx).await;
            return None;
        }
    };
    let opened_at_ms = now_ms();
    let caller = &device.caller;
    let session = ctx.hub.attach(caller.app, &caller.user_id, &caller.device_id, caller.device_type, opened_at_ms);
    ctx.metrics.sessions.inc();
    match ctx.routes.register(&session.registration(), &ctx.node).await {
        // Not awaited: the other node may be gone, and this session should not wait for it.
        Ok(Some(previous)) => {
            tokio::spawn(kick_elsewhere(ctx.clone(), previous, caller.clone(), opened_at_ms));
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "registering a route failed; pushes wait for the next renewal"),
    }
    ctx.reports.changed(session.app, &session.user_id);
    let read_at = std::time::Instant::now();
    let groups = ctx.link.large_groups(&device).await;
    let state = Box::new(State {
        ws: *ws,
        session,
        device,
        inbox: Stream::default(),
        held: Vec::new(),
        groups: Vec::new(),
        rate: Rate::new(ctx.limits.frames_per_second),
        room_rate: (ctx.limits.room_messages_per_second > 0).then(|| Rate::new(ctx.limits.room_messages_per_second)),
        follow_up: Vec::new(),
    });
    match groups {
        Ok(mut groups) => {
            // Every session reads its app's announcements, listed yet or not.
            if !groups.iter().any(|group| group == ANNOUNCEMENTS) {
                groups.push(ANNOUNCEMENTS.to_owned());
            }
            ctx.hub.subscribe_as_of(&state.session, &groups, read_at);
            Some(state)
        }
        // A session that would miss its large groups' pushes is not opened: the device
        // comes back after a backoff.
        Err(status) => {
            tracing::warn!(error = %status, "reading the user's large groups failed; closing the session");
            let exit = Exit::Close(close::TRY_AGAIN_LATER, "could not read your groups; reconnect in a moment".into());
            finish(state, exit, ctx).await;
            None
        }
    }
}

/// Removes the session and its route, then closes the socket as `exit` says. The route
/// goes first: the close may wait (at most the write timeout) for a device that does not
/// read, and meanwhile nothing should be routed to it nor the user be seen online.
async fn finish(mut state: Box<State>, exit: Exit, ctx: &Context) {
    ctx.hub.detach(&state.session);
    ctx.metrics.sessions.dec();
    let session = &state.session;
    super::release_route(&ctx.hub, ctx.routes.as_ref(), &ctx.node, &session.registration()).await;
    ctx.reports.changed(session.app, &session.user_id);
    goodbye(&mut state.ws, exit, ctx).await;
}

/// The device of the token from the handshake, or from an `Auth` frame that must come
/// first.
async fn authenticate(ws: &mut Ws, token: Option<String>, ctx: &Context) -> Result<SessionDevice, Exit> {
    if let Some(token) = token {
        return check_token(token, ctx).await;
    }
    let first = tokio::time::timeout(ctx.limits.handshake_timeout, ws.next()).await.map_err(|_| {
        Exit::Close(
            close::UNAUTHENTICATED,
            "no Auth frame in time: authenticate in the handshake or first frame".into(),
        )
    })?;
    let frame = match first {
        Some(Ok(message)) => decode(message)?,
        Some(Err(err)) => return Err(read_error(&err, ctx)),
        None => return Err(Exit::Gone),
    };
    // Nothing goes before Auth, not even a ping.
    let Some(ClientFrame { request_id, payload: Some(Payload::Auth(auth)) }) = frame else {
        return Err(Exit::Close(close::UNAUTHENTICATED, "authenticate first: the first frame must be Auth".into()));
    };
    let device = check_token(auth.token, ctx).await?;
    let caller = &device.caller;
    let reply = Reply::Auth(Caller {
        app_id: caller.app,
        user_id: caller.user_id.clone(),
        device_id: caller.device_id.clone(),
        device_type: caller.device_type as i32,
    });
    ws.send(WsMessage::Binary(response(request_id, Ok(reply)))).await.map_err(|_| Exit::Gone)?;
    Ok(device)
}

/// Asks logic whom a token identifies. A refusal is close 4001; logic being unreachable
/// or overloaded is close 1013, so that the device retries instead of asking for a new
/// token. Checks run a bounded number at a time: a reconnect storm waits its turn
/// rather than swamping logic.
async fn check_token(token: String, ctx: &Context) -> Result<SessionDevice, Exit> {
    let expires_at = ctx
        .token_key
        .verify(&token, now_ms() / 1000)
        .map_err(|err| Exit::Close(close::UNAUTHENTICATED, format!("invalid device token: {err}")))?
        .expires_at;
    let _slot = ctx.auth_slots.acquire().await.map_err(|_| Exit::Gone)?;
    match ctx.link.authenticate(&token).await {
        Ok(caller) => Ok(SessionDevice { caller, token, expires_at }),
        Err(err) => Err(close::for_refused_session(&err)),
    }
}

/// The device's older session on another node ends, unless it opened after this one.
async fn kick_elsewhere(ctx: Arc<Context>, node: String, caller: DeviceCaller, opened_at_ms: i64) {
    let Some(peers) = &ctx.peers else { return };
    let request = KickRequest {
        app_id: caller.app,
        user_id: caller.user_id,
        device_id: caller.device_id,
        reason: KickReason::Replaced as i32,
        message: "another session opened for this device".into(),
        opened_before_ms: opened_at_ms,
    };
    if let Err(status) = peers.kick(&node, request).await {
        tracing::debug!(node, error = %status, "could not reach the node of the replaced session");
    }
}

/// A binary frame as a `ClientFrame`; `None` for frames that carry nothing to answer.
fn decode(message: WsMessage) -> Result<Option<ClientFrame>, Exit> {
    match message {
        WsMessage::Binary(bytes) => ClientFrame::decode(bytes)
            .map(Some)
            .map_err(|err| Exit::Close(close::INVALID_PAYLOAD, format!("malformed ClientFrame: {err}"))),
        WsMessage::Text(_) => {
            Err(Exit::Close(close::UNSUPPORTED_DATA, "text frames are not accepted: send binary ClientFrames".into()))
        }
        WsMessage::Close(_) => Err(Exit::Closed),
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => Ok(None),
    }
}

fn read_error(err: &tokio_tungstenite::tungstenite::Error, ctx: &Context) -> Exit {
    use tokio_tungstenite::tungstenite::Error;
    match err {
        Error::Capacity(_) => {
            Exit::Close(close::TOO_BIG, format!("frames are limited to {} bytes", ctx.limits.max_frame_bytes))
        }
        Error::Protocol(err) => Exit::Close(1002, format!("protocol error: {err}")),
        _ => Exit::Gone,
    }
}

fn response(request_id: u64, result: Result<Reply, Error>) -> Bytes {
    frames::response(match result {
        Ok(reply) => Response { request_id, code: 0, message: String::new(), result: Some(reply) },
        Err(err) => Response { request_id, code: err.code() as i32, message: err.public_message(), result: None },
    })
}

/// A token bucket: `rate` frames a second, bursts of twice that.
struct Rate {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn new(rate: u32) -> Self {
        Self { rate: f64::from(rate), tokens: f64::from(rate) * 2.0, at: Instant::now() }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate * 2.0);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct State {
    ws: Ws,
    session: Arc<Session>,
    device: SessionDevice,
    /// Where the device stands in its inbox; unknown until its first full sync.
    inbox: Stream,
    /// Inbox pushes waiting for the first full sync.
    held: Vec<(u64, Bytes)>,
    /// Where the device stands in each large group it got pushes from.
    /// A device reads few large groups: a list beats a hash map (no hashing per frame).
    groups: Vec<(Box<str>, Stream)>,
    rate: Rate,
    /// Room messages this session may send (`rooms.session_messages_per_second`).
    room_rate: Option<Rate>,
    /// Frames to write right after the response being answered (a join's replay).
    follow_up: Vec<Bytes>,
}

impl State {
    async fn serve(&mut self, ctx: &Context) -> Exit {
        let heartbeat = tokio::time::sleep(ctx.limits.heartbeat_timeout);
        tokio::pin!(heartbeat);
        // A timer, not a check of each frame: a device that only pings, or only
        // listens, must not keep getting pushes past its token's expiry.
        let expiry = tokio::time::sleep(self.device.time_left());
        tokio::pin!(expiry);
        loop {
            let step = tokio::select! {
                () = self.session.woken() => Box::pin(self.drain(ctx)).await,
                frame = self.ws.next() => {
                    heartbeat.as_mut().reset(Instant::now() + ctx.limits.heartbeat_timeout);
                    match frame {
                        Some(Ok(message)) => Box::pin(self.upstream(message, ctx)).await,
                        Some(Err(err)) => Err(read_error(&err, ctx)),
                        None => Err(Exit::Gone),
                    }
                }
                () = &mut heartbeat => Err(Exit::Close(close::HEARTBEAT_TIMEOUT, "no frame within the heartbeat timeout".into())),
                () = &mut expiry => Err(Exit::Close(close::UNAUTHENTICATED, "the device token has expired; get a new one".into())),
            };
            if let Err(exit) = step {
                return exit;
            }
        }
    }

    /// Answers one frame from the device.
    async fn upstream(&mut self, message: WsMessage, ctx: &Context) -> Result<(), Exit> {
        let Some(frame) = decode(message)? else { return Ok(()) };
        let request_id = frame.request_id;
        let result = if self.rate.allow() {
            self.call(frame, ctx).await
        } else {
            Err(Error::LimitReached(format!("too many frames: at most {} a second", ctx.limits.frames_per_second)))
        };
        let closing = result.as_ref().err().and_then(close::for_failed_call);
        let mut frames = vec![response(request_id, result)];
        frames.append(&mut self.follow_up);
        self.write(frames, ctx).await?;
        match closing {
            Some(exit) => Err(Exit::Close(exit.0, exit.1)),
            None => Ok(()),
        }
    }

    fn stream(&mut self, timeline: &Timeline) -> &mut Stream {
        match timeline {
            Timeline::Inbox => &mut self.inbox,
            Timeline::Group(group) => self.group(group),
        }
    }

    /// A large group's stream (its floor unknown until the first push or sync). The
    /// group found moves to the front: a flush's pushes mostly come from one group.
    fn group(&mut self, group_id: &str) -> &mut Stream {
        match self.groups.iter().position(|(id, _)| **id == *group_id) {
            Some(index) => self.groups.swap(0, index),
            None => {
                self.groups.push((group_id.into(), Stream::default()));
                let last = self.groups.len() - 1;
                self.groups.swap(0, last);
            }
        }
        &mut self.groups[0].1
    }

    async fn call(&mut self, frame: ClientFrame, ctx: &Context) -> Result<Reply, Error> {
        let device = &self.device;
        match frame.payload {
            None => Err(Error::invalid("empty frame: set one payload")),
            Some(Payload::Auth(_)) => Err(Error::FailedPrecondition("this session is already authenticated".into())),
            Some(Payload::Heartbeat(_)) => Ok(Reply::Heartbeat(HeartbeatAck { server_time_ms: now_ms() })),
            Some(Payload::Send(request)) => {
                let sent = ctx.link.send(device, request).await?;
                self.inbox.sent(sent.seq);
                Ok(Reply::Send(sent))
            }
            Some(Payload::GroupSend(request)) => {
                let group_id = request.group_id.clone();
                let sent = ctx.link.group_send(device, request).await?;
                if sent.seq > 0 {
                    self.inbox.sent(sent.seq);
                }
                if sent.group_seq > 0 {
                    self.group(&group_id).sent(sent.group_seq);
                }
                Ok(Reply::GroupSend(sent))
            }
            Some(Payload::Ack(request)) => ctx.link.ack(device, request).await.map(Reply::Ack),
            Some(Payload::Read(request)) => ctx.link.mark_read(device, request).await.map(Reply::Read),
            Some(Payload::Typing(request)) => ctx.link.typing(device, request).await.map(Reply::Typing),
            Some(Payload::Sync(request)) => {
                let after_seq = request.after_seq;
                let page = ctx.link.sync(device, request).await?;
                // Paging through a backlog: pushes keep waiting until the last page.
                if self.inbox.floor().is_some() || !page.has_more {
                    self.inbox.reached(reached(after_seq, &page, |m| m.seq));
                }
                Ok(Reply::Sync(page))
            }
            Some(Payload::SyncGroup(request)) => {
                let (group_id, after_seq) = (request.group_id.clone(), request.after_group_seq);
                let page = ctx.link.sync_group(device, request).await?;
                self.group(&group_id).reached(reached(after_seq, &page, |m| m.group_seq));
                Ok(Reply::Sync(page))
            }
            Some(Payload::JoinRoom(request)) => self.join_room(request, ctx).await.map(Reply::JoinRoom),
            Some(Payload::LeaveRoom(request)) => {
                check_room_id(&request.room_id)?;
                ctx.hub.leave_room(&self.session, &request.room_id);
                Ok(Reply::LeaveRoom(LeaveRoomResponse {}))
            }
            Some(Payload::RoomSend(request)) => self.room_send(request, ctx).await.map(Reply::RoomSend),
        }
    }

    /// Enters a room the device asked for: answered once this node is listed in the
    /// room, so that every message sent after the answer reaches the session; the
    /// replay, if asked, follows the answer.
    async fn join_room(&mut self, request: JoinRoomRequest, ctx: &Context) -> Result<JoinRoomResponse, Error> {
        let room = request.room_id;
        check_room_id(&room)?;
        if room.starts_with(PRIVATE_ROOM) && !self.session.in_room(&room) {
            return Err(Error::PermissionDenied(format!("only the app puts sessions in {PRIVATE_ROOM} rooms")));
        }
        let (here, newly) = ctx
            .hub
            .join_room(&self.session, &room, ctx.hub.rooms.max_per_session())
            .map_err(|RoomsFull(max)| Error::LimitReached(format!("a session may be in at most {max} rooms")))?;
        // A session already in the room has had its messages: no replay again.
        self.enter(&room, &here, request.replay && newly, ctx).await?;
        let replayed = u32::try_from(self.follow_up.len()).unwrap_or(u32::MAX);
        let on_this_node = ctx.hub.rooms.members(self.session.app, &room);
        let (members, last_seq) = match ctx.routes.room(self.session.app, &room).await {
            Ok(state) => (state.members.max(on_this_node), state.last_seq),
            Err(_) => (on_this_node, 0),
        };
        Ok(JoinRoomResponse { room_id: room, members, replayed, last_seq })
    }

    /// Waits for the room's announcement (leaving the room if it does not come) and
    /// puts the replay, if wanted, in `follow_up`.
    async fn enter(&mut self, room: &str, here: &RoomHere, replay: bool, ctx: &Context) -> Result<(), Error> {
        if !here.announced(ctx.limits.write_timeout).await {
            ctx.hub.leave_room(&self.session, room);
            return Err(Error::Unavailable("rooms are unavailable right now; join again in a moment".into()));
        }
        ctx.metrics.room_joins.inc();
        if replay && ctx.limits.room_replay > 0 {
            match ctx.routes.replay(self.session.app, room).await {
                Ok(kept) => self.follow_up.extend(self.session.room_replay(room, kept)),
                Err(err) => tracing::warn!(error = %err, room, "reading a room's replay failed; joined without it"),
            }
        }
        Ok(())
    }

    async fn room_send(&mut self, request: RoomSendRequest, ctx: &Context) -> Result<RoomSendResponse, Error> {
        check_room_id(&request.room_id)?;
        if !self.session.in_room(&request.room_id) {
            return Err(Error::FailedPrecondition("join the room before sending to it".into()));
        }
        if let Some(rate) = &mut self.room_rate
            && !rate.allow()
        {
            return Err(Error::TooFast {
                what: format!(
                    "room messages from this session: at most {} a second",
                    ctx.limits.room_messages_per_second
                ),
                retry_after: std::time::Duration::from_secs(1),
            });
        }
        ctx.link.room_send(&self.device, request).await
    }

    /// The business put the session in a room: tell the device, with the replay.
    async fn put_in(&mut self, room: &str, here: &RoomHere, out: &mut Vec<Bytes>, ctx: &Context) {
        let event = |kind: RoomEventKind, reason: &str| {
            frames::room_event(RoomEvent {
                room_id: room.to_owned(),
                kind: kind as i32,
                reason: reason.to_owned(),
                ..Default::default()
            })
        };
        match self.enter(room, here, true, ctx).await {
            Ok(()) => {
                out.push(event(RoomEventKind::Joined, ""));
                out.append(&mut self.follow_up);
            }
            Err(err) => out.push(event(RoomEventKind::Left, &err.public_message())),
        }
    }

    /// Writes what is queued for the device, in order.
    async fn drain(&mut self, ctx: &Context) -> Result<(), Exit> {
        let (items, end) = self.session.take();
        let mut out = Vec::with_capacity(items.iter().map(Outbound::pushes).sum());
        // The business's put-ins go first: a room's replay comes before its new messages.
        let (joins, items): (Vec<Outbound>, Vec<Outbound>) =
            items.into_iter().partition(|item| matches!(item, Outbound::RoomJoined { .. }));
        for join in joins {
            if let Outbound::RoomJoined { room, here } = join {
                self.put_in(&room, &here, &mut out, ctx).await;
            }
        }
        if self.inbox.floor().is_some() && !self.held.is_empty() {
            let mut held = std::mem::take(&mut self.held);
            held.sort_by_key(|(seq, _)| *seq);
            for (seq, frame) in held {
                self.order(&Timeline::Inbox, seq, frame, &mut out, ctx).await?;
            }
        }
        for item in items {
            match item {
                Outbound::Event(frame) => out.push(frame),
                Outbound::Message { seq, frame } => self.order(&Timeline::Inbox, seq, frame, &mut out, ctx).await?,
                Outbound::Own { seq } => self.inbox.sent(seq),
                Outbound::Batch { batch, from, share: _share } => match &batch.topic {
                    Topic::Group(group) => {
                        let timeline = Timeline::Group(group.clone());
                        for push in &batch.pushes[from..] {
                            let session = &self.session;
                            if push.skip.as_ref().is_some_and(|skip| skip.is(&session.user_id, &session.device_id)) {
                                self.group(group).sent(push.seq);
                            } else {
                                self.order(&timeline, push.seq, push.frame.clone(), &mut out, ctx).await?;
                            }
                        }
                    }
                    Topic::Room(room) => {
                        out.extend(self.session.room_pushes(room, &batch.pushes[from..]).into_iter().cloned());
                    }
                },
                // Taken out and handled first, above.
                Outbound::RoomJoined { .. } => {}
            }
        }
        if self.held.len() > ctx.limits.outbound_queue {
            return Err(Exit::Close(close::SLOW_CONSUMER, "too many pushes held before the first sync".into()));
        }
        if !out.is_empty() {
            self.write(out, ctx).await?;
        }
        match end {
            None => Ok(()),
            Some(End::SlowConsumer) => Err(fell_behind()),
            Some(End::Shutdown) => Err(Exit::Close(close::GOING_AWAY, "server shutting down; reconnect".into())),
            Some(End::Kicked { reason, message }) => {
                self.write(vec![frames::kicked(reason, &message)], ctx).await?;
                let code = if reason == KickReason::Replaced { close::REPLACED } else { close::KICKED };
                Err(Exit::Close(code, message))
            }
        }
    }

    /// Puts a push in its timeline's order (see the module notes).
    async fn order(
        &mut self,
        timeline: &Timeline,
        seq: u64,
        frame: Bytes,
        out: &mut Vec<Bytes>,
        ctx: &Context,
    ) -> Result<(), Exit> {
        let stream = self.stream(timeline);
        if matches!(timeline, Timeline::Group(_)) && stream.floor().is_none() {
            // A large group first heard of here starts here: what came before is the
            // device's to read with SyncGroup.
            stream.reached(seq.saturating_sub(1));
        }
        match stream.step(seq) {
            Step::Drop => {}
            Step::Write => out.push(frame),
            // Only the inbox waits for the device's first sync: a group's floor is set above.
            Step::Hold => self.held.push((seq, frame)),
            Step::Gap => {
                if !self.fill_gap(timeline, out, ctx).await? {
                    return Ok(());
                }
                let stream = self.stream(timeline);
                if stream.step(seq) != Step::Drop {
                    stream.force(seq);
                    out.push(frame);
                }
            }
        }
        Ok(())
    }

    /// Reads and writes what follows the timeline's floor, page by page; `false` when
    /// the device may no longer read it.
    async fn fill_gap(&mut self, timeline: &Timeline, out: &mut Vec<Bytes>, ctx: &Context) -> Result<bool, Exit> {
        ctx.metrics.session_catch_ups.inc();
        loop {
            let after = self.stream(timeline).floor().unwrap_or(0);
            // Limit 0 asks for logic's default page, which its largest page always allows.
            let page = match timeline {
                Timeline::Inbox => ctx.link.catch_up(&self.device, SyncRequest { after_seq: after, limit: 0 }).await,
                Timeline::Group(group) => {
                    let request = SyncGroupRequest { group_id: group.to_string(), after_group_seq: after, limit: 0 };
                    ctx.link.catch_up_group(&self.device, request).await
                }
            };
            let page = match (page, timeline) {
                (Ok(page), _) => page,
                // No longer a member: this node missed the removal, and its pushes stop
                // here. The stream stays where it was, so that a push already queued
                // finds a gap too and is checked the same way (and one after a rejoin
                // is read and written).
                (Err(Error::PermissionDenied(_)), Timeline::Group(group)) => {
                    ctx.hub.unsubscribe_session(&self.session, group);
                    return Ok(false);
                }
                (Err(err), _) => return Err(catch_up_failed(&err)),
            };
            let session = self.session.clone();
            let stream = self.stream(timeline);
            for message in page.messages {
                if stream.caught_up(timeline.seq_of(&message)) && !session.sent(&message) {
                    out.push(frames::message(message));
                }
            }
            if !page.has_more {
                return Ok(true);
            }
        }
    }

    /// Writes frames with one flush, within the write timeout.
    async fn write(&mut self, frames: Vec<Bytes>, ctx: &Context) -> Result<(), Exit> {
        let ws = &mut self.ws;
        let written = async move {
            for frame in frames {
                ws.feed(WsMessage::Binary(frame)).await?;
            }
            ws.flush().await
        };
        self.session.set_writing(true);
        // A device that does not read holds the write here; pushes that overflow its
        // queue meanwhile end the session at once, not at the write timeout.
        let written = tokio::select! {
            written = tokio::time::timeout(ctx.limits.write_timeout, written) => Some(written),
            () = self.session.overflowed() => None,
        };
        self.session.set_writing(false);
        match written {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(_)) | Err(_)) => Err(Exit::Gone),
            None => Err(fell_behind()),
        }
    }
}

/// The seq a sync page brought the device to: its last message, or where it asked to
/// start (never past the latest).
fn reached(after_seq: u64, page: &SyncResponse, seq_of: impl Fn(&Message) -> u64) -> u64 {
    page.messages.last().map_or(after_seq.min(page.latest_seq), seq_of)
}

fn catch_up_failed(err: &Error) -> Exit {
    let (code, reason) = close::for_failed_catch_up(err);
    Exit::Close(code, reason)
}
