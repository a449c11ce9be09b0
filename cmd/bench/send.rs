//! `gim-bench send`: concurrent senders calling Business.SendMessage as random users of
//! one app, each waiting for its reply before sending again (closed loop).

use std::time::{Duration, Instant};

use anyhow::Context;
use gim::proto::{
    common::v1::{MessageBody, TextBody, message_body::Content},
    logic::v1::{BusinessSendRequest, CreateUserRequest, ImportUsersRequest, business_client::BusinessClient},
};
use rand::Rng;
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use crate::report;

#[derive(clap::Args)]
pub struct Args {
    /// Address of a logic node.
    #[arg(long, default_value = "127.0.0.1:7070")]
    addr: String,
    #[arg(long)]
    app_id: u64,
    #[arg(long)]
    secret: String,
    /// HTTP/2 connections the senders share.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[command(flatten)]
    load: Load,
}

/// Who sends what, for how long: shared with `ceiling`, so both write the same rows.
#[derive(clap::Args)]
pub struct Load {
    /// Senders sending at once.
    #[arg(long, default_value_t = 64)]
    pub senders: usize,
    /// Users messages go between, `bench-0` on (created if missing).
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    #[arg(long, default_value_t = 3)]
    pub warmup_seconds: u64,
    /// Characters of text per message.
    #[arg(long, default_value_t = 64)]
    pub text_chars: usize,
}

impl Load {
    /// A random sender and a different random receiver.
    pub fn pair(&self) -> (String, String) {
        let mut rng = rand::rng();
        let from = rng.random_range(0..self.users);
        let to = (from + rng.random_range(1..self.users)) % self.users;
        (format!("bench-{from}"), format!("bench-{to}"))
    }
}

fn with_credentials<T>(args: &Args, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("x-gim-app-id", MetadataValue::from(args.app_id));
    metadata.insert("x-gim-app-secret", args.secret.parse().expect("an ASCII secret"));
    request
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel = Channel::from_shared(format!("http://{}", args.addr))?.connect().await.context("connecting")?;
        channels.push(channel);
    }
    let mut admin = BusinessClient::new(channels[0].clone());
    for chunk in (0..args.load.users).collect::<Vec<_>>().chunks(1000) {
        let users =
            chunk.iter().map(|i| CreateUserRequest { user_id: format!("bench-{i}"), ..Default::default() }).collect();
        admin.import_users(with_credentials(&args, ImportUsersRequest { users })).await.context("creating users")?;
    }

    let run_id: u32 = rand::random();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.load.warmup_seconds);
    let end = measure_from + Duration::from_secs(args.load.seconds);
    let text = "x".repeat(args.load.text_chars);
    let args = std::sync::Arc::new(args);
    let mut tasks = Vec::new();
    for sender in 0..args.load.senders {
        let mut client = BusinessClient::new(channels[sender % channels.len()].clone());
        let (args, text) = (args.clone(), text.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = report::histogram();
            let (mut sent, mut errors) = (0u64, 0u64);
            let mut n = 0u64;
            while Instant::now() < end {
                let (from, to) = args.load.pair();
                n += 1;
                let message = BusinessSendRequest {
                    sender_user_id: from,
                    receiver_user_id: to,
                    client_msg_id: format!("{run_id}-{sender}-{n}"),
                    reply_to_message_id: 0,
                    body: Some(MessageBody {
                        content: Some(Content::Text(TextBody { text: text.clone(), ..Default::default() })),
                    }),
                };
                let began = Instant::now();
                let result = client.send_message(with_credentials(&args, message)).await;
                if began >= measure_from && began < end {
                    match result {
                        Ok(_) => {
                            sent += 1;
                            report::record(&mut latencies, began.elapsed());
                        }
                        Err(status) => {
                            errors += 1;
                            if errors <= 3 {
                                eprintln!("send failed: {status}");
                            }
                        }
                    }
                }
            }
            (latencies, sent, errors)
        }));
    }
    let mut latencies = report::histogram();
    let (mut sent, mut errors) = (0, 0);
    for task in tasks {
        let (histogram, ok, failed) = task.await?;
        latencies.add(histogram)?;
        sent += ok;
        errors += failed;
    }
    let seconds = args.load.seconds as f64;
    println!("senders {}  connections {}  users {}", args.load.senders, args.connections, args.load.users);
    println!("sent {sent} in {seconds:.0} s: {:.0} messages/s, {errors} errors", sent as f64 / seconds);
    println!("latency {}", report::percentiles(&latencies));
    report::own_cpu()
}
