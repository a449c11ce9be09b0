//! How the client commands reach a running gim: the address and credentials come from
//! flags, then `GIM_SERVER`, `GIM_APP_ID`, ... variables, then a profile in the profile
//! file (`~/.config/gim/profiles.toml`, or `GIM_PROFILES`), which `gim app create --save`
//! writes.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use tonic::{
    Request, Status,
    metadata::{AsciiMetadataValue, MetadataKey},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// Where gim listens when nothing says otherwise: `gim serve` on this machine.
const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Flags every client command takes.
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// gim's gRPC address [default: http://127.0.0.1:7070]
    #[arg(long, global = true, env = "GIM_SERVER")]
    pub server: Option<String>,
    /// gim's WebSocket address for `listen` [default: the server's host, port 7080]
    #[arg(long, global = true, env = "GIM_WS")]
    pub ws: Option<String>,
    /// The app the business calls are made for.
    #[arg(long, global = true, env = "GIM_APP_ID")]
    pub app_id: Option<u64>,
    #[arg(long, global = true, env = "GIM_APP_SECRET", hide_env_values = true)]
    pub app_secret: Option<String>,
    /// The operator's token (`admin.token`), for `gim app` over the AppAdmin API.
    #[arg(long, global = true, env = "GIM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The profile of the profile file to read (and `--save` to write).
    #[arg(long, global = true, env = "GIM_PROFILE", default_value = "default")]
    pub profile: String,
}

/// One profile of the profile file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

fn profile_file() -> PathBuf {
    if let Some(path) = std::env::var_os("GIM_PROFILES") {
        return path.into();
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config_home.join("gim/profiles.toml")
}

/// Where `gim listen` keeps its devices' places on large groups' timelines: beside the
/// profile file.
pub fn cursor_dir() -> PathBuf {
    profile_file().with_file_name("cursors")
}

fn read_profiles(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, Profile>> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("reading the profile file {}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(err) => Err(err).with_context(|| format!("reading the profile file {}", path.display())),
    }
}

/// Merges `changes` into the named profile; the file holds secrets, so only its owner
/// may read it.
pub fn save_profile(name: &str, changes: Profile) -> anyhow::Result<PathBuf> {
    let path = profile_file();
    let mut profiles = read_profiles(&path)?;
    let profile = profiles.entry(name.to_owned()).or_default();
    profile.server = changes.server.or(profile.server.take());
    profile.ws = changes.ws.or(profile.ws.take());
    profile.app_id = changes.app_id.or(profile.app_id);
    profile.app_secret = changes.app_secret.or(profile.app_secret.take());
    profile.admin_token = changes.admin_token.or(profile.admin_token.take());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = toml::to_string(&profiles)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(path)
}

/// Flags and variables, with the profile filling what they leave out.
#[derive(Debug, Clone, Default)]
pub struct Remote {
    pub server: String,
    /// Whether a flag, a variable or the profile named the server (rather than the default).
    pub server_named: bool,
    pub ws: String,
    pub app_id: Option<u64>,
    pub app_secret: Option<String>,
    pub admin_token: Option<String>,
}

impl Remote {
    pub fn resolve(args: &RemoteArgs) -> anyhow::Result<Self> {
        let path = profile_file();
        let mut profiles = read_profiles(&path)?;
        let profile = match profiles.remove(&args.profile) {
            Some(profile) => profile,
            None if args.profile == "default" => Profile::default(),
            None => bail!("there is no profile {:?} in {}", args.profile, path.display()),
        };
        // The profile's WebSocket address belongs to the profile's server: a server named
        // by flag or variable gets the address derived from it.
        let profile_ws = if args.server.is_some() { None } else { profile.ws };
        let named = args.server.clone().or(profile.server);
        let server_named = named.is_some();
        let server = named.unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let server = if server.contains("://") { server } else { format!("http://{server}") };
        let ws = match args.ws.clone().or(profile_ws) {
            Some(ws) => ws,
            None => default_ws(&server)?,
        };
        Ok(Self {
            server,
            server_named,
            ws,
            app_id: args.app_id.or(profile.app_id),
            app_secret: args.app_secret.clone().or(profile.app_secret),
            admin_token: args.admin_token.clone().or(profile.admin_token),
        })
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("{:?} is not a server address", self.server))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach gim at {} (is it running? --server or GIM_SERVER)", self.server))
    }

    /// The business's credentials, optionally acting as a user.
    pub fn business(&self, acting_user: Option<&str>) -> anyhow::Result<Credentials> {
        let (Some(app_id), Some(secret)) = (self.app_id, self.app_secret.as_deref()) else {
            bail!(
                "business calls need --app-id and --app-secret (or GIM_APP_ID and GIM_APP_SECRET, or a profile \
                 written by `gim app create --save`)"
            );
        };
        let credentials = Credentials::default().with("x-gim-app-id", &app_id.to_string())?;
        let credentials = credentials.with("x-gim-app-secret", secret)?;
        match acting_user {
            Some(user) => credentials.with("x-gim-acting-user", user),
            None => Ok(credentials),
        }
    }

    pub fn admin(&self) -> anyhow::Result<Credentials> {
        let token = self.admin_token.as_deref().with_context(|| {
            format!(
                "gim app works through the AppAdmin API of the gim at {}: give its admin.token with --admin-token \
                 or GIM_ADMIN_TOKEN (or pass --store to work on this machine's configured store instead)",
                self.server
            )
        })?;
        Credentials::default().with("authorization", &format!("Bearer {token}"))
    }
}

/// `ws://HOST:7080/ws` for a server `http://HOST:PORT`.
fn default_ws(server: &str) -> anyhow::Result<String> {
    let uri: http::Uri = server.parse().with_context(|| format!("{server:?} is not a server address"))?;
    let host = uri.host().with_context(|| format!("{server:?} has no host"))?;
    let scheme = if uri.scheme_str() == Some("https") { "wss" } else { "ws" };
    Ok(format!("{scheme}://{host}:7080/ws"))
}

/// A device's credentials.
pub fn device(token: &str) -> anyhow::Result<Credentials> {
    Credentials::default().with("authorization", &format!("Bearer {token}"))
}

/// Metadata added to every call of a client.
#[derive(Debug, Clone, Default)]
pub struct Credentials(Vec<(MetadataKey<tonic::metadata::Ascii>, AsciiMetadataValue)>);

impl Credentials {
    fn with(mut self, key: &'static str, value: &str) -> anyhow::Result<Self> {
        let value = value.parse().with_context(|| format!("{key} must be printable ASCII"))?;
        self.0.push((MetadataKey::from_static(key), value));
        Ok(self)
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (key, value) in &self.0 {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Credentials>;
