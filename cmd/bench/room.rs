//! `gim-bench room`: one live room with many members spread over connect processes
//! and worker processes (a process holds at most ~19,000 sockets here), messages pushed
//! to it at a fixed rate, and, optionally, a storm of sessions joining and leaving it
//! while they flow. Every member should get every message; the figures are the time from
//! the send to the last member and the server's CPU per delivery.

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use gim::proto::{
    client::v1::{Heartbeat, client_frame::Payload, server_frame},
    common::v1::{MessageBody, TextBody, message_body::Content},
    logic::v1::{GetRoomRequest, JoinRoomRequest, LeaveRoomRequest, PushRoomRequest},
};
use tokio::sync::Semaphore;

use crate::{report, server, setup, workers::Workers, ws};

const ROOM: &str = "bench-room";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: setup::AppArgs,
    #[command(flatten)]
    servers: server::Deployment,
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    /// Worker processes holding the members' sessions.
    #[arg(long, default_value_t = 6)]
    workers: usize,
    /// Messages per second to the room.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Joins and leaves per second while the messages flow (0: none).
    #[arg(long, default_value_t = 0)]
    storm: u64,
    /// Sessions that make the storm, each joining and leaving in turn.
    #[arg(long, default_value_t = 1000)]
    storm_sessions: usize,
}

/// One worker's share (run by `room` itself in a child process).
#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    share: crate::workers::Share,
    /// Messages the driver will send (indexes 0 to this).
    #[arg(long)]
    messages: usize,
}

fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn text_body(text: String) -> Option<MessageBody> {
    Some(MessageBody { content: Some(Content::Text(TextBody { text, ..Default::default() })) })
}

/// A message's text: `index sent-at-unix-µs`, or `end`.
fn parse(text: &str) -> Option<(usize, u64)> {
    let (index, sent) = text.split_once(' ')?;
    Some((index.parse().ok()?, sent.parse().ok()?))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let tokens = setup::users_with_tokens(&args.app, "room-", args.members, 1).await?;
    let storm_tokens =
        setup::users_with_tokens(&args.app, "storm-", args.storm_sessions.min(args.storm as usize), 1).await?;
    println!("prepared {} members in {:.1} s", tokens.len(), started.elapsed().as_secs_f64());
    let total = (args.rate * args.seconds) as usize;

    let opening = Instant::now();
    let worker_args = ["--messages".to_owned(), total.to_string()];
    let mut workers = Workers::start("room-worker", &args.servers.ws, &worker_args, &tokens, args.workers, 1)?;
    let joined = workers.sum("joined ")?;
    anyhow::ensure!(joined == args.members, "{joined} of {} members joined", args.members);
    let mut business = setup::business(&args.app).await?;
    let counted = loop {
        let request = setup::with_credentials(&args.app, GetRoomRequest { room_id: ROOM.into() });
        let room = business.get_room(request).await?.into_inner();
        if room.members >= args.members as u64 || opening.elapsed() > Duration::from_secs(600) {
            break room.members;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "{joined} members in the room in {:.1} s over {} connect processes; GetRoom counts {counted}",
        opening.elapsed().as_secs_f64(),
        args.servers.ws.len()
    );

    let storm = Arc::new(AtomicUsize::new(0));
    let stop_storm = tokio::sync::watch::Sender::new(false);
    let mut storm_tasks = Vec::new();
    if args.storm > 0 {
        // Each storm session joins and leaves in turn, at `storm / sessions` operations a second.
        let per_session = Duration::from_secs_f64(storm_tokens.len() as f64 / args.storm as f64);
        for (index, token) in storm_tokens.into_iter().enumerate() {
            let addr = args.servers.ws[index % args.servers.ws.len()];
            let (storm, mut stop) = (storm.clone(), stop_storm.subscribe());
            storm_tasks.push(tokio::spawn(async move {
                let mut session = ws::open(addr, &token[0], None).await?;
                let offset = per_session.mul_f64(index as f64 / 1000.0 % 1.0);
                let mut ticks = tokio::time::interval_at((Instant::now() + offset).into(), per_session);
                for request_id in 1.. {
                    tokio::select! {
                        _ = stop.wait_for(|stop| *stop) => return anyhow::Ok(()),
                        _ = ticks.tick() => {}
                    }
                    let payload = if request_id % 2 == 1 {
                        Payload::JoinRoom(JoinRoomRequest { room_id: ROOM.into(), replay: false })
                    } else {
                        Payload::LeaveRoom(LeaveRoomRequest { room_id: ROOM.into() })
                    };
                    ws::send(&mut session, request_id, payload).await?;
                    // Until its answer, room messages to a joined storm session pass by.
                    loop {
                        match ws::next(&mut session).await {
                            Ok(Some(server_frame::Payload::Response(response)))
                                if response.request_id == request_id =>
                            {
                                anyhow::ensure!(response.code == 0, "storm: {}", response.message);
                                storm.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Ok(_) => {}
                            Err(why) => anyhow::bail!("a storm session ended: {why}"),
                        }
                    }
                }
                anyhow::Ok(())
            }));
        }
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (meter, aux) = (server::Meter::start(&args.servers.pids)?, server::Meter::start(&args.servers.aux_pids)?);
    let storm_before = storm.load(Ordering::Relaxed);
    let mut sent_at = vec![0u64; total];
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    let mut sends = tokio::task::JoinSet::new();
    for (index, sent) in sent_at.iter_mut().enumerate() {
        ticks.tick().await;
        *sent = unix_micros();
        let push =
            PushRoomRequest { room_id: ROOM.into(), body: text_body(format!("{index} {sent}")), ..Default::default() };
        let (mut business, request) = (business.clone(), setup::with_credentials(&args.app, push));
        sends.spawn(async move { business.push_room(request).await.context("pushing to the room").map(drop) });
    }
    while let Some(sent) = sends.join_next().await {
        sent??;
    }
    let send_seconds = meter.elapsed().as_secs_f64();
    let storm_ops = storm.load(Ordering::Relaxed) - storm_before;
    let usage = meter.finish(Duration::from_secs(3)).await?;
    let aux = aux.finish(Duration::ZERO).await?.cpu;
    stop_storm.send_replace(true);
    for task in storm_tasks {
        task.await??;
    }
    let end = PushRoomRequest { room_id: ROOM.into(), body: text_body("end".into()), ..Default::default() };
    business.push_room(setup::with_credentials(&args.app, end)).await?;

    // Each worker: per message, how many of its members got it and the latest arrival.
    let mut arrivals = vec![0u64; total];
    let mut last = vec![0u64; total];
    for _ in 0..total {
        for line in workers.next_lines()? {
            let mut fields = line.split(' ').map(str::parse::<u64>);
            let (Some(Ok(index)), Some(Ok(count)), Some(Ok(at))) = (fields.next(), fields.next(), fields.next()) else {
                anyhow::bail!("unexpected worker output: {line}");
            };
            arrivals[index as usize] += count;
            last[index as usize] = last[index as usize].max(at);
        }
    }
    workers.finish()?;

    let warmup = (args.rate * args.warmup_seconds) as usize;
    let mut to_last = report::histogram();
    let mut complete = 0;
    for index in warmup..total {
        if arrivals[index] >= args.members as u64 {
            complete += 1;
            report::record(&mut to_last, Duration::from_micros(last[index].saturating_sub(sent_at[index])));
        }
    }
    let deliveries: u64 = arrivals.iter().sum();
    println!(
        "{total} messages in {send_seconds:.1} s to a room of {} members: {deliveries} deliveries, {:.0} per second",
        args.members,
        deliveries as f64 / send_seconds
    );
    println!("on every member: {complete} of {} measured messages", total - warmup);
    println!("send to last member: {}", report::percentiles(&to_last));
    if args.storm > 0 {
        println!("join/leave storm: {storm_ops} joins and leaves, {:.0} per second", storm_ops as f64 / send_seconds);
    }
    println!(
        "gim CPU: {:.2} s over {:.1} s = {:.0} deliveries per CPU-second ({:.2} CPU-seconds per million deliveries)",
        usage.cpu,
        usage.window,
        deliveries as f64 / usage.cpu,
        usage.cpu / (deliveries as f64 / 1e6)
    );
    println!("gim memory: {} resident at the end", server::mib(usage.rss_bytes));
    if !args.servers.aux_pids.is_empty() {
        println!("database and Redis CPU: {aux:.2} s");
    }
    report::own_cpu()
}

/// Opens one token file's sessions, joins them to the room, and records what arrives
/// until the driver's `end`.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let tokens = args.share.tokens()?;
    let counts: Arc<Vec<AtomicU32>> = Arc::new((0..args.messages).map(|_| AtomicU32::new(0)).collect());
    let last: Arc<Vec<AtomicU64>> = Arc::new((0..args.messages).map(|_| AtomicU64::new(0)).collect());
    let joined = Arc::new(AtomicUsize::new(0));
    // When a member first got the driver's `end`: the others get a while longer.
    let ended: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let slots = Arc::new(Semaphore::new(128));
    let mut tasks = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.into_iter().enumerate() {
        let (addr, source) = args.share.route(index);
        let (counts, last, joined, slots, ended) =
            (counts.clone(), last.clone(), joined.clone(), slots.clone(), ended.clone());
        tasks.push(tokio::spawn(async move {
            let slot = slots.acquire().await?;
            let mut session = ws::open(addr, &token, Some(source)).await?;
            let join = Payload::JoinRoom(JoinRoomRequest { room_id: ROOM.into(), replay: false });
            ws::send(&mut session, 1, join).await?;
            match ws::next(&mut session).await {
                Ok(Some(server_frame::Payload::Response(response))) if response.code == 0 => {}
                other => anyhow::bail!("joining the room: {other:?}"),
            }
            drop(slot);
            joined.fetch_add(1, Ordering::Relaxed);
            let mut beat =
                tokio::time::interval_at((Instant::now() + Duration::from_secs(20)).into(), Duration::from_secs(20));
            loop {
                tokio::select! {
                    frame = ws::next(&mut session) => match frame {
                        Ok(Some(server_frame::Payload::RoomMessage(message))) => {
                            let text = message.body.and_then(|b| b.content);
                            let Some(Content::Text(text)) = text else { continue };
                            if text.text == "end" {
                                ended.get_or_init(Instant::now);
                                return anyhow::Ok(());
                            }
                            if let Some((index, _)) = parse(&text.text).filter(|(index, _)| *index < counts.len()) {
                                counts[index].fetch_add(1, Ordering::Relaxed);
                                last[index].fetch_max(unix_micros(), Ordering::Relaxed);
                            }
                        }
                        Ok(_) => {}
                        Err(why) => anyhow::bail!("a member's session ended: {why}"),
                    },
                    _ = beat.tick() => ws::send(&mut session, 2, Payload::Heartbeat(Heartbeat {})).await?,
                }
            }
        }));
    }
    while joined.load(Ordering::Relaxed) + tasks.iter().filter(|t| t.is_finished()).count() < tasks.len() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("joined {}", joined.load(Ordering::Relaxed));
    while !tasks.iter().all(|t| t.is_finished()) && ended.get().is_none_or(|at| at.elapsed() < Duration::from_secs(30))
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut failed = 0;
    for task in tasks {
        if !task.is_finished() {
            task.abort();
            failed += 1;
            continue;
        }
        if let Ok(Err(err)) = task.await {
            failed += 1;
            if failed <= 3 {
                eprintln!("room worker: {err:#}");
            }
        }
    }
    if failed > 0 {
        eprintln!("room worker: {failed} members did not last to the end");
    }
    let mut out = std::io::stdout().lock();
    for index in 0..args.messages {
        writeln!(out, "{index} {} {}", counts[index].load(Ordering::Relaxed), last[index].load(Ordering::Relaxed))?;
    }
    Ok(())
}
