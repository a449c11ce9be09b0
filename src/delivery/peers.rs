//! Clients of connect nodes' internal API, by node address: logic pushes through them,
//! and a connect node kicks a device's older session on another node through them.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use dashmap::DashMap;
use tonic::{Code, Request, Status, transport::Channel};

use crate::proto::connect::v1::{
    KickRequest, KickResponse, PushRequest, PushResponse, delivery_client::DeliveryClient,
};

/// Internal calls give up after this long: a push that cannot be made in time is
/// dropped (devices sync), never waited on.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed call a node is left alone this long, so that a dead node costs one
/// timeout, not one per push.
const BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Peers {
    clients: Arc<DashMap<String, DeliveryClient<Channel>>>,
    /// Nodes whose last call failed, and until when they are skipped.
    down: Arc<DashMap<String, Instant>>,
    bearer: Arc<str>,
}

impl Peers {
    pub fn new(internal_token: &str) -> Self {
        Self {
            clients: Arc::new(DashMap::new()),
            down: Arc::new(DashMap::new()),
            bearer: format!("Bearer {internal_token}").into(),
        }
    }

    fn client(&self, node: &str) -> Result<DeliveryClient<Channel>, Status> {
        if let Some(until) = self.down.get(node).map(|until| *until) {
            if Instant::now() < until {
                return Err(Status::unavailable(format!("connect node {node} failed recently")));
            }
            self.down.remove(node);
        }
        if let Some(client) = self.clients.get(node) {
            return Ok(client.clone());
        }
        let endpoint = Channel::from_shared(format!("http://{node}"))
            .map_err(|err| Status::invalid_argument(format!("bad node address {node}: {err}")))?
            .connect_timeout(CALL_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true);
        let client = DeliveryClient::new(endpoint.connect_lazy());
        self.clients.insert(node.to_owned(), client.clone());
        Ok(client)
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        let value = self.bearer.parse().map_err(|_| Status::internal("internal token is not ASCII"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    pub async fn push(&self, node: &str, request: PushRequest) -> Result<PushResponse, Status> {
        let result = self.client(node)?.push(self.request(request)?).await;
        self.outcome(node, result)
    }

    pub async fn kick(&self, node: &str, request: KickRequest) -> Result<KickResponse, Status> {
        let result = self.client(node)?.kick(self.request(request)?).await;
        self.outcome(node, result)
    }

    fn outcome<T>(&self, node: &str, result: Result<tonic::Response<T>, Status>) -> Result<T, Status> {
        match result {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => {
                if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown) {
                    self.down.insert(node.to_owned(), Instant::now() + BACKOFF);
                }
                Err(status)
            }
        }
    }
}
