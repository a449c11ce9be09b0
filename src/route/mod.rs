//! The route registry: which connect node holds each online device's session. Connect
//! nodes write it, logic reads it to deliver and to answer presence queries. Routes
//! carry an expiry that connect renews while the session lives, so a node that dies
//! leaves nothing behind for long.

mod memory;
mod redis;
mod rooms;

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;

pub use self::{
    memory::MemoryRegistry,
    redis::RedisRegistry,
    rooms::{Numbering, Published, REPEAT_WINDOW_MS, RoomCount, RoomRegistry, RoomState},
};
use crate::model::{AppId, DeviceType};

/// One online device of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub device_id: String,
    pub device_type: DeviceType,
    /// The internal address of the connect node holding the session.
    pub node: String,
}

/// A device's session on a node, as connect registers and renews it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub app: AppId,
    pub user_id: String,
    pub device_id: String,
    pub device_type: DeviceType,
}

#[derive(Debug, thiserror::Error)]
#[error("route registry: {0}")]
pub struct RouteError(pub String);

/// Routes, live nodes, presence and live rooms: what the nodes of a cluster share
/// without storing it.
#[async_trait]
pub trait RouteRegistry: RoomRegistry + Send + Sync + 'static {
    /// Points the device at `node`; returns the node it pointed at before, if another.
    async fn register(&self, route: &Registration, node: &str) -> Result<Option<String>, RouteError>;
    /// Extends the routes that still point at `node`, and puts back any that expired or
    /// were dropped (the node stalled longer than the ttl); returns the users of those
    /// put back, whose presence changed again.
    async fn renew(&self, routes: &[Registration], node: &str) -> Result<Vec<(AppId, String)>, RouteError>;
    /// Removes the route only if it still points at `node`: a device that reconnected
    /// to another node keeps its new route.
    async fn unregister(&self, route: &Registration, node: &str) -> Result<bool, RouteError>;
    /// The live routes of each user that has any.
    async fn lookup(&self, app: AppId, users: &[String]) -> Result<HashMap<String, Vec<Route>>, RouteError>;
    /// Marks a connect node live for another `ttl`: large-group pushes go to every live node.
    async fn announce_node(&self, node: &str) -> Result<(), RouteError>;
    /// Takes a node off the live list (at shutdown).
    async fn retire_node(&self, node: &str) -> Result<(), RouteError>;
    /// The connect nodes announced within their `ttl`.
    async fn nodes(&self) -> Result<Vec<String>, RouteError>;
    /// Takes off the live list the nodes whose announcement ran out (killed, or cut
    /// off) and returns them, each to one caller, which has a `ttl` to forget it; a node
    /// not forgotten by then (its caller died) is returned again.
    async fn claim_dead_nodes(&self) -> Result<Vec<String>, RouteError>;
    /// Drops the routes that point at `node` and expire within a `ttl` (those written
    /// before now) and returns their users, and ends the node's claim: the node is dead,
    /// or starting again under the same name, and none of those sessions is open.
    async fn forget_node(&self, node: &str) -> Result<Vec<(AppId, String)>, RouteError>;
    /// Records the presence last announced to a user's friends (`None`: offline) and
    /// returns the one recorded before: of several nodes announcing at once, one sees
    /// the change.
    async fn swap_presence(&self, app: AppId, user: &str, state: Option<&str>) -> Result<Option<String>, RouteError>;
    /// How long a route lives without renewal.
    fn ttl(&self) -> Duration;
}

/// The stored form of a route: `node|device type|expires at (ms)`.
fn encode(node: &str, device_type: DeviceType, expires_at_ms: i64) -> String {
    format!("{node}|{}|{expires_at_ms}", device_type as i32)
}

/// A stored route that has not expired at `now_ms`.
fn decode(device_id: &str, value: &str, now_ms: i64) -> Option<Route> {
    let (rest, expires) = value.rsplit_once('|')?;
    let (node, device_type) = rest.rsplit_once('|')?;
    if expires.parse::<i64>().ok()? <= now_ms {
        return None;
    }
    let device_type = device_type.parse::<i32>().ok().and_then(|t| DeviceType::try_from(t).ok()).unwrap_or_default();
    Some(Route { device_id: device_id.to_owned(), device_type, node: node.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_route_reads_back_until_it_expires() {
        let value = encode("10.0.0.1:7090", DeviceType::Ios, 1_000);
        let route = decode("phone", &value, 999).unwrap();
        assert_eq!(
            route,
            Route { device_id: "phone".into(), device_type: DeviceType::Ios, node: "10.0.0.1:7090".into() }
        );
        assert_eq!(decode("phone", &value, 1_000), None);
        assert_eq!(decode("phone", "garbage", 0), None);
    }
}
