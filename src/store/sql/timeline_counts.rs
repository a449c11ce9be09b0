//! The conversations of large groups: their messages are on one timeline, so a member's
//! row is not counted up by each message (that is the fan-out large groups avoid).
//! The group keeps running totals (`chat_groups.counted`, and `group_timeline.counted`
//! at each seq), and each member's row keeps its base against them: the total at its read
//! point plus what it does not count after it (its own messages, those it deleted). The
//! list reads unread as total - base - recalls after the read point (`timeline_unread`).
//!
//! Every change here is made in the transaction of what causes it: a send moves its
//! sender's base, a recall its sender's and deleters' bases, a read, a deletion or a
//! clearing counts the base again from the timeline after the new read point.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{SqlStore, Tx, bind_in, in_list, pow2_chunks, rows, rows_of};
use crate::store::StoreResult;

/// Where a large group's timeline stands, as the group row holds it.
#[derive(Debug, Clone, Default)]
pub(super) struct TimelineHead {
    /// Messages on the timeline that are unread for someone: from a user, not revisions.
    pub counted: u64,
    pub last_message_id: u64,
    pub last_message_seq: u64,
    pub last_at_ms: i64,
    /// The time of the timeline's last entry of any kind.
    pub changed_at_ms: i64,
}

pub(super) const HEAD_COLUMNS: &str = "counted, last_message_id, last_message_seq, last_at_ms, changed_at_ms";

impl TimelineHead {
    pub(super) fn of(row: &sqlx::any::AnyRow) -> StoreResult<Self> {
        Ok(Self {
            counted: rows::get_u64(row, "counted")?,
            last_message_id: rows::get_u64(row, "last_message_id")?,
            last_message_seq: rows::get_u64(row, "last_message_seq")?,
            last_at_ms: row.try_get("last_at_ms")?,
            changed_at_ms: row.try_get("changed_at_ms")?,
        })
    }
}

/// A mention on a large group's timeline: the user mentioned ('' for everyone).
pub(super) struct TimelineMention<'b> {
    pub group: &'b str,
    pub user: &'b str,
    pub seq: u64,
    pub message_id: u64,
}

/// A row's clear point in the units of `seqs_at_or_before`, a query of the seqs (group
/// seqs, or the user's inbox seqs) of the group's messages at or before the row's
/// `cleared_position`: the point follows the cleared position when a group changes mode.
fn cleared_seq_at_position(seqs_at_or_before: &str) -> String {
    format!("COALESCE((SELECT MAX(x.seq) {seqs_at_or_before} AND {}), 0)", rows::NOT_A_REVISION)
}

/// The group's timeline entries at or before a row's cleared position (of which only
/// messages count: revisions have no place in the group's order).
const TIMELINE_AT_POSITION: &str = "FROM group_timeline x JOIN messages m ON m.app_id = x.app_id \
     AND m.id = x.message_id WHERE x.app_id = c.app_id AND x.group_id = c.conversation_id \
     AND m.position <= c.cleared_position";

/// The row's user's inbox messages of the group at or before the row's cleared position.
const INBOX_AT_POSITION: &str = "FROM inbox x JOIN messages m ON m.app_id = x.app_id AND m.id = x.message_id \
     WHERE x.app_id = c.app_id AND x.user_id = c.user_id AND x.conversation_type = c.conversation_type \
     AND x.conversation_id = c.conversation_id AND m.position <= c.cleared_position";

/// The version a user's row takes: the one its user's `user_seqs` row holds now.
const USER_VERSION: &str =
    "(SELECT s.conversation_version FROM user_seqs s WHERE s.app_id = c.app_id AND s.user_id = c.user_id)";

impl SqlStore {
    /// Bumps the users' conversation versions (their rows locked in key order).
    pub(super) async fn bump_versions(&self, tx: &mut Tx, app: i64, users: &[&str]) -> StoreResult<()> {
        let sql = format!(
            "UPDATE user_seqs SET conversation_version = conversation_version + 1 \
             WHERE app_id = ? AND user_id IN ({})",
            in_list(users.len())
        );
        bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), users).execute(&mut **tx).await?;
        Ok(())
    }

    /// Puts `users` on the group's timeline: their rows (made if missing) count from its
    /// head, the group's last seq. Everything before is read or was counted in their inboxes.
    pub(super) async fn enter_timeline(
        &self,
        tx: &mut Tx,
        app: i64,
        group_id: &str,
        users: &[String],
        now_ms: i64,
    ) -> StoreResult<()> {
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        for chunk in users.chunks(super::MAX_IN_LIST) {
            self.bump_versions(tx, app, chunk).await?;
            let ex = |column: &str| format!("{column} = {}", self.dialect.excluded(column));
            let sql = format!(
                "INSERT INTO conversations (app_id, user_id, conversation_type, conversation_id, last_seq, \
                 last_message_id, last_at_ms, unread, mentions, read_seq, pinned, muted, hidden, draft, version, \
                 updated_at_ms, on_timeline, read_group_seq, counted_base) \
                 SELECT s.app_id, s.user_id, 2, g.group_id, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', s.conversation_version, \
                 ?, 1, g.seq, g.counted FROM user_seqs s JOIN chat_groups g ON g.app_id = s.app_id AND g.group_id = ? \
                 WHERE s.app_id = ? AND s.user_id IN ({}){}on_timeline = 1, hidden = 0, {}, {}, {}, {}",
                in_list(chunk.len()),
                self.dialect.on_conflict("app_id, user_id, conversation_type, conversation_id"),
                ex("read_group_seq"),
                ex("counted_base"),
                ex("version"),
                ex("updated_at_ms"),
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(group_id).bind(app);
            bind_in(query, chunk).execute(&mut **tx).await?;
            // A cursor from the group's small days holds an inbox seq: reads on the timeline
            // (group seqs, smaller) would never move it.
            let sql = format!(
                "DELETE FROM read_cursors WHERE app_id = ? AND user_id IN ({}) AND conversation_type = 2 \
                 AND conversation_id = ?",
                in_list(chunk.len())
            );
            let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), chunk);
            query.bind(group_id).execute(&mut **tx).await?;
        }
        // A clear point from the group's small days is an inbox seq: on the timeline it is
        // the group seq of the last message at or before the cleared position.
        let sets = format!("cleared_seq = {}", cleared_seq_at_position(TIMELINE_AT_POSITION));
        self.update_timeline_rows(tx, app, group_id, &users, &sets, now_ms).await
    }

    /// Takes `users` off the group's timeline: from here on their rows are rows of their
    /// inboxes (which got the news of the leave), counting what those hold of the group;
    /// the timeline's messages, which a former member can no longer open, stop counting.
    pub(super) async fn leave_timeline(
        &self,
        tx: &mut Tx,
        app: i64,
        group_id: &str,
        users: &[String],
        now_ms: i64,
    ) -> StoreResult<()> {
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        for chunk in users.chunks(super::MAX_IN_LIST) {
            self.bump_versions(tx, app, chunk).await?;
        }
        // The clear point, a group seq, becomes the inbox seq of the last message at or
        // before the cleared position again.
        let sets = format!("cleared_seq = {}, on_timeline = 0", cleared_seq_at_position(INBOX_AT_POSITION));
        self.update_timeline_rows(tx, app, group_id, &users, &sets, now_ms).await
    }

    /// Sets `sets` on `users`' rows of the group's timeline, at their current versions.
    async fn update_timeline_rows(
        &self,
        tx: &mut Tx,
        app: i64,
        group_id: &str,
        users: &[&str],
        sets: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        for chunk in users.chunks(super::MAX_IN_LIST) {
            let sql = format!(
                "UPDATE conversations AS c SET {sets}, version = {USER_VERSION}, updated_at_ms = ? \
                 WHERE c.app_id = ? AND c.conversation_type = 2 AND c.conversation_id = ? AND c.on_timeline = 1 \
                 AND c.user_id IN ({})",
                in_list(chunk.len())
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(app).bind(group_id);
            bind_in(query, chunk).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Counts a batch's messages on large groups' timelines: each sender's own messages
    /// move its base (they are not unread for it); mentions are recorded by seq.
    pub(super) async fn count_on_timeline(
        &self,
        tx: &mut Tx,
        app: i64,
        own: &BTreeMap<(&str, &str), u64>,
        mentions: &[TimelineMention<'_>],
    ) -> StoreResult<()> {
        for (&(group, sender), &count) in own {
            sqlx::query(
                "UPDATE conversations SET counted_base = counted_base + ? WHERE app_id = ? AND user_id = ? \
                 AND conversation_type = 2 AND conversation_id = ? AND on_timeline = 1",
            )
            .bind(rows::bigint(count, "count")?)
            .bind(app)
            .bind(sender)
            .bind(group)
            .execute(&mut **tx)
            .await?;
        }
        for chunk in pow2_chunks(mentions) {
            let sql = format!(
                "INSERT INTO group_mentions (app_id, group_id, user_id, seq, message_id) VALUES {}{}",
                rows_of(chunk.len(), 5),
                self.dialect.ignore_duplicate("message_id")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for mention in chunk {
                query = query
                    .bind(app)
                    .bind(mention.group)
                    .bind(mention.user)
                    .bind(rows::bigint(mention.seq, "seq")?)
                    .bind(rows::bigint(mention.message_id, "message_id")?);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// A counted message of a large group's timeline is recalled: it leaves everyone's
    /// unread count through `group_recalls`, so the bases that left it out (its sender's,
    /// its deleters') give it back.
    pub(super) async fn uncount_recalled(
        &self,
        tx: &mut Tx,
        app: i64,
        (group_id, seq): (&str, i64),
        (message_id, sender): (i64, &str),
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO group_recalls (app_id, group_id, seq) VALUES (?, ?, ?){}",
            self.dialect.ignore_duplicate("seq")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).bind(group_id).bind(seq).execute(&mut **tx).await?;
        let deleters: Vec<String> =
            sqlx::query_scalar("SELECT user_id FROM deleted_messages WHERE app_id = ? AND message_id = ?")
                .bind(app)
                .bind(message_id)
                .fetch_all(&mut **tx)
                .await?;
        let mut users: Vec<&str> = deleters.iter().map(String::as_str).chain([sender]).collect();
        users.sort_unstable();
        users.dedup();
        for chunk in users.chunks(super::MAX_IN_LIST) {
            let sql = format!(
                "UPDATE conversations SET counted_base = counted_base - 1 WHERE app_id = ? AND user_id IN ({}) \
                 AND conversation_type = 2 AND conversation_id = ? AND on_timeline = 1 AND read_group_seq < ?",
                in_list(chunk.len())
            );
            let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), chunk);
            query.bind(group_id).bind(seq).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Counts the bases of `users`' rows of a large group again from the timeline after
    /// their read points, at their current conversation versions.
    pub(super) async fn rebase_timeline(
        &self,
        tx: &mut Tx,
        app: i64,
        group_id: &str,
        users: &[&str],
        now_ms: i64,
    ) -> StoreResult<()> {
        let sets = "counted_base = COALESCE((SELECT t.counted FROM group_timeline t \
             WHERE t.app_id = c.app_id AND t.group_id = c.conversation_id AND t.seq = c.read_group_seq), 0) \
             + (SELECT COUNT(*) FROM group_timeline t JOIN messages m ON m.app_id = t.app_id \
             AND m.id = t.message_id WHERE t.app_id = c.app_id AND t.group_id = c.conversation_id \
             AND t.seq > c.read_group_seq AND m.sender_user_id <> '' AND m.message_type <> 10 AND m.status = 1 \
             AND (m.sender_user_id = c.user_id OR EXISTS (SELECT 1 FROM deleted_messages d \
             WHERE d.app_id = c.app_id AND d.user_id = c.user_id AND d.message_id = m.id)))";
        self.update_timeline_rows(tx, app, group_id, users, sets, now_ms).await
    }

    /// Moves a timeline row's read point forward to `seq` (never back); what was left
    /// from the group's small days is read with it. Returns whether it moved.
    pub(super) async fn read_timeline(
        &self,
        tx: &mut Tx,
        app: i64,
        user_id: &str,
        group_id: &str,
        seq: u64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let version = self.lock_version(tx, app, user_id).await? + 1;
        // The timeline comes after every message the inbox holds of the group: those are
        // read too (`read_seq`, against which `recount` counts them), even by a read at the
        // row's read point (its join), which moves nothing on the timeline itself.
        let seq = rows::bigint(seq, "seq")?;
        let moved = sqlx::query(
            "UPDATE conversations SET read_group_seq = ?, unread = 0, mentions = 0, \
             read_seq = COALESCE((SELECT MAX(i.seq) FROM inbox i WHERE i.app_id = conversations.app_id \
             AND i.user_id = conversations.user_id AND i.conversation_type = conversations.conversation_type \
             AND i.conversation_id = conversations.conversation_id), read_seq) \
             WHERE app_id = ? AND user_id = ? AND conversation_type = 2 AND conversation_id = ? AND on_timeline = 1 \
             AND read_group_seq <= ? AND (read_group_seq < ? OR unread > 0 OR mentions > 0)",
        )
        .bind(seq)
        .bind(app)
        .bind(user_id)
        .bind(group_id)
        .bind(seq)
        .bind(seq)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            > 0;
        if moved {
            self.store_version(tx, app, user_id, version).await?;
            self.rebase_timeline(tx, app, group_id, &[user_id], now_ms).await?;
        }
        Ok(moved)
    }
}
