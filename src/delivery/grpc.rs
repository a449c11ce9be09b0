//! Delivery across nodes (`gim logic`): pushes are queued, and a worker takes them in
//! batches, looks up the recipients' routes, and makes one internal gRPC call per
//! connect node per batch. A full queue or a failed call drops pushes: devices get
//! those messages when they sync.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use tokio::sync::mpsc;

use super::{Delivery, Kick, Push};
use crate::{
    connect::Peers,
    metrics::Metrics,
    model::AppId,
    proto::connect::v1::{self as api, KickRequest, PushRequest},
    route::{Route, RouteRegistry},
};

/// Jobs taken per batch at most.
const BATCH: usize = 1024;
/// A batch taking longer than this is logged: pushes behind it wait.
const SLOW_BATCH: std::time::Duration = std::time::Duration::from_millis(10);

enum Job {
    Push(Vec<Push>),
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
            let (mut pushes, mut kicks) = (Vec::new(), Vec::new());
            for job in jobs.drain(..) {
                match job {
                    Job::Push(batch) => pushes.extend(batch),
                    Job::Kick(kick) => kicks.push(kick),
                }
            }
            self.push(pushes).await;
            for kick in kicks {
                self.kick(kick).await;
            }
        }
    }

    /// The live routes of every user the pushes name.
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

    async fn push(&self, pushes: Vec<Push>) {
        if pushes.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let users: Vec<(AppId, &str)> =
            pushes.iter().flat_map(|push| push.users.iter().map(|user| (push.app, user.as_str()))).collect();
        let routes = self.routes_of(&users).await;
        let looked_up = started.elapsed();
        let mut by_node: HashMap<&str, PushRequest> = HashMap::new();
        for push in &pushes {
            let mut users_by_node: HashMap<&str, Vec<String>> = HashMap::new();
            for user in &push.users {
                let Some(user_routes) = routes.get(&(push.app, user.clone())) else { continue };
                let nodes: HashSet<&str> = user_routes
                    .iter()
                    .filter(|route| push.skip_device.as_deref() != Some(route.device_id.as_str()))
                    .map(|route| route.node.as_str())
                    .collect();
                for node in nodes {
                    users_by_node.entry(node).or_default().push(user.clone());
                }
            }
            for (node, user_ids) in users_by_node {
                by_node.entry(node).or_default().pushes.push(api::Push {
                    app_id: push.app,
                    user_ids,
                    skip_device_id: push.skip_device.clone().unwrap_or_default(),
                    seq: push.seq,
                    frame: push.frame.to_vec(),
                });
            }
        }
        let calls = by_node.into_iter().map(|(node, request)| async move {
            let frames = request.pushes.len() as u64;
            match self.peers.push(node, request).await {
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
                pushes = pushes.len(),
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
