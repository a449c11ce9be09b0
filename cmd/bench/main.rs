//! Load generator for gim's published benchmarks (docs/benchmarks.md).

mod ceiling;
mod connections;
mod conversations;
mod feed;
mod group;
mod latency;
mod nats;
mod probe;
mod report;
mod room;
mod search;
mod send;
mod server;
mod setup;
mod sink;
mod track;
mod workers;
mod ws;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "gim-bench", about = "Load generator for gim")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Persisted 1:1 sends per second through the business gRPC API.
    Send(send::Args),
    /// `send`'s rows written by gim's store alone: the database's ceiling for `send`.
    Ceiling(ceiling::Args),
    /// Idle authenticated WebSocket sessions and the memory they take on connect nodes.
    Connections(connections::Args),
    /// End-to-end latency of 1:1 messages at a fixed rate, to every device of the receiver.
    Latency(latency::Args),
    /// Fan-out of one large group to its online members.
    Group(group::Args),
    /// `group`'s shape against nats-server, the peer in scripts/bench-vs-nats.sh.
    Nats(nats::Args),
    /// What one small write to a loopback TCP socket costs this machine.
    Probe(probe::Args),
    /// Moments feed reads of a viewer with many friends who post a lot.
    Feed(feed::Args),
    /// A user with many conversations lists them and syncs what changed.
    Conversations(conversations::Args),
    /// Full-text search of one user's messages among a million of an app.
    Search(search::Args),
    /// One live room with many members over several connect processes, with a join/leave storm.
    Room(room::Args),
    /// One worker process of `room` (started by it).
    #[command(hide = true)]
    RoomWorker(room::WorkerArgs),
    /// An HTTP receiver that answers every webhook 204 and counts them.
    Sink(sink::Args),
    /// One worker process of `connections` (started by it).
    #[command(hide = true)]
    ConnectionsWorker(connections::WorkerArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Send(args) => send::run(args).await,
        Command::Ceiling(args) => ceiling::run(args).await,
        Command::Search(args) => search::run(args).await,
        Command::Connections(args) => connections::run(args).await,
        Command::Latency(args) => latency::run(args).await,
        Command::Group(args) => group::run(args).await,
        Command::Feed(args) => feed::run(args).await,
        Command::Conversations(args) => conversations::run(args).await,
        Command::Nats(args) => nats::run(args).await,
        Command::Probe(args) => probe::run(&args),
        Command::Sink(args) => sink::run(args).await,
        Command::ConnectionsWorker(args) => connections::worker(args).await,
        Command::Room(args) => room::run(args).await,
        Command::RoomWorker(args) => room::worker(args).await,
    }
}
