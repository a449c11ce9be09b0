//! `gim-bench nats`: the shape of `gim-bench group` (one subject, many WebSocket
//! subscribers, messages published at a fixed rate) against nats-server, so that gim's
//! fan-out figures come with a peer's measured on the same machine in the same script.
//! NATS keeps nothing and acknowledges nothing: the publisher writes each PUB at its time
//! whatever the server's backlog (gim's sender waits for each message to be stored),
//! and one PING at the end makes sure the server has read them all.
//!
//! NATS's client protocol is text lines (`CONNECT`, `SUB`, `PUB`, `MSG`, `PING`, `PONG`);
//! over WebSocket the same bytes travel in binary frames, split anywhere.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpSocket, TcpStream},
    sync::Semaphore,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message as WsMessage, protocol::WebSocketConfig},
};

use crate::{report, server, track::Tracker};

const SUBJECT: &str = "bench.group";
const CONNECT: &str = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n";

#[derive(clap::Args)]
pub struct Args {
    /// nats-server's WebSocket address, for the subscribers.
    #[arg(long)]
    ws: SocketAddr,
    /// nats-server's client (TCP) address, for the publisher.
    #[arg(long)]
    addr: SocketAddr,
    /// nats-server's process, whose CPU time is the server's.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    #[arg(long, default_value_t = 5_000)]
    subscribers: usize,
    /// Messages per second to the subject.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
}

type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket session to nats-server and subscribes; returns once the server has
/// answered a PING after the SUB, so the subscription is in place.
async fn subscribe(addr: SocketAddr, sid: usize) -> anyhow::Result<(Ws, Lines)> {
    let stream = TcpSocket::new_v4()?.connect(addr).await.context("connecting")?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(format!("ws://{addr}/"), stream, Some(config))
        .await
        .context("handshake")?;
    let hello = format!("{CONNECT}SUB {SUBJECT} {sid}\r\nPING\r\n");
    ws.send(WsMessage::Binary(hello.into_bytes().into())).await?;
    let mut lines = Lines::default();
    loop {
        match next_op(&mut ws, &mut lines).await? {
            Op::Pong => return Ok((ws, lines)),
            Op::Err(err) => bail!("nats-server refused the subscription: {err}"),
            _ => {}
        }
    }
}

/// What the server said.
enum Op {
    Msg(Vec<u8>),
    Ping,
    Pong,
    Err(String),
    Other,
}

/// Bytes received and not yet parsed.
#[derive(Default)]
struct Lines {
    buffer: Vec<u8>,
}

impl Lines {
    /// The next whole operation in the buffer, if one has arrived.
    fn parse(&mut self) -> Option<Op> {
        let end = self.buffer.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
        if let Some(rest) = line.strip_prefix("MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            let Some(size) = rest.rsplit(' ').next().and_then(|size| size.parse::<usize>().ok()) else {
                self.buffer.drain(..end + 2);
                return Some(Op::Err(format!("unreadable {line}")));
            };
            let start = end + 2;
            if self.buffer.len() < start + size + 2 {
                return None;
            }
            let payload = self.buffer[start..start + size].to_vec();
            self.buffer.drain(..start + size + 2);
            return Some(Op::Msg(payload));
        }
        self.buffer.drain(..end + 2);
        Some(match line.as_str() {
            "PING" => Op::Ping,
            "PONG" => Op::Pong,
            _ if line.starts_with("-ERR") => Op::Err(line),
            _ => Op::Other,
        })
    }
}

async fn next_op(ws: &mut Ws, lines: &mut Lines) -> anyhow::Result<Op> {
    loop {
        if let Some(op) = lines.parse() {
            if matches!(op, Op::Ping) {
                ws.send(WsMessage::Binary(b"PONG\r\n".to_vec().into())).await?;
                continue;
            }
            return Ok(op);
        }
        match ws.next().await.context("connection ended")?? {
            WsMessage::Binary(bytes) => lines.buffer.extend_from_slice(&bytes),
            WsMessage::Text(text) => lines.buffer.extend_from_slice(text.as_bytes()),
            WsMessage::Close(frame) => bail!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// The publisher: a plain TCP client.
struct Publisher {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    line: String,
}

impl Publisher {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.context("connecting the publisher")?;
        stream.set_nodelay(true)?;
        let (reader, mut writer) = stream.into_split();
        writer.write_all(CONNECT.as_bytes()).await?;
        let mut publisher = Self { reader: BufReader::new(reader), writer, line: String::new() };
        publisher.round_trip(b"PING\r\n").await?;
        Ok(publisher)
    }

    async fn publish(&mut self, payload: &str) -> anyhow::Result<()> {
        let command = format!("PUB {SUBJECT} {}\r\n{payload}\r\n", payload.len());
        self.writer.write_all(command.as_bytes()).await?;
        Ok(())
    }

    async fn round_trip(&mut self, command: &[u8]) -> anyhow::Result<()> {
        self.writer.write_all(command).await?;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line).await? == 0 {
                bail!("nats-server closed the publisher's connection");
            }
            match self.line.trim_end() {
                "PONG" => return Ok(()),
                "PING" => self.writer.write_all(b"PONG\r\n").await?,
                line if line.starts_with("-ERR") => bail!("nats-server: {line}"),
                _ => {}
            }
        }
    }
}

/// Counts every message a subscriber gets, until its connection ends.
async fn receive(ws: &mut Ws, lines: &mut Lines, tracker: &Tracker) -> anyhow::Result<()> {
    loop {
        if let Op::Msg(payload) = next_op(ws, lines).await?
            && let Some(index) = std::str::from_utf8(&payload).ok().and_then(|text| text.parse().ok())
        {
            tracker.arrived(index);
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let total = (args.rate * args.seconds) as usize;
    let tracker = Arc::new(Tracker::new(total));
    let opening = Instant::now();
    let slots = Arc::new(Semaphore::new(256));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut sessions = Vec::with_capacity(args.subscribers);
    for sid in 0..args.subscribers {
        let (tracker, slots, ready, addr) = (tracker.clone(), slots.clone(), ready.clone(), args.ws);
        sessions.push(tokio::spawn(async move {
            let slot = slots.acquire_owned().await;
            let (mut ws, mut lines) = subscribe(addr, sid + 1).await?;
            drop(slot);
            ready.fetch_add(1, Ordering::Relaxed);
            receive(&mut ws, &mut lines, &tracker).await
        }));
    }
    while ready.load(Ordering::Relaxed) < sessions.len() {
        if let Some(ended) = sessions.iter_mut().find(|s| s.is_finished()) {
            let err = ended.await?.err().map_or("no error".into(), |err| format!("{err:#}"));
            bail!("a subscriber ended before the benchmark started: {err}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{} subscribers on nats-server in {:.1} s", sessions.len(), opening.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut publisher = Publisher::connect(args.addr).await?;
    let meter = server::Meter::start(&args.pids)?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    for index in 0..total {
        ticks.tick().await;
        tracker.sent(index);
        publisher.publish(&index.to_string()).await?;
        tracker.replied(index);
    }
    let send_seconds = meter.elapsed().as_secs_f64();
    publisher.round_trip(b"PING\r\n").await?;
    let usage = meter.finish(Duration::from_secs(3)).await?;
    for session in &sessions {
        session.abort();
    }
    let run = report::Fanout {
        server: "nats-server",
        audience: format!("{} WebSocket subscribers", args.subscribers),
        subscribers: args.subscribers,
        send_seconds,
        usage,
    };
    report::fanout(&tracker, (args.rate * args.warmup_seconds) as usize, &run);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_split_anywhere_are_parsed_whole() {
        let stream = b"INFO {\"x\":1}\r\nMSG bench.group 7 2\r\n42\r\nPING\r\nMSG bench.group 7 reply 1\r\n9\r\n";
        for split in 1..stream.len() {
            let mut lines = Lines::default();
            let mut payloads = Vec::new();
            let mut pings = 0;
            for chunk in [&stream[..split], &stream[split..]] {
                lines.buffer.extend_from_slice(chunk);
                while let Some(op) = lines.parse() {
                    match op {
                        Op::Msg(payload) => payloads.push(payload),
                        Op::Ping => pings += 1,
                        _ => {}
                    }
                }
            }
            assert_eq!(payloads, vec![b"42".to_vec(), b"9".to_vec()], "split at {split}");
            assert_eq!(pings, 1, "split at {split}");
        }
    }
}
