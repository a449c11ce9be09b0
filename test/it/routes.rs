//! The route registry, on Redis and in memory: the same behaviour from both.

use std::time::Duration;

use gim::{
    model::DeviceType,
    route::{MemoryRegistry, Numbering, Published, RedisRegistry, Registration, RouteRegistry},
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

        // A renewal puts back a route that expired (the session lives on), and says so.
        tokio::time::sleep(TTL * 2).await;
        assert!(devices(registry, "bob").await.is_empty(), "{name}");
        let back = registry.renew(&[route("bob", "kept")], "node-1").await.unwrap();
        assert_eq!(back, [(1, "bob".to_owned())], "{name}: bob is online again");
        assert_eq!(devices(registry, "bob").await, pairs(&[("kept", "node-1")]), "{name}");
        assert_eq!(registry.renew(&[route("bob", "kept")], "node-1").await.unwrap(), [], "{name}: still live");
    }
}

/// A connect node killed unseen: one caller claims it once its announcement runs out,
/// and forgetting it drops exactly its routes and names their users (of every app).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_claimed_once_and_its_routes_are_dropped() {
    for (name, registry) in registries().await {
        let registry = registry.as_ref();
        let other_app = Registration { app: 2, ..route("alice|x", "phone") };
        registry.announce_node("node-1").await.unwrap();
        registry.announce_node("node-2").await.unwrap();
        registry.register(&route("alice", "phone"), "node-1").await.unwrap();
        registry.register(&route("bob", "phone"), "node-1").await.unwrap();
        registry.register(&route("bob", "laptop"), "node-2").await.unwrap();
        registry.register(&other_app, "node-1").await.unwrap();
        assert_eq!(registry.claim_dead_nodes().await.unwrap(), Vec::<String>::new(), "{name}: all live");

        // Node 2 keeps announcing and renewing; node 1 is gone.
        let node_2_lives_on = async || {
            for _ in 0..4 {
                tokio::time::sleep(TTL / 3).await;
                registry.announce_node("node-2").await.unwrap();
                registry.renew(&[route("bob", "laptop")], "node-2").await.unwrap();
            }
        };
        node_2_lives_on().await;
        assert_eq!(registry.nodes().await.unwrap(), ["node-2"], "{name}");
        assert_eq!(registry.claim_dead_nodes().await.unwrap(), ["node-1"], "{name}");
        assert_eq!(registry.claim_dead_nodes().await.unwrap(), Vec::<String>::new(), "{name}: claimed once");
        // Its claimer died before forgetting it: once the claim runs out, it is claimed again.
        node_2_lives_on().await;
        assert_eq!(registry.claim_dead_nodes().await.unwrap(), ["node-1"], "{name}: claimed again");

        let mut users = registry.forget_node("node-1").await.unwrap();
        users.sort();
        let expected = vec![(1, "alice".to_owned()), (1, "bob".to_owned()), (2, "alice|x".to_owned())];
        assert_eq!(users, expected, "{name}");
        assert_eq!(devices(registry, "bob").await, pairs(&[("laptop", "node-2")]), "{name}: node 2's route stays");
        assert_eq!(registry.forget_node("node-1").await.unwrap(), [], "{name}: nothing left");
        node_2_lives_on().await;
        assert_eq!(registry.claim_dead_nodes().await.unwrap(), Vec::<String>::new(), "{name}: forgotten, not claimed");

        // Node 1 was only stalled: its next renewal puts alice back and names her.
        let back = registry.renew(&[route("alice", "phone")], "node-1").await.unwrap();
        assert_eq!(back, [(1, "alice".to_owned())], "{name}");
        assert_eq!(devices(registry, "alice").await, pairs(&[("phone", "node-1")]), "{name}");
    }
}

/// A message without a client id, counted against `per_second` (0: not counted).
fn counted_at(per_second: u32) -> Numbering<'static> {
    Numbering { per_second, once: None, sent_at_ms: gim::model::now_ms() }
}

fn once(sender_and_id: (&'static str, &'static str)) -> Numbering<'static> {
    Numbering { per_second: 0, once: Some(sender_and_id), sent_at_ms: gim::model::now_ms() }
}

fn counted(app: u64, room: &str, members: u64) -> gim::route::RoomCount {
    gim::route::RoomCount { app, room: room.into(), members }
}

/// Live rooms in the registry: nodes and counts, seqs within the rate, the kept
/// messages, a close, entries that expire, and apps kept apart; the same from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_list_their_nodes_count_their_members_and_number_their_messages() {
    use bytes::Bytes;
    for (name, registry) in registries().await {
        let registry = registry.as_ref();
        // Starts a second, for the rate below.
        tokio::time::sleep(Duration::from_millis(1010 - (gim::model::now_ms() % 1000) as u64)).await;
        registry.report_rooms("node-1", &[counted(1, "live", 3), counted(1, "other", 1)]).await.unwrap();
        registry.report_rooms("node-2", &[counted(1, "live", 2)]).await.unwrap();
        let room = registry.room(1, "live").await.unwrap();
        let mut nodes = room.nodes.clone();
        nodes.sort();
        assert_eq!((room.members, room.last_seq, nodes), (5, 0, vec!["node-1".into(), "node-2".into()]), "{name}");
        assert_eq!(registry.room(2, "live").await.unwrap().members, 0, "{name}: another app's room");

        // Seqs, and the rate: 2 counted messages a second (this started a second, so the
        // three calls fall in one); uncounted ones pass.
        let seq = |published: Option<Published>| published.map(|p| p.seq());
        let first = registry.publish(1, "live", counted_at(2)).await.unwrap();
        let Some(Published::New { seq: 1, nodes }) = first else { panic!("{name}: {first:?}") };
        assert_eq!(nodes.len(), 2, "{name}");
        assert_eq!(seq(registry.publish(1, "live", counted_at(2)).await.unwrap()), Some(2), "{name}");
        assert_eq!(registry.publish(1, "live", counted_at(2)).await.unwrap(), None, "{name}: over, no seq taken");
        assert_eq!(seq(registry.publish(1, "live", counted_at(0)).await.unwrap()), Some(3), "{name}: not counted");

        // A sender's client_msg_id is numbered once; the same id of another sender (or of
        // the business, sender "") is another message.
        let ann = registry.publish(1, "live", once(("ann", "c1"))).await.unwrap();
        assert_eq!(seq(ann.clone()), Some(4), "{name}");
        let again = registry.publish(1, "live", once(("ann", "c1"))).await.unwrap();
        let Some(Published::Repeat { seq: 4, sent_at_ms }) = again else { panic!("{name}: {again:?}") };
        assert!(sent_at_ms > 0, "{name}: the first one's time");
        assert_eq!(seq(registry.publish(1, "live", once(("bob", "c1"))).await.unwrap()), Some(5), "{name}");
        assert_eq!(seq(registry.publish(1, "live", once(("", "c1"))).await.unwrap()), Some(6), "{name}");
        assert_eq!(seq(registry.publish(1, "other", once(("ann", "c1"))).await.unwrap()), Some(1), "{name}");
        assert_eq!(seq(registry.publish(1, "live", counted_at(0)).await.unwrap()), Some(7), "{name}");

        // The last `keep` messages, oldest first.
        for seq in 1..=4u64 {
            registry.remember(1, "live", seq, &Bytes::from(vec![seq as u8]), 3).await.unwrap();
        }
        let kept: Vec<u64> = registry.replay(1, "live").await.unwrap().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(kept, [2, 3, 4], "{name}");
        assert_eq!(registry.replay(1, "other").await.unwrap(), [], "{name}");

        // A close forgets the seq and the kept messages and names the nodes.
        let mut closed = registry.close_room(1, "live").await.unwrap();
        closed.sort();
        assert_eq!(closed, ["node-1", "node-2"], "{name}");
        assert_eq!(registry.room(1, "live").await.unwrap(), Default::default(), "{name}");
        assert_eq!(registry.replay(1, "live").await.unwrap(), [], "{name}");
        assert_eq!(registry.publish(1, "live", counted_at(0)).await.unwrap().unwrap().seq(), 1, "{name}: starts over");
        let after_close = registry.publish(1, "live", once(("ann", "c1"))).await.unwrap();
        assert_eq!(seq(after_close), Some(2), "{name}: a close forgets what was numbered");

        // A node that stops reporting drops out of its rooms with its entries' time to live.
        tokio::time::sleep(TTL + Duration::from_millis(100)).await;
        let room = registry.room(1, "other").await.unwrap();
        assert_eq!((room.members, room.nodes.len()), (0, 0), "{name}");
    }
}
