use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;

use super::{Registration, Route, RouteError, RouteRegistry, decode, encode};
use crate::model::{AppId, now_ms};

type UserKey = (AppId, String);

/// Routes in this process's memory: for `gim serve`, where connect and logic share a
/// process. Behaves like the Redis registry, expiry included.
#[derive(Debug)]
pub struct MemoryRegistry {
    routes: Mutex<HashMap<UserKey, HashMap<String, String>>>,
    /// Live nodes and when their announcement expires.
    nodes: Mutex<HashMap<String, i64>>,
    /// Presence last announced, for users who are online.
    presence: Mutex<HashMap<UserKey, String>>,
    ttl: Duration,
}

impl MemoryRegistry {
    pub fn new(ttl: Duration) -> Self {
        Self {
            routes: Mutex::new(HashMap::new()),
            nodes: Mutex::new(HashMap::new()),
            presence: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn expires_at(&self) -> i64 {
        now_ms() + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

fn node_of(value: &str) -> &str {
    value.split('|').next().unwrap_or_default()
}

#[async_trait]
impl RouteRegistry for MemoryRegistry {
    async fn register(&self, route: &Registration, node: &str) -> Result<Option<String>, RouteError> {
        let value = encode(node, route.device_type, self.expires_at());
        let mut routes = self.routes.lock().expect("route lock");
        let devices = routes.entry((route.app, route.user_id.clone())).or_default();
        let now = now_ms();
        devices.retain(|device, value| decode(device, value, now).is_some());
        let previous = devices.insert(route.device_id.clone(), value);
        Ok(previous.map(|v| node_of(&v).to_owned()).filter(|previous| previous != node))
    }

    async fn renew(&self, routes: &[Registration], node: &str) -> Result<(), RouteError> {
        let expires_at = self.expires_at();
        let mut stored = self.routes.lock().expect("route lock");
        for route in routes {
            let devices = stored.entry((route.app, route.user_id.clone())).or_default();
            let ours = devices.get(&route.device_id).is_none_or(|value| node_of(value) == node);
            if ours {
                devices.insert(route.device_id.clone(), encode(node, route.device_type, expires_at));
            }
        }
        Ok(())
    }

    async fn unregister(&self, route: &Registration, node: &str) -> Result<bool, RouteError> {
        let mut routes = self.routes.lock().expect("route lock");
        let key = (route.app, route.user_id.clone());
        let Some(devices) = routes.get_mut(&key) else { return Ok(false) };
        let ours = devices.get(&route.device_id).is_some_and(|value| node_of(value) == node);
        if ours {
            devices.remove(&route.device_id);
            if devices.is_empty() {
                routes.remove(&key);
            }
        }
        Ok(ours)
    }

    async fn lookup(&self, app: AppId, users: &[String]) -> Result<HashMap<String, Vec<Route>>, RouteError> {
        let routes = self.routes.lock().expect("route lock");
        let now = now_ms();
        let mut found = HashMap::new();
        for user in users {
            let Some(devices) = routes.get(&(app, user.clone())) else { continue };
            let live: Vec<Route> = devices.iter().filter_map(|(device, value)| decode(device, value, now)).collect();
            if !live.is_empty() {
                found.insert(user.clone(), live);
            }
        }
        Ok(found)
    }

    async fn announce_node(&self, node: &str) -> Result<(), RouteError> {
        self.nodes.lock().expect("node lock").insert(node.to_owned(), self.expires_at());
        Ok(())
    }

    async fn retire_node(&self, node: &str) -> Result<(), RouteError> {
        self.nodes.lock().expect("node lock").remove(node);
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<String>, RouteError> {
        let now = now_ms();
        let mut nodes = self.nodes.lock().expect("node lock");
        nodes.retain(|_, expires| *expires > now);
        Ok(nodes.keys().cloned().collect())
    }

    async fn swap_presence(&self, app: AppId, user: &str, state: Option<&str>) -> Result<Option<String>, RouteError> {
        let mut presence = self.presence.lock().expect("presence lock");
        let key = (app, user.to_owned());
        Ok(match state {
            Some(state) => presence.insert(key, state.to_owned()),
            None => presence.remove(&key),
        })
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}
