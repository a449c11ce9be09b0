//! Real servers for tests: a fresh database per test (a SQLite file in a temporary
//! directory, or a new database on the MariaDB of `GIM_TEST_MYSQL_URL`), a logic node on
//! a free port, and gRPC clients that carry the right metadata.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use gim::{
    config::{Config, Secret},
    delivery::RecordingDelivery,
    logic::Services,
    metrics::Metrics,
    model::AppSettings,
    proto::{
        common::v1::{MessageBody, TextBody, message_body::Content},
        logic::v1::{
            RegisterDeviceRequest, account_client::AccountClient, app_admin_client::AppAdminClient,
            business_client::BusinessClient, device_client::DeviceClient, groups_client::GroupsClient,
        },
    },
    route::MemoryRegistry,
    server::LogicNode,
};
use sqlx::Connection as _;
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const TOKEN_SECRET: &str = "test-token-secret-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// Runs an `async fn(Backend)` test once per store backend.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    if $crate::support::servers_missing(&[$crate::support::Server::MySql]) {
                        return;
                    }
                    super::$name($crate::support::Backend::MySql).await;
                }
            }
        )*
    };
}

/// A database of its own for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    mysql: Option<(String, String)>,
}

/// A server some tests need, named by an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `GIM_TEST_MYSQL_URL`: mysql://user:pass@host:port, a user that may create databases.
    MySql,
    /// `GIM_TEST_REDIS_URL`: redis://host:port.
    Redis,
}

impl Server {
    fn variable(self) -> &'static str {
        match self {
            Server::MySql => "GIM_TEST_MYSQL_URL",
            Server::Redis => "GIM_TEST_REDIS_URL",
        }
    }

    pub fn url(self) -> Option<String> {
        std::env::var(self.variable()).ok().filter(|url| !url.is_empty())
    }
}

static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();

/// A loopback address nothing listens on, for a `gim` process a test starts.
///
/// Ports come from below the kernel's ephemeral range (32768 and up): there no outgoing
/// connection and no `bind(0)` takes one between this check and the child's bind. Test
/// processes run in parallel, so each starts at a random place; every port is checked
/// free by binding it.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 10_000;
    const SPAN: u16 = 22_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(0, rand::random_range(1..SPAN), Ordering::Relaxed, Ordering::Relaxed);
    loop {
        let port = LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().unwrap();
        }
    }
}

/// Whether a test must skip because a server it needs is not configured; says so once per
/// run (straight to stderr, past the test harness's capture), with how to run them all.
pub fn servers_missing(needed: &[Server]) -> bool {
    let missing: Vec<&str> = needed.iter().filter(|server| server.url().is_none()).map(|s| s.variable()).collect();
    if missing.is_empty() {
        return false;
    }
    SKIP_NOTICE.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "note: {} not set: the tests on MySQL, Redis and clusters are skipped. ./scripts/test.sh starts \
             MariaDB and Redis and runs every test.",
            missing.join(" and ")
        );
    });
    true
}

fn mysql_server_url() -> String {
    Server::MySql.url().expect("a test on MySQL checks servers_missing first")
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("gim.db").display());
                Self { url, dir, mysql: None }
            }
            Backend::MySql => {
                let server = mysql_server_url();
                let name = format!("gim_test_{}", rand::random::<u64>());
                let mut conn = sqlx::MySqlConnection::connect(&server).await.expect("connecting to the test MySQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("creating a test database");
                let _ = conn.close().await;
                let url = format!("{}/{name}", server.trim_end_matches('/'));
                Self { url, dir, mysql: Some((server, name)) }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.mysql.take() else { return };
        // Drop runs outside async code: use a runtime of its own on a plain thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut conn = sqlx::MySqlConnection::connect(&server).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&mut conn).await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

/// A configuration for tests: the given database, free ports, fixed secrets.
pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config { data_dir: db.dir.path().to_path_buf(), ..Config::default() };
    config.store.url = Secret::new(db.url.clone());
    config.store.max_connections = 8;
    config.logic.listen = "127.0.0.1:0".parse().expect("address");
    config.auth.token_secret = Secret::new(TOKEN_SECRET);
    config.admin.token = Secret::new(ADMIN_TOKEN);
    // Large-group pushes wait for a flush; tests wait for quiet, so keep it short.
    config.connect.group_push_max_delay_ms = 20;
    // The web app makes an app of its own at start; the tests of the web app turn it on.
    config.web.enabled = false;
    // Webhook receivers and before-send hooks of tests listen on this machine.
    config.outbound.allowed_ranges = vec!["loopback".into()];
    // Tests call far faster than people; the tests of rates turn them on.
    config.rates = gim::config::RatesConfig {
        device_calls_per_second: 0,
        user_calls_per_second: 0,
        app_calls_per_second: 0,
        app_sends_per_second: 0,
        failed_sign_ins_per_username_per_minute: 0,
        sign_ins_per_address_per_minute: 0,
        sign_ups_per_address_per_hour: 0,
        friend_requests_per_hour: 0,
        moment_writes_per_minute: 0,
        typing_per_minute: 0,
    };
    config
}

fn memory_routes() -> Arc<MemoryRegistry> {
    Arc::new(MemoryRegistry::new(Duration::from_secs(60)))
}

/// A logic node on its own database, with a delivery that records pushes.
pub struct TestServer {
    pub node: LogicNode,
    pub delivery: Arc<RecordingDelivery>,
    pub config: Config,
    /// Kept so that the database lives as long as the server.
    _db: TestDb,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, edit: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::create(backend).await;
        let mut config = test_config(&db);
        edit(&mut config);
        let delivery = Arc::new(RecordingDelivery::new());
        let node = LogicNode::start(&config, delivery.clone(), memory_routes(), None, Metrics::new())
            .await
            .expect("starting a logic node");
        Self { node, delivery, config, _db: db }
    }

    /// Another logic node on the same database whose clock runs `offset_ms` off.
    pub async fn skewed_node(&self, offset_ms: i64) -> LogicNode {
        let ids = gim::logic::IdGenerator::skewed(rand::random::<u16>(), offset_ms);
        let delivery = Arc::new(RecordingDelivery::new());
        LogicNode::start_with_ids(&self.config, ids, delivery, memory_routes(), None, Metrics::new())
            .await
            .expect("starting a skewed logic node")
    }

    /// Another logic node on the same database, as in a cluster.
    pub async fn another_node(&self) -> LogicNode {
        LogicNode::start(&self.config, Arc::new(RecordingDelivery::new()), memory_routes(), None, Metrics::new())
            .await
            .expect("starting a second logic node")
    }

    pub fn addr(&self) -> SocketAddr {
        self.node.addr()
    }

    pub fn services(&self) -> &Services {
        self.node.services()
    }

    pub async fn new_app(&self) -> TestApp {
        self.new_app_with(AppSettings::default()).await
    }

    pub async fn new_app_with(&self, settings: AppSettings) -> TestApp {
        let (app, secret) = self.services().apps.create_app("test app", settings).await.expect("creating an app");
        TestApp { app_id: app.id, secret, addr: self.addr() }
    }
}

/// Adds fixed metadata to every call.
#[derive(Clone)]
pub struct Meta(Vec<(&'static str, String)>);

impl Meta {
    pub fn new(pairs: &[(&'static str, &str)]) -> Self {
        Self(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
    }
}

impl Interceptor for Meta {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (key, value) in &self.0 {
            let value = value.parse().map_err(|_| Status::internal("bad test metadata"))?;
            request.metadata_mut().insert(*key, value);
        }
        Ok(request)
    }
}

pub type Intercepted = InterceptedService<Channel, Meta>;

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connecting to the test server")
}

/// An app of a test server and the credentials to call it.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub app_id: u64,
    pub secret: String,
    pub addr: SocketAddr,
}

impl TestApp {
    pub async fn business(&self) -> BusinessClient<Intercepted> {
        let app = self.app_id.to_string();
        let meta = Meta::new(&[("x-gim-app-id", &app), ("x-gim-app-secret", &self.secret)]);
        BusinessClient::with_interceptor(channel(self.addr).await, meta)
    }

    pub async fn account(&self) -> AccountClient<Intercepted> {
        let app = self.app_id.to_string();
        AccountClient::with_interceptor(channel(self.addr).await, Meta::new(&[("x-gim-app-id", &app)]))
    }

    /// Creates a user (empty profile) through the business API.
    pub async fn user(&self, user_id: &str) {
        let request = gim::proto::logic::v1::CreateUserRequest { user_id: user_id.into(), ..Default::default() };
        self.business().await.create_user(request).await.expect("creating a user");
    }

    /// Registers a device for an existing user and returns a token for it.
    pub async fn device_token(&self, user_id: &str, device_id: &str) -> String {
        let mut business = self.business().await;
        let request =
            RegisterDeviceRequest { user_id: user_id.into(), device_id: device_id.into(), ..Default::default() };
        business.register_device(request).await.expect("registering a device");
        let request = gim::proto::logic::v1::IssueTokenRequest {
            user_id: user_id.into(),
            device_id: device_id.into(),
            ttl_seconds: 0,
        };
        business.issue_token(request).await.expect("issuing a token").into_inner().token
    }

    /// A user with one device; returns the device's client.
    pub async fn user_with_device(&self, user_id: &str, device_id: &str) -> DeviceClient<Intercepted> {
        self.user(user_id).await;
        let token = self.device_token(user_id, device_id).await;
        device_client(self.addr, &token).await
    }
}

pub async fn device_client(addr: SocketAddr, token: &str) -> DeviceClient<Intercepted> {
    let bearer = format!("Bearer {token}");
    DeviceClient::with_interceptor(channel(addr).await, Meta::new(&[("authorization", &bearer)]))
}

pub async fn admin_client(addr: SocketAddr, token: &str) -> AppAdminClient<Intercepted> {
    let bearer = format!("Bearer {token}");
    AppAdminClient::with_interceptor(channel(addr).await, Meta::new(&[("authorization", &bearer)]))
}

pub fn text(text: &str) -> Option<MessageBody> {
    Some(MessageBody { content: Some(Content::Text(TextBody { text: text.into(), ..Default::default() })) })
}

/// A text that mentions `users`, or everyone.
pub fn mentioning(text: &str, users: &[&str], all: bool) -> Option<MessageBody> {
    let text = TextBody {
        text: text.into(),
        mention_user_ids: users.iter().map(|user| (*user).to_owned()).collect(),
        mention_all: all,
    };
    Some(MessageBody { content: Some(Content::Text(text)) })
}

/// Creates group `id` of `owner` with `members`, named as its id.
pub async fn make_group(app: &TestApp, owner: &str, id: &str, members: &[&str]) {
    let request = gim::proto::logic::v1::CreateGroupRequest {
        group_id: id.into(),
        name: id.into(),
        member_ids: members.iter().map(|m| (*m).to_owned()).collect(),
        ..Default::default()
    };
    app.groups(Some(owner)).await.create_group(request).await.unwrap();
}

/// The text of a message body, for assertions.
pub fn text_of(message: &gim::proto::common::v1::Message) -> &str {
    match message.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(Content::Text(text)) => &text.text,
        _ => "",
    }
}

/// The status code of a call's result (`Ok` for a success).
pub fn code<T>(result: Result<tonic::Response<T>, Status>) -> tonic::Code {
    result.map_or_else(|status| status.code(), |_| tonic::Code::Ok)
}

/// The message a recorded push carries.
pub fn pushed_message(push: &gim::delivery::Push) -> gim::proto::common::v1::Message {
    use gim::proto::client::v1::{ServerFrame, server_frame::Payload};
    use prost::Message as _;
    match ServerFrame::decode(push.frame.clone()).expect("a ServerFrame").payload {
        Some(Payload::Message(push)) => push.message.expect("a message"),
        other => panic!("not a message push: {other:?}"),
    }
}

/// `gim serve` in-process on its own database: logic and connect on free ports.
pub struct ServeServer {
    pub process: gim::server::Process,
    config: Config,
    _db: TestDb,
}

impl ServeServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, edit: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::create(backend).await;
        let mut config = test_config(&db);
        config.connect.listen = "127.0.0.1:0".parse().expect("address");
        edit(&mut config);
        let process = gim::server::Process::start(&config, gim::server::Role::Serve).await.expect("starting gim serve");
        Self { process, config, _db: db }
    }

    /// A logic node on the same database whose pushes reach no session: what is sent
    /// through it, the sessions of this server are never pushed, as when a push is lost.
    pub async fn pushless_node(&self) -> LogicNode {
        LogicNode::start(&self.config, Arc::new(RecordingDelivery::new()), memory_routes(), None, Metrics::new())
            .await
            .expect("starting a second logic node")
    }

    pub fn addr(&self) -> SocketAddr {
        self.process.logic_addr().expect("serve runs logic")
    }

    pub fn ws_addr(&self) -> SocketAddr {
        self.process.ws_addr().expect("serve runs connect")
    }

    /// The URL of the database it runs on.
    pub fn store_url(&self) -> String {
        self.config.store.url.expose().to_owned()
    }

    pub fn services(&self) -> &Services {
        self.process.services().expect("serve runs logic")
    }

    pub async fn new_app(&self) -> TestApp {
        let (app, secret) =
            self.services().apps.create_app("test app", AppSettings::default()).await.expect("creating an app");
        TestApp { app_id: app.id, secret, addr: self.addr() }
    }
}

/// The Groups API as a device.
pub async fn groups_client(addr: SocketAddr, token: &str) -> GroupsClient<Intercepted> {
    let bearer = format!("Bearer {token}");
    GroupsClient::with_interceptor(channel(addr).await, Meta::new(&[("authorization", &bearer)]))
}

pub async fn friends_client(addr: SocketAddr, token: &str) -> Friends {
    let bearer = format!("Bearer {token}");
    gim::proto::logic::v1::friends_client::FriendsClient::with_interceptor(
        channel(addr).await,
        Meta::new(&[("authorization", &bearer)]),
    )
}

impl TestApp {
    /// The Groups API as the business, acting as `user` (or as the app when `None`).
    pub async fn groups(&self, acting_user: Option<&str>) -> GroupsClient<Intercepted> {
        let app = self.app_id.to_string();
        let mut pairs = vec![("x-gim-app-id", app.as_str()), ("x-gim-app-secret", self.secret.as_str())];
        if let Some(user) = acting_user {
            pairs.push(("x-gim-acting-user", user));
        }
        GroupsClient::with_interceptor(channel(self.addr).await, Meta::new(&pairs))
    }

    /// Users with a device each; returns their Groups clients, in order.
    pub async fn group_users(&self, users: &[&str]) -> Vec<GroupsClient<Intercepted>> {
        let mut clients = Vec::new();
        for user in users {
            self.user(user).await;
            let token = self.device_token(user, "phone").await;
            clients.push(groups_client(self.addr, &token).await);
        }
        clients
    }
}

/// The system event names of a list of messages, in order.
pub fn events(messages: &[gim::proto::common::v1::Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m.body.as_ref().and_then(|b| b.content.as_ref()) {
            Some(Content::System(system)) => Some(system.event.clone()),
            _ => None,
        })
        .collect()
}

pub type Friends = gim::proto::logic::v1::friends_client::FriendsClient<Intercepted>;
pub type Moments = gim::proto::logic::v1::moments_client::MomentsClient<Intercepted>;

/// A user's Friends and Moments clients, authenticated by one of its devices.
pub struct SocialUser {
    pub friends: Friends,
    pub moments: Moments,
}

impl TestApp {
    fn acting_meta(&self, acting_user: Option<&str>) -> Meta {
        let app = self.app_id.to_string();
        let mut pairs = vec![("x-gim-app-id", app.as_str()), ("x-gim-app-secret", self.secret.as_str())];
        if let Some(user) = acting_user {
            pairs.push(("x-gim-acting-user", user));
        }
        Meta::new(&pairs)
    }

    /// The Friends API as the business, acting as `user` (or as the app when `None`).
    pub async fn friends(&self, acting_user: Option<&str>) -> Friends {
        gim::proto::logic::v1::friends_client::FriendsClient::with_interceptor(
            channel(self.addr).await,
            self.acting_meta(acting_user),
        )
    }

    /// The Moments API as the business, acting as `user` (or as the app when `None`).
    pub async fn moments(&self, acting_user: Option<&str>) -> Moments {
        gim::proto::logic::v1::moments_client::MomentsClient::with_interceptor(
            channel(self.addr).await,
            self.acting_meta(acting_user),
        )
    }

    /// A user with a phone, calling Friends and Moments as that device.
    pub async fn social_user(&self, user_id: &str) -> SocialUser {
        self.user(user_id).await;
        let token = self.device_token(user_id, "phone").await;
        let bearer = format!("Bearer {token}");
        let meta = Meta::new(&[("authorization", &bearer)]);
        SocialUser {
            friends: gim::proto::logic::v1::friends_client::FriendsClient::with_interceptor(
                channel(self.addr).await,
                meta.clone(),
            ),
            moments: gim::proto::logic::v1::moments_client::MomentsClient::with_interceptor(
                channel(self.addr).await,
                meta,
            ),
        }
    }

    /// Makes friends of each pair through the app-only call.
    pub async fn make_friends(&self, pairs: &[(&str, &str)]) {
        use gim::proto::logic::v1::{FriendPairsRequest, friend_pairs_request::Pair};
        let pairs = pairs.iter().map(|(a, b)| Pair { user_id: (*a).to_owned(), friend_id: (*b).to_owned() }).collect();
        self.friends(None).await.make_friends(FriendPairsRequest { pairs }).await.expect("making friends");
    }

    /// A user's whole inbox, through the business API.
    pub async fn inbox(&self, user_id: &str) -> Vec<gim::proto::common::v1::Message> {
        let request = gim::proto::logic::v1::BusinessSyncRequest { user_id: user_id.into(), after_seq: 0, limit: 200 };
        self.business().await.sync(request).await.expect("syncing").into_inner().messages
    }
}

/// The system bodies of a list of messages, in order.
pub fn system_bodies(messages: &[gim::proto::common::v1::Message]) -> Vec<gim::proto::common::v1::SystemBody> {
    messages
        .iter()
        .filter_map(|m| match m.body.as_ref().and_then(|b| b.content.as_ref()) {
            Some(Content::System(system)) => Some(system.clone()),
            _ => None,
        })
        .collect()
}
