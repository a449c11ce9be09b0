//! `gim-bench connections`: how many idle, authenticated sessions connect nodes hold, and
//! the memory they take. The sessions are opened by worker processes (a process holds
//! at most ~19,000 sockets here), each from its own loopback source address.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use gim::proto::client::v1::{Heartbeat, client_frame::Payload};
use tokio::sync::Semaphore;

use crate::{server, setup, workers::Workers, ws};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: setup::AppArgs,
    /// Connect nodes' WebSocket addresses; sessions are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    ws: Vec<SocketAddr>,
    /// PIDs of the connect processes, whose memory is measured.
    #[arg(long, value_delimiter = ',', required = true)]
    pids: Vec<u32>,
    #[arg(long, default_value_t = 100_000)]
    sessions: usize,
    /// Worker processes opening the sessions.
    #[arg(long, default_value_t = 6)]
    workers: usize,
    /// Seconds to hold the sessions once all are open (heartbeating every 30 s).
    #[arg(long, default_value_t = 40)]
    hold: u64,
}

/// One worker's share (run by `connections` itself in a child process).
#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    share: crate::workers::Share,
    #[arg(long)]
    hold: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let tokens = setup::users_with_tokens(&args.app, "conn-", args.sessions, 1).await?;
    println!("prepared {} users and devices in {:.1} s", tokens.len(), started.elapsed().as_secs_f64());
    let baseline = server::total_rss(&args.pids)?;

    let opening = Instant::now();
    let worker_args = ["--hold".to_owned(), args.hold.to_string()];
    let mut workers = Workers::start("connections-worker", &args.ws, &worker_args, &tokens, args.workers, 0)?;
    let opened = workers.sum("opened ")?;
    let open_seconds = opening.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let loaded = server::total_rss(&args.pids)?;
    println!(
        "sessions open: {opened} of {} in {open_seconds:.1} s ({} connect processes)",
        args.sessions,
        args.pids.len()
    );
    println!(
        "connect RSS: {} before, {} with the sessions: {:.0} bytes per session in all, {:.0} bytes added per session",
        server::mib(baseline),
        server::mib(loaded),
        loaded as f64 / opened.max(1) as f64,
        loaded.saturating_sub(baseline) as f64 / opened.max(1) as f64,
    );
    tokio::time::sleep(Duration::from_secs(args.hold / 2)).await;
    let held = server::total_rss(&args.pids)?;
    println!(
        "connect RSS halfway through the hold: {} ({:.0} bytes per session)",
        server::mib(held),
        held as f64 / opened.max(1) as f64
    );
    let alive = workers.sum("alive ")?;
    workers.finish()?;
    println!("still open after holding {} s: {alive}", args.hold);
    Ok(())
}

/// Opens the sessions of one token file, reports, holds them, reports again.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let tokens = args.share.tokens()?;
    let opened = Arc::new(AtomicUsize::new(0));
    let alive = Arc::new(AtomicUsize::new(0));
    let (ready, _) = tokio::sync::watch::channel(false);
    let slots = Arc::new(Semaphore::new(128));
    let hold_until = Arc::new(tokio::sync::OnceCell::new());
    let mut tasks = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.into_iter().enumerate() {
        let (addr, source) = args.share.route(index);
        let (opened, alive, slots, hold_until) = (opened.clone(), alive.clone(), slots.clone(), hold_until.clone());
        let mut ready = ready.subscribe();
        tasks.push(tokio::spawn(async move {
            let slot = slots.acquire().await;
            let mut session = match ws::open(addr, &token, Some(source)).await {
                Ok(session) => session,
                Err(err) => {
                    eprintln!("opening a session failed: {err:#}");
                    return;
                }
            };
            // A session counts once the server answers it: authenticated and attached.
            if ws::send(&mut session, 1, Payload::Heartbeat(Heartbeat {})).await.is_err() {
                return;
            }
            if let Err(why) = ws::next(&mut session).await {
                eprintln!("a session ended before its first response: {why}");
                return;
            }
            drop(slot);
            opened.fetch_add(1, Ordering::Relaxed);
            let _ = ready.wait_for(|ready| *ready).await;
            let until: &Instant = hold_until.get().expect("set before ready");
            // Heartbeats spread over the interval, as a crowd of devices would send them.
            let mut next_beat = Instant::now() + Duration::from_millis((index as u64 * 7919) % 30_000);
            let mut request_id = 1;
            while Instant::now() < *until {
                let wake = next_beat.min(*until);
                tokio::select! {
                    frame = ws::next(&mut session) => if let Err(why) = frame {
                        eprintln!("a session ended: {why}");
                        return;
                    },
                    () = tokio::time::sleep_until(wake.into()) => {
                        if Instant::now() >= next_beat {
                            request_id += 1;
                            if ws::send(&mut session, request_id, Payload::Heartbeat(Heartbeat {})).await.is_err() {
                                return;
                            }
                            next_beat += Duration::from_secs(30);
                        }
                    }
                }
            }
            alive.fetch_add(1, Ordering::Relaxed);
        }));
    }
    // Wait until every session opened or failed.
    let mut previous = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = opened.load(Ordering::Relaxed);
        let settled = tasks.iter().filter(|t| t.is_finished()).count() + now;
        if settled >= tasks.len() || (now == previous && slots.available_permits() == 128) {
            break;
        }
        previous = now;
    }
    println!("opened {}", opened.load(Ordering::Relaxed));
    let _ = hold_until.set(Instant::now() + Duration::from_secs(args.hold));
    ready.send_replace(true);
    for task in tasks {
        let _ = task.await;
    }
    println!("alive {}", alive.load(Ordering::Relaxed));
    Ok(())
}
