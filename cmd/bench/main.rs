//! Load generator for gim's published benchmarks (docs/benchmarks.md).

mod report;
mod send;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Send(args) => send::run(args).await,
    }
}
