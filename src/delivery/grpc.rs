//! Delivery across nodes (`gim logic`): pushes are queued, and a worker takes them in
//! batches, looks up the recipients' routes, and makes one internal gRPC call per
//! connect node per batch. A full queue or a failed call drops pushes: devices get
//! those messages when they sync.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Delivery, Kick, Membership, Peers, Push, RoomChange, RoomPush, RoomTarget};
use crate::{
    metrics::Metrics,
    model::AppId,
    proto::connect::v1::{self as api, KickRequest, MembershipChange, PushRequest},
    route::{Route, RouteRegistry},
};

/// Jobs taken per batch at most.
const BATCH: usize = 1024;
/// A batch taking longer than this is logged: pushes behind it wait.
const SLOW_BATCH: std::time::Duration = std::time::Duration::from_millis(10);

enum Job {
    Push(Vec<Push>),
    Announce(AppId, Bytes),
    Membership(Vec<Membership>),
    Kick(Kick),
    RoomPush(RoomPush),
    RoomChange(RoomChange),
}

#[derive(Debug)]
pub struct GrpcDelivery {
    queue: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

impl GrpcDelivery {
    /// Starts the worker; `queue` jobs wait at most.
    pub fn start(routes: Arc<dyn RouteRegistry>, peers: Peers, queue: usize, metrics: Arc<Metrics>) -> Self {
        let (sender, receiver) = mpsc::channel(queue);
        tokio::spawn(Worker { routes, peers, metrics: metrics.clone() }.run(receiver));
        Self { queue: sender, metrics }
    }

    fn enqueue(&self, job: Job) {
        if self.queue.try_send(job).is_err() {
            self.metrics.pushes_dropped.inc();
        }
    }
}

impl Delivery for GrpcDelivery {
    fn deliver(&self, pushes: Vec<Push>) {
        self.enqueue(Job::Push(pushes));
    }

    fn announce(&self, app: AppId, frame: Bytes) {
        self.enqueue(Job::Announce(app, frame));
    }

    fn kick(&self, kick: Kick) {
        self.enqueue(Job::Kick(kick));
    }

    fn membership(&self, changes: Vec<Membership>) {
        self.enqueue(Job::Membership(changes));
    }

    fn room_push(&self, push: RoomPush) {
        self.enqueue(Job::RoomPush(push));
    }

    fn room_change(&self, change: RoomChange) {
        self.enqueue(Job::RoomChange(change));
    }
}

/// Jobs that go out together: memberships and room changes are applied before the
/// pushes on each node.
#[derive(Default)]
struct Segment {
    memberships: Vec<Membership>,
    room_changes: Vec<RoomChange>,
    pushes: Vec<Push>,
    room_pushes: Vec<RoomPush>,
}

type RoutesByUser = HashMap<(AppId, String), Vec<Route>>;

impl Segment {
    /// Every user whose routes the segment needs.
    fn users(&self) -> Vec<(AppId, &str)> {
        let pushed = self.pushes.iter().flat_map(|push| push.users.iter().map(|user| (push.app, user.as_str())));
        let in_rooms = self.room_changes.iter().filter_map(|change| match &change.target {
            RoomTarget::Device { user_id, .. } => Some((change.app, user_id.as_str())),
            RoomTarget::Everyone { .. } => None,
        });
        pushed
            .chain(self.memberships.iter().map(|change| (change.app, change.user_id.as_str())))
            .chain(in_rooms)
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.pushes.is_empty()
            && self.memberships.is_empty()
            && self.room_pushes.is_empty()
            && self.room_changes.is_empty()
    }

    /// Whether a change would overtake a push already in the segment.
    fn has_pushes(&self) -> bool {
        !self.pushes.is_empty() || !self.room_pushes.is_empty()
    }

    /// Large-group pushes and leaves go to every live node: a group's members are
    /// anywhere, and a leave must reach any node that may hold the user's sessions,
    /// whether the routes say so or not.
    fn reaches_every_node(&self) -> bool {
        self.pushes.iter().any(|push| push.group.is_some()) || self.memberships.iter().any(|change| !change.joined)
    }

    /// One request per connect node: the membership changes and pushes it must apply.
    fn by_node(&self, routes: &RoutesByUser, live_nodes: &[String]) -> HashMap<String, PushRequest> {
        let mut by_node: HashMap<String, PushRequest> = HashMap::new();
        self.memberships_by_node(routes, live_nodes, &mut by_node);
        self.room_changes_by_node(routes, &mut by_node);
        self.room_pushes_by_node(&mut by_node);
        self.pushes_by_node(routes, live_nodes, &mut by_node);
        by_node
    }

    /// A join goes where the user's sessions are; a leave to every live node too.
    fn memberships_by_node(
        &self,
        routes: &RoutesByUser,
        live_nodes: &[String],
        by_node: &mut HashMap<String, PushRequest>,
    ) {
        for change in &self.memberships {
            let mut nodes = nodes_of(routes, change.app, &change.user_id);
            if !change.joined {
                nodes.extend(live_nodes.iter().map(String::as_str));
            }
            for node in nodes {
                by_node.entry(node.to_owned()).or_default().memberships.push(MembershipChange {
                    app_id: change.app,
                    user_id: change.user_id.clone(),
                    group_id: change.group_id.clone(),
                    joined: change.joined,
                });
            }
        }
    }

    fn room_changes_by_node(&self, routes: &RoutesByUser, by_node: &mut HashMap<String, PushRequest>) {
        for change in &self.room_changes {
            let nodes: HashSet<&str> = match &change.target {
                // Where the user's sessions are; a device that moved since has a new session.
                RoomTarget::Device { user_id, .. } => nodes_of(routes, change.app, user_id),
                RoomTarget::Everyone { nodes } => nodes.iter().map(String::as_str).collect(),
            };
            let (user_id, device_id) = match &change.target {
                RoomTarget::Device { user_id, device_id } => (user_id.clone(), device_id.clone().unwrap_or_default()),
                RoomTarget::Everyone { .. } => (String::new(), String::new()),
            };
            for node in nodes {
                by_node.entry(node.to_owned()).or_default().room_changes.push(api::RoomChange {
                    app_id: change.app,
                    room_id: change.room.clone(),
                    user_id: user_id.clone(),
                    device_id: device_id.clone(),
                    joined: change.joined,
                    reason: change.reason.clone(),
                });
            }
        }
    }

    fn room_pushes_by_node(&self, by_node: &mut HashMap<String, PushRequest>) {
        for push in &self.room_pushes {
            for node in &push.nodes {
                by_node.entry(node.clone()).or_default().room_pushes.push(api::RoomPush {
                    app_id: push.app,
                    room_id: push.room.clone(),
                    seq: push.seq,
                    frame: push.frame.to_vec(),
                    skip_user_id: push.skip.as_ref().map(|device| device.user_id.clone()).unwrap_or_default(),
                    skip_device_id: push.skip.as_ref().map(|device| device.device_id.clone()).unwrap_or_default(),
                });
            }
        }
    }

    /// A push goes to the nodes of its users' sessions, each with its own users; a large
    /// group's push to every live node, which fans it out to its own sessions.
    fn pushes_by_node(&self, routes: &RoutesByUser, live_nodes: &[String], by_node: &mut HashMap<String, PushRequest>) {
        for push in &self.pushes {
            if push.group.is_some() {
                for node in live_nodes {
                    by_node.entry(node.clone()).or_default().pushes.push(wire(push, Vec::new()));
                }
                continue;
            }
            let mut users_by_node: HashMap<&str, Vec<String>> = HashMap::new();
            for user in &push.users {
                // The sending device's node too: it learns the seq there without writing it.
                for node in nodes_of(routes, push.app, user) {
                    users_by_node.entry(node).or_default().push(user.clone());
                }
            }
            for (node, user_ids) in users_by_node {
                by_node.entry(node.to_owned()).or_default().pushes.push(wire(push, user_ids));
            }
        }
    }
}

/// The nodes that hold sessions of the user, as the routes say.
fn nodes_of<'a>(routes: &'a RoutesByUser, app: AppId, user: &str) -> HashSet<&'a str> {
    let user_routes = routes.get(&(app, user.to_owned())).into_iter().flatten();
    user_routes.map(|route| route.node.as_str()).collect()
}

/// A push as a connect node takes it, for `user_ids` (none: a large group's members).
fn wire(push: &Push, user_ids: Vec<String>) -> api::Push {
    api::Push {
        app_id: push.app,
        user_ids,
        group_id: push.group.clone().unwrap_or_default(),
        skip_device_id: push.skip.as_ref().map(|device| device.device_id.clone()).unwrap_or_default(),
        skip_user_id: push.skip.as_ref().map(|device| device.user_id.clone()).unwrap_or_default(),
        seq: push.seq,
        frame: push.frame.to_vec(),
        everyone: false,
    }
}

struct Worker {
    routes: Arc<dyn RouteRegistry>,
    peers: Peers,
    metrics: Arc<Metrics>,
}

impl Worker {
    async fn run(self, mut queue: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(BATCH);
        while queue.recv_many(&mut jobs, BATCH).await > 0 {
            // Jobs keep their order: a membership change after a push starts a new
            // segment, so that it does not overtake the push.
            let mut segment = Segment::default();
            for job in jobs.drain(..) {
                match job {
                    Job::Push(pushes) => segment.pushes.extend(pushes),
                    Job::RoomPush(push) => segment.room_pushes.push(push),
                    Job::Membership(changes) => {
                        if segment.has_pushes() {
                            self.send(std::mem::take(&mut segment)).await;
                        }
                        segment.memberships.extend(changes);
                    }
                    Job::RoomChange(change) => {
                        if segment.has_pushes() {
                            self.send(std::mem::take(&mut segment)).await;
                        }
                        segment.room_changes.push(change);
                    }
                    Job::Kick(kick) => {
                        self.send(std::mem::take(&mut segment)).await;
                        self.kick(kick).await;
                    }
                    Job::Announce(app, frame) => {
                        self.send(std::mem::take(&mut segment)).await;
                        self.announce(app, frame).await;
                    }
                }
            }
            self.send(segment).await;
        }
    }

    /// The live routes of every user named.
    async fn routes_of(&self, users: &[(AppId, &str)]) -> RoutesByUser {
        let mut by_app: BTreeMap<AppId, HashSet<&str>> = BTreeMap::new();
        for (app, user) in users {
            by_app.entry(*app).or_default().insert(user);
        }
        let mut found = HashMap::new();
        for (app, users) in by_app {
            let users: Vec<String> = users.into_iter().map(str::to_owned).collect();
            match self.routes.lookup(app, &users).await {
                Ok(routes) => found.extend(routes.into_iter().map(|(user, routes)| ((app, user), routes))),
                Err(err) => tracing::warn!(app, error = %err, "route lookup failed; pushes dropped"),
            }
        }
        found
    }

    async fn send(&self, segment: Segment) {
        if segment.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let routes = self.routes_of(&segment.users()).await;
        let live_nodes = if segment.reaches_every_node() { self.live_nodes().await } else { Vec::new() };
        let looked_up = started.elapsed();
        let calls = segment.by_node(&routes, &live_nodes).into_iter().map(|(node, request)| async move {
            let frames = (request.pushes.len() + request.room_pushes.len()) as u64;
            match self.peers.push(&node, request).await {
                Ok(_) => {
                    self.metrics.pushes_sent.inc_by(frames);
                }
                Err(status) => {
                    self.metrics.pushes_dropped.inc_by(frames);
                    tracing::warn!(node, error = %status, "pushing to a connect node failed");
                }
            }
        });
        futures_util::future::join_all(calls).await;
        if started.elapsed() > SLOW_BATCH {
            tracing::warn!(
                pushes = segment.pushes.len(),
                room_pushes = segment.room_pushes.len(),
                lookup_ms = looked_up.as_millis() as u64,
                total_ms = started.elapsed().as_millis() as u64,
                "a delivery batch was slow"
            );
        }
    }

    async fn live_nodes(&self) -> Vec<String> {
        self.routes.nodes().await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "listing connect nodes failed; group pushes and leaves dropped");
            Vec::new()
        })
    }

    /// An event for every session of an app: every live node gets it.
    async fn announce(&self, app: AppId, frame: Bytes) {
        let push = api::Push { app_id: app, everyone: true, frame: frame.to_vec(), ..Default::default() };
        let calls = self.live_nodes().await.into_iter().map(|node| {
            let request = PushRequest { pushes: vec![push.clone()], ..Default::default() };
            async move {
                if let Err(status) = self.peers.push(&node, request).await {
                    self.metrics.pushes_dropped.inc();
                    tracing::warn!(node, error = %status, "announcing to a connect node failed");
                } else {
                    self.metrics.pushes_sent.inc();
                }
            }
        });
        futures_util::future::join_all(calls).await;
    }

    async fn kick(&self, kick: Kick) {
        let routes = self.routes_of(&[(kick.app, kick.user_id.as_str())]).await;
        let Some(user_routes) = routes.get(&(kick.app, kick.user_id.clone())) else { return };
        let nodes: HashSet<&str> = user_routes
            .iter()
            .filter(|route| kick.device_id.as_deref().is_none_or(|device| device == route.device_id))
            .map(|route| route.node.as_str())
            .collect();
        for node in nodes {
            let request = KickRequest {
                app_id: kick.app,
                user_id: kick.user_id.clone(),
                device_id: kick.device_id.clone().unwrap_or_default(),
                reason: kick.reason as i32,
                message: kick.message.clone(),
                opened_before_ms: 0,
            };
            if let Err(status) = self.peers.kick(node, request).await {
                tracing::warn!(node, error = %status, "kicking on a connect node failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::model::DeviceType;

    fn push(users: &[&str], group: Option<&str>) -> Push {
        Push {
            app: 1,
            users: users.iter().map(|user| (*user).to_owned()).collect(),
            group: group.map(str::to_owned),
            skip: None,
            seq: 7,
            frame: Bytes::from_static(b"frame"),
        }
    }

    fn on(node: &str) -> Route {
        Route { device_id: "phone".into(), device_type: DeviceType::Ios, node: node.into() }
    }

    fn change(user: &str, joined: bool) -> Membership {
        Membership { app: 1, user_id: user.into(), group_id: "g".into(), joined }
    }

    #[test]
    fn each_node_gets_its_own_users_and_every_live_node_large_groups_and_leaves() {
        let routes: RoutesByUser = [
            ((1, "alice".to_owned()), vec![on("n1"), on("n2")]),
            ((1, "bob".to_owned()), vec![on("n2")]),
            ((2, "alice".to_owned()), vec![on("n3")]),
        ]
        .into();
        let live = vec!["n1".to_owned(), "n2".to_owned(), "n3".to_owned()];
        let segment = Segment {
            memberships: vec![change("bob", true), change("carol", false)],
            pushes: vec![push(&["alice", "bob", "dave"], None), push(&[], Some("g"))],
            ..Segment::default()
        };
        assert!(segment.reaches_every_node());
        let by_node = segment.by_node(&routes, &live);

        let users_on = |node: &str| -> Vec<Vec<String>> {
            by_node[node].pushes.iter().filter(|p| p.group_id.is_empty()).map(|p| p.user_ids.clone()).collect()
        };
        assert_eq!(users_on("n1"), [vec!["alice".to_owned()]], "only app 1's alice is on n1");
        assert_eq!(users_on("n2"), [vec!["alice".to_owned(), "bob".to_owned()]], "one push for both users on n2");
        assert!(users_on("n3").is_empty(), "app 2's alice is not app 1's");
        for node in &live {
            let groups: Vec<&str> =
                by_node[node].pushes.iter().map(|p| p.group_id.as_str()).filter(|g| !g.is_empty()).collect();
            assert_eq!(groups, ["g"], "every live node fans the large group out ({node})");
            let leaves = by_node[node].memberships.iter().filter(|m| m.user_id == "carol" && !m.joined).count();
            assert_eq!(leaves, 1, "a leave reaches every live node ({node})");
        }
        let joins: Vec<&str> =
            by_node.iter().filter(|(_, r)| r.memberships.iter().any(|m| m.joined)).map(|(n, _)| n.as_str()).collect();
        assert_eq!(joins, ["n2"], "a join goes where the user's sessions are");
    }

    #[test]
    fn a_room_push_goes_to_the_nodes_listed_in_the_room_and_a_put_in_where_the_user_is() {
        let routes: RoutesByUser = [((1, "alice".to_owned()), vec![on("n2")])].into();
        let room_push = RoomPush {
            app: 1,
            room: "live".into(),
            nodes: vec!["n1".into(), "n3".into()],
            seq: 4,
            frame: Bytes::from_static(b"frame"),
            skip: None,
        };
        let put_in = RoomChange {
            app: 1,
            room: "live".into(),
            target: RoomTarget::Device { user_id: "alice".into(), device_id: None },
            joined: true,
            reason: String::new(),
        };
        let closed =
            RoomChange { target: RoomTarget::Everyone { nodes: vec!["n3".into()] }, joined: false, ..put_in.clone() };
        let segment =
            Segment { room_pushes: vec![room_push], room_changes: vec![put_in, closed], ..Segment::default() };
        assert_eq!(segment.users(), [(1, "alice")]);
        let by_node = segment.by_node(&routes, &[]);
        let mut nodes: Vec<&str> = by_node.keys().map(String::as_str).collect();
        nodes.sort_unstable();
        assert_eq!(nodes, ["n1", "n2", "n3"]);
        assert_eq!(by_node["n1"].room_pushes.len(), 1);
        assert!(by_node["n2"].room_pushes.is_empty(), "n2 has no session in the room");
        assert_eq!(by_node["n2"].room_changes[0].user_id, "alice");
        assert!(by_node["n3"].room_changes[0].user_id.is_empty(), "a close reaches every session there");
    }

    #[test]
    fn pushes_to_users_nobody_routes_go_nowhere() {
        let segment = Segment { pushes: vec![push(&["nobody"], None)], ..Segment::default() };
        assert!(!segment.reaches_every_node());
        assert!(segment.by_node(&RoutesByUser::new(), &[]).is_empty());
    }
}
