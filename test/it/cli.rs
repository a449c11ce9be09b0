//! The client commands as a newcomer pastes them from docs/api.md, against a running
//! `gim serve`: credentials from a profile that `gim app create --save` wrote, users,
//! devices, tokens, sends as the business and as a device, groups, and `gim listen`
//! printing what arrives, in order, and resuming after what it acknowledged (its inbox
//! and the app's announcements). `gim app` talks to the running gim, and makes no store
//! of its own in whatever directory it is run from.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use tokio::{io::AsyncReadExt, process::Command};

use crate::{
    binary::{field, gim, wait_until_serving},
    both_stores,
    support::{Backend, TOKEN_SECRET, TestDb, free_addr},
};

const ADMIN_TOKEN: &str = "cli-test-admin-token-0123456789";

struct Cli<'a> {
    profiles: &'a Path,
    server: SocketAddr,
    ws: SocketAddr,
}

impl Cli<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gim"));
        command
            .args(args)
            .current_dir(self.profiles.parent().expect("the profile file is in the test's directory"))
            .env_clear()
            .env("GIM_PROFILES", self.profiles)
            .env("GIM_SERVER", self.server.to_string())
            .env("GIM_WS", format!("ws://{}/ws", self.ws))
            .kill_on_drop(true);
        command
    }

    /// Runs a command that must succeed; returns what it printed.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.command(args).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "gim {}: {stderr}", args.join(" "));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command that must fail; returns what it said on stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let output = self.command(args).output().await.unwrap();
        assert!(!output.status.success(), "gim {} should fail", args.join(" "));
        String::from_utf8(output.stderr).unwrap()
    }

    async fn listen(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut child = self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut out = String::new();
        let mut stdout = child.stdout.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), stdout.read_to_string(&mut out))
            .await
            .expect("gim listen prints what it was asked for and exits")
            .unwrap();
        assert!(child.wait().await.unwrap().success());
        out.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

/// A `gim serve` with its data in `dir`; returns it with its gRPC and WebSocket addresses.
async fn serve(dir: &Path) -> (tokio::process::Child, SocketAddr, SocketAddr) {
    let (addr, ws) = (free_addr(), free_addr());
    let server = gim(&dir.join("data"), addr)
        .env("GIM_CONNECT__LISTEN", ws.to_string())
        .env("GIM_ADMIN__TOKEN", ADMIN_TOKEN)
        // The client commands' variables are no setting of the server's.
        .env("GIM_SERVER", addr.to_string())
        .env("GIM_APP_ID", "1")
        .env("GIM_PROFILE", "default")
        .arg("serve")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_serving(addr).await;
    (server, addr, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walk_through_of_docs_api_works_with_the_client_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ws) = serve(dir.path()).await;
    let profiles = dir.path().join("profiles.toml");
    let cli = Cli { profiles: &profiles, server: addr, ws };

    let missing = cli.fails(&["user", "create", "alice"]).await;
    assert!(missing.contains("--app-id"), "says which credentials are missing: {missing}");
    let created = cli.ok(&["app", "create", "--name", "walk", "--admin-token", ADMIN_TOKEN, "--save"]).await;
    let app_id = field(&created, "app_id:");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&profiles).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the profile file holds a secret");
    }
    let apps = cli.ok(&["app", "list", "--admin-token", ADMIN_TOKEN]).await;
    assert!(apps.lines().any(|line| line.starts_with(&format!("{app_id}\twalk\t"))), "{apps}");

    cli.ok(&["user", "create", "alice", "--nickname", "Alice"]).await;
    cli.ok(&["user", "create", "bob"]).await;
    assert_eq!(cli.ok(&["user", "list"]).await, "alice\tAlice\nbob\t\n");
    assert!(cli.ok(&["user", "get", "alice"]).await.contains("nickname: Alice"));
    let unknown = cli.fails(&["user", "get", "zed"]).await;
    assert!(unknown.contains("NotFound") && unknown.contains("zed"), "{unknown}");

    cli.ok(&["device", "register", "alice", "phone", "--type", "ios"]).await;
    let token = cli.ok(&["token", "issue", "alice", "phone"]).await.trim().to_owned();
    cli.ok(&["send", "--from", "alice", "--to", "bob", "hello bob"]).await;
    cli.ok(&["send", "--token", &token, "--to", "bob", "from the phone"]).await;
    cli.ok(&["send", "--system", "--to", "bob", "welcome"]).await;
    let group = cli.ok(&["group", "create", "--owner", "alice", "--name", "team", "--member", "bob"]).await;
    let group = group.trim();
    cli.ok(&["group", "send", group, "--from", "alice", "hi team"]).await;
    let bad = cli.fails(&["send", "--token", "not-a-token", "--to", "bob", "x"]).await;
    assert!(bad.contains("Unauthenticated"), "{bad}");

    // A new device of bob's reads everything, in order.
    let lines = cli.listen(&["listen", "--user", "bob", "--device", "laptop", "--json", "--count", "5"]).await;
    let seen: Vec<(u64, &str, &str)> = lines
        .iter()
        .map(|line| (line["seq"].as_u64().unwrap(), line["from"].as_str().unwrap(), line["text"].as_str().unwrap()))
        .collect();
    assert_eq!(&seen[..3], &[(1, "alice", "hello bob"), (2, "alice", "from the phone"), (3, "", "welcome")]);
    assert_eq!(seen[3].0, 4, "then the group's creation");
    assert!(seen[3].2.contains("group.created"), "{:?}", seen[3]);
    assert_eq!(seen[4], (5, "alice", "hi team"));
    assert!(lines.iter().all(|line| line["type"] == "message"));

    // The same device goes on after what it acknowledged; a live push arrives too.
    let listening = cli.listen(&["listen", "--user", "bob", "--device", "laptop", "--json", "--count", "1"]);
    let sending = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cli.ok(&["send", "--from", "alice", "--to", "bob", "later"]).await
    };
    let (next, _) = tokio::join!(listening, sending);
    assert_eq!(next.len(), 1);
    assert_eq!((next[0]["seq"].as_u64(), next[0]["text"].as_str()), (Some(6), Some("later")));

    let unreachable = Cli { profiles: &profiles, server: free_addr(), ws };
    let refused = unreachable.fails(&["user", "list"]).await;
    assert!(refused.contains("cannot reach gim"), "{refused}");
}

/// `gim app webhook ...` and the before-send switches of `gim app update`, over the
/// AppAdmin API of a running `gim serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ws) = serve(dir.path()).await;
    let profiles = dir.path().join("profiles.toml");
    let cli = Cli { profiles: &profiles, server: addr, ws };
    let admin = ["--admin-token", ADMIN_TOKEN];
    let created = cli.ok(&["app", "create", "--name", "hooks", "--admin-token", ADMIN_TOKEN]).await;
    let app_id = field(&created, "app_id:").to_owned();

    let add = [
        "app",
        "webhook",
        "add",
        "--app",
        &app_id,
        "--url",
        "https://backend.example/gim",
        "--kinds",
        "message.* group.*",
    ];
    let added = cli.ok(&[&add[..], &admin[..]].concat()).await;
    let secret = field(&added, "secret:");
    assert!(secret.starts_with("whsec_"), "{added}");
    let endpoint = added.split('\t').next().unwrap().to_owned();
    let listed = cli.ok(&[&["app", "webhook", "list", "--app", &app_id][..], &admin[..]].concat()).await;
    assert_eq!(listed.trim(), format!("{endpoint}\thttps://backend.example/gim\tmessage.* group.*\tenabled"));
    assert!(!listed.contains("whsec_"), "a listing shows no secret");
    let rotate = ["app", "webhook", "rotate", "--app", &app_id, "--id", &endpoint, "--keep-old-for", "3600"];
    let rotated = cli.ok(&[&rotate[..], &admin[..]].concat()).await;
    let new_secret = field(&rotated, "secret:");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret, "{rotated}");
    assert!(field(&rotated, "previous secret signs until:").ends_with('Z'), "{rotated}");
    let too_long = ["app", "webhook", "rotate", "--app", &app_id, "--id", &endpoint, "--keep-old-for", "999999999"];
    assert!(cli.fails(&[&too_long[..], &admin[..]].concat()).await.contains("max_secret_overlap_secs"));
    let listed = cli.ok(&[&["app", "webhook", "list", "--app", &app_id][..], &admin[..]].concat()).await;
    assert!(!listed.contains("whsec_") && listed.contains("previous secret signs until:"), "{listed}");
    let update = ["app", "webhook", "update", "--app", &app_id, "--id", &endpoint, "--disable"];
    let updated = cli.ok(&[&update[..], &admin[..]].concat()).await;
    assert!(updated.lines().next().unwrap().ends_with("disabled"), "{updated}");
    let deliveries = ["app", "webhook", "deliveries", "--app", &app_id, "--id", &endpoint, "--state", "dead"];
    assert_eq!(cli.ok(&[&deliveries[..], &admin[..]].concat()).await, "");
    let replay = ["app", "webhook", "replay", "--app", &app_id, "--id", &endpoint];
    assert_eq!(cli.ok(&[&replay[..], &admin[..]].concat()).await.trim(), "replayed: 0");
    let bad = ["app", "webhook", "add", "--app", &app_id, "--url", "ftp://nope", "--kinds", "*"];
    assert!(cli.fails(&[&bad[..], &admin[..]].concat()).await.contains("http"));
    let remove = ["app", "webhook", "remove", "--app", &app_id, "--id", &endpoint];
    cli.ok(&[&remove[..], &admin[..]].concat()).await;
    let listed = cli.ok(&[&["app", "webhook", "list", "--app", &app_id][..], &admin[..]].concat()).await;
    assert_eq!(listed, "", "removed");

    let hook = [
        "app",
        "update",
        &app_id,
        "--before-send-url",
        "https://backend.example/moderate",
        "--before-send-secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--before-send-in",
        "group",
    ];
    let updated = cli.ok(&[&hook[..], &admin[..]].concat()).await;
    assert!(updated.contains("before_send=https://backend.example/moderate"), "{updated}");
}

/// `gim app update` changes what it is given and nothing else: a rename keeps every switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_update_changes_only_what_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ws) = serve(dir.path()).await;
    let profiles = dir.path().join("profiles.toml");
    let cli = Cli { profiles: &profiles, server: addr, ws };
    let admin = ["--admin-token", ADMIN_TOKEN];
    let created = cli
        .ok(&["app", "create", "--name", "chat", "--accounts", "--friends-only", "--admin-token", ADMIN_TOKEN])
        .await;
    let app_id = field(&created, "app_id:").to_owned();
    let renamed = cli.ok(&[&["app", "update", &app_id, "--name", "chat 2"][..], &admin[..]].concat()).await;
    assert!(renamed.contains("\tchat 2\taccounts=true\tfriends_only=true\tpresence_events=true"), "{renamed}");
    let changed = ["app", "update", &app_id, "--friends-only", "false", "--sends-per-second", "50"];
    let changed = cli.ok(&[&changed[..], &admin[..]].concat()).await;
    assert!(changed.contains("accounts=true\tfriends_only=false"), "{changed}");
    assert!(changed.contains("sends_per_second=50"), "{changed}");
    let got = cli.ok(&[&["app", "get", &app_id][..], &admin[..]].concat()).await;
    assert_eq!(got, changed, "stored as answered");
}

/// `gim room ...`, `gim broadcast` and `gim listen --room` against a running `gim serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_announcements_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ws) = serve(dir.path()).await;
    let profiles = dir.path().join("profiles.toml");
    let cli = Cli { profiles: &profiles, server: addr, ws };
    cli.ok(&["app", "create", "--name", "rooms", "--admin-token", ADMIN_TOKEN, "--save"]).await;
    cli.ok(&["user", "create", "ann"]).await;
    assert_eq!(cli.ok(&["room", "push", "live", "before"]).await, "seq: 1\n");

    let listening =
        cli.listen(&["listen", "--user", "ann", "--device", "phone", "--json", "--count", "3", "--room", "live"]);
    let talking = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cli.ok(&["room", "get", "live"]).await.starts_with("members: 1\n") {
            assert!(tokio::time::Instant::now() < deadline, "ann's session never joined the room");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cli.ok(&["room", "push", "live", "hello"]).await;
        let announced = cli.ok(&["broadcast", "all hands"]).await;
        assert!(announced.starts_with("~announcements: "), "{announced}");
    };
    let (lines, ()) = tokio::join!(listening, talking);
    let seen: Vec<(&str, String)> =
        lines.iter().map(|line| (line["type"].as_str().unwrap(), line["text"].as_str().unwrap().to_owned())).collect();
    assert_eq!(
        seen,
        [("room_message", "before".into()), ("room_message", "hello".into()), ("message", "all hands".into())],
        "the replay, the new message, the announcement"
    );
    assert_eq!(lines[1]["seq"], 2);
    assert_eq!(lines[2]["to"], "~announcements");

    let named = cli.ok(&["broadcast", "--user", "ann", "--user", "ghost", "just you"]).await;
    assert!(named.starts_with("ann: "), "{named}");
    cli.ok(&["room", "close", "live", "--reason", "done"]).await;
    assert_eq!(cli.ok(&["room", "get", "live"]).await, "members: 0\nlast_seq: 0\n");
    let bad = cli.fails(&["room", "push", "bad room", "x"]).await;
    assert!(bad.contains("InvalidArgument"), "{bad}");
}

/// Runs `gim` in `dir`, with no variable of this process but `env`.
async fn gim_in(dir: &Path, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gim"));
    command.args(args).current_dir(dir).env_clear().kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().await.unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_commands_in_another_directory_go_to_the_running_gim_and_write_nothing_there() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, _ws) = serve(dir.path()).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles.toml");
    let named = [("GIM_PROFILES", profiles.display().to_string()), ("GIM_SERVER", addr.to_string())];

    // A server named, no operator token: refused, saying what to give; nothing written.
    let refused = gim_in(elsewhere.path(), &named, &["app", "create", "--name", "my-app", "--save"]).await;
    assert!(!refused.status.success());
    let said = stderr(&refused);
    assert!(said.contains("--admin-token") && said.contains(&format!("http://{addr}")), "{said}");
    assert!(is_empty(elsewhere.path()), "no store made where the command ran");
    assert!(!profiles.exists(), "no credentials saved");

    let with_token = [&named[..], &[("GIM_ADMIN_TOKEN", ADMIN_TOKEN.to_owned())]].concat();
    let created = gim_in(elsewhere.path(), &with_token, &["app", "create", "--name", "my-app", "--save"]).await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(is_empty(elsewhere.path()), "the app is the running gim's");
    let user = gim_in(elsewhere.path(), &named, &["user", "create", "alice"]).await;
    assert!(user.status.success(), "the saved credentials are the server's: {}", stderr(&user));

    // No server named (nor a profile that names one): the gim this configuration
    // describes answers, so it is asked.
    let no_profile = dir.path().join("no-profiles.toml");
    let local = [("GIM_PROFILES", no_profile.display().to_string()), ("GIM_LOGIC__LISTEN", addr.to_string())];
    let refused = gim_in(elsewhere.path(), &local, &["app", "list"]).await;
    assert!(!refused.status.success());
    let said = stderr(&refused);
    assert!(said.contains("--admin-token") && said.contains(&format!("http://{addr}")), "{said}");
    let local_with_token = [&local[..], &[("GIM_ADMIN_TOKEN", ADMIN_TOKEN.to_owned())]].concat();
    let listed = gim_in(elsewhere.path(), &local_with_token, &["app", "list"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\tmy-app\t"));
    assert!(is_empty(elsewhere.path()));
}

both_stores!(without_a_running_gim_app_commands_open_only_a_store_that_exists);

async fn without_a_running_gim_app_commands_open_only_a_store_that_exists(backend: Backend) {
    let (elsewhere, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let profiles = home.path().join("profiles.toml");
    let mut env = vec![
        ("GIM_PROFILES", profiles.display().to_string()),
        // Where this configuration's gim would answer: nothing does.
        ("GIM_LOGIC__LISTEN", free_addr().to_string()),
    ];
    let db = match backend {
        Backend::Sqlite => None,
        Backend::MySql => Some(TestDb::create(backend).await),
    };
    let mut config = gim::config::Config::default();
    if let Some(db) = &db {
        env.push(("GIM_STORE__URL", db.url.clone()));
        env.push(("GIM_AUTH__TOKEN_SECRET", TOKEN_SECRET.to_owned()));
        config.store.url = gim::config::Secret::new(db.url.clone());
    } else {
        config.data_dir = elsewhere.path().join("data");
    }
    let store = config.store_display();

    let refused = gim_in(elsewhere.path(), &env, &["app", "create", "--name", "lost", "--save"]).await;
    assert!(!refused.status.success());
    let said = stderr(&refused);
    assert!(said.contains(&store) && said.contains("--create-store"), "names the store and the flag: {said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    assert!(is_empty(elsewhere.path()), "no store made");
    assert!(!profiles.exists(), "no credentials saved");
    assert!(!gim::server::store_exists(&config).await.unwrap(), "{backend:?}: the store is still not there");

    let created = gim_in(elsewhere.path(), &env, &["app", "create", "--name", "first", "--create-store"]).await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stderr(&created).contains(&format!("store: {store}")), "{}", stderr(&created));
    field(&String::from_utf8_lossy(&created.stdout), "app_id:");
    assert!(gim::server::store_exists(&config).await.unwrap());

    let listed = gim_in(elsewhere.path(), &env, &["app", "list"]).await;
    assert!(listed.status.success(), "the store exists now: {}", stderr(&listed));
    assert!(stderr(&listed).contains(&format!("store: {store}")), "{}", stderr(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\tfirst\t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_failures_are_one_line_even_with_backtraces_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ws) = serve(dir.path()).await;
    let profiles = dir.path().join("profiles.toml");
    let cli = Cli { profiles: &profiles, server: addr, ws };
    cli.ok(&["app", "create", "--name", "lines", "--admin-token", ADMIN_TOKEN, "--save"]).await;
    let backtraces = [("RUST_BACKTRACE", "1".to_owned()), ("RUST_LIB_BACKTRACE", "1".to_owned())];
    let run = |server: SocketAddr, args: &'static [&'static str]| {
        let env =
            [&backtraces[..], &[("GIM_PROFILES", profiles.display().to_string()), ("GIM_SERVER", server.to_string())]]
                .concat();
        let dir = dir.path().to_owned();
        async move { gim_in(&dir, &env, args).await }
    };

    let unknown = run(addr, &["user", "get", "zed"]).await;
    assert!(!unknown.status.success());
    assert_eq!(stderr(&unknown).lines().collect::<Vec<_>>(), ["error: NotFound: user zed does not exist"]);

    let unreachable = run(free_addr(), &["user", "list"]).await;
    assert!(!unreachable.status.success());
    let said = stderr(&unreachable);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.starts_with("error: cannot reach gim at http://"), "what failed, then why: {said}");
    assert!(!said.to_lowercase().contains("backtrace"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gim_listen_finds_the_websocket_on_the_host_of_the_server_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles.toml");
    let claims = gim::auth::Claims {
        app_id: 1,
        user_id: "bob".into(),
        device_id: "laptop".into(),
        expires_at: i64::MAX,
        user_generation: 0,
        device_generation: 0,
    };
    let token = gim::auth::TokenKey::new(TOKEN_SECRET.as_bytes()).sign(&claims);
    // No session opens (nothing answers there, or a gim that refuses the token): the
    // error names the address tried.
    let tried = |env: Vec<(&'static str, String)>, server: Option<&'static str>| {
        let mut args = vec!["listen", "--token", &token, "--after-seq", "0"];
        args.extend(server.map(|server| ["--server", server]).into_iter().flatten());
        let env = [&env[..], &[("GIM_PROFILES", profiles.display().to_string())]].concat();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let dir = dir.path().to_owned();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let output = gim_in(&dir, &env, &args).await;
            assert!(!output.status.success());
            stderr(&output)
        }
    };
    let said = tried(vec![], Some("http://127.0.0.2:17070")).await;
    assert!(said.contains("opening a session at ws://127.0.0.2:7080/ws"), "the server's host: {said}");
    let said = tried(vec![("GIM_SERVER", "127.0.0.3:17070".into())], None).await;
    assert!(said.contains("at ws://127.0.0.3:7080/ws"), "{said}");
    let said = tried(vec![("GIM_WS", "ws://127.0.0.4:1/ws".into())], Some("http://127.0.0.2:17070")).await;
    assert!(said.contains("at ws://127.0.0.4:1/ws"), "GIM_WS says otherwise: {said}");

    // A profile's WebSocket address goes with the profile's server, not with another one.
    std::fs::write(&profiles, "[default]\nserver = \"http://127.0.0.5:17070\"\nws = \"ws://127.0.0.5:1/ws\"\n")
        .unwrap();
    let said = tried(vec![], None).await;
    assert!(said.contains("at ws://127.0.0.5:1/ws"), "the profile's own: {said}");
    let said = tried(vec![], Some("http://127.0.0.2:17070")).await;
    assert!(said.contains("at ws://127.0.0.2:7080/ws"), "the named server's: {said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gim_listen_catches_up_on_the_announcements_sent_while_it_was_away() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ws) = serve(dir.path()).await;
    let profiles = dir.path().join("profiles.toml");
    let cli = Cli { profiles: &profiles, server: addr, ws };
    cli.ok(&["app", "create", "--name", "news", "--admin-token", ADMIN_TOKEN, "--save"]).await;
    cli.ok(&["user", "create", "bob"]).await;
    let listen = ["listen", "--user", "bob", "--device", "laptop", "--json", "--count"];
    let texts = |lines: Vec<serde_json::Value>| -> Vec<(String, String)> {
        lines
            .iter()
            .map(|line| (line["to"].as_str().unwrap().to_owned(), line["text"].as_str().unwrap().to_owned()))
            .collect()
    };
    let news = |text: &str| ("~announcements".to_owned(), text.to_owned());

    cli.ok(&["broadcast", "one"]).await;
    assert_eq!(texts(cli.listen(&[&listen[..], &["1"]].concat()).await), [news("one")], "a new device reads them all");

    cli.ok(&["broadcast", "two"]).await;
    cli.ok(&["send", "--system", "--to", "bob", "direct"]).await;
    cli.ok(&["broadcast", "three"]).await;
    assert_eq!(
        texts(cli.listen(&[&listen[..], &["3"]].concat()).await),
        [("bob".to_owned(), "direct".to_owned()), news("two"), news("three")],
        "the inbox, then what was announced while it was away, and nothing twice"
    );

    // Whether it arrives as a push or in the catch-up, each announcement is printed once.
    let listen_for_two = [&listen[..], &["2"]].concat();
    let listening = cli.listen(&listen_for_two);
    let announcing = async {
        cli.ok(&["broadcast", "four"]).await;
        cli.ok(&["broadcast", "five"]).await;
    };
    let (lines, ()) = tokio::join!(listening, announcing);
    assert_eq!(texts(lines), [news("four"), news("five")]);
}
