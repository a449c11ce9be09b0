//! `gim-bench latency`: end-to-end latency of 1:1 messages at a fixed rate, from the
//! moment device A sends to the moment the last of B's devices has the push.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use gim::proto::{
    client::v1::{client_frame::Payload, server_frame},
    common::v1::{MessageBody, TextBody, message_body::Content},
    logic::v1::{DeviceSendRequest, SyncRequest},
};

use crate::{report, setup, ws};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: setup::AppArgs,
    /// WebSocket addresses: senders use the first, receivers the last.
    #[arg(long, value_delimiter = ',', required = true)]
    ws: Vec<SocketAddr>,
    /// Sender/receiver user pairs.
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Devices of each receiving user, all online.
    #[arg(long, default_value_t = 3)]
    devices: usize,
    /// Messages per second, over all senders.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Leading seconds left out of the figures.
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
}

struct Tracker {
    base: Instant,
    /// Per message: when it was sent (ns after `base`), how many devices have it, and
    /// the latest arrival (ns after `base`).
    sent_at: Vec<AtomicU64>,
    /// When the sender had the response (ns after `base`).
    replied_at: Vec<AtomicU64>,
    arrivals: Vec<AtomicU32>,
    first_arrival: Vec<AtomicU64>,
    last_arrival: Vec<AtomicU64>,
}

async fn open_synced(addr: SocketAddr, token: &str) -> anyhow::Result<ws::Ws> {
    let mut session = ws::open(addr, token, None).await?;
    ws::send(&mut session, 1, Payload::Sync(SyncRequest { after_seq: u64::MAX, limit: 1 })).await?;
    loop {
        if let Ok(Some(server_frame::Payload::Response(_))) = ws::next(&mut session).await {
            return Ok(session);
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let senders = setup::users_with_tokens(&args.app, "lat-a", args.pairs, 1).await?;
    let receivers = setup::users_with_tokens(&args.app, "lat-b", args.pairs, args.devices).await?;
    let total = (args.rate * args.seconds) as usize;
    let tracker = Arc::new(Tracker {
        base: Instant::now(),
        sent_at: (0..total).map(|_| AtomicU64::new(0)).collect(),
        replied_at: (0..total).map(|_| AtomicU64::new(0)).collect(),
        arrivals: (0..total).map(|_| AtomicU32::new(0)).collect(),
        first_arrival: (0..total).map(|_| AtomicU64::new(u64::MAX)).collect(),
        last_arrival: (0..total).map(|_| AtomicU64::new(0)).collect(),
    });

    let receiving_addr = *args.ws.last().expect("at least one address");
    let mut receiving = Vec::new();
    for tokens in &receivers {
        for token in tokens {
            let mut session = open_synced(receiving_addr, token).await?;
            let tracker = tracker.clone();
            receiving.push(tokio::spawn(async move {
                while let Ok(frame) = ws::next(&mut session).await {
                    let Some(server_frame::Payload::Message(push)) = frame else { continue };
                    let Some(Content::Text(text)) = push.message.and_then(|m| m.body).and_then(|b| b.content) else {
                        continue;
                    };
                    let Ok(index) = text.text.parse::<usize>() else { continue };
                    let now = tracker.base.elapsed().as_nanos() as u64;
                    tracker.last_arrival[index].fetch_max(now, Ordering::Relaxed);
                    tracker.first_arrival[index].fetch_min(now, Ordering::Relaxed);
                    tracker.arrivals[index].fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }

    let mut sending = Vec::new();
    let interval = Duration::from_secs_f64(args.pairs as f64 / args.rate as f64);
    for (pair, tokens) in senders.iter().enumerate() {
        let mut session = open_synced(args.ws[0], &tokens[0]).await?;
        let tracker = tracker.clone();
        let pairs = args.pairs;
        sending.push(tokio::spawn(async move {
            // Spread the senders' ticks over one interval.
            tokio::time::sleep(interval.mul_f64(pair as f64 / pairs as f64)).await;
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut index = pair;
            let mut request_id = 10;
            while index < total {
                ticks.tick().await;
                request_id += 1;
                let request = DeviceSendRequest {
                    receiver_user_id: format!("lat-b{pair}"),
                    client_msg_id: format!("{index}"),
                    body: Some(MessageBody {
                        content: Some(Content::Text(TextBody { text: index.to_string(), ..Default::default() })),
                    }),
                };
                tracker.sent_at[index].store(tracker.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if ws::send(&mut session, request_id, Payload::Send(request)).await.is_err() {
                    return;
                }
                // Read the response so that the socket does not back up.
                while let Ok(frame) = ws::next(&mut session).await {
                    if matches!(frame, Some(server_frame::Payload::Response(_))) {
                        break;
                    }
                }
                let replied = tracker.base.elapsed().as_nanos() as u64;
                tracker.replied_at[index].store(replied, Ordering::Relaxed);
                index += pairs;
            }
        }));
    }
    let started = Instant::now();
    for task in sending {
        task.await?;
    }
    let send_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for task in &receiving {
        task.abort();
    }

    let warmup = (args.rate * args.warmup_seconds) as usize;
    let mut latencies = report::histogram();
    let mut replies = report::histogram();
    let mut firsts = report::histogram();
    let (mut complete, mut measured) = (0, 0);
    for index in warmup..total {
        measured += 1;
        let sent = tracker.sent_at[index].load(Ordering::Relaxed);
        let replied = tracker.replied_at[index].load(Ordering::Relaxed);
        if replied > 0 {
            report::record(&mut replies, Duration::from_nanos(replied.saturating_sub(sent)));
        }
        if tracker.arrivals[index].load(Ordering::Relaxed) as usize >= args.devices {
            complete += 1;
            let sent = tracker.sent_at[index].load(Ordering::Relaxed);
            let last = tracker.last_arrival[index].load(Ordering::Relaxed);
            report::record(&mut latencies, Duration::from_nanos(last.saturating_sub(sent)));
            let first = tracker.first_arrival[index].load(Ordering::Relaxed);
            report::record(&mut firsts, Duration::from_nanos(first.saturating_sub(sent)));
        }
    }
    println!(
        "{} messages in {send_seconds:.1} s ({:.0}/s) from {} senders to {} users with {} devices each",
        total,
        total as f64 / send_seconds,
        args.pairs,
        args.pairs,
        args.devices
    );
    println!("on every device of the receiver: {complete} of {measured} measured messages");
    println!("send to last device: {}", report::percentiles(&latencies));
    println!("send to first device: {}", report::percentiles(&firsts));
    println!("send to the sender's response: {}", report::percentiles(&replies));
    Ok(())
}
