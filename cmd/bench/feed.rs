//! `gim-bench feed`: a viewer with many friends who have posted a lot reads its moments
//! feed, scrolling from the top a few pages deep; latency per Feed call.
//!
//! Setup: the friends publish first, then become the viewer's friends, so that each
//! friendship puts the friend's posts into the viewer's feed (the server must keep
//! `social.feed_backfill_posts` at least `--posts`). The newest posts get a like and a
//! comment from the viewer and a reply from their author, so that reads also carry
//! likes and comments.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::Context;
use gim::proto::logic::v1::{
    CommentRequest, CreateUserRequest, FeedRequest, FriendPairsRequest, ImportUsersRequest, Media, MediaType,
    PostContent, PostRef, PublishRequest, Visibility, friend_pairs_request::Pair, friends_client::FriendsClient,
    moments_client::MomentsClient,
};
use tokio::sync::{Mutex, Semaphore};
use tonic::transport::Channel;

use crate::{
    report,
    setup::{self, acting},
};

const VIEWER: &str = "feed-viewer";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: setup::AppArgs,
    #[arg(long, default_value_t = 500)]
    friends: usize,
    /// Posts per friend.
    #[arg(long, default_value_t = 200)]
    posts: usize,
    /// Newest posts of the feed that get a like, a comment and a reply.
    #[arg(long, default_value_t = 200)]
    reacted: usize,
    /// Posts per Feed call.
    #[arg(long, default_value_t = 20)]
    page: i32,
    /// Pages read per scroll from the top.
    #[arg(long, default_value_t = 5)]
    depth: usize,
    /// Feed calls measured.
    #[arg(long, default_value_t = 5000)]
    reads: usize,
    /// Viewers scrolling at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Posts the viewer publishes at the end, each to all its friends, one at a time.
    #[arg(long, default_value_t = 50)]
    publishes: usize,
    /// Calls in flight while setting up.
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
}

fn friend(index: usize) -> String {
    format!("feed-f{index}")
}

fn post_content(author: usize, index: usize) -> PostContent {
    let media = (0..index % 4)
        .map(|m| Media {
            url: format!("https://cdn.example.com/{author}/{index}/{m}.jpg"),
            r#type: MediaType::Image as i32,
            size_bytes: 250_000,
            width: 1080,
            height: 1440,
            thumbnail_url: format!("https://cdn.example.com/{author}/{index}/{m}.thumb.jpg"),
        })
        .collect();
    PostContent {
        text: format!("post {index} of friend {author}: a line or two of text, as people write under their photos"),
        media,
        place: None,
    }
}

async fn publish_all(args: &Args, moments: &MomentsClient<Channel>) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(args.setup_concurrency));
    let mut tasks = Vec::with_capacity(args.friends * args.posts);
    // Round by round, so that the friends' posts interleave in time as they would.
    for index in 0..args.posts {
        for author in 0..args.friends {
            let (mut moments, slots, app) = (moments.clone(), slots.clone(), args.app.clone());
            let permit = slots.acquire_owned().await?;
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let request = PublishRequest {
                    content: Some(post_content(author, index)),
                    visibility: Visibility::Friends as i32,
                    audience: Vec::new(),
                    client_post_id: format!("bench-{index}"),
                };
                moments.publish(acting(&app, &friend(author), request)?).await.context("publishing")?;
                anyhow::Ok(())
            }));
        }
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn react(args: &Args, moments: &MomentsClient<Channel>) -> anyhow::Result<()> {
    let mut viewer = moments.clone();
    let page = FeedRequest { before_post_id: 0, limit: args.reacted.min(200) as i32 };
    let newest = viewer.feed(acting(&args.app, VIEWER, page)?).await?.into_inner().posts;
    for post in newest {
        let post_id = post.post_id;
        viewer.like(acting(&args.app, VIEWER, PostRef { post_id })?).await?;
        let comment = CommentRequest { post_id, text: "nice one".into(), reply_to_comment_id: 0 };
        let comment = viewer.add_comment(acting(&args.app, VIEWER, comment)?).await?.into_inner();
        let reply = CommentRequest { post_id, text: "thanks!".into(), reply_to_comment_id: comment.comment_id };
        viewer.add_comment(acting(&args.app, &post.author_id, reply)?).await?;
    }
    Ok(())
}

/// Reads the whole feed once; returns how many posts it holds.
async fn count_feed(args: &Args, moments: &MomentsClient<Channel>) -> anyhow::Result<usize> {
    let mut viewer = moments.clone();
    let (mut before, mut total) = (0, 0);
    loop {
        let page = FeedRequest { before_post_id: before, limit: 200 };
        let page = viewer.feed(acting(&args.app, VIEWER, page)?).await?.into_inner();
        total += page.posts.len();
        if page.next_before == 0 {
            return Ok(total);
        }
        before = page.next_before;
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let channel = Channel::from_shared(format!("http://{}", args.app.logic))?.connect().await?;
    let moments = MomentsClient::new(channel.clone());
    let mut friends = FriendsClient::new(channel);

    let started = Instant::now();
    let mut business = setup::business(&args.app).await?;
    let ids: Vec<String> = std::iter::once(VIEWER.to_owned()).chain((0..args.friends).map(friend)).collect();
    for chunk in ids.chunks(1000) {
        let users = chunk.iter().map(|id| CreateUserRequest { user_id: id.clone(), ..Default::default() }).collect();
        business.import_users(setup::with_credentials(&args.app, ImportUsersRequest { users })).await?;
    }
    publish_all(&args, &moments).await?;
    println!(
        "{} posts by {} users in {:.1} s",
        args.friends * args.posts,
        args.friends,
        started.elapsed().as_secs_f64()
    );
    let befriending = Instant::now();
    for chunk in (0..args.friends).collect::<Vec<_>>().chunks(25) {
        let pairs = chunk.iter().map(|i| Pair { user_id: VIEWER.into(), friend_id: friend(*i) }).collect();
        friends.make_friends(setup::with_credentials(&args.app, FriendPairsRequest { pairs })).await?;
    }
    react(&args, &moments).await?;
    let held = count_feed(&args, &moments).await?;
    println!(
        "{} friends made and {} posts reacted to in {:.1} s; the viewer's feed holds {held} posts",
        args.friends,
        args.reacted,
        befriending.elapsed().as_secs_f64()
    );
    anyhow::ensure!(held == args.friends * args.posts, "the feed should hold every post of every friend");

    let histogram = Arc::new(Mutex::new(report::histogram()));
    let remaining = Arc::new(AtomicUsize::new(args.reads));
    let reading = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (mut viewer, histogram, remaining) = (moments.clone(), histogram.clone(), remaining.clone());
        let (app, page, depth) = (args.app.clone(), args.page, args.depth);
        workers.push(tokio::spawn(async move {
            let mut local = report::histogram();
            'scrolls: loop {
                let mut before = 0;
                for _ in 0..depth {
                    if remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
                        break 'scrolls;
                    }
                    let sent = Instant::now();
                    let request = FeedRequest { before_post_id: before, limit: page };
                    let answer = viewer.feed(acting(&app, VIEWER, request)?).await?.into_inner();
                    report::record(&mut local, sent.elapsed());
                    anyhow::ensure!(answer.posts.len() == page as usize, "a full page");
                    before = answer.next_before;
                }
            }
            histogram.lock().await.add(&local)?;
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let seconds = reading.elapsed().as_secs_f64();
    let histogram = histogram.lock().await;
    println!(
        "{} Feed calls of {} posts, {} pages deep, {} at a time: {:.0} per second",
        args.reads,
        args.page,
        args.depth,
        args.concurrency,
        args.reads as f64 / seconds
    );
    println!("Feed latency: {}", report::percentiles(&histogram));

    let mut publishing = report::histogram();
    let mut viewer = moments.clone();
    for index in 0..args.publishes {
        let request = PublishRequest {
            content: Some(post_content(args.friends, index)),
            visibility: Visibility::Friends as i32,
            audience: Vec::new(),
            client_post_id: format!("viewer-{index}"),
        };
        let sent = Instant::now();
        viewer.publish(acting(&args.app, VIEWER, request)?).await?;
        report::record(&mut publishing, sent.elapsed());
    }
    if args.publishes > 0 {
        println!(
            "Publish to {} friends (a feed row and a notification each): {}",
            args.friends,
            report::percentiles(&publishing)
        );
    }
    Ok(())
}
