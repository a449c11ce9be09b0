use async_trait::async_trait;
use sqlx::{Row, any::AnyRow};

use super::{SqlStore, Tx, in_tx, rows};
use crate::{
    model::{AppId, ReadCursor},
    store::{InboxEntry, MarkedRead, ReadStore, StoreResult},
};

const CURSOR_COLUMNS: &str = "conversation_type, conversation_id, seq, message_id, updated_at_ms";

fn cursor(row: &AnyRow) -> StoreResult<ReadCursor> {
    Ok(ReadCursor {
        conversation_type: rows::get_enum(row, "conversation_type")?,
        conversation_id: row.try_get("conversation_id")?,
        seq: rows::get_u64(row, "seq")?,
        message_id: rows::get_u64(row, "message_id")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl SqlStore {
    /// Moves the user's read cursor of a conversation forward to `read` (only a later seq
    /// replaces the stored one: concurrent devices never move it back).
    pub(super) async fn move_read_cursor(
        &self,
        tx: &mut Tx,
        app: i64,
        user_id: &str,
        read: &ReadCursor,
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO read_cursors (app_id, user_id, conversation_type, conversation_id, seq, message_id, \
             updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?){}",
            self.dialect.upsert_if_greater(
                "app_id, user_id, conversation_type, conversation_id",
                "seq",
                &["message_id", "updated_at_ms"]
            )
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(user_id)
            .bind(i64::from(read.conversation_type as i32))
            .bind(read.conversation_id.as_str())
            .bind(rows::bigint(read.seq, "seq")?)
            .bind(rows::bigint(read.message_id, "message_id")?)
            .bind(read.updated_at_ms)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Moves the cursor and counts what is left unread, in one transaction; the
    /// conversation's row (and with it the user's conversation version) first, in the
    /// order sends lock them. `on_timeline`: the cursor is on a large group's timeline.
    async fn mark_read_in(
        &self,
        tx: &mut Tx,
        app: i64,
        user_id: &str,
        read: &ReadCursor,
        on_timeline: bool,
    ) -> StoreResult<MarkedRead> {
        let kind = i64::from(read.conversation_type as i32);
        let conversation = (kind, read.conversation_id.as_str());
        let moved = if on_timeline {
            self.read_timeline(tx, app, user_id, conversation.1, read.seq, read.updated_at_ms).await?
        } else {
            self.read_conversation(tx, app, user_id, conversation, read.seq, read.updated_at_ms).await?
        };
        self.move_read_cursor(tx, app, user_id, read).await?;
        let sql = format!(
            "SELECT {CURSOR_COLUMNS} FROM read_cursors \
             WHERE app_id = ? AND user_id = ? AND conversation_type = ? AND conversation_id = ?"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(user_id)
            .bind(kind)
            .bind(read.conversation_id.as_str())
            .fetch_one(&mut **tx)
            .await?;
        Ok(MarkedRead { cursor: cursor(&row)?, moved })
    }
}

#[async_trait]
impl ReadStore for SqlStore {
    async fn inbox_entry(&self, app: AppId, user_id: &str, seq: u64) -> StoreResult<Option<InboxEntry>> {
        let row = sqlx::query(
            "SELECT seq, message_id, conversation_type, conversation_id FROM inbox \
             WHERE app_id = ? AND user_id = ? AND seq = ?",
        )
        .bind(rows::bigint(app, "app_id")?)
        .bind(user_id)
        .bind(rows::bigint(seq, "seq")?)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(InboxEntry {
                seq: rows::get_u64(&row, "seq")?,
                message_id: rows::get_u64(&row, "message_id")?,
                conversation_type: rows::get_enum(&row, "conversation_type")?,
                conversation_id: row.try_get("conversation_id")?,
            })
        })
        .transpose()
    }

    async fn mark_read(&self, app: AppId, user_id: &str, read: &ReadCursor) -> StoreResult<MarkedRead> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.mark_read_in(tx, app, user_id, read, false).await)
    }

    async fn mark_timeline_read(&self, app: AppId, user_id: &str, read: &ReadCursor) -> StoreResult<MarkedRead> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.mark_read_in(tx, app, user_id, read, true).await)
    }

    async fn read_cursors(&self, app: AppId, user_id: &str) -> StoreResult<Vec<ReadCursor>> {
        let sql = format!(
            "SELECT {CURSOR_COLUMNS} FROM read_cursors WHERE app_id = ? AND user_id = ? \
             ORDER BY updated_at_ms DESC"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .fetch_all(&self.read)
            .await?;
        found.iter().map(cursor).collect()
    }
}
