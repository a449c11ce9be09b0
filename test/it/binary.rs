//! The `gim` binary as a newcomer runs it: embedded defaults, configuration from the
//! environment, operator commands, graceful stop.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use gim::proto::logic::v1::GetUserRequest;
use tokio::process::Command;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::{TestApp, free_addr};

pub(crate) fn gim(data_dir: &Path, listen: SocketAddr) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gim"));
    command
        .env_remove("GIM_CONFIG")
        .env("GIM_DATA_DIR", data_dir)
        .env("GIM_LOGIC__LISTEN", listen.to_string())
        .env("GIM_CONNECT__LISTEN", "127.0.0.1:0")
        .env("GIM_TELEMETRY__LOG_FILTER", "warn")
        .kill_on_drop(true);
    command
}

pub(crate) async fn wait_until_serving(addr: SocketAddr) {
    for _ in 0..100 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await
            && HealthClient::new(channel).check(HealthCheckRequest::default()).await.is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gim serve did not start on {addr}");
}

pub(crate) fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {output}"))
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display())).permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gim_serve_runs_on_embedded_defaults_and_stops_gracefully() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let data = data.as_path();
    let addr = free_addr();
    let mut server = gim(data, addr).arg("serve").stdout(Stdio::null()).spawn().unwrap();
    wait_until_serving(addr).await;
    assert_eq!(mode(data), 0o700, "the data directory is its owner's alone");
    for file in ["gim.db", "gim.db-wal", "token_secret", "gim.lock"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file} is its owner's alone");
    }

    let second = free_addr();
    let refused = tokio::time::timeout(Duration::from_secs(20), gim(data, second).arg("serve").output())
        .await
        .expect("a second gim serve on the same data_dir stops at once")
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let pid = server.id().unwrap().to_string();
    assert!(
        stderr.contains(&data.display().to_string()) && stderr.contains(&format!("pid {pid}")),
        "names the directory and the process holding it: {stderr}"
    );

    // Beside the server, app commands go to it (its AppAdmin API, off without a token),
    // or, when asked, to its store.
    let refused = gim(data, addr).args(["app", "create", "--name", "smoke"]).output().await.unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--admin-token"));
    let created = gim(data, addr).args(["app", "create", "--name", "smoke", "--store"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("store: sqlite://{}", data.join("gim.db").display())), "{stderr}");
    let stdout = String::from_utf8(created.stdout).unwrap();
    let app = TestApp {
        app_id: field(&stdout, "app_id:").parse().unwrap(),
        secret: field(&stdout, "secret:").to_owned(),
        addr,
    };
    app.user("alice").await;
    let alice = app.business().await.get_user(GetUserRequest { user_id: "alice".into() }).await.unwrap();
    assert_eq!(alice.into_inner().user_id, "alice");

    let pid = server.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait()).await.unwrap().unwrap();
    assert!(status.success(), "a graceful stop exits 0, got {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gim_refuses_to_start_on_invalid_configuration() {
    let data = tempfile::tempdir().unwrap();
    let output =
        gim(data.path(), free_addr()).env("GIM_LIMITS__DEFAULT_PAGE_SIZE", "0").arg("serve").output().await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("limits.default_page_size"), "{stderr}");

    let output = gim(data.path(), free_addr()).env("GIM_STORE__URLL", "x").arg("serve").output().await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("urll"));
}

/// Two `gim serve` on one database would each keep routes of their own: the second is
/// refused, on MySQL (a named lock) and on a SQLite file outside its data_dir (a lock
/// file), whatever data_dir it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gim_serve_on_the_same_database_is_refused() {
    use crate::support::{Backend, TestDb, test_config};
    use gim::server::{Process, Role};
    let shared_sqlite = tempfile::tempdir().unwrap();
    for backend in [Backend::MySql, Backend::Sqlite] {
        if backend == Backend::MySql && crate::support::servers_missing(&[crate::support::Server::MySql]) {
            continue;
        }
        let db = TestDb::create(backend).await;
        let config = |dir: &Path| {
            let mut config = test_config(&db);
            config.data_dir = dir.to_path_buf();
            config.connect.listen = "127.0.0.1:0".parse().unwrap();
            if backend == Backend::Sqlite {
                let file = shared_sqlite.path().join("shared.db");
                config.store.url = gim::config::Secret::new(format!("sqlite://{}", file.display()));
            }
            config
        };
        let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = Process::start(&config(first_dir.path()), Role::Serve).await.expect("the first gim serve");
        let second = Process::start(&config(second_dir.path()), Role::Serve).await;
        let refusal = second.err().map(|err| err.to_string()).unwrap_or_default();
        assert!(refusal.contains("in use by another gim"), "{backend:?}: {refusal}");
        first.shutdown().await.unwrap();
        let again = Process::start(&config(second_dir.path()), Role::Serve).await.expect("free once the first stops");
        again.shutdown().await.unwrap();
    }
}

/// A `gim serve` keeps its SQLite database in its data_dir; another, in a data_dir of its
/// own, that names that file through `store.url` (by any path to it) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gim_serve_naming_anothers_sqlite_file_is_refused() {
    use crate::support::{Backend, TestDb, test_config};
    use gim::server::{Process, Role};
    let db = TestDb::create(Backend::Sqlite).await;
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = |dir: &Path, url: String| {
        let mut config = test_config(&db);
        config.data_dir = dir.to_path_buf();
        config.connect.listen = "127.0.0.1:0".parse().unwrap();
        config.store.url = gim::config::Secret::new(url);
        config
    };
    // The first on its embedded default: gim.db in its data_dir.
    let first = Process::start(&config(first_dir.path(), String::new()), Role::Serve).await.expect("the first");
    let file = first_dir.path().join("gim.db");
    let roundabout = first_dir.path().join("..").join(first_dir.path().file_name().unwrap()).join("gim.db");
    for named in [file, roundabout] {
        let second =
            Process::start(&config(second_dir.path(), format!("sqlite://{}", named.display())), Role::Serve).await;
        let refusal = second.err().map(|err| err.to_string()).unwrap_or_default();
        assert!(refusal.contains("in use by another gim"), "{}: {refusal}", named.display());
    }
    first.shutdown().await.unwrap();
}
