//! `gim-bench group`: one large group, many of its members online, messages sent to it
//! at a fixed rate; deliveries per second, time from send to the last device, and the
//! server's CPU time per delivery.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use gim::proto::{
    client::v1::{client_frame::Payload, server_frame},
    common::v1::{MessageBody, TextBody, message_body::Content},
    logic::v1::{
        CreateGroupRequest, CreateUserRequest, GroupSendRequest, ImportUsersRequest, JoinPolicy, MembersRequest,
        SyncRequest, groups_client::GroupsClient,
    },
};
use tokio::sync::Semaphore;

use crate::{report, server, setup, track::Tracker, ws};

const GROUP: &str = "bench-group";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: setup::AppArgs,
    #[command(flatten)]
    servers: server::Deployment,
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    /// Members with a device online.
    #[arg(long, default_value_t = 10_000)]
    online: usize,
    /// Messages per second to the group.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Members per InviteMembers call (at most the server's limits.max_page_size).
    #[arg(long, default_value_t = 200)]
    invite_batch: usize,
}

fn text_body(text: String) -> Option<MessageBody> {
    Some(MessageBody { content: Some(Content::Text(TextBody { text, ..Default::default() })) })
}

async fn build_group(args: &Args) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let tokens: Vec<String> =
        setup::users_with_tokens(&args.app, "gm", args.online, 1).await?.into_iter().map(|mut t| t.remove(0)).collect();
    let mut business = setup::business(&args.app).await?;
    let ids: Vec<String> = (0..args.members).map(|i| format!("gm{i}")).collect();
    for chunk in ids[args.online.min(ids.len())..].chunks(1000) {
        let users = chunk.iter().map(|id| CreateUserRequest { user_id: id.clone(), ..Default::default() }).collect();
        business.import_users(setup::with_credentials(&args.app, ImportUsersRequest { users })).await?;
    }
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", args.app.logic))?.connect().await?;
    let mut groups = GroupsClient::new(channel);
    let first: Vec<String> = ids.iter().skip(1).take(999).cloned().collect();
    let create = CreateGroupRequest {
        group_id: GROUP.into(),
        name: "benchmark".into(),
        join_policy: JoinPolicy::InviteOnly as i32,
        member_ids: first,
        owner_id: ids[0].clone(),
        ..Default::default()
    };
    groups.create_group(setup::with_credentials(&args.app, create)).await.context("creating the group")?;
    for chunk in ids[ids.len().min(1000)..].chunks(args.invite_batch) {
        let invite = MembersRequest { group_id: GROUP.into(), user_ids: chunk.to_vec() };
        groups.invite_members(setup::with_credentials(&args.app, invite)).await.context("inviting members")?;
    }
    println!(
        "group of {} members ({} with a device) ready in {:.1} s",
        args.members,
        args.online,
        started.elapsed().as_secs_f64()
    );
    Ok(tokens)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let tokens = build_group(&args).await?;
    let total = (args.rate * args.seconds) as usize;
    let tracker = Arc::new(Tracker::new(total));

    let opening = Instant::now();
    let slots = Arc::new(Semaphore::new(256));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut sessions = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.into_iter().enumerate() {
        let addr = args.servers.ws[index % args.servers.ws.len()];
        let (tracker, slots, ready) = (tracker.clone(), slots.clone(), ready.clone());
        sessions.push(tokio::spawn(async move {
            let slot = slots.acquire_owned().await;
            let mut session = ws::open(addr, &token, None).await?;
            ws::send(&mut session, 1, Payload::Sync(SyncRequest { after_seq: u64::MAX, limit: 1 })).await?;
            while !matches!(ws::next(&mut session).await, Ok(Some(server_frame::Payload::Response(_)))) {}
            drop(slot);
            ready.fetch_add(1, Ordering::Relaxed);
            let ready = Instant::now();
            let mut beat = tokio::time::interval_at((ready + Duration::from_secs(30)).into(), Duration::from_secs(30));
            loop {
                tokio::select! {
                    frame = ws::next(&mut session) => match frame {
                        Ok(Some(server_frame::Payload::Message(push))) => {
                            let text = push.message.and_then(|m| m.body).and_then(|b| b.content);
                            if let Some(Content::Text(text)) = text
                                && let Ok(index) = text.text.parse::<usize>()
                            {
                                tracker.arrived(index);
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return anyhow::Ok(()),
                    },
                    _ = beat.tick() => {
                        let heartbeat = Payload::Heartbeat(gim::proto::client::v1::Heartbeat {});
                        ws::send(&mut session, 2, heartbeat).await?;
                    }
                }
            }
        }));
    }
    while ready.load(Ordering::Relaxed) < sessions.len() {
        if sessions.iter().any(|s| s.is_finished()) {
            anyhow::bail!("a session ended before the benchmark started");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{} sessions open in {:.1} s", sessions.len(), opening.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", args.app.logic))?.connect().await?;
    let groups = GroupsClient::new(channel);
    let (meter, aux) = (server::Meter::start(&args.servers.pids)?, server::Meter::start(&args.servers.aux_pids)?);
    // Each send goes at its time without waiting for the one before to be stored, as
    // many senders would: the offered rate holds whatever a send's latency.
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    let mut sends = tokio::task::JoinSet::new();
    for index in 0..total {
        ticks.tick().await;
        tracker.sent(index);
        let mut request = setup::with_credentials(
            &args.app,
            GroupSendRequest {
                group_id: GROUP.into(),
                client_msg_id: format!("bench-{index}"),
                reply_to_message_id: 0,
                body: text_body(index.to_string()),
            },
        );
        request.metadata_mut().insert("x-gim-acting-user", "gm0".parse()?);
        let (mut groups, tracker) = (groups.clone(), tracker.clone());
        sends.spawn(async move {
            groups.send_message(request).await.context("sending to the group")?;
            tracker.replied(index);
            anyhow::Ok(())
        });
    }
    while let Some(sent) = sends.join_next().await {
        sent??;
    }
    let send_seconds = meter.elapsed().as_secs_f64();
    let usage = meter.finish(Duration::from_secs(3)).await?;
    let aux = aux.finish(Duration::ZERO).await?.cpu;
    for session in &sessions {
        session.abort();
    }

    let run = report::Fanout {
        server: "gim",
        audience: format!("a group of {} members, {} online", args.members, args.online),
        subscribers: args.online,
        send_seconds,
        usage,
    };
    report::fanout(&tracker, (args.rate * args.warmup_seconds) as usize, &run);
    if !args.servers.aux_pids.is_empty() {
        println!("database and Redis CPU: {aux:.2} s");
    }
    Ok(())
}
