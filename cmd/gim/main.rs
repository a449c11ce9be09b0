//! The gim server and its operator commands.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gim::{
    config::Config,
    model::AppSettings,
    server::{self, Process, Role},
};

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
    /// Manage apps (tenants) directly in the configured store.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Bring the store's schema up to date and exit.
    Migrate,
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an app and print its id and first secret.
    Create {
        #[arg(long)]
        name: String,
        /// Let gim keep usernames and passwords for this app.
        #[arg(long)]
        accounts: bool,
        /// One-to-one messages only between friends.
        #[arg(long)]
        friends_only: bool,
        /// Do not tell friends when a user comes online or goes offline.
        #[arg(long)]
        no_presence_events: bool,
    },
    /// List apps.
    List,
    /// Issue a new secret; the current ones stay valid for --keep-old-for seconds.
    RotateSecret {
        #[arg(long)]
        app: u64,
        #[arg(long, default_value_t = 0)]
        keep_old_for: u64,
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

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run_cli())
}

async fn run_cli() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => run(config, Role::Serve).await,
        Command::Logic => run(config, Role::Logic).await,
        Command::Connect => run(config, Role::Connect).await,
        Command::App { command } => app(config, command).await,
        Command::Migrate => {
            server::open_store(&config).await?.close().await;
            println!("schema is up to date");
            Ok(())
        }
    }
}

async fn run(config: Config, role: Role) -> anyhow::Result<()> {
    let _telemetry = gim::telemetry::init(&config.telemetry)?;
    let process = Process::start(&config, role).await.with_context(|| format!("starting {role:?}"))?;
    process.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn app(config: Config, command: AppCommand) -> anyhow::Result<()> {
    let store = Arc::new(server::open_store(&config).await?);
    // Operator commands change the store only: nothing to push, nobody online.
    let routes = Arc::new(gim::route::MemoryRegistry::new(Duration::from_secs(config.route.ttl_secs)));
    let metrics = gim::metrics::Metrics::new();
    let logic = server::build_logic(
        &config,
        store.clone(),
        server::id_generator(&config),
        Arc::new(gim::delivery::Discard),
        routes,
        metrics,
        None,
    )?;
    match command {
        AppCommand::Create { name, accounts, friends_only, no_presence_events } => {
            let settings = AppSettings {
                accounts_enabled: accounts,
                friendship_required: friends_only,
                presence_events_disabled: no_presence_events,
            };
            let (app, secret) = logic.create_app(&name, settings).await?;
            println!("app_id: {}\nsecret: {secret}", app.id);
            println!("(the secret is shown once; gim keeps only its hash)");
        }
        AppCommand::List => {
            for app in logic.list_apps().await? {
                let settings = &app.settings;
                println!(
                    "{}\t{}\taccounts={}\tfriends_only={}\tpresence_events={}",
                    app.id,
                    app.name,
                    settings.accounts_enabled,
                    settings.friendship_required,
                    !settings.presence_events_disabled
                );
            }
        }
        AppCommand::RotateSecret { app, keep_old_for } => {
            let secret = logic.rotate_secret(app, Duration::from_secs(keep_old_for)).await?;
            println!("secret: {secret}");
        }
    }
    store.close().await;
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
