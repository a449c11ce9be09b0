//! `gim-bench conversations`: a user with many conversations opens its list (the first
//! page, as a chat app does at start) and, after a few new messages, syncs what changed;
//! latency per call.
//!
//! Setup: `--peers` users each send the owner one message, so that the owner has that
//! many direct conversations, each with one unread message.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use gim::proto::{
    common::v1::{MessageBody, TextBody, message_body::Content},
    logic::v1::{
        BusinessSendRequest, CreateUserRequest, GetUserRequest, ImportUsersRequest, ListConversationsRequest,
        SyncConversationsRequest, conversations_client::ConversationsClient,
    },
};
use tokio::sync::Semaphore;
use tonic::transport::Channel;

use crate::{
    report,
    setup::{self, acting},
};

const OWNER: &str = "conv-owner";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: setup::AppArgs,
    /// Conversations of the owner (one peer each).
    #[arg(long, default_value_t = 1000)]
    peers: usize,
    /// Conversations per ListConversations call.
    #[arg(long, default_value_t = 20)]
    page: i32,
    /// ListConversations calls measured.
    #[arg(long, default_value_t = 2000)]
    lists: usize,
    /// Rounds of new messages, each followed by one SyncConversations call measured.
    #[arg(long, default_value_t = 300)]
    rounds: usize,
    /// Conversations that change in a round.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    /// Calls in flight while setting up.
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
}

fn peer(index: usize) -> String {
    format!("conv-p{index}")
}

fn body(text: String) -> Option<MessageBody> {
    Some(MessageBody { content: Some(Content::Text(TextBody { text, ..Default::default() })) })
}

/// Each of `peers` sends the owner one message, `concurrency` at a time.
async fn send_round(args: &Args, peers: impl Iterator<Item = usize>, tag: &str) -> anyhow::Result<()> {
    let business = setup::business(&args.app).await?;
    let slots = Arc::new(Semaphore::new(args.setup_concurrency));
    let mut tasks = Vec::new();
    for index in peers {
        let (mut business, app, permit) = (business.clone(), args.app.clone(), slots.clone().acquire_owned().await?);
        let request = BusinessSendRequest {
            sender_user_id: peer(index),
            receiver_user_id: OWNER.into(),
            client_msg_id: format!("{tag}-{index}"),
            reply_to_message_id: 0,
            body: body(format!("message {tag} from peer {index}")),
        };
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            business.send_message(setup::with_credentials(&app, request)).await.context("sending")?;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let channel = Channel::from_shared(format!("http://{}", args.app.logic))?.connect().await?;
    let mut owner = ConversationsClient::new(channel);
    let started = Instant::now();
    let mut business = setup::business(&args.app).await?;
    let ids: Vec<String> = std::iter::once(OWNER.to_owned()).chain((0..args.peers).map(peer)).collect();
    for chunk in ids.chunks(1000) {
        let users = chunk.iter().map(|id| CreateUserRequest { user_id: id.clone(), ..Default::default() }).collect();
        business.import_users(setup::with_credentials(&args.app, ImportUsersRequest { users })).await?;
    }
    send_round(&args, 0..args.peers, "setup").await?;
    let first = ListConversationsRequest { page_token: String::new(), limit: args.page };
    let listed = owner.list_conversations(acting(&args.app, OWNER, first.clone())?).await?.into_inner();
    anyhow::ensure!(listed.total_unread == args.peers as u64, "one unread message per conversation");
    println!("{} conversations made in {:.1} s", args.peers, started.elapsed().as_secs_f64());

    let mut lists = report::histogram();
    let listing = Instant::now();
    for _ in 0..args.lists {
        let sent = Instant::now();
        let page = owner.list_conversations(acting(&args.app, OWNER, first.clone())?).await?.into_inner();
        report::record(&mut lists, sent.elapsed());
        anyhow::ensure!(page.conversations.len() == args.page as usize, "a full page");
    }
    println!(
        "ListConversations, first {} of {}: {:.0} per second; {}",
        args.page,
        args.peers,
        args.lists as f64 / listing.elapsed().as_secs_f64(),
        report::percentiles(&lists)
    );

    // The floor: the smallest call through the same stack (gRPC, credentials, one
    // primary-key read), so that the figures above read as multiples of it.
    let mut floor = report::histogram();
    for _ in 0..args.lists {
        let request = GetUserRequest { user_id: OWNER.into() };
        let sent = Instant::now();
        business.get_user(setup::with_credentials(&args.app, request)).await?;
        report::record(&mut floor, sent.elapsed());
    }
    println!("floor, Business.GetUser: {}", report::percentiles(&floor));
    let ratio = |histogram: &hdrhistogram::Histogram<u64>| {
        histogram.value_at_quantile(0.99) as f64 / floor.value_at_quantile(0.99).max(1) as f64
    };
    println!("ListConversations p99 / floor p99: {:.2}", ratio(&lists));

    let mut syncs = report::histogram();
    let mut version = listed.version;
    for round in 0..args.rounds {
        let start = (round * args.changes) % args.peers;
        send_round(&args, (start..start + args.changes).map(|i| i % args.peers), &format!("r{round}")).await?;
        let request = SyncConversationsRequest { after_version: version, limit: 0 };
        let sent = Instant::now();
        let changes = owner.sync_conversations(acting(&args.app, OWNER, request)?).await?.into_inner();
        report::record(&mut syncs, sent.elapsed());
        anyhow::ensure!(changes.conversations.len() == args.changes, "every changed conversation, and no other");
        version = changes.version;
    }
    println!("SyncConversations after {} changes: {}", args.changes, report::percentiles(&syncs));
    println!("SyncConversations p99 / floor p99: {:.2}", ratio(&syncs));
    Ok(())
}
