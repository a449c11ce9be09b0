//! Presence events: connect reports users whose sessions opened or closed; once a
//! report has settled (`social.presence_debounce_ms`), logic reads the user's routes,
//! and if the state differs from the one last announced (kept in the route registry,
//! shared by all logic nodes) tells the user's online friends. A connection that drops
//! and comes back within the settling time announces nothing.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::Social;
use crate::{
    delivery::Push,
    frames,
    logic::{Error, Result, kernel::validate},
    model::{AppId, DeviceType},
    proto::client::v1::{PresenceEvent, event_push::Event},
    route::Route,
};

type UserKey = (AppId, String);

/// Users waiting for their presence to settle.
pub(super) struct PresenceWatch {
    pending: Mutex<Pending>,
    wake: Notify,
    debounce: Duration,
    closed: AtomicBool,
}

#[derive(Default)]
struct Pending {
    queued: HashSet<UserKey>,
    /// In report order, which is also due order: every report waits the same time.
    due: VecDeque<(Instant, UserKey)>,
}

impl PresenceWatch {
    pub(super) fn new(debounce: Duration) -> Self {
        Self { pending: Mutex::default(), wake: Notify::new(), debounce, closed: AtomicBool::new(false) }
    }

    /// Queues users for a check once the settling time has passed; a user already
    /// queued keeps its place.
    pub(super) fn changed(&self, users: impl IntoIterator<Item = UserKey>) {
        let due_at = Instant::now() + self.debounce;
        let mut pending = self.pending.lock().expect("presence lock");
        for user in users {
            if pending.queued.insert(user.clone()) {
                pending.due.push_back((due_at, user));
            }
        }
        drop(pending);
        self.wake.notify_one();
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits for the users whose settling time is over; `None` once closed.
    async fn next_due(&self) -> Option<Vec<UserKey>> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            let wait_until = {
                let mut pending = self.pending.lock().expect("presence lock");
                let now = Instant::now();
                let mut ready = Vec::new();
                while pending.due.front().is_some_and(|(at, _)| *at <= now) {
                    if let Some((_, user)) = pending.due.pop_front() {
                        pending.queued.remove(&user);
                        ready.push(user);
                    }
                }
                if !ready.is_empty() {
                    return Some(ready);
                }
                pending.due.front().map(|(at, _)| *at)
            };
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

/// The state friends are told of: the kinds of device the user is online on, as
/// `1,3`; `None` when offline.
fn state_of(routes: &[Route]) -> Option<String> {
    let mut types: Vec<i32> = routes.iter().map(|route| route.device_type as i32).collect();
    types.sort_unstable();
    types.dedup();
    (!types.is_empty()).then(|| types.iter().map(i32::to_string).collect::<Vec<_>>().join(","))
}

fn device_types(state: &Option<String>) -> Vec<i32> {
    let Some(state) = state else { return Vec::new() };
    state.split(',').filter_map(|t| t.parse().ok()).filter(|t| DeviceType::try_from(*t).is_ok()).collect()
}

/// Runs until the social context is dropped: checks settled users and announces changes.
pub(super) async fn run(watch: std::sync::Arc<PresenceWatch>, social: std::sync::Weak<Social>) {
    while let Some(users) = watch.next_due().await {
        let Some(social) = social.upgrade() else { return };
        social.announce(users).await;
    }
}

/// Runs until the social context is dropped: every third of the route ttl, takes the
/// connect nodes that died without taking themselves off the live list, drops their
/// routes, and looks at their users' presence again (their friends and webhooks hear
/// they went offline).
pub(super) async fn sweep_dead_nodes(social: std::sync::Weak<Social>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(social) = social.upgrade() else { return };
        social.forget_dead_nodes().await;
    }
}

impl Social {
    /// The online devices of each user, in request order (empty: offline).
    pub async fn presence(&self, app: AppId, user_ids: &[String]) -> Result<Vec<(String, Vec<Route>)>> {
        validate::ids("user_ids", user_ids, self.limits.max_page_size as usize, false)?;
        let mut routes = self
            .routes
            .lookup(app, user_ids)
            .await
            .map_err(|err| Error::Unavailable(format!("presence is unavailable: {err}")))?;
        Ok(user_ids.iter().map(|user| (user.clone(), routes.remove(user).unwrap_or_default())).collect())
    }

    async fn forget_dead_nodes(&self) {
        let routes = &self.routes;
        let dead = match routes.claim_dead_nodes().await {
            Ok(dead) => dead,
            Err(err) => {
                tracing::warn!(error = %err, "could not look for dead connect nodes; trying again later");
                return;
            }
        };
        for node in dead {
            match routes.forget_node(&node).await {
                Ok(users) => {
                    tracing::warn!(
                        node,
                        users = users.len(),
                        "a connect node stopped renewing its routes: they are dropped"
                    );
                    self.sessions_changed(users);
                }
                Err(err) => tracing::warn!(node, error = %err, "could not drop a dead connect node's routes"),
            }
        }
    }

    /// Users whose sessions opened or closed somewhere (reported by connect).
    pub fn sessions_changed(&self, users: Vec<(AppId, String)>) {
        self.presence_watch.changed(users);
    }

    async fn announce(&self, users: Vec<UserKey>) {
        let mut by_app: BTreeMap<AppId, Vec<String>> = BTreeMap::new();
        for (app, user) in users {
            by_app.entry(app).or_default().push(user);
        }
        for (app, users) in by_app {
            if let Err(err) = self.announce_app(app, &users).await {
                tracing::warn!(app, users = users.len(), error = %err, "announcing presence changes failed");
            }
        }
    }

    async fn announce_app(&self, app: AppId, users: &[String]) -> Result<()> {
        let unavailable = |err: crate::route::RouteError| Error::Unavailable(err.to_string());
        let mut routes = self.routes.lookup(app, users).await.map_err(unavailable)?;
        let enabled = !self.directory.settings(app).await?.presence_events_disabled;
        for user in users {
            let routes_of_user = routes.remove(user).unwrap_or_default();
            let state = state_of(&routes_of_user);
            let previous = self.routes.swap_presence(app, user, state.as_deref()).await.map_err(unavailable)?;
            if previous.is_some() != state.is_some() {
                self.record_presence(app, user, state.is_some(), &routes_of_user).await;
            }
            if previous == state || !enabled {
                continue;
            }
            let friends = self.store.friend_ids(app, user).await?;
            if friends.is_empty() {
                continue;
            }
            let event =
                PresenceEvent { user_id: user.clone(), online: state.is_some(), device_types: device_types(&state) };
            let frame = frames::event(Event::Presence(event));
            self.delivery.deliver(vec![Push { app, users: friends, group: None, skip: None, seq: 0, frame }]);
        }
        Ok(())
    }

    /// Tells the app's webhooks that a user came online or went offline. The change is
    /// not the database's: the event is written on its own, after it.
    async fn record_presence(&self, app: AppId, user: &str, online: bool, routes: &[Route]) {
        let devices: Vec<(String, DeviceType)> = routes.iter().map(|r| (r.device_id.clone(), r.device_type)).collect();
        let now = crate::model::now_ms();
        let event = crate::webhooks::events::presence(app, user, online, &devices, now);
        if let Err(err) = self.store.record_events(app, &[event], now).await {
            tracing::warn!(app, user, error = %err, "recording a presence webhook event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lists_each_kind_of_device_once() {
        let route = |device_type| Route { device_id: "d".into(), device_type, node: "n".into() };
        let state = state_of(&[route(DeviceType::Web), route(DeviceType::Ios), route(DeviceType::Web)]);
        assert_eq!(device_types(&state), vec![DeviceType::Ios as i32, DeviceType::Web as i32]);
        assert_eq!(state_of(&[]), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_is_checked_once_after_settling() {
        let watch = PresenceWatch::new(Duration::from_secs(3));
        watch.changed([(1, "ann".to_owned())]);
        tokio::time::advance(Duration::from_secs(1)).await;
        watch.changed([(1, "ann".to_owned()), (1, "bob".to_owned())]);
        let started = Instant::now();
        assert_eq!(watch.next_due().await, Some(vec![(1, "ann".to_owned())]));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(watch.next_due().await, Some(vec![(1, "bob".to_owned())]));
        watch.close();
        assert_eq!(watch.next_due().await, None);
    }
}
