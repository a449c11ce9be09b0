//! Friends (requests, the friend list, remarks, blocks), moments (posts with five kinds of
//! visibility, a feed, likes and comments), the notices they write, and presence: who is
//! online, and telling friends when that changes.

mod friends;
mod moments;
mod notices;
mod presence;

use std::{sync::Arc, time::Duration};

pub use friends::WithProfile;
pub use moments::{PostInput, PostView, PostsPage};

use crate::{
    config::{Limits, SocialConfig},
    delivery::Delivery,
    logic::kernel::{directory::AppDirectory, ids::IdGenerator, rate::Rates},
    route::RouteRegistry,
    store::{FriendStore, MomentStore, UserStore, WebhookStore},
};

/// What the social context reads and writes.
pub trait SocialStore: FriendStore + MomentStore + UserStore + WebhookStore {}

impl<T: FriendStore + MomentStore + UserStore + WebhookStore + ?Sized> SocialStore for T {}

/// The use cases of friends, moments and presence.
pub struct Social {
    store: Arc<dyn SocialStore>,
    /// Ids of the notices changes write.
    ids: Arc<IdGenerator>,
    delivery: Arc<dyn Delivery>,
    /// Where users are online, and the presence last announced.
    routes: Arc<dyn RouteRegistry>,
    directory: AppDirectory,
    /// Friend requests' and moments' rates.
    rates: Arc<Rates>,
    limits: Arc<Limits>,
    social: SocialConfig,
    presence_watch: Arc<presence::PresenceWatch>,
}

impl std::fmt::Debug for Social {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Social").finish_non_exhaustive()
    }
}

impl Drop for Social {
    fn drop(&mut self) {
        self.presence_watch.close();
    }
}

/// What `Social` is built from.
pub struct SocialParts {
    pub store: Arc<dyn SocialStore>,
    pub ids: Arc<IdGenerator>,
    pub delivery: Arc<dyn Delivery>,
    pub routes: Arc<dyn RouteRegistry>,
    pub directory: AppDirectory,
    pub rates: Arc<Rates>,
    pub limits: Arc<Limits>,
    pub social: SocialConfig,
}

impl Social {
    /// Starts the watch of presence changes and the sweep of dead connect nodes, for as
    /// long as the context lives; must run inside a Tokio runtime.
    pub fn start(parts: SocialParts) -> Arc<Self> {
        let watch = Arc::new(presence::PresenceWatch::new(Duration::from_millis(parts.social.presence_debounce_ms)));
        let sweep_every = parts.routes.ttl() / 3;
        let social = Arc::new(Self {
            store: parts.store,
            ids: parts.ids,
            delivery: parts.delivery,
            routes: parts.routes,
            directory: parts.directory,
            rates: parts.rates,
            limits: parts.limits,
            social: parts.social,
            presence_watch: watch.clone(),
        });
        tokio::spawn(presence::run(watch, Arc::downgrade(&social)));
        tokio::spawn(presence::sweep_dead_nodes(Arc::downgrade(&social), sweep_every));
        social
    }
}
