//! Tells logic which users' sessions opened or closed on this node, for presence
//! events. Changes are gathered for a moment and sent in one call; a user who changes
//! twice meanwhile is reported once. Logic reads the truth from the route registry, so
//! a report only says "look again".
//!
//! The logic node that takes a report holds it for its settling time: killed meanwhile,
//! it would take the change with it. In a cluster each report is therefore sent once
//! more after twice that time (to whichever logic node answers then); the second look
//! finds nothing new unless the first was lost.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::LogicLink;
use crate::model::AppId;

/// How long changes are gathered before a report goes out.
const GATHER: Duration = Duration::from_millis(50);
/// Users per report call at most.
const MAX_BATCH: usize = 5_000;

type Users = Vec<(AppId, String)>;

pub(crate) struct SessionReports {
    pending: Mutex<HashSet<(AppId, String)>>,
    /// Reports sent, with when to send them again.
    again: Mutex<VecDeque<(Instant, Users)>>,
    /// `None`: logic shares this process and cannot die without it.
    again_after: Option<Duration>,
    wake: Notify,
    link: Arc<dyn LogicLink>,
}

impl SessionReports {
    pub(crate) fn new(link: Arc<dyn LogicLink>, again_after: Option<Duration>) -> Arc<Self> {
        Arc::new(Self { pending: Mutex::default(), again: Mutex::default(), again_after, wake: Notify::new(), link })
    }

    /// A session of the user opened or closed here.
    pub(crate) fn changed(&self, app: AppId, user_id: &str) {
        self.pending.lock().expect("reports lock").insert((app, user_id.to_owned()));
        self.wake.notify_one();
    }

    /// Sends what is pending.
    pub(crate) async fn flush(&self) {
        let users: Users = self.pending.lock().expect("reports lock").drain().collect();
        for batch in users.chunks(MAX_BATCH) {
            self.send(batch).await;
        }
        if let Some(after) = self.again_after
            && !users.is_empty()
        {
            self.again.lock().expect("reports lock").push_back((Instant::now() + after, users));
        }
    }

    async fn send(&self, batch: &[(AppId, String)]) {
        if let Err(status) = self.link.sessions_changed(batch.to_vec()).await {
            tracing::warn!(users = batch.len(), error = %status, "reporting session changes to logic failed");
        }
    }

    /// Sends again the reports whose time has come.
    async fn send_again(&self) {
        let now = Instant::now();
        loop {
            let due = {
                let mut again = self.again.lock().expect("reports lock");
                match again.front() {
                    Some((at, _)) if *at <= now => again.pop_front().map(|(_, users)| users),
                    _ => None,
                }
            };
            let Some(users) = due else { return };
            for batch in users.chunks(MAX_BATCH) {
                self.send(batch).await;
            }
        }
    }

    /// Reports changes as they come, until the task is aborted.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let next_again = self.again.lock().expect("reports lock").front().map(|(at, _)| *at);
            let woken = match next_again {
                Some(at) => tokio::select! {
                    () = self.wake.notified() => true,
                    () = tokio::time::sleep_until(at) => false,
                },
                None => {
                    self.wake.notified().await;
                    true
                }
            };
            if woken {
                tokio::time::sleep(GATHER).await;
                self.flush().await;
            }
            self.send_again().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        connect::link::SessionDevice,
        logic::{DeviceCaller, Error, Result},
        proto::logic::v1::*,
    };

    /// Logic as far as reports go: what it was told, in order.
    #[derive(Default)]
    struct Told(Mutex<Vec<Users>>);

    fn not_here<T>() -> Result<T> {
        Err(Error::Unavailable("not in this test".into()))
    }

    #[async_trait::async_trait]
    impl LogicLink for Told {
        async fn authenticate(&self, _: &str) -> Result<DeviceCaller> {
            not_here()
        }
        async fn send(&self, _: &SessionDevice, _: DeviceSendRequest) -> Result<SendMessageResponse> {
            not_here()
        }
        async fn sync(&self, _: &SessionDevice, _: SyncRequest) -> Result<SyncResponse> {
            not_here()
        }
        async fn ack(&self, _: &SessionDevice, _: AckRequest) -> Result<AckResponse> {
            not_here()
        }
        async fn mark_read(&self, _: &SessionDevice, _: MarkReadRequest) -> Result<ReadCursor> {
            not_here()
        }
        async fn typing(&self, _: &SessionDevice, _: TypingRequest) -> Result<TypingResponse> {
            not_here()
        }
        async fn group_send(&self, _: &SessionDevice, _: GroupSendRequest) -> Result<GroupSendResponse> {
            not_here()
        }
        async fn sync_group(&self, _: &SessionDevice, _: SyncGroupRequest) -> Result<SyncResponse> {
            not_here()
        }
        async fn catch_up(&self, _: &SessionDevice, _: SyncRequest) -> Result<SyncResponse> {
            not_here()
        }
        async fn catch_up_group(&self, _: &SessionDevice, _: SyncGroupRequest) -> Result<SyncResponse> {
            not_here()
        }
        async fn sessions_changed(&self, mut users: Users) -> Result<()> {
            users.sort();
            self.0.lock().unwrap().push(users);
            Ok(())
        }
        async fn room_send(&self, _: &SessionDevice, _: RoomSendRequest) -> Result<RoomSendResponse> {
            not_here()
        }
    }

    fn users(names: &[&str]) -> Users {
        names.iter().map(|name| (1, (*name).to_owned())).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn each_report_is_sent_once_more_after_its_time() {
        let told = Arc::new(Told::default());
        let reports = SessionReports::new(told.clone(), Some(Duration::from_secs(6)));
        tokio::spawn(reports.clone().run());
        reports.changed(1, "ann");
        reports.changed(1, "bob");
        reports.changed(1, "ann");
        tokio::time::sleep(Duration::from_secs(1)).await;
        reports.changed(1, "cy");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*told.0.lock().unwrap(), [users(&["ann", "bob"]), users(&["cy"])]);

        tokio::time::sleep(Duration::from_secs(10)).await;
        let again = [users(&["ann", "bob"]), users(&["cy"]), users(&["ann", "bob"]), users(&["cy"])];
        assert_eq!(*told.0.lock().unwrap(), again, "each once more, and no more");
    }

    #[tokio::test(start_paused = true)]
    async fn in_one_process_a_report_is_sent_once() {
        let told = Arc::new(Told::default());
        let reports = SessionReports::new(told.clone(), None);
        tokio::spawn(reports.clone().run());
        reports.changed(1, "ann");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(*told.0.lock().unwrap(), [users(&["ann"])]);
    }
}
