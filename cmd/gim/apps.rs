//! `gim app`: apps (tenants). One rule decides where the work is done: a gim named by
//! `--server`, `GIM_SERVER` or the profile, or else the gim the configuration describes
//! on this machine when it answers (or an operator token is given), is asked over its
//! AppAdmin API; only when none answers, or with `--store`, is the configured store opened
//! directly. A store opened directly is named on stderr, and one that does not exist yet
//! is created only with `--create-store`: a command run in the wrong directory must not
//! make a new, empty gim there.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::bail;
use clap::Subcommand;
use gim::{
    config::{Config, Secret},
    metrics::Metrics,
    model::{AppQuotas, AppSettings, AppSettingsPatch, BeforeSendHook},
    proto::logic::v1::{
        self as pb, CreateAppRequest, GetAppRequest, ListAppsRequest, RotateSecretRequest, UpdateAppRequest,
        app_admin_client::AppAdminClient,
    },
    server::{self, LogicNode},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    client::answer,
    remote::{Profile, Remote, RemoteArgs, save_profile},
    webhooks::{self, WebhookCommand},
};

#[derive(Subcommand)]
pub enum AppCommand {
    /// Create an app and print its id and first secret.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        switches: Switches,
        /// Write the app's id and secret (and the server) to the profile, so that the
        /// next commands need no credentials.
        #[arg(long)]
        save: bool,
    },
    /// List apps.
    List,
    /// Show one app.
    Get { app: u64 },
    /// Rename an app, or change the switches and quotas given (the others stay as they are).
    Update {
        app: u64,
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        changes: Changes,
    },
    /// Issue a new secret; the current ones stay valid for --keep-old-for seconds.
    RotateSecret {
        #[arg(long)]
        app: u64,
        #[arg(long, default_value_t = 0)]
        keep_old_for: u32,
    },
    /// An app's webhook endpoints and their deliveries.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

/// How `gim app` may use the configured store directly.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Work on the configured store directly (on the machine that holds it), even if a gim
    /// answers.
    #[arg(long, global = true)]
    store: bool,
    /// Create the configured store if it does not exist yet (implies --store).
    #[arg(long, global = true)]
    create_store: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Switches {
    /// Let gim keep usernames and passwords for this app.
    #[arg(long)]
    accounts: bool,
    /// One-to-one messages only between friends.
    #[arg(long)]
    friends_only: bool,
    /// Do not tell friends when a user comes online or goes offline.
    #[arg(long)]
    no_presence_events: bool,
    #[command(flatten)]
    hook: HookArgs,
}

/// The before-send hook, as `gim app create` and `gim app update` take it.
#[derive(clap::Args, Debug, Clone)]
pub struct HookArgs {
    /// Ask this URL about each message a device sends before it is stored (docs/webhooks.md);
    /// empty turns the hook off (`gim app update`).
    #[arg(long)]
    before_send_url: Option<String>,
    /// The hook's signing secret (whsec_...); empty: gim makes one, or `gim app update`
    /// keeps the current one.
    #[arg(long, default_value = "")]
    before_send_secret: String,
    /// What the hook moderates: direct, group, room (live rooms), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "direct,group")]
    before_send_in: Vec<String>,
    /// How long to wait for the hook's answer (0: 2000).
    #[arg(long, default_value_t = 0)]
    before_send_timeout_ms: u64,
    /// Let messages through when the hook fails or times out (default: refuse them).
    #[arg(long)]
    before_send_allow_on_failure: bool,
}

impl HookArgs {
    /// The hook given: `None` when no URL was, `Some(None)` for an empty one (off).
    fn hook(&self) -> Option<Option<BeforeSendHook>> {
        let in_conversations = |kind: &str| self.before_send_in.iter().any(|given| given == kind);
        self.before_send_url.clone().map(|url| {
            (!url.is_empty()).then(|| BeforeSendHook {
                url,
                secret: self.before_send_secret.clone(),
                direct: in_conversations("direct"),
                group: in_conversations("group"),
                room: in_conversations("room"),
                timeout_ms: self.before_send_timeout_ms,
                allow_on_failure: self.before_send_allow_on_failure,
            })
        })
    }
}

/// What `gim app update` changes: only what is given.
#[derive(clap::Args, Debug, Clone)]
pub struct Changes {
    /// Let gim keep usernames and passwords for this app (true or false).
    #[arg(long)]
    accounts: Option<bool>,
    /// One-to-one messages only between friends (true or false).
    #[arg(long)]
    friends_only: Option<bool>,
    /// Tell friends when a user comes online or goes offline (true or false).
    #[arg(long)]
    presence_events: Option<bool>,
    #[command(flatten)]
    hook: HookArgs,
    /// The app's business API calls a second, per logic node (0: no limit).
    #[arg(long)]
    business_calls_per_second: Option<u32>,
    /// Messages the app's devices and backend send a second, per logic node (0: no limit).
    #[arg(long)]
    sends_per_second: Option<u32>,
    /// Webhook endpoints the app may have.
    #[arg(long)]
    max_webhook_endpoints: Option<u32>,
    /// Drop the app's own quotas (back to the deployment's) before setting those given.
    #[arg(long)]
    reset_quotas: bool,
}

impl From<Changes> for AppSettingsPatch {
    fn from(changes: Changes) -> Self {
        AppSettingsPatch {
            accounts_enabled: changes.accounts,
            friendship_required: changes.friends_only,
            presence_events_disabled: changes.presence_events.map(|on| !on),
            before_send: changes.hook.hook(),
            reset_quotas: changes.reset_quotas,
            quotas: AppQuotas {
                business_calls_per_second: changes.business_calls_per_second,
                sends_per_second: changes.sends_per_second,
                max_webhook_endpoints: changes.max_webhook_endpoints,
            },
        }
    }
}

impl From<Changes> for (pb::AppSettings, bool) {
    fn from(changes: Changes) -> Self {
        let patch = AppSettingsPatch::from(changes);
        let settings = pb::AppSettings {
            accounts_enabled: patch.accounts_enabled,
            friendship_required: patch.friendship_required,
            presence_events_disabled: patch.presence_events_disabled,
            before_send: patch.before_send.map(|hook| {
                let settings = AppSettings { before_send: hook, ..AppSettings::default() };
                gim::api::convert::settings(settings).before_send.unwrap_or_default()
            }),
            quotas: gim::api::convert::settings(AppSettings { quotas: patch.quotas, ..AppSettings::default() }).quotas,
        };
        (settings, patch.reset_quotas)
    }
}

impl From<Switches> for AppSettings {
    fn from(switches: Switches) -> Self {
        AppSettings {
            accounts_enabled: switches.accounts,
            friendship_required: switches.friends_only,
            presence_events_disabled: switches.no_presence_events,
            before_send: switches.hook.hook().flatten(),
            quotas: AppQuotas::default(),
        }
    }
}

impl From<Switches> for pb::AppSettings {
    fn from(switches: Switches) -> Self {
        gim::api::convert::settings(switches.into())
    }
}

fn print_app(id: u64, name: &str, settings: &AppSettings, quotas: &AppQuotas) {
    let hook = settings
        .before_send
        .as_ref()
        .map_or(String::new(), |hook| format!("\tbefore_send={}", gim::outbound::redacted(&hook.url)));
    let quota = |value: Option<u32>| value.map_or("-".to_owned(), |value| value.to_string());
    println!(
        "{id}\t{name}\taccounts={}\tfriends_only={}\tpresence_events={}\tbusiness_calls_per_second={}\t\
         sends_per_second={}\tmax_webhook_endpoints={}{hook}",
        settings.accounts_enabled,
        settings.friendship_required,
        !settings.presence_events_disabled,
        quota(quotas.business_calls_per_second),
        quota(quotas.sends_per_second),
        quota(quotas.max_webhook_endpoints),
    );
}

fn print_pb_app(app: &pb::App) {
    let quotas = gim::api::convert::app_settings(Some(pb::AppSettings { quotas: app.quotas, ..Default::default() }));
    print_app(app.app_id, &app.name, &gim::api::convert::app_settings(app.settings.clone()), &quotas.quotas);
}

fn created(server: Option<&str>, args: &RemoteArgs, id: u64, secret: String, save: bool) -> anyhow::Result<()> {
    println!("app_id: {id}\nsecret: {secret}");
    if save {
        let profile = Profile {
            server: server.map(str::to_owned),
            app_id: Some(id),
            app_secret: Some(secret),
            ..Profile::default()
        };
        let path = save_profile(&args.profile, profile)?;
        println!("(saved to profile {:?} in {})", args.profile, path.display());
    } else {
        println!("(the secret is shown once; gim keeps only its hash)");
    }
    Ok(())
}

pub async fn app(
    config: Option<&std::path::Path>,
    args: &RemoteArgs,
    store: &StoreArgs,
    command: AppCommand,
) -> anyhow::Result<()> {
    let mut remote = Remote::resolve(args)?;
    let asked_for_store = store.store || store.create_store;
    if remote.server_named && !asked_for_store {
        return over_api(&remote, Some(&remote.server), args, command).await;
    }
    let config = Config::load(config)?;
    let why = if asked_for_store {
        if store.create_store { "--create-store" } else { "--store" }.to_owned()
    } else {
        remote.server = local_server(&config);
        if remote.admin_token.is_some() || answers(&remote.server).await {
            return over_api(&remote, Some(&remote.server), args, command).await;
        }
        format!("no gim answers at {}", remote.server)
    };
    in_store(&config, args, store.create_store, &why, command).await
}

/// A gim answering a health check at `server` takes no longer than this.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the gim of `config` answers on this machine: `logic.listen`, a wildcard address
/// taken as loopback.
fn local_server(config: &Config) -> String {
    let listen = config.logic.listen;
    let ip = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// Whether a gRPC server answers a health check at `server`, whatever its status.
async fn answers(server: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(server.to_owned()) else { return false };
    let check = async {
        let channel = endpoint.connect().await.ok()?;
        HealthClient::new(channel).check(HealthCheckRequest::default()).await.ok()
    };
    matches!(tokio::time::timeout(ANSWER_TIMEOUT, check).await, Ok(Some(_)))
}

/// `saved_server`: the server `--save` writes to the profile (none for a store opened
/// directly).
async fn over_api(
    remote: &Remote,
    saved_server: Option<&str>,
    args: &RemoteArgs,
    command: AppCommand,
) -> anyhow::Result<()> {
    let credentials = remote.admin()?;
    let mut client = AppAdminClient::with_interceptor(remote.channel().await?, credentials);
    match command {
        AppCommand::Create { name, switches, save } => {
            let request = CreateAppRequest { name, settings: Some(switches.into()) };
            let created_app = answer(client.create_app(request).await)?;
            let hook_secret = created_app.app.as_ref().and_then(|app| app.settings.as_ref()?.before_send.as_ref());
            if let Some(secret) = hook_secret.map(|hook| hook.secret.as_str()).filter(|secret| !secret.is_empty()) {
                println!("before_send secret: {secret}");
            }
            let id = created_app.app.map_or(0, |app| app.app_id);
            created(saved_server, args, id, created_app.secret, save)?;
        }
        AppCommand::List => answer(client.list_apps(ListAppsRequest {}).await)?.apps.iter().for_each(print_pb_app),
        AppCommand::Get { app } => print_pb_app(&answer(client.get_app(GetAppRequest { app_id: app }).await)?),
        AppCommand::Update { app, name, changes } => {
            let (settings, reset_quotas) = changes.into();
            let request = UpdateAppRequest { app_id: app, name, settings: Some(settings), reset_quotas };
            print_pb_app(&answer(client.update_app(request).await)?);
        }
        AppCommand::RotateSecret { app, keep_old_for } => {
            let request = RotateSecretRequest { app_id: app, keep_old_for_seconds: keep_old_for };
            println!("secret: {}", answer(client.rotate_secret(request).await)?.secret);
        }
        AppCommand::Webhook(command) => webhooks::over_api(&mut client, command).await?,
    }
    Ok(())
}

/// The store alone, asked through the same AppAdmin API as a running gim: a private logic
/// node is started on it for this command, on loopback with a one-time operator token,
/// with nothing to push to and no webhook delivery. `create`: the operator asked for a
/// new store if there is none.
async fn in_store(
    config: &Config,
    args: &RemoteArgs,
    create: bool,
    why: &str,
    command: AppCommand,
) -> anyhow::Result<()> {
    let name = config.store_display();
    if !create && !server::store_exists(config).await? {
        bail!(
            "there is no gim store at {name} ({why}): start gim or name it with --server, run this where gim's \
             configuration and data_dir are, or pass --create-store to make a new store there"
        );
    }
    eprintln!("store: {name} ({why})");
    let token = one_time_token();
    let mut private = config.clone();
    private.logic.listen = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
    private.admin.token = Secret::new(token.clone());
    private.webhooks.deliver = false;
    let routes = Arc::new(gim::route::MemoryRegistry::new(Duration::from_secs(config.route.ttl_secs)));
    let node = LogicNode::start(&private, Arc::new(gim::delivery::Discard), routes, None, Metrics::new()).await?;
    let remote = Remote { server: format!("http://{}", node.addr()), admin_token: Some(token), ..Remote::default() };
    let done = over_api(&remote, None, args, command).await;
    node.shutdown().await?;
    done
}

/// An operator token that lives as long as one command.
fn one_time_token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
