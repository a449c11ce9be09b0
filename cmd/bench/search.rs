//! `gim-bench search`: full-text search of one user's messages in an app of many.
//!
//! Setup: `--users` users and `--messages` direct messages between random pairs, written
//! through gim's own store (the same transactions as sends, search index included, with
//! no gRPC in the way, so that a million messages take a minute, not an hour). A text
//! is `--words` words drawn evenly from a made-up vocabulary of `--vocabulary` words;
//! one in five is Chinese instead (12 characters drawn from 300), and one in ten holds the
//! word `hello`, so that one query class matches a tenth of the app.
//!
//! Then random users search, one call at a time, over gRPC (`Messages.SearchMessages`
//! as the user): a word, two words, a Chinese pair, and `hello`; latency per class,
//! against the same run's floor (the smallest call through the same stack).

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use gim::{
    logic::IdGenerator,
    model::{ConversationType, NewMessage, Recipient},
    proto::{
        common::v1::{MessageBody, TextBody, message_body::Content},
        logic::v1::{
            CreateUserRequest, GetUserRequest, ImportUsersRequest, SearchMessagesRequest,
            messages_client::MessagesClient,
        },
    },
    store::{MessageStore, SqlStore, StoreOptions},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tonic::transport::Channel;

use crate::{report, setup};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: setup::AppArgs,
    /// The database gim serves the app from.
    #[arg(long)]
    store_url: String,
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    #[arg(long, default_value_t = 5_000)]
    vocabulary: usize,
    /// Words of a message.
    #[arg(long, default_value_t = 8)]
    words: usize,
    /// Searches measured per query class.
    #[arg(long, default_value_t = 1_000)]
    queries: usize,
    /// Messages per transaction while setting up.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Transactions in flight while setting up.
    #[arg(long, default_value_t = 4)]
    writers: usize,
}

/// Makes the query text of one search of a class.
type QueryMaker<'a> = dyn Fn(&mut StdRng) -> String + 'a;

fn user(index: usize) -> String {
    format!("search-u{index}")
}

/// A made-up word: the same index always gives the same word.
fn word(index: usize) -> String {
    const SYLLABLES: [&str; 16] =
        ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qu", "di", "fe", "gu", "ho", "ja"];
    let (mut n, mut word) = (index + 16, String::new());
    while n > 0 {
        word.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    word
}

fn chinese(rng: &mut StdRng, chars: usize) -> String {
    (0..chars).map(|_| char::from_u32(0x4E00 + rng.random_range(0..300)).expect("a Han character")).collect()
}

fn text(rng: &mut StdRng, args: &Args) -> String {
    if rng.random_ratio(1, 5) {
        return chinese(rng, 12);
    }
    let mut words: Vec<String> = (0..args.words).map(|_| word(rng.random_range(0..args.vocabulary))).collect();
    if rng.random_ratio(1, 10) {
        words[0] = "hello".into();
    }
    words.join(" ")
}

fn message(rng: &mut StdRng, args: &Args, n: usize) -> NewMessage {
    let from = user(rng.random_range(0..args.users));
    let mut to = user(rng.random_range(0..args.users));
    while to == from {
        to = user(rng.random_range(0..args.users));
    }
    NewMessage {
        id: 0,
        client_msg_id: format!("search-{n}"),
        sender_user_id: from.clone(),
        sender_device_id: String::new(),
        conversation_type: ConversationType::Direct,
        receiver_id: to.clone(),
        body: MessageBody { content: Some(Content::Text(TextBody { text: text(rng, args), ..Default::default() })) },
        meta: Default::default(),
        reply_to: None,
        sent_at_ms: 0,
        recipients: vec![
            Recipient { user_id: to.clone(), conversation_id: from.clone() },
            Recipient { user_id: from, conversation_id: to },
        ],
    }
}

/// Writes the messages, `args.writers` transactions at a time.
async fn fill(args: &Arc<Args>) -> anyhow::Result<()> {
    let options = StoreOptions { max_connections: args.writers as u32 + 1, ..StoreOptions::default() };
    let store = Arc::new(SqlStore::connect(&args.store_url, &options).await.context("opening the store")?);
    let ids = Arc::new(IdGenerator::random());
    let started = Instant::now();
    let per_writer = args.messages.div_ceil(args.writers);
    let mut writers = Vec::new();
    for writer in 0..args.writers {
        let (store, ids, args) = (store.clone(), ids.clone(), args.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(writer as u64);
            let range = writer * per_writer..((writer + 1) * per_writer).min(args.messages);
            let all: Vec<usize> = range.collect();
            for chunk in all.chunks(args.batch) {
                let mut batch: Vec<NewMessage> = chunk.iter().map(|n| message(&mut rng, &args, *n)).collect();
                for message in &mut batch {
                    (message.id, message.sent_at_ms) = ids.next();
                }
                let outcomes = store.append(args.app.app_id, &batch, &mut |_, _| true).await?;
                anyhow::ensure!(outcomes.iter().all(Result::is_ok), "every message stored");
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{} messages stored and indexed in {seconds:.0} s ({:.0} per second)", args.messages, {
        args.messages as f64 / seconds
    });
    store.close().await;
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let args = Arc::new(args);
    let mut business = setup::business(&args.app).await?;
    let ids: Vec<String> = (0..args.users).map(user).collect();
    for chunk in ids.chunks(1000) {
        let users = chunk.iter().map(|id| CreateUserRequest { user_id: id.clone(), ..Default::default() }).collect();
        business.import_users(setup::with_credentials(&args.app, ImportUsersRequest { users })).await?;
    }
    fill(&args).await?;

    let channel = Channel::from_shared(format!("http://{}", args.app.logic))?.connect().await?;
    let mut search = MessagesClient::new(channel);
    let mut rng = StdRng::seed_from_u64(7);
    let mut floor = report::histogram();
    for _ in 0..args.queries {
        let request = GetUserRequest { user_id: user(0) };
        let sent = Instant::now();
        business.get_user(setup::with_credentials(&args.app, request)).await?;
        report::record(&mut floor, sent.elapsed());
    }
    println!("floor, Business.GetUser: {}", report::percentiles(&floor));
    let classes: [(&str, Box<QueryMaker<'_>>); 4] = [
        ("one word", Box::new(|rng: &mut StdRng| word(rng.random_range(0..args.vocabulary)))),
        (
            "two words",
            Box::new(|rng: &mut StdRng| {
                format!("{} {}", word(rng.random_range(0..args.vocabulary)), word(rng.random_range(0..args.vocabulary)))
            }),
        ),
        ("two Chinese characters", Box::new(|rng: &mut StdRng| chinese(rng, 2))),
        ("hello (in a tenth of the app)", Box::new(|_: &mut StdRng| "hello".to_owned())),
    ];
    for (name, query) in classes {
        let mut latencies = report::histogram();
        let mut hits = 0;
        for _ in 0..args.queries {
            let request = SearchMessagesRequest { query: query(&mut rng), limit: 20, ..Default::default() };
            let who = user(rng.random_range(0..args.users));
            let sent = Instant::now();
            let found = search.search_messages(setup::acting(&args.app, &who, request)?).await?.into_inner();
            report::record(&mut latencies, sent.elapsed());
            hits += found.messages.len();
        }
        println!(
            "search, {name}: {}; {:.1} results per search; p99 / floor p99: {:.2}",
            report::percentiles(&latencies),
            hits as f64 / args.queries as f64,
            latencies.value_at_quantile(0.99) as f64 / floor.value_at_quantile(0.99).max(1) as f64
        );
    }
    Ok(())
}
