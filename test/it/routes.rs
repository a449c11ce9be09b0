//! The route registry, on Redis and in memory: the same behaviour from both.

use std::time::Duration;

use gim::{
    model::DeviceType,
    route::{MemoryRegistry, RedisRegistry, Registration, RouteRegistry},
};

use crate::support::{Server, servers_missing};

const TTL: Duration = Duration::from_millis(600);

fn route(user: &str, device: &str) -> Registration {
    Registration { app: 1, user_id: user.into(), device_id: device.into(), device_type: DeviceType::Ios }
}

/// Both registries, or only the one in memory when Redis is not configured.
async fn registries() -> Vec<(&'static str, Box<dyn RouteRegistry>)> {
    let mut registries: Vec<(&'static str, Box<dyn RouteRegistry>)> =
        vec![("memory", Box::new(MemoryRegistry::new(TTL)))];
    if !servers_missing(&[Server::Redis]) {
        let url = Server::Redis.url().expect("checked above");
        let prefix = format!("gimtest{}", rand::random::<u32>());
        let redis = RedisRegistry::connect(&url, &prefix, TTL).await.expect("connecting to Redis");
        registries.push(("redis", Box::new(redis)));
    }
    registries
}

async fn devices(registry: &dyn RouteRegistry, user: &str) -> Vec<(String, String)> {
    let found = registry.lookup(1, &[user.to_owned()]).await.unwrap();
    let mut devices: Vec<(String, String)> =
        found.get(user).into_iter().flatten().map(|r| (r.device_id.clone(), r.node.clone())).collect();
    devices.sort();
    devices
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_move_between_nodes_and_are_removed_only_by_their_node() {
    for (name, registry) in registries().await {
        let registry = registry.as_ref();
        assert_eq!(registry.register(&route("alice", "phone"), "node-1").await.unwrap(), None, "{name}");
        registry.register(&route("alice", "laptop"), "node-1").await.unwrap();
        assert_eq!(devices(registry, "alice").await, pairs(&[("laptop", "node-1"), ("phone", "node-1")]), "{name}");

        // The phone reconnects to node 2 before node 1 notices it left.
        let previous = registry.register(&route("alice", "phone"), "node-2").await.unwrap();
        assert_eq!(previous.as_deref(), Some("node-1"), "{name}: the old node is reported");
        assert!(!registry.unregister(&route("alice", "phone"), "node-1").await.unwrap(), "{name}");
        assert_eq!(devices(registry, "alice").await, pairs(&[("laptop", "node-1"), ("phone", "node-2")]), "{name}");
        assert!(registry.unregister(&route("alice", "phone"), "node-2").await.unwrap(), "{name}");
        assert_eq!(devices(registry, "alice").await, pairs(&[("laptop", "node-1")]), "{name}");
        assert!(devices(registry, "nobody").await.is_empty(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_expire_unless_their_node_renews_them() {
    for (name, registry) in registries().await {
        let registry = registry.as_ref();
        registry.register(&route("bob", "kept"), "node-1").await.unwrap();
        registry.register(&route("bob", "dropped"), "node-1").await.unwrap();
        registry.register(&route("bob", "taken"), "node-1").await.unwrap();
        registry.register(&route("bob", "taken"), "node-2").await.unwrap();
        for _ in 0..4 {
            tokio::time::sleep(TTL / 3).await;
            // node 1 renews what it holds: "kept", and "taken" which node 2 now has.
            registry.renew(&[route("bob", "kept"), route("bob", "taken")], "node-1").await.unwrap();
        }
        assert_eq!(devices(registry, "bob").await, pairs(&[("kept", "node-1")]), "{name}");

        // A renewal puts back a route that expired (the session lives on).
        tokio::time::sleep(TTL * 2).await;
        assert!(devices(registry, "bob").await.is_empty(), "{name}");
        registry.renew(&[route("bob", "kept")], "node-1").await.unwrap();
        assert_eq!(devices(registry, "bob").await, pairs(&[("kept", "node-1")]), "{name}");
    }
}
