//! The composition root of logic: builds the kernel that contexts share (the apps'
//! directory, rates, ids, the message writer, moderation) and each context over the
//! store, the push path and the route registry, with the configuration each one uses.

use std::{sync::Arc, time::Duration};

use super::{ServerError, token_key};
use crate::{
    auth::ClusterTokens,
    config::{Config, Limits},
    delivery::Delivery,
    logic::{
        Accounts, AccountsParts, AppAdmin, Conversations, GroupRules, Groups, Integrations, Messaging, MessagingParts,
        Rooms, RoomsParts, Services, Social, SocialParts, Tokens,
        kernel::{
            directory::AppDirectory,
            ids::IdGenerator,
            moderation::Moderation,
            rate::{Rates, TIDY_EVERY},
            writer::{Committer, MessageWriter},
        },
    },
    metrics::Metrics,
    model::AppQuotas,
    outbound::AddressPolicy,
    route::RouteRegistry,
    store::SqlStore,
    webhooks::sender::Sender,
};

/// Builds every context of logic on an open store, and starts what runs beside them (the
/// message writer's lanes, the presence watch, the tidying of rates); must run inside a
/// Tokio runtime. `cluster`: the cluster's credentials, when connect nodes call this node
/// over the network.
pub fn build_services(
    config: &Config,
    store: Arc<SqlStore>,
    ids: IdGenerator,
    delivery: Arc<dyn Delivery>,
    routes: Arc<dyn RouteRegistry>,
    metrics: Arc<Metrics>,
    cluster: Option<&ClusterTokens>,
) -> Result<Services, ServerError> {
    let kernel = Kernel::build(config, &store, ids, &delivery, &metrics)?;
    let accounts = Accounts::new(AccountsParts {
        store: store.clone(),
        directory: kernel.directory.clone(),
        rates: kernel.rates.clone(),
        tokens: Tokens::new(token_key(config)?, &config.auth),
        delivery: delivery.clone(),
        limits: kernel.limits.clone(),
        password_hash_concurrency: config.auth.password_hash_concurrency,
        cluster: cluster.cloned(),
    });
    let messaging = Messaging::new(MessagingParts {
        store: store.clone(),
        writer: kernel.writer.clone(),
        directory: kernel.directory.clone(),
        moderation: kernel.moderation.clone(),
        delivery: delivery.clone(),
        ids: kernel.ids.clone(),
        rates: kernel.rates.clone(),
        limits: kernel.limits.clone(),
        messages: config.messages.clone(),
    });
    let group_rules =
        GroupRules { max_members: config.groups.max_members, large_threshold: config.groups.large_threshold };
    let groups = Groups::new(store.clone(), kernel.ids.clone(), delivery.clone(), kernel.limits.clone(), group_rules);
    let social = Social::start(SocialParts {
        store: store.clone(),
        ids: kernel.ids.clone(),
        delivery: delivery.clone(),
        routes: routes.clone(),
        directory: kernel.directory.clone(),
        rates: kernel.rates.clone(),
        limits: kernel.limits.clone(),
        social: config.social.clone(),
    });
    let rooms = Rooms::new(RoomsParts {
        routes,
        delivery: delivery.clone(),
        moderation: kernel.moderation.clone(),
        directory: kernel.directory.clone(),
        limits: kernel.limits.clone(),
        rooms: config.rooms.clone(),
        metrics,
    });
    let Kernel { limits, directory, outbound, writer, .. } = kernel;
    let hook_timeout_ms = config.webhooks.max_hook_timeout_ms;
    let apps = AppAdmin::new(store.clone(), directory.clone(), limits.clone(), hook_timeout_ms, outbound.clone());
    let integrations =
        Integrations::new(store.clone(), directory.clone(), limits.clone(), config.webhooks.clone(), outbound);
    Ok(Services {
        apps: Arc::new(apps),
        accounts: Arc::new(accounts),
        messaging: Arc::new(messaging),
        conversations: Arc::new(Conversations::new(store, writer, delivery, limits.clone())),
        groups: Arc::new(groups),
        social,
        rooms: Arc::new(rooms),
        integrations: Arc::new(integrations),
        directory,
        limits,
    })
}

/// What the contexts share.
struct Kernel {
    limits: Arc<Limits>,
    ids: Arc<IdGenerator>,
    rates: Arc<Rates>,
    directory: AppDirectory,
    outbound: AddressPolicy,
    writer: MessageWriter,
    moderation: Arc<Moderation>,
}

impl Kernel {
    fn build(
        config: &Config,
        store: &Arc<SqlStore>,
        ids: IdGenerator,
        delivery: &Arc<dyn Delivery>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, ServerError> {
        let limits = Arc::new(config.limits.clone());
        let ids = Arc::new(ids);
        let rates = Arc::new(Rates::new(&config.rates));
        tokio::spawn(tidy_rates(Arc::downgrade(&rates)));
        let quota_defaults = AppQuotas {
            business_calls_per_second: Some(config.rates.app_calls_per_second),
            sends_per_second: Some(config.rates.app_sends_per_second),
            max_webhook_endpoints: Some(u32::try_from(config.webhooks.max_endpoints_per_app).unwrap_or(u32::MAX)),
        };
        let cache_secs = config.auth.app_cache_secs;
        let directory = AppDirectory::new(store.clone(), cache_secs, quota_defaults, rates.clone(), metrics.clone());
        let outbound = config.outbound.policy()?;
        // SQLite has one writer; more transactions in flight would only queue.
        let sqlite = store.dialect() == crate::store::Dialect::Sqlite;
        let concurrency = if sqlite { 1 } else { config.logic.write_concurrency };
        let committer =
            Committer { store: store.clone(), ids: ids.clone(), metrics: metrics.clone(), delivery: delivery.clone() };
        let writer = MessageWriter::start(committer, config.logic.write_batch_max, concurrency);
        let moderation = Arc::new(Moderation {
            directory: directory.clone(),
            groups: store.clone(),
            client: Sender::new(Duration::from_millis(config.webhooks.max_hook_timeout_ms), outbound.clone()),
            metrics: metrics.clone(),
            limits: limits.clone(),
        });
        Ok(Self { limits, ids, rates, directory, outbound, writer, moderation })
    }
}

/// Drops rate buckets that are full again, for as long as the rates are used.
async fn tidy_rates(rates: std::sync::Weak<Rates>) {
    loop {
        tokio::time::sleep(TIDY_EVERY).await;
        let Some(rates) = rates.upgrade() else { return };
        rates.tidy();
    }
}
