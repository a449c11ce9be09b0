//! The app's announcements: messages to every user, each stored once on the app's own
//! timeline (`group_timeline` rows under the timeline's id), which every user reads
//! like a large group's. Announcements are rare: one transaction each, serialised per
//! app on the app's row.

use async_trait::async_trait;

use super::{SqlStore, Tx, messages::StoredRow, rows};
use crate::{
    model::{AppId, Appended, NewMessage},
    store::{AnnouncementStore, StoreResult},
};

impl SqlStore {
    async fn announce_in(&self, tx: &mut Tx, app: i64, message: &NewMessage) -> StoreResult<Appended> {
        let sql = format!("SELECT app_id FROM apps WHERE app_id = ?{}", self.dialect.for_update());
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).fetch_optional(&mut **tx).await?;
        let batch = std::slice::from_ref(message);
        if let Some(stored) = self.stored_sends(tx, app, batch).await?.into_values().next() {
            return Ok(stored);
        }
        let seq = latest_on(&mut **tx, app, &message.receiver_id).await? + 1;
        let row = StoredRow { index: 0, sender_seq: 0, group_seq: seq, position: 0 };
        self.insert_messages(tx, app, batch, std::slice::from_ref(&row)).await?;
        sqlx::query("INSERT INTO group_timeline (app_id, group_id, seq, message_id, counted) VALUES (?, ?, ?, ?, 0)")
            .bind(app)
            .bind(message.receiver_id.as_str())
            .bind(rows::bound(seq))
            .bind(rows::bigint(message.id, "id")?)
            .execute(&mut **tx)
            .await?;
        let appended = Appended {
            id: message.id,
            sent_at_ms: message.sent_at_ms,
            duplicate: false,
            inboxes: Vec::new(),
            sender_seq: 0,
            timeline: Some((message.receiver_id.clone(), seq)),
        };
        self.write_message_events(tx, app, batch, &[Ok(appended.clone())], &Default::default()).await?;
        Ok(appended)
    }
}

#[async_trait]
impl AnnouncementStore for SqlStore {
    async fn announce(&self, app: AppId, message: &NewMessage) -> StoreResult<Appended> {
        let app = rows::bigint(app, "app_id")?;
        super::in_tx!(self, |tx| self.announce_in(tx, app, message).await)
    }

    async fn latest_on_timeline(&self, app: AppId, timeline: &str) -> StoreResult<u64> {
        latest_on(&self.read, rows::bigint(app, "app_id")?, timeline).await
    }
}

/// The seq of a timeline's last message (0: none), in a transaction or from a pool.
async fn latest_on<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    app: i64,
    timeline: &str,
) -> StoreResult<u64> {
    let latest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM group_timeline WHERE app_id = ? AND group_id = ?")
            .bind(app)
            .bind(timeline)
            .fetch_one(executor)
            .await?;
    rows::u64_of(latest.unwrap_or_default(), "seq")
}
