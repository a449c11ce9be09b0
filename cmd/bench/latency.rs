//! `gim-bench latency`: end-to-end latency of 1:1 messages at a fixed rate, from the
//! moment device A sends to the moment the last of B's devices has the push.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use gim::proto::{
    client::v1::{client_frame::Payload, server_frame},
    common::v1::{MessageBody, TextBody, message_body::Content},
    logic::v1::{DeviceSendRequest, SyncRequest},
};

use crate::{report, setup, track::Tracker, ws};

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
    let tracker = Arc::new(Tracker::new(total));

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
                    tracker.arrived(index);
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
                    reply_to_message_id: 0,
                    body: Some(MessageBody {
                        content: Some(Content::Text(TextBody { text: index.to_string(), ..Default::default() })),
                    }),
                };
                tracker.sent(index);
                if ws::send(&mut session, request_id, Payload::Send(request)).await.is_err() {
                    return;
                }
                // Read the response so that the socket does not back up.
                while let Ok(frame) = ws::next(&mut session).await {
                    if matches!(frame, Some(server_frame::Payload::Response(_))) {
                        break;
                    }
                }
                tracker.replied(index);
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
    let summary = tracker.summary(warmup, args.devices);
    println!(
        "{} messages in {send_seconds:.1} s ({:.0}/s) from {} senders to {} users with {} devices each",
        total,
        total as f64 / send_seconds,
        args.pairs,
        args.pairs,
        args.devices
    );
    println!("on every device of the receiver: {} of {} measured messages", summary.complete, summary.measured);
    println!("send to last device: {}", report::percentiles(&summary.to_last));
    println!("send to first device: {}", report::percentiles(&summary.to_first));
    println!("send to the sender's response: {}", report::percentiles(&summary.to_reply));
    Ok(())
}
