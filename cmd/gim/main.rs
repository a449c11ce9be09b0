//! The gim server, its operator commands, and client commands that call a running gim
//! over gRPC (and a device session for `listen`), so that nobody needs grpcurl.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gim::{
    config::Config,
    server::{self, Process, Role},
};

use self::{
    apps::AppCommand,
    client::{DeviceCommand, GroupCommand, SendArgs, TokenCommand, UserCommand},
    listen::ListenArgs,
    remote::{Remote, RemoteArgs},
};

mod apps;
mod client;
mod cursors;
mod listen;
mod remote;
mod rooms;
mod webhooks;

#[derive(Parser)]
#[command(name = "gim", version, about = "A gRPC-first, multi-tenant instant-messaging platform")]
struct Cli {
    /// Configuration file (TOML); `GIM_SECTION__KEY` variables override it.
    #[arg(long, short, global = true, env = "GIM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run gim on one machine: logic and connect in one process.
    Serve,
    /// Run the logic service alone (cluster: MySQL store, Redis routes).
    Logic,
    /// Run the connect service alone (cluster: Redis routes, logic over gRPC).
    Connect,
    /// Bring the store's schema up to date and exit.
    Migrate,
    /// Manage apps (tenants): over the AppAdmin API of the gim named by --server (or
    /// answering on this machine), else in the configured store, which must exist.
    App {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        store: apps::StoreArgs,
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Create and read users (business API).
    User {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Register and list devices (business API).
    Device {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Issue device tokens (business API).
    Token {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Send a text to a user, as the business (in a user's name or the system's) or as a device.
    Send {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: SendArgs,
    },
    /// Open a device session and print what arrives.
    Listen {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: ListenArgs,
    },
    /// Create groups, invite to them and send to them (as their members).
    Group {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Live rooms: push to them, count them, put users in and out, close them.
    Room {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: rooms::RoomCommand,
    },
    /// A system message to some users, or an announcement to every user of the app.
    Broadcast {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: rooms::BroadcastArgs,
    },
    /// Whether the node at --server is ready (gRPC health): a logic node's port, or a
    /// connect node's internal_listen. Exits 1 when it is not.
    Health {
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// glibc gives busy threads arenas of their own, up to 8 per core; a connect node's
/// memory then holds the holes each arena keeps between long-lived sessions. Two arenas
/// (one per core here) halved memory per idle session in `scripts/bench-connect.sh`.
/// `MALLOC_ARENA_MAX` in the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists;
        // mallopt only tunes the allocator and has no other effect.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run_cli()));
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // An expected failure is one line: what failed and why. Backtraces
            // (RUST_BACKTRACE) are for panics, which the default hook still prints.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_cli() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve => run(Config::load(config)?, Role::Serve).await,
        Command::Logic => run(Config::load(config)?, Role::Logic).await,
        Command::Connect => run(Config::load(config)?, Role::Connect).await,
        Command::Migrate => {
            server::open_store(&Config::load(config)?).await?.close().await;
            println!("schema is up to date");
            Ok(())
        }
        Command::App { remote, store, command } => apps::app(config, &remote, &store, command).await,
        Command::User { remote, command } => client::user(&Remote::resolve(&remote)?, command).await,
        Command::Device { remote, command } => client::device(&Remote::resolve(&remote)?, command).await,
        Command::Token { remote, command } => client::token(&Remote::resolve(&remote)?, command).await,
        Command::Send { remote, args } => client::send(&Remote::resolve(&remote)?, args).await,
        Command::Listen { remote, args } => listen::listen(&Remote::resolve(&remote)?, args).await,
        Command::Group { remote, command } => client::group(&Remote::resolve(&remote)?, command).await,
        Command::Room { remote, command } => rooms::room(&Remote::resolve(&remote)?, command).await,
        Command::Broadcast { remote, args } => rooms::broadcast(&Remote::resolve(&remote)?, args).await,
        Command::Health { remote } => client::health(&Remote::resolve(&remote)?).await,
    }
}

async fn run(config: Config, role: Role) -> anyhow::Result<()> {
    let _telemetry = gim::telemetry::init(&config.telemetry)?;
    let process = Process::start(&config, role).await.with_context(|| format!("starting {role:?}"))?;
    process.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
