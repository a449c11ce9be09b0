//! Tells logic which users' sessions opened or closed on this node, for presence
//! events. Changes are gathered for a moment and sent in one call; a user who changes
//! twice meanwhile is reported once. Logic reads the truth from the route registry, so
//! a report only says "look again".

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;

use super::LogicLink;
use crate::model::AppId;

/// How long changes are gathered before a report goes out.
const GATHER: Duration = Duration::from_millis(50);
/// Users per report call at most.
const MAX_BATCH: usize = 5_000;

pub(crate) struct SessionReports {
    pending: Mutex<HashSet<(AppId, String)>>,
    wake: Notify,
    link: Arc<dyn LogicLink>,
}

impl SessionReports {
    pub(crate) fn new(link: Arc<dyn LogicLink>) -> Arc<Self> {
        Arc::new(Self { pending: Mutex::default(), wake: Notify::new(), link })
    }

    /// A session of the user opened or closed here.
    pub(crate) fn changed(&self, app: AppId, user_id: &str) {
        self.pending.lock().expect("reports lock").insert((app, user_id.to_owned()));
        self.wake.notify_one();
    }

    /// Sends what is pending.
    pub(crate) async fn flush(&self) {
        let users: Vec<(AppId, String)> = self.pending.lock().expect("reports lock").drain().collect();
        for batch in users.chunks(MAX_BATCH) {
            if let Err(status) = self.link.sessions_changed(batch.to_vec()).await {
                tracing::warn!(users = batch.len(), error = %status, "reporting session changes to logic failed");
            }
        }
    }

    /// Reports changes as they come, until the task is aborted.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(GATHER).await;
            self.flush().await;
        }
    }
}
