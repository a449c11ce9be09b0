//! Configuration: typed sections with defaults, layered from a TOML file and `GIM_*`
//! environment variables, validated in one place before anything starts.

use std::{fmt, net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// Everything a gim process can be told. Every field has a default, so an empty file
/// (or none) runs the embedded single-node setup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded database and generated keys live.
    pub data_dir: PathBuf,
    pub node: NodeConfig,
    pub logic: LogicConfig,
    pub connect: ConnectConfig,
    pub web: WebConfig,
    pub route: RouteConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub admin: AdminConfig,
    pub limits: Limits,
    pub groups: GroupsConfig,
    pub social: SocialConfig,
    pub messages: MessagesConfig,
    pub rates: RatesConfig,
    pub webhooks: WebhooksConfig,
    pub outbound: OutboundConfig,
    pub rooms: RoomsConfig,
    pub telemetry: TelemetryConfig,
}

/// Requests gim makes to URLs apps' settings name (webhook endpoints, before-send hooks).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Ranges beyond the public internet those requests may reach: `loopback`,
    /// `private` (RFC 1918, carrier-grade NAT, IPv6 unique local), `link_local` (where
    /// clouds serve instance metadata), `reserved`, or CIDRs. None by default: a URL an
    /// app gives must not reach into the operator's network. Checked at every connect.
    pub allowed_ranges: Vec<String>,
}

impl OutboundConfig {
    pub fn policy(&self) -> Result<crate::outbound::AddressPolicy, ConfigError> {
        crate::outbound::AddressPolicy::new(&self.allowed_ranges).map_err(ConfigError::Invalid)
    }
}

/// Live rooms: channels sessions join and leave, with no membership table and no history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// A room's last messages kept for new joiners that ask (0: none).
    pub replay: usize,
    /// Rooms one session may be in at once.
    pub max_rooms_per_session: usize,
    /// Messages one session may send to rooms per second (bursts of twice this pass; 0:
    /// no limit beyond `connect.max_frames_per_second`).
    pub session_messages_per_second: u32,
    /// Messages a room takes per second from its devices, across the cluster (0: no
    /// limit). The business's pushes are not counted.
    pub room_messages_per_second: u32,
    /// A room nobody sent to or was in for this long is forgotten: its seq starts over
    /// and its replay is gone.
    pub idle_secs: u64,
    /// How often a connect node reports its rooms' member counts.
    pub report_ms: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            replay: 20,
            max_rooms_per_session: 8,
            session_messages_per_second: 2,
            room_messages_per_second: 200,
            idle_secs: 3600,
            report_ms: 1000,
        }
    }
}

/// Delivery of webhook events to apps' endpoints (endpoints themselves are per app,
/// through the AppAdmin API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Whether this logic node delivers events (any number of nodes may; each event goes
    /// out once per attempt).
    pub deliver: bool,
    /// An attempt that gets no whole answer in this long has failed.
    pub timeout_secs: u64,
    /// A failed event is tried again, with exponential backoff and jitter, for this long
    /// after it was written; then it is dead (listed, and replayable).
    pub retry_for_secs: u64,
    /// The wait after the first failure; each next one doubles, up to `max_retry_interval_secs`.
    pub first_retry_ms: u64,
    pub max_retry_interval_secs: u64,
    /// How often a node looks for events written by other nodes.
    pub poll_ms: u64,
    /// How long a node's claim on a partition lasts without renewal (a node that dies
    /// holds its partitions this long).
    pub lease_secs: u64,
    /// Delivered events are kept this long for the delivery list, dead ones longer.
    pub keep_delivered_secs: u64,
    pub keep_dead_secs: u64,
    /// Endpoints an app may have.
    pub max_endpoints_per_app: usize,
    /// Most users a `message.offline` event names (a large group's members beyond it
    /// are left out).
    pub max_offline_recipients: usize,
    /// The longest an app's before-send hook may make a sender wait.
    pub max_hook_timeout_ms: u64,
    /// The longest a rotated endpoint secret may keep signing beside the new one.
    pub max_secret_overlap_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            deliver: true,
            timeout_secs: 15,
            retry_for_secs: 24 * 3600,
            first_retry_ms: 1000,
            max_retry_interval_secs: 3600,
            poll_ms: 500,
            lease_secs: 60,
            keep_delivered_secs: 3 * 24 * 3600,
            keep_dead_secs: 14 * 24 * 3600,
            max_endpoints_per_app: 10,
            max_offline_recipients: 10_000,
            max_hook_timeout_ms: 10_000,
            max_secret_overlap_secs: 7 * 24 * 3600,
        }
    }
}

/// What users may do to messages after sending them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// How long a sender may recall its message (0: senders cannot; group owners and
    /// admins and the app always can).
    pub recall_window_secs: u64,
    /// How long a sender may edit its text message (0: never).
    pub edit_window_secs: u64,
    /// The emoji a reaction may be.
    pub reactions: Vec<String>,
    /// Different emoji one user may put on one message.
    pub max_reactions_per_user: u32,
    /// Messages in one DeleteMessages call.
    pub max_delete_ids: usize,
    /// Conversations in one ForwardMessage call.
    pub max_forward_targets: usize,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self {
            recall_window_secs: 120,
            edit_window_secs: 24 * 3600,
            reactions: ["👍", "❤️", "😂", "😮", "😢", "🙏", "🎉", "🔥", "👀", "✅"].map(String::from).to_vec(),
            max_reactions_per_user: 3,
            max_delete_ids: 100,
            max_forward_targets: 10,
        }
    }
}

/// How fast each caller may go, per logic node (0: no limit). Past a rate, calls get
/// RESOURCE_EXHAUSTED with the time to wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RatesConfig {
    /// Calls of one device, over gRPC and its WebSocket together (bursts of twice this).
    pub device_calls_per_second: u32,
    /// Calls of all of one user's devices together (bursts of twice this).
    pub user_calls_per_second: u32,
    /// Business API calls of one app (bursts of twice this), unless the app has a quota of
    /// its own (AppAdmin).
    pub app_calls_per_second: u32,
    /// Messages one app's devices and backend send together (bursts of twice this),
    /// unless the app has a quota of its own.
    pub app_sends_per_second: u32,
    /// Failed password checks per username (sign-ins, and wrong old passwords when
    /// changing one); past them, the addresses and devices that failed are refused for
    /// the rest of the minute (others may still try: no one can lock a user out).
    pub failed_sign_ins_per_username_per_minute: u32,
    pub sign_ins_per_address_per_minute: u32,
    pub sign_ups_per_address_per_hour: u32,
    /// Friend requests one user may send.
    pub friend_requests_per_hour: u32,
    /// Posts, likes and comments of one user.
    pub moment_writes_per_minute: u32,
    /// Typing notices of one device (a client sends one every few seconds while typing).
    pub typing_per_minute: u32,
}

impl Default for RatesConfig {
    fn default() -> Self {
        Self {
            device_calls_per_second: 20,
            user_calls_per_second: 50,
            app_calls_per_second: 2000,
            app_sends_per_second: 0,
            failed_sign_ins_per_username_per_minute: 10,
            sign_ins_per_address_per_minute: 60,
            sign_ups_per_address_per_hour: 20,
            friend_requests_per_hour: 60,
            moment_writes_per_minute: 60,
            typing_per_minute: 30,
        }
    }
}

/// The web chat app, served at `/` on `connect.listen`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub enabled: bool,
    /// The app its users sign up and in to (accounts on). 0: `gim serve` uses an app
    /// named `web`, made with accounts on at its first start; `gim connect` needs an id.
    pub app_id: u64,
    /// Where browsers reach gRPC-Web, e.g. `https://api.chat.example`. Empty: the page's
    /// own host at `logic.listen`'s port (`gim serve`); `gim connect` needs a URL.
    pub api_url: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self { enabled: true, app_id: 0, api_url: String::new() }
    }
}

/// Group sizes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// Members a group may have.
    pub max_members: u64,
    /// Past this many members a group keeps one timeline that members read, instead of
    /// writing each message to every member's inbox. One way: it stays large.
    pub large_threshold: u64,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self { max_members: 100_000, large_threshold: 200 }
    }
}

/// Friends, presence events and moments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocialConfig {
    /// A friend request that is not answered in this long lapses.
    pub friend_request_ttl_secs: u64,
    pub max_friends: u64,
    pub max_greeting_chars: usize,
    /// A user's presence must hold this long before friends are told of it, so that a
    /// flapping connection tells them nothing.
    pub presence_debounce_ms: u64,
    pub max_post_chars: usize,
    /// Media references per post.
    pub max_media: usize,
    pub max_comment_chars: usize,
    /// A new friend's feed gets this many of the other's latest posts.
    pub feed_backfill_posts: u32,
    /// Friend requests a user may have waiting for an answer.
    pub max_pending_friend_requests: u64,
    /// After a user turns a request down, its sender waits this long to ask again.
    pub friend_request_cooldown_secs: u64,
}

impl Default for SocialConfig {
    fn default() -> Self {
        Self {
            friend_request_ttl_secs: 7 * 24 * 3600,
            max_friends: 5000,
            max_greeting_chars: 200,
            presence_debounce_ms: 3000,
            max_post_chars: 2000,
            max_media: 9,
            max_comment_chars: 500,
            feed_backfill_posts: 50,
            max_pending_friend_requests: 100,
            friend_request_cooldown_secs: 24 * 3600,
        }
    }
}

/// Identity of this process among the nodes of a deployment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// 0-1023, part of every message id this node generates. Random when unset: ids
    /// stay unique regardless, because the database rejects a collision and the write
    /// is retried with a fresh id.
    pub id: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogicConfig {
    /// gRPC address of the logic service (business, device, account, admin APIs).
    pub listen: SocketAddr,
    /// gRPC address of the internal API connect nodes call (`gim logic` only): keep it
    /// on the cluster's private network.
    pub internal_listen: SocketAddr,
    /// Browser origins that may call over gRPC-Web (`["*"]`: any). Others get HTTP 403.
    pub cors_allowed_origins: Vec<String>,
    /// Most messages committed in one database transaction.
    pub write_batch_max: usize,
    /// Transactions that may be in flight at once (1 is forced for SQLite).
    pub write_concurrency: usize,
    /// Largest gRPC request; a larger one is refused with RESOURCE_EXHAUSTED.
    pub max_request_bytes: usize,
    /// A call that takes longer is cut off with DEADLINE_EXCEEDED.
    pub request_timeout_secs: u64,
    /// Pushes waiting for connect nodes at most (`gim logic` only); past it they are
    /// dropped and counted, and the devices read them when the next push shows the gap.
    pub push_queue: usize,
}

impl Default for LogicConfig {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 7070).into(),
            internal_listen: ([127, 0, 0, 1], 7071).into(),
            cors_allowed_origins: vec!["*".into()],
            write_batch_max: 128,
            write_concurrency: 4,
            // An ImportUsers of 1,000 users fits easily.
            max_request_bytes: 4 * 1024 * 1024,
            request_timeout_secs: 30,
            push_queue: 65_536,
        }
    }
}

/// The connect service: device WebSocket sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectConfig {
    /// WebSocket address; devices open `ws://HOST:PORT/ws`.
    pub listen: SocketAddr,
    /// gRPC address of the internal API logic calls to push (`gim connect` only).
    pub internal_listen: SocketAddr,
    /// How logic reaches this node's internal API (host:port); defaults to
    /// `internal_listen`, which must then not be a wildcard address.
    pub advertise_addr: String,
    /// Logic nodes this node calls (`gim connect` only), e.g. `http://10.0.0.1:7070`.
    pub logic_addrs: Vec<String>,
    /// Their internal APIs (`logic.internal_listen`), in the same order. Empty: the
    /// host of each of `logic_addrs` on port 7071.
    pub logic_internal_addrs: Vec<String>,
    /// Browser origins whose pages may open sessions (`["*"]`: any). Others get HTTP 403.
    pub allowed_origins: Vec<String>,
    /// Sessions this node accepts at most; more are refused with HTTP 503. Each takes a
    /// file descriptor, so the process's open-file limit caps this too.
    pub max_sessions: usize,
    /// Largest WebSocket frame (and message) a device may send.
    pub max_frame_bytes: usize,
    /// Frames queued for one device at most; a device that falls this far behind is
    /// disconnected (it syncs when it comes back).
    pub outbound_queue: usize,
    /// A session with no frame from the device for this long is closed.
    pub heartbeat_timeout_secs: u64,
    /// Time a device has to finish the WebSocket handshake and authenticate.
    pub handshake_timeout_secs: u64,
    /// Token checks (each a call to logic) in flight at once; more handshakes wait.
    pub token_check_concurrency: usize,
    /// Upstream frames a session may send per second (bursts of twice this pass).
    pub max_frames_per_second: u32,
    /// A write to a device that takes longer closes the session; a close frame that takes
    /// longer (the device reads nothing) resets the connection.
    pub write_timeout_secs: u64,
    /// At shutdown, how long sessions get to drain their queues and close.
    pub shutdown_grace_secs: u64,
    /// The longest a large-group push waits to go out with others (0: every push goes
    /// at once). Pushes go at once while the node is idle and wait only while it is
    /// busy (see `group_flush_budget_ms`). Direct and small-group messages never wait.
    pub group_push_max_delay_ms: u64,
    /// A flush of large-group pushes to this node's sessions that takes longer than
    /// this means the node is busy: the next waits so that flushing takes a share
    /// `budget / took` of the time, and carries more pushes per write. Lower saves CPU
    /// under load; higher keeps latency lower under load (0: a push waits only for the
    /// last flush to be taken).
    pub group_flush_budget_ms: u64,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 7080).into(),
            internal_listen: ([127, 0, 0, 1], 7090).into(),
            advertise_addr: String::new(),
            logic_addrs: vec!["http://127.0.0.1:7070".into()],
            logic_internal_addrs: Vec::new(),
            allowed_origins: vec!["*".into()],
            max_sessions: 100_000,
            max_frame_bytes: 64 * 1024,
            outbound_queue: 256,
            heartbeat_timeout_secs: 90,
            handshake_timeout_secs: 10,
            token_check_concurrency: 256,
            max_frames_per_second: 50,
            write_timeout_secs: 10,
            shutdown_grace_secs: 10,
            group_push_max_delay_ms: 250,
            group_flush_budget_ms: 10,
        }
    }
}

/// Where routes (device -> connect node) and presence live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// `redis://HOST:PORT`; required by `gim logic` and `gim connect`. Empty: in memory
    /// (`gim serve` only).
    pub redis_url: Secret,
    /// A route lives this long unless its node renews it (every third of it).
    pub ttl_secs: u64,
    /// Start of every Redis key, so that deployments can share a Redis.
    pub key_prefix: String,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self { redis_url: Secret::default(), ttl_secs: 60, key_prefix: "gim".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `mysql://USER:PASS@HOST:PORT/DB`. Empty: SQLite in `data_dir`.
    pub url: Secret,
    pub max_connections: u32,
    /// SQLite `synchronous` pragma: `full` (default: a commit survives power loss) or
    /// `normal` (faster; the last commits may be lost on power loss, never on a crash).
    pub sqlite_synchronous: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { url: Secret::default(), max_connections: 16, sqlite_synchronous: "full".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Key that signs device tokens (at least 32 bytes). Every node of a cluster needs
    /// the same one. Unset: generated once and kept in `data_dir` (single node only).
    pub token_secret: Secret,
    pub default_token_ttl_secs: u64,
    pub max_token_ttl_secs: u64,
    /// How long a node trusts its cached token generations; a revocation made on
    /// another node takes effect here within this time.
    pub token_generation_cache_secs: u64,
    /// How long a node trusts its cached app secrets and settings.
    pub app_cache_secs: u64,
    /// Password hashes computed at once (argon2id takes 19 MiB and ~50 ms each).
    pub password_hash_concurrency: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_secret: Secret::default(),
            default_token_ttl_secs: 30 * 24 * 3600,
            max_token_ttl_secs: 365 * 24 * 3600,
            token_generation_cache_secs: 10,
            app_cache_secs: 10,
            password_hash_concurrency: 2,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token of the AppAdmin gRPC API; the API refuses every call when unset.
    pub token: Secret,
}

/// Limits on what callers may send; each is enforced in one place.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Encoded size of a message body.
    pub max_message_bytes: usize,
    /// Characters of a text body.
    pub max_text_chars: usize,
    pub max_client_msg_id_len: usize,
    /// Bytes of a user's `extra` JSON.
    pub max_extra_bytes: usize,
    pub max_url_len: usize,
    pub max_name_chars: usize,
    /// Largest `limit` a paged call accepts.
    pub max_page_size: u32,
    /// `limit` used when a call leaves it 0.
    pub default_page_size: u32,
    /// Users in one ImportUsers call.
    pub max_import_users: usize,
    /// Users one `Business.Broadcast` may name.
    pub max_broadcast_users: usize,
    /// Devices one user may register.
    pub max_devices_per_user: usize,
    /// Characters of a group's introduction.
    pub max_group_introduction_chars: usize,
    /// Characters of the message that comes with a request to join a group.
    pub max_join_request_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 32 * 1024,
            max_text_chars: 5000,
            max_client_msg_id_len: 64,
            max_extra_bytes: 4096,
            max_url_len: 2048,
            max_name_chars: 64,
            max_page_size: 200,
            default_page_size: 50,
            max_import_users: 1000,
            max_broadcast_users: 1000,
            max_devices_per_user: 20,
            max_group_introduction_chars: 1000,
            max_join_request_chars: 500,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info,gim=debug`. `RUST_LOG` overrides it.
    pub log_filter: String,
    /// OTLP/gRPC endpoint (e.g. `http://127.0.0.1:4317`) to export trace spans to.
    pub otlp_endpoint: Option<String>,
    /// Address of the Prometheus `/metrics` endpoint; none when unset.
    pub metrics_listen: Option<SocketAddr>,
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            otlp_endpoint: None,
            metrics_listen: None,
            service_name: "gim".into(),
        }
    }
}

/// A string that never shows up in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"<redacted>\"" })
    }
}

/// Why the configuration cannot be used; the message names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `GIM_*` variables of the client commands (`gim user`, `gim listen`, ...), which
/// name a server to call, not a setting of this one.
const CLIENT_VARIABLES: &[&str] = &["server", "ws", "app_id", "app_secret", "admin_token", "profile", "profiles"];

impl Config {
    /// Defaults, then `file` (when given), then `GIM_SECTION__KEY` environment
    /// variables (`GIM_STORE__URL`, `GIM_LIMITS__MAX_MESSAGE_BYTES`, ...). Variables
    /// named `GIM_TEST_*` belong to the test suite and are not read here.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!("configuration file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        let env = Env::prefixed("GIM_").split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            key != "config" && !key.starts_with("test_") && !CLIENT_VARIABLES.contains(&key.as_str())
        });
        let config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges, combinations, required secrets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(id) = self.node.id
            && id > 1023
        {
            return invalid(format!("node.id must be 0-1023, got {id}"));
        }
        self.validate_store()?;
        self.validate_logic()?;
        self.validate_auth()?;
        self.validate_connect()?;
        let api_url = &self.web.api_url;
        if !(api_url.is_empty() || api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return invalid(format!("web.api_url must be an http:// or https:// URL, got {api_url:?}"));
        }
        if self.route.key_prefix.is_empty() || self.route.key_prefix.contains(char::is_whitespace) {
            return invalid("route.key_prefix must be non-empty and without spaces");
        }
        if self.route.ttl_secs < 3 {
            return invalid("route.ttl_secs must be at least 3");
        }
        if self.groups.max_members < 2 || self.groups.large_threshold == 0 {
            return invalid("groups.max_members must be at least 2 and groups.large_threshold at least 1");
        }
        self.validate_social()?;
        self.validate_messages()?;
        self.validate_webhooks()?;
        self.outbound.policy()?;
        self.validate_rooms()?;
        self.validate_limits()
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let url = self.store.url.expose();
        if !url.is_empty() && !url.starts_with("sqlite:") && !url.starts_with("mysql:") && !url.starts_with("mariadb:")
        {
            return invalid("store.url must start with sqlite:// or mysql://");
        }
        if self.store.max_connections == 0 {
            return invalid("store.max_connections must be at least 1");
        }
        if !matches!(self.store.sqlite_synchronous.as_str(), "full" | "normal" | "extra") {
            return invalid("store.sqlite_synchronous must be full, normal or extra");
        }
        Ok(())
    }

    fn validate_logic(&self) -> Result<(), ConfigError> {
        let logic = &self.logic;
        for (key, origins) in [
            ("logic.cors_allowed_origins", &logic.cors_allowed_origins),
            ("connect.allowed_origins", &self.connect.allowed_origins),
        ] {
            for origin in origins.iter().filter(|origin| *origin != "*") {
                if let Err(err) = crate::origins::normalize(origin) {
                    return invalid(format!("{key}: {err}"));
                }
            }
        }
        if logic.write_batch_max == 0 || logic.write_batch_max > 1000 {
            return invalid("logic.write_batch_max must be 1-1000");
        }
        if !(64 * 1024..=64 * 1024 * 1024).contains(&logic.max_request_bytes) {
            return invalid("logic.max_request_bytes must be between 64 KiB and 64 MiB");
        }
        at_least_one(
            "logic",
            &[
                ("write_concurrency", logic.write_concurrency as u64),
                ("request_timeout_secs", logic.request_timeout_secs),
                ("push_queue", logic.push_queue as u64),
            ],
        )
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        if !auth.token_secret.is_empty() && auth.token_secret.expose().len() < 32 {
            return invalid("auth.token_secret must be at least 32 bytes");
        }
        if auth.default_token_ttl_secs == 0 || auth.default_token_ttl_secs > auth.max_token_ttl_secs {
            return invalid("auth.default_token_ttl_secs must be 1..=auth.max_token_ttl_secs");
        }
        at_least_one("auth", &[("password_hash_concurrency", auth.password_hash_concurrency as u64)])
    }

    fn validate_connect(&self) -> Result<(), ConfigError> {
        let connect = &self.connect;
        at_least_one(
            "connect",
            &[
                ("max_sessions", connect.max_sessions as u64),
                ("max_frame_bytes", connect.max_frame_bytes as u64),
                ("outbound_queue", connect.outbound_queue as u64),
                ("heartbeat_timeout_secs", connect.heartbeat_timeout_secs),
                ("handshake_timeout_secs", connect.handshake_timeout_secs),
                ("token_check_concurrency", connect.token_check_concurrency as u64),
                ("max_frames_per_second", u64::from(connect.max_frames_per_second)),
                ("write_timeout_secs", connect.write_timeout_secs),
            ],
        )?;
        if connect.max_frame_bytes < 1024 {
            return invalid("connect.max_frame_bytes must be at least 1024");
        }
        Ok(())
    }

    fn validate_social(&self) -> Result<(), ConfigError> {
        let social = &self.social;
        at_least_one(
            "social",
            &[
                ("friend_request_ttl_secs", social.friend_request_ttl_secs),
                ("max_friends", social.max_friends),
                ("max_post_chars", social.max_post_chars as u64),
                ("max_comment_chars", social.max_comment_chars as u64),
            ],
        )?;
        if social.max_media > 100 {
            return invalid("social.max_media must be at most 100");
        }
        Ok(())
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let webhooks = &self.webhooks;
        at_least_one(
            "webhooks",
            &[
                ("timeout_secs", webhooks.timeout_secs),
                ("first_retry_ms", webhooks.first_retry_ms),
                ("max_retry_interval_secs", webhooks.max_retry_interval_secs),
                ("poll_ms", webhooks.poll_ms),
                ("max_endpoints_per_app", webhooks.max_endpoints_per_app as u64),
                ("max_hook_timeout_ms", webhooks.max_hook_timeout_ms),
            ],
        )?;
        if webhooks.lease_secs < 3 * webhooks.timeout_secs {
            return invalid("webhooks.lease_secs must be at least 3 times webhooks.timeout_secs");
        }
        Ok(())
    }

    fn validate_rooms(&self) -> Result<(), ConfigError> {
        let rooms = &self.rooms;
        at_least_one(
            "rooms",
            &[
                ("max_rooms_per_session", rooms.max_rooms_per_session as u64),
                ("idle_secs", rooms.idle_secs),
                ("report_ms", rooms.report_ms),
            ],
        )?;
        if rooms.replay > 1000 {
            return invalid("rooms.replay must be at most 1000");
        }
        if rooms.report_ms > self.route.ttl_secs * 1000 / 3 {
            return invalid("rooms.report_ms must be at most a third of route.ttl_secs");
        }
        Ok(())
    }

    fn validate_messages(&self) -> Result<(), ConfigError> {
        let messages = &self.messages;
        at_least_one(
            "messages",
            &[
                ("max_reactions_per_user", u64::from(messages.max_reactions_per_user)),
                ("max_delete_ids", messages.max_delete_ids as u64),
                ("max_forward_targets", messages.max_forward_targets as u64),
            ],
        )?;
        if messages.reactions.iter().any(|emoji| emoji.is_empty() || emoji.len() > 32) {
            return invalid("messages.reactions: each must be 1 to 32 bytes");
        }
        if messages.max_delete_ids > 1000 || messages.max_forward_targets > 100 {
            return invalid("messages.max_delete_ids must be at most 1000 and max_forward_targets at most 100");
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        if limits.default_page_size == 0 || limits.default_page_size > limits.max_page_size {
            return invalid("limits.default_page_size must be 1..=limits.max_page_size");
        }
        at_least_one(
            "limits",
            &[
                ("max_message_bytes", limits.max_message_bytes as u64),
                ("max_text_chars", limits.max_text_chars as u64),
                ("max_client_msg_id_len", limits.max_client_msg_id_len as u64),
                ("max_extra_bytes", limits.max_extra_bytes as u64),
                ("max_url_len", limits.max_url_len as u64),
                ("max_name_chars", limits.max_name_chars as u64),
                ("max_import_users", limits.max_import_users as u64),
                ("max_broadcast_users", limits.max_broadcast_users as u64),
                ("max_devices_per_user", limits.max_devices_per_user as u64),
                ("max_group_introduction_chars", limits.max_group_introduction_chars as u64),
                ("max_join_request_chars", limits.max_join_request_chars as u64),
            ],
        )
    }

    /// What a process running apart (`gim logic`, `gim connect`) needs beyond `validate`.
    pub fn validate_cluster(&self, connect: bool) -> Result<(), ConfigError> {
        if self.route.redis_url.is_empty() {
            return invalid("route.redis_url is required when logic and connect run apart (GIM_ROUTE__REDIS_URL)");
        }
        if self.auth.token_secret.is_empty() {
            return invalid(
                "auth.token_secret is required when logic and connect run apart: every node signs or checks \
                 device tokens with it (GIM_AUTH__TOKEN_SECRET, at least 32 bytes)",
            );
        }
        if !connect && self.logic.internal_listen.ip().is_loopback() {
            tracing::warn!(
                listen = %self.logic.internal_listen,
                "logic.internal_listen is a loopback address: connect nodes on other hosts cannot report sessions \
                 (presence events) to this node"
            );
        }
        if connect {
            if self.connect.logic_addrs.is_empty() {
                return invalid("connect.logic_addrs needs at least one logic address");
            }
            let internal = &self.connect.logic_internal_addrs;
            if !internal.is_empty() && internal.len() != self.connect.logic_addrs.len() {
                return invalid(
                    "connect.logic_internal_addrs lists one internal address per entry of connect.logic_addrs, \
                     in the same order (or none, for port 7071 on the same hosts)",
                );
            }
            if self.connect.advertise_addr.is_empty() && self.connect.internal_listen.ip().is_unspecified() {
                return invalid(
                    "connect.advertise_addr is required when connect.internal_listen is a wildcard address: \
                     logic must know how to reach this node",
                );
            }
        }
        Ok(())
    }

    /// The internal API of each logic node connect calls: `connect.logic_internal_addrs`,
    /// or the host of each of `connect.logic_addrs` on the default internal port.
    pub fn logic_internal_addrs(&self) -> Vec<String> {
        if !self.connect.logic_internal_addrs.is_empty() {
            return self.connect.logic_internal_addrs.clone();
        }
        let port = LogicConfig::default().internal_listen.port();
        self.connect
            .logic_addrs
            .iter()
            .map(|addr| match addr.parse::<http::Uri>() {
                Ok(uri) => {
                    format!("{}://{}:{port}", uri.scheme_str().unwrap_or("http"), uri.host().unwrap_or("localhost"))
                }
                Err(_) => addr.clone(),
            })
            .collect()
    }

    /// The file of a SQLite store (`sqlite://PATH` or `sqlite:PATH`), if the store is one
    /// and keeps a file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let url = self.store_url();
        let rest = url.strip_prefix("sqlite:")?;
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = path.split('?').next().unwrap_or(path);
        (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
    }

    /// The store as a person may be shown it: a SQLite file's absolute path, or the URL
    /// with its password left out.
    pub fn store_display(&self) -> String {
        if let Some(file) = self.sqlite_path() {
            let file = std::path::absolute(&file).unwrap_or(file);
            return format!("sqlite://{}", file.display());
        }
        let url = self.store_url();
        let Some((scheme, rest)) = url.split_once("://") else { return url };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{host}{}", &rest[authority_end..])
            }
            None => url,
        }
    }

    /// The store URL, with the embedded default filled in.
    pub fn store_url(&self) -> String {
        let url = self.store.url.expose();
        if url.is_empty() { format!("sqlite://{}", self.data_dir.join("gim.db").display()) } else { url.to_owned() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: "data".into(),
            node: NodeConfig::default(),
            logic: LogicConfig::default(),
            connect: ConnectConfig::default(),
            web: WebConfig::default(),
            route: RouteConfig::default(),
            store: StoreConfig::default(),
            auth: AuthConfig::default(),
            admin: AdminConfig::default(),
            limits: Limits::default(),
            groups: GroupsConfig::default(),
            social: SocialConfig::default(),
            messages: MessagesConfig::default(),
            rates: RatesConfig::default(),
            webhooks: WebhooksConfig::default(),
            outbound: OutboundConfig::default(),
            rooms: RoomsConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid(message.into()))
}

/// Refuses the first of `section`'s keys that is 0.
fn at_least_one(section: &str, keys: &[(&str, u64)]) -> Result<(), ConfigError> {
    match keys.iter().find(|(_, value)| *value == 0) {
        Some((name, _)) => invalid(format!("{section}.{name} must be at least 1")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(toml.as_bytes()).unwrap();
        Config::load(Some(file.path()))
    }

    #[test]
    fn the_shipped_files_load() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let default = Config::load(Some(&root.join("config/default.toml"))).unwrap();
        assert_eq!(default.store_url(), "sqlite://data/gim.db");
        let written = serde_json::to_value(&default).unwrap();
        assert_eq!(written, serde_json::to_value(Config::default()).unwrap(), "default.toml says the defaults");
        let cluster = Config::load(Some(&root.join("config/cluster.toml"))).unwrap();
        assert!(cluster.store_url().starts_with("mysql://"));
    }

    #[test]
    fn a_store_is_shown_without_its_password() {
        let shown = |url: &str| {
            let mut config = Config::default();
            config.store.url = Secret::new(url);
            config.store_display()
        };
        assert_eq!(
            shown("mysql://gim:hunter2@db:3306/gim?ssl-mode=required"),
            "mysql://gim@db:3306/gim?ssl-mode=required"
        );
        assert_eq!(shown("mysql://gim@db/gim"), "mysql://gim@db/gim");
        assert_eq!(shown("mysql://db:3306/gim"), "mysql://db:3306/gim");
        let sqlite = shown("");
        let file = std::env::current_dir().unwrap().join("data/gim.db");
        assert_eq!(sqlite, format!("sqlite://{}", file.display()), "the file that would be opened, wherever it is");
    }

    #[test]
    fn mistakes_fail_with_a_message_that_names_the_key() {
        let cases = [
            ("[limits]\nmax_text_chars = 0", "limits.max_text_chars"),
            ("[limits]\ndefault_page_size = 500", "limits.default_page_size"),
            ("[store]\nurl = \"postgres://x\"", "store.url"),
            ("[auth]\ntoken_secret = \"short\"", "auth.token_secret"),
            ("[node]\nid = 5000", "node.id"),
            ("[logic]\nlisten = \"not an address\"", "listen"),
            ("[limits]\nmax_text_chars = -1", "max_text_chars"),
            ("[limitz]\nmax_text_chars = 1", "limitz"),
            ("[logic]\nlisen = \"0.0.0.0:1\"", "lisen"),
            ("[web]\napi_url = \"api.chat.example\"", "web.api_url"),
            ("[webhooks]\nlease_secs = 10", "webhooks.lease_secs"),
            ("[webhooks]\ntimeout_secs = 0", "webhooks.timeout_secs"),
        ];
        for (toml, key) in cases {
            let err = load(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml:?} gave {err:?}");
        }
        for key in [
            "logic.write_concurrency",
            "logic.request_timeout_secs",
            "logic.push_queue",
            "connect.token_check_concurrency",
            "connect.outbound_queue",
            "limits.max_group_introduction_chars",
            "limits.max_join_request_chars",
            "social.max_friends",
            "auth.password_hash_concurrency",
        ] {
            let (section, name) = key.split_once('.').unwrap();
            let err = load(&format!("[{section}]\n{name} = 0")).unwrap_err().to_string();
            assert!(err.contains(&format!("{key} must be at least 1")), "{key} = 0 gave {err:?}");
        }
        let missing = Config::load(Some(std::path::Path::new("/no/such/gim.toml"))).unwrap_err().to_string();
        assert!(missing.contains("does not exist"), "{missing}");
    }
}
