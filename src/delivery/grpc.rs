//! Delivery across nodes (`gim logic`): pushes are queued, and a worker takes them in
//! batches, looks up the recipients' routes, and makes one internal gRPC call per
//! connect node per batch. A full queue or a failed call drops pushes: devices get
//! those messages when they sync.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use tokio::sync::mpsc;

use super::{Delivery, Kick, Membership, Peers, Push};
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
    Membership(Vec<Membership>),
    Kick(Kick),
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

    fn kick(&self, kick: Kick) {
        self.enqueue(Job::Kick(kick));
    }

    fn membership(&self, changes: Vec<Membership>) {
        self.enqueue(Job::Membership(changes));
    }
}

/// Jobs that go out together: memberships are applied before the pushes on each node.
#[derive(Default)]
struct Segment {
    memberships: Vec<Membership>,
    pushes: Vec<Push>,
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
                    Job::Membership(changes) => {
                        if !segment.pushes.is_empty() {
                            self.send(std::mem::take(&mut segment)).await;
                        }
                        segment.memberships.extend(changes);
                    }
                    Job::Kick(kick) => {
                        self.send(std::mem::take(&mut segment)).await;
                        self.kick(kick).await;
                    }
                }
            }
            self.send(segment).await;
        }
    }

    /// The live routes of every user named.
    async fn routes_of(&self, users: &[(AppId, &str)]) -> HashMap<(AppId, String), Vec<Route>> {
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
        if segment.pushes.is_empty() && segment.memberships.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let users: Vec<(AppId, &str)> = segment
            .pushes
            .iter()
            .flat_map(|push| push.users.iter().map(|user| (push.app, user.as_str())))
            .chain(segment.memberships.iter().map(|m| (m.app, m.user_id.as_str())))
            .collect();
        let routes = self.routes_of(&users).await;
        // Large-group pushes and leaves go to every live node: a leave must reach any node
        // that may hold the user's sessions, whether the routes say so or not.
        let everywhere = segment.pushes.iter().any(|push| push.group.is_some())
            || segment.memberships.iter().any(|change| !change.joined);
        let live_nodes = if everywhere {
            self.routes.nodes().await.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "listing connect nodes failed; group pushes dropped");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        let looked_up = started.elapsed();

        let mut by_node: HashMap<String, PushRequest> = HashMap::new();
        for change in &segment.memberships {
            let mut nodes: HashSet<&str> = routes
                .get(&(change.app, change.user_id.clone()))
                .into_iter()
                .flatten()
                .map(|route| route.node.as_str())
                .collect();
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
        for push in &segment.pushes {
            let wire = |user_ids: Vec<String>| api::Push {
                app_id: push.app,
                user_ids,
                group_id: push.group.clone().unwrap_or_default(),
                skip_device_id: push.skip.as_ref().map(|d| d.device_id.clone()).unwrap_or_default(),
                skip_user_id: push.skip.as_ref().map(|d| d.user_id.clone()).unwrap_or_default(),
                seq: push.seq,
                frame: push.frame.to_vec(),
            };
            if push.group.is_some() {
                // A large group's members are anywhere: every live node fans out to its own.
                for node in &live_nodes {
                    by_node.entry(node.clone()).or_default().pushes.push(wire(Vec::new()));
                }
                continue;
            }
            let mut users_by_node: HashMap<&str, Vec<String>> = HashMap::new();
            for user in &push.users {
                let Some(user_routes) = routes.get(&(push.app, user.clone())) else { continue };
                // The sending device's node too: it learns the seq there without writing it.
                let nodes: HashSet<&str> = user_routes.iter().map(|route| route.node.as_str()).collect();
                for node in nodes {
                    users_by_node.entry(node).or_default().push(user.clone());
                }
            }
            for (node, user_ids) in users_by_node {
                by_node.entry(node.to_owned()).or_default().pushes.push(wire(user_ids));
            }
        }
        let calls = by_node.into_iter().map(|(node, request)| async move {
            let frames = request.pushes.len() as u64;
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
                lookup_ms = looked_up.as_millis() as u64,
                total_ms = started.elapsed().as_millis() as u64,
                "a delivery batch was slow"
            );
        }
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
