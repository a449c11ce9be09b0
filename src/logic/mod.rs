//! The use cases of gim. Knows nothing of gRPC or WebSockets: callers hand in
//! authenticated contexts and plain values, and get domain records or an `Error`.

mod accounts;
mod apps;
mod broadcast;
mod conversations;
mod error;
mod friend_rules;
mod friends;
mod group_rules;
mod groups;
mod ids;
mod message_actions;
mod message_rules;
mod messages;
mod moderation;
mod moment_rules;
mod moments;
mod notices;
mod presence;
mod presence_events;
mod pushes;
mod rate;
mod reads;
mod rooms;
mod search;
mod tokens;
mod users;
mod validate;
mod visibility;
mod webhooks;
mod writer;

use std::{sync::Arc, time::Duration};

pub use crate::store::{GroupActor, GroupPatch, HistoryCursor};
pub use accounts::Session;
pub use broadcast::{ANNOUNCEMENTS, BroadcastContent, Broadcasted};
pub use conversations::{ConversationChanges, ConversationPage, ConversationView, page_token, parse_page_token};
pub use error::{Error, ErrorCode, Result};
pub use friends::WithProfile;
pub use group_rules::GroupRules;
pub use groups::{GroupInput, GroupSent};
pub use ids::IdGenerator;
pub use message_actions::ConversationKey;
pub use messages::{Outgoing, Sender, Sent, SyncPage};
pub use moments::{PostInput, PostView, PostsPage};
pub use rooms::{MAX_ROOM_ID_LEN, RoomContent, RoomSent, check_room_id};
pub use search::SearchInput;
pub use tokens::IssuedToken;
pub use users::{DeviceInput, Imported, UserInput};
pub use webhooks::{EndpointChange, EndpointInput, MAX_REPLAY_IDS};

use crate::{
    auth::{ClusterTokens, TokenKey, hash_secret},
    config::{AuthConfig, Limits, MessagesConfig, RatesConfig, RoomsConfig, SocialConfig, WebhooksConfig},
    delivery::Delivery,
    metrics::Metrics,
    model::{AppId, AppQuotas, AppSettings, DeviceType},
    outbound::AddressPolicy,
    route::RouteRegistry,
    store::Store,
};

/// A business backend that proved it holds one of its app's secrets.
#[derive(Debug, Clone)]
pub struct AppCaller {
    pub app: AppId,
    pub settings: AppSettings,
}

/// A device that presented a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCaller {
    pub app: AppId,
    pub user_id: String,
    pub device_id: String,
    pub device_type: DeviceType,
}

/// Who calls an API that devices and business backends share (groups, friends,
/// moments): a user (a device, or a business acting as one) or the app itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCaller {
    pub app: AppId,
    pub actor: GroupActor,
    /// The device the caller speaks from, if any (its own pushes are skipped).
    pub device_id: Option<String>,
}

impl SharedCaller {
    fn user(&self) -> Option<&str> {
        match &self.actor {
            GroupActor::User(user) => Some(user),
            GroupActor::App => None,
        }
    }

    fn require_user(&self) -> Result<&str> {
        self.user().ok_or_else(|| {
            Error::invalid("this call acts for a user: a device token, or x-gim-acting-user with the app secret")
        })
    }
}

/// One page of a list, and whether more follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// What logic is built from.
pub struct LogicParts {
    pub store: Arc<dyn Store>,
    pub delivery: Arc<dyn Delivery>,
    pub routes: Arc<dyn RouteRegistry>,
    pub token_key: TokenKey,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub ids: IdGenerator,
    pub metrics: Arc<Metrics>,
    pub groups: GroupRules,
    pub social: SocialConfig,
    pub messages: MessagesConfig,
    pub rates: RatesConfig,
    pub webhooks: WebhooksConfig,
    /// Where webhook endpoints and before-send hooks may be.
    pub outbound: AddressPolicy,
    pub rooms: RoomsConfig,
    /// The cluster's credentials, when connect nodes call this node over the network.
    pub cluster: Option<ClusterTokens>,
    pub write_batch_max: usize,
    pub write_concurrency: usize,
}

/// The use cases, shared by every API handler of a process.
#[derive(Clone)]
pub struct Logic {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    delivery: Arc<dyn Delivery>,
    routes: Arc<dyn RouteRegistry>,
    tokens: tokens::Tokens,
    apps: apps::AppCache,
    limits: Limits,
    writer: writer::MessageWriter,
    /// Ids for the system messages of group changes (messages get theirs in the writer).
    ids: Arc<IdGenerator>,
    groups: GroupRules,
    social: SocialConfig,
    messages: MessagesConfig,
    presence: Arc<presence_events::PresenceWatch>,
    rates: rate::Rates,
    webhooks: WebhooksConfig,
    outbound: AddressPolicy,
    rooms: RoomsConfig,
    /// Posts to apps' before-send hooks.
    hooks: crate::webhooks::sender::Sender,
    metrics: Arc<Metrics>,
    known_users: users::KnownUsers,
    /// The deployment's limits of every app that sets none of its own.
    quota_defaults: AppQuotas,
    /// Hashes of the cluster's internal and on-behalf tokens.
    cluster: Option<(String, String)>,
    password_slots: tokio::sync::Semaphore,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.presence.close();
    }
}

impl std::fmt::Debug for Logic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logic").finish_non_exhaustive()
    }
}

impl Logic {
    /// Starts logic's background writer; must run inside a Tokio runtime.
    pub fn new(parts: LogicParts) -> Self {
        let ids = Arc::new(parts.ids);
        let committer = writer::Committer {
            store: parts.store.clone(),
            ids: ids.clone(),
            metrics: parts.metrics.clone(),
            delivery: parts.delivery.clone(),
        };
        let writer = writer::MessageWriter::start(committer, parts.write_batch_max, parts.write_concurrency);
        let presence =
            Arc::new(presence_events::PresenceWatch::new(Duration::from_millis(parts.social.presence_debounce_ms)));
        let quota_defaults = AppQuotas {
            business_calls_per_second: Some(parts.rates.app_calls_per_second),
            sends_per_second: Some(parts.rates.app_sends_per_second),
            max_webhook_endpoints: Some(u32::try_from(parts.webhooks.max_endpoints_per_app).unwrap_or(u32::MAX)),
        };
        let logic = Self {
            inner: Arc::new(Inner {
                tokens: tokens::Tokens::new(parts.token_key, &parts.auth),
                apps: apps::AppCache::new(parts.auth.app_cache_secs),
                password_slots: tokio::sync::Semaphore::new(parts.auth.password_hash_concurrency),
                store: parts.store,
                delivery: parts.delivery,
                routes: parts.routes,
                limits: parts.limits,
                writer,
                ids,
                groups: parts.groups,
                rates: rate::Rates::new(&parts.rates),
                social: parts.social,
                messages: parts.messages,
                hooks: crate::webhooks::sender::Sender::new(
                    Duration::from_millis(parts.webhooks.max_hook_timeout_ms),
                    parts.outbound.clone(),
                ),
                webhooks: parts.webhooks,
                outbound: parts.outbound,
                rooms: parts.rooms,
                metrics: parts.metrics,
                presence: presence.clone(),
                known_users: users::KnownUsers::new(),
                quota_defaults,
                cluster: parts.cluster.map(|tokens| (hash_secret(&tokens.internal), hash_secret(&tokens.on_behalf))),
            }),
        };
        tokio::spawn(presence_events::run(presence, Arc::downgrade(&logic.inner)));
        let sweep_every = logic.inner.routes.ttl() / 3;
        tokio::spawn(presence_events::sweep_dead_nodes(Arc::downgrade(&logic.inner), sweep_every));
        tokio::spawn(tidy_rates(Arc::downgrade(&logic.inner)));
        logic
    }

    /// A call a device made itself (not one connect makes for it): it counts against the
    /// device's and its user's rates.
    pub fn device_call(&self, caller: &DeviceCaller) -> Result<()> {
        self.inner.rates.device_call(caller.app, &caller.user_id, &caller.device_id)
    }

    /// A business call of the caller's app: it counts against the app's quota of calls.
    pub fn app_call(&self, caller: &AppCaller) -> Result<()> {
        let per_second = self.quotas(&caller.settings).business_calls_per_second.unwrap_or(0);
        let taken = self.inner.rates.app_call(caller.app, per_second);
        self.inner.metrics.app_used(caller.app, "business_call", taken.is_ok());
        taken
    }

    /// A message sent in `app` (by a device or the business): it counts against the app's
    /// quota of sends.
    async fn app_send(&self, app: AppId) -> Result<()> {
        let settings = self.app_settings(app).await?;
        let per_second = self.quotas(&settings).sends_per_second.unwrap_or(0);
        let taken = self.inner.rates.app_send(app, per_second);
        self.inner.metrics.app_used(app, "send", taken.is_ok());
        taken
    }

    /// Whether `presented` is this cluster's internal token (a node calling the internal API).
    pub fn is_internal(&self, presented: &str) -> bool {
        self.inner.cluster.as_ref().is_some_and(|(internal, _)| hash_secret(presented) == *internal)
    }

    /// Whether `presented` is this cluster's on-behalf token (connect calling for a device).
    pub fn is_on_behalf(&self, presented: &str) -> bool {
        self.inner.cluster.as_ref().is_some_and(|(_, on_behalf)| hash_secret(presented) == *on_behalf)
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// Reads one page of a list: `read` is asked for one more item than the page holds
    /// (`limit`, checked by `page_limit`), and that one only says that more follow.
    async fn page<T, F, Fut>(&self, limit: i32, read: F) -> Result<Page<T>>
    where
        F: FnOnce(u32) -> Fut,
        Fut: std::future::Future<Output = crate::store::StoreResult<Vec<T>>>,
    {
        let limit = self.page_limit(limit)?;
        let mut items = read(limit + 1).await?;
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(Page { items, has_more })
    }

    /// The `limit` of a paged call: 0 takes the default, anything outside 1..=max is refused.
    pub fn page_limit(&self, limit: i32) -> Result<u32> {
        let max = self.inner.limits.max_page_size;
        match limit {
            0 => Ok(self.inner.limits.default_page_size),
            1.. if limit as u32 <= max => Ok(limit as u32),
            _ => Err(Error::invalid(format!("limit must be between 1 and {max} (0 for the default), got {limit}"))),
        }
    }
}

/// Drops rate buckets that are full again, for as long as logic lives.
async fn tidy_rates(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(rate::TIDY_EVERY).await;
        let Some(inner) = inner.upgrade() else { return };
        inner.rates.tidy();
    }
}
