//! The logic nodes a connect node calls, and which of them answer. A call goes to the
//! next live node in turn; a node whose connection fails a call (refused, reset, dead
//! to HTTP/2 pings) is taken out at once and the call goes to another one. Every node
//! is also asked for its gRPC health every `PROBE_EVERY` (`PROBE_DOWN_EVERY` while it is
//! out), so that a node that dies with no call in flight is noticed within about a
//! second and one that comes back is taken back. While no node of a set answers, the
//! connect node is not ready (`answering`), and says so in an error every
//! `UNREACHABLE_LOG_EVERY`, naming the setting that lists them.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;
use tonic::{Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use super::ConnectError;

/// A live node is asked for its health this often.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A node that is out is asked this often, to take it back soon after it answers.
const PROBE_DOWN_EVERY: Duration = Duration::from_millis(500);
/// A probe that takes longer counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A call that takes longer is cut off (and its node taken out).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Opening a connection to a node that does not answer gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on every connection: a peer that stops answering them is dead, even
/// with calls waiting on it.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// While no node of a set answers, the error that says so is repeated this often.
const UNREACHABLE_LOG_EVERY: Duration = Duration::from_secs(5);

/// Which API of the logic nodes a set reaches, and so what fails without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogicApi {
    /// The device API (`logic.listen`): sessions open and devices call through it.
    Public,
    /// The internal API (`logic.internal_listen`): session reports (presence events) and
    /// devices' room messages go through it.
    Internal,
}

impl LogicApi {
    /// The setting that lists the nodes, and what stops while none answers.
    fn setting_and_loss(self) -> (&'static str, &'static str) {
        match self {
            LogicApi::Public => ("connect.logic_addrs", "devices cannot open sessions or call logic"),
            LogicApi::Internal => (
                "connect.logic_internal_addrs (when empty: port 7071 on the hosts of connect.logic_addrs; each logic \
                 node listens on its logic.internal_listen)",
                "presence events and devices' room messages fail",
            ),
        }
    }
}

/// One logic node: where to reach it, and whether it answers.
#[derive(Debug)]
pub(crate) struct LogicNode {
    pub addr: String,
    pub channel: Channel,
    up: AtomicBool,
}

impl LogicNode {
    fn set_up(&self, up: bool, why: &str) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!(node = %self.addr, "logic node answers again; calls go to it");
            } else {
                tracing::warn!(node = %self.addr, reason = why, "logic node is out; calls go to the others");
            }
        }
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

/// The logic nodes of `connect.logic_addrs` (or of the internal addresses).
#[derive(Debug, Clone)]
pub(crate) struct LogicNodes {
    nodes: Arc<[LogicNode]>,
    next: Arc<AtomicUsize>,
    /// Whether a node answered the last round of probes (false until one has).
    answering: watch::Receiver<bool>,
}

/// Whether a failed call says the node failed rather than the request: the call then goes
/// to another node (every device call is safe to repeat; sends are deduplicated by their
/// `client_msg_id`). Only failures of the connection count, refused or cut while the call
/// was in flight (hyper's "operation was canceled", which tonic reports as CANCELLED):
/// tonic gives those the transport error as their source, while a status the node sent
/// has none (a node that answers UNAVAILABLE because, say, Redis is down, is still up). A
/// call that timed out is not repeated: when the database is slow, every node is.
fn node_failed(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    if source.is_none() {
        return false;
    }
    while let Some(error) = source {
        if error.is::<tonic::TimeoutExpired>() {
            return false;
        }
        source = error.source();
    }
    true
}

impl LogicNodes {
    /// Connects lazily (nodes may start after connect). Must run inside a Tokio runtime.
    pub(crate) fn new(addrs: &[String], api: LogicApi) -> Result<Self, ConnectError> {
        let nodes = addrs
            .iter()
            .map(|addr| {
                let endpoint = Channel::from_shared(addr.clone())
                    .map_err(|err| ConnectError::Address(addr.clone(), err.to_string()))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(CALL_TIMEOUT)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(KEEPALIVE)
                    .keep_alive_timeout(KEEPALIVE)
                    .keep_alive_while_idle(true);
                // Up until shown otherwise: the first calls need not wait for a probe.
                Ok(LogicNode { addr: addr.clone(), channel: endpoint.connect_lazy(), up: AtomicBool::new(true) })
            })
            .collect::<Result<Vec<_>, ConnectError>>()?;
        let (answered, answering) = watch::channel(false);
        let nodes = Self { nodes: nodes.into(), next: Arc::new(AtomicUsize::new(0)), answering };
        tokio::spawn(nodes.clone().probe(api, answered));
        Ok(nodes)
    }

    /// Whether any node answered the last round of health checks; changes as they do.
    pub(crate) fn answering(&self) -> watch::Receiver<bool> {
        self.answering.clone()
    }

    /// The next node to try after those in `tried`: a live one in turn, or, when none
    /// is live, one that is out (it may be back before its probe says so).
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let count = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let untried = (0..count).map(|i| (start + i) % count).filter(|i| !tried.contains(i));
        let mut fallback = None;
        for index in untried {
            if self.nodes[index].is_up() {
                return Some(index);
            }
            fallback.get_or_insert(index);
        }
        fallback
    }

    /// Makes a call on a live node, and again on another one while nodes fail it.
    pub(crate) async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut tried = Vec::with_capacity(self.nodes.len());
        let mut failure = None;
        while let Some(index) = self.pick(&tried) {
            tried.push(index);
            let node = &self.nodes[index];
            match call(node.channel.clone()).await {
                Err(status) if node_failed(&status) => {
                    node.set_up(false, status.message());
                    failure = Some(status);
                }
                result => return result,
            }
        }
        Err(failure.unwrap_or_else(|| Status::unavailable("no logic node is configured")))
    }

    /// Asks every node for its health, for as long as the node set is in use, and tells
    /// `answered` (and the log) whether any answers.
    async fn probe(self, api: LogicApi, answered: watch::Sender<bool>) {
        let weak = Arc::downgrade(&self.nodes);
        drop(self);
        let mut last_round = tokio::time::Instant::now();
        let mut last_complaint: Option<tokio::time::Instant> = None;
        loop {
            let Some(nodes) = weak.upgrade() else { return };
            let any_down = nodes.iter().any(|node| !node.is_up());
            let wait = if any_down { PROBE_DOWN_EVERY } else { PROBE_EVERY };
            let checks = nodes.iter().map(|node| async move {
                let mut health = HealthClient::new(node.channel.clone());
                let check = health.check(HealthCheckRequest { service: String::new() });
                match tokio::time::timeout(PROBE_TIMEOUT, check).await {
                    Ok(Ok(reply)) if reply.get_ref().status == ServingStatus::Serving as i32 => {
                        node.set_up(true, "");
                    }
                    Ok(Ok(_)) => node.set_up(false, "health says not serving"),
                    Ok(Err(status)) => node.set_up(false, status.message()),
                    Err(_) => node.set_up(false, "health check timed out"),
                }
            });
            futures_util::future::join_all(checks).await;
            let any_up = nodes.iter().any(LogicNode::is_up);
            answered.send_if_modified(|was| std::mem::replace(was, any_up) != any_up);
            let (setting, loss) = api.setting_and_loss();
            if any_up {
                if last_complaint.take().is_some() {
                    tracing::info!("a logic node answers again at the addresses of {setting}");
                }
            } else if last_complaint.is_none_or(|at| at.elapsed() >= UNREACHABLE_LOG_EVERY) {
                last_complaint = Some(tokio::time::Instant::now());
                let addrs: Vec<&str> = nodes.iter().map(|node| node.addr.as_str()).collect();
                tracing::error!(
                    ?addrs,
                    "no logic node answers at the addresses of {setting}: {loss}, and this connect node is not \
                     ready (gRPC health NOT_SERVING) until one does"
                );
            }
            drop(nodes);
            last_round += wait;
            tokio::time::sleep_until(last_round.max(tokio::time::Instant::now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn only_a_failed_connection_moves_a_call_to_another_node() {
        let reset = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(node_failed(&Status::from_error(Box::new(reset()))), "refused or reset");
        // A connection cut under a call in flight: CANCELLED, with hyper's error as source.
        let mut cut = Status::cancelled("operation was canceled");
        cut.set_source(Arc::new(reset()));
        assert!(node_failed(&cut));
        assert!(!node_failed(&Status::from_error(Box::new(tonic::TimeoutExpired(())))), "a timeout is not repeated");
        assert!(!node_failed(&Status::unavailable("the database is out of reach")), "the node's own answer");
        assert!(!node_failed(&Status::cancelled("cancelled by the node")));
    }
}
