//! `gim-bench ceiling`: the most sends per second the database allows gim's schema, for
//! `gim-bench send` to be read against. The same senders and receivers write the same
//! rows (the message, an inbox entry and a seq for each side) through gim's own store
//! with gim's group commit (lanes by receiver, up to `batch_max` messages a
//! transaction), but with no gRPC, authentication, rules or pushes: what is left is the
//! database and the SQL. gim's figure over this one is the share of the ceiling it
//! reaches.

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use gim::{
    logic::IdGenerator,
    model::{ConversationType, NewMessage, Recipient},
    proto::common::v1::{MessageBody, TextBody, message_body::Content},
    store::{MessageStore, SqlStore, StoreOptions},
};
use tokio::sync::{mpsc, oneshot};

use crate::{report, send::Load};

#[derive(clap::Args)]
pub struct Args {
    /// The database gim's send benchmark wrote to (its app and users must exist).
    #[arg(long)]
    store_url: String,
    #[arg(long)]
    app_id: u64,
    #[command(flatten)]
    load: Load,
    /// gim's `logic.write_batch_max`.
    #[arg(long, default_value_t = 128)]
    batch_max: usize,
    /// gim's `logic.write_concurrency`.
    #[arg(long, default_value_t = 4)]
    lanes: usize,
}

struct Job {
    message: NewMessage,
    done: oneshot::Sender<bool>,
}

/// One lane: what queued while the last transaction committed goes into the next.
async fn lane(store: Arc<SqlStore>, app: u64, ids: Arc<IdGenerator>, mut jobs: mpsc::Receiver<Job>, max: usize) {
    let mut batch = Vec::with_capacity(max);
    while jobs.recv_many(&mut batch, max).await > 0 {
        let mut messages: Vec<NewMessage> = batch.iter().map(|job: &Job| job.message.clone()).collect();
        for message in &mut messages {
            (message.id, message.sent_at_ms) = ids.next();
        }
        let outcome = store.append(app, &messages, &mut |_, _| true).await;
        let stored = outcome.as_ref().map(|results| results.iter().map(Result::is_ok).collect::<Vec<_>>());
        for (index, job) in batch.drain(..).enumerate() {
            let ok = stored.as_ref().is_ok_and(|stored| stored[index]);
            let _ = job.done.send(ok);
        }
    }
}

fn message(sender: String, receiver: String, client_msg_id: String, text: &str) -> NewMessage {
    NewMessage {
        id: 0,
        client_msg_id,
        sender_user_id: sender.clone(),
        sender_device_id: String::new(),
        conversation_type: ConversationType::Direct,
        receiver_id: receiver.clone(),
        body: MessageBody { content: Some(Content::Text(TextBody { text: text.into(), ..Default::default() })) },
        sent_at_ms: 0,
        meta: Default::default(),
        reply_to: None,
        recipients: vec![
            Recipient { user_id: receiver.clone(), conversation_id: sender.clone() },
            Recipient { user_id: sender, conversation_id: receiver },
        ],
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let args = Arc::new(args);
    let options = StoreOptions { max_connections: (args.lanes as u32) * 2, ..StoreOptions::default() };
    let store = Arc::new(SqlStore::connect(&args.store_url, &options).await.context("opening the store")?);
    let ids = Arc::new(IdGenerator::random());
    let lanes: Vec<mpsc::Sender<Job>> = (0..args.lanes.max(1))
        .map(|_| {
            let (jobs, queue) = mpsc::channel(args.batch_max * 4);
            tokio::spawn(lane(store.clone(), args.app_id, ids.clone(), queue, args.batch_max));
            jobs
        })
        .collect();

    let run_id: u32 = rand::random();
    let measure_from = Instant::now() + Duration::from_secs(args.load.warmup_seconds);
    let end = measure_from + Duration::from_secs(args.load.seconds);
    let text = "x".repeat(args.load.text_chars);
    let mut tasks = Vec::new();
    for sender in 0..args.load.senders {
        let (lanes, text, args) = (lanes.clone(), text.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = report::histogram();
            let (mut sent, mut errors, mut n) = (0u64, 0u64, 0u64);
            while Instant::now() < end {
                let (from, to) = args.load.pair();
                n += 1;
                let message = message(from, to, format!("ceiling-{run_id}-{sender}-{n}"), &text);
                let mut hasher = DefaultHasher::new();
                message.receiver_id.hash(&mut hasher);
                let lane = &lanes[(hasher.finish() % lanes.len() as u64) as usize];
                let began = Instant::now();
                let (done, stored) = oneshot::channel();
                lane.send(Job { message, done }).await.context("a lane stopped")?;
                let ok = stored.await.unwrap_or(false);
                if began >= measure_from && began < end {
                    if ok {
                        sent += 1;
                        report::record(&mut latencies, began.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            anyhow::Ok((latencies, sent, errors))
        }));
    }
    let mut latencies = report::histogram();
    let (mut sent, mut errors) = (0, 0);
    for task in tasks {
        let (histogram, ok, failed) = task.await??;
        latencies.add(histogram)?;
        sent += ok;
        errors += failed;
    }
    let seconds = args.load.seconds as f64;
    println!(
        "ceiling: the store alone, {} senders, {} lanes of up to {} messages",
        args.load.senders, args.lanes, args.batch_max
    );
    println!("ceiling sent {sent} in {seconds:.0} s: {:.0} stored/s, {errors} errors", sent as f64 / seconds);
    println!("ceiling latency {}", report::percentiles(&latencies));
    report::own_cpu()
}
