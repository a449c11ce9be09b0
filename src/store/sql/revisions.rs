//! Revisions (recall, edit, delete for me) and reactions: what users do to messages
//! after sending them.
//!
//! A revision is written like a message, in the transaction of the change it makes: it
//! takes a seq in every inbox it reaches (or on the large group's timeline), so that a
//! device that was offline learns of it by syncing. Here it does its change to the
//! earlier message, and the conversations it touches are counted again.

use async_trait::async_trait;
use prost::Message as _;
use sqlx::Row;

use super::{MAX_IN_LIST, SqlStore, Tx, bind_in, in_list, in_tx, rows, rows_of};
use crate::{
    model::{
        AppId, ConversationType, MessageBody, MessageMeta, MessageStatus, NewMessage, ReactionCount, ReactionOutcome,
        ReadCursor, RevisionBody, RevisionKind,
    },
    proto::common::v1::message_body::Content,
    store::{ReactionStore, StoreError, StoreResult},
};

/// The revision a message of a batch carries, if it is one.
pub(super) fn revision_of(message: &NewMessage) -> Option<&RevisionBody> {
    match &message.body.content {
        Some(Content::Revision(revision)) => Some(revision),
        _ => None,
    }
}

/// A deletion or a clearing for one user reaches that user's inbox only: no group
/// fan-out, no position in the group, no timeline.
pub(super) fn is_private(message: &NewMessage) -> bool {
    revision_of(message).is_some_and(|revision| matches!(revision.kind(), RevisionKind::Delete | RevisionKind::Clear))
}

/// A recall, a deletion or a clearing changes what the conversations it reaches count.
pub(super) fn changes_counts(message: &NewMessage) -> bool {
    revision_of(message).is_some_and(|revision| revision.kind() != RevisionKind::Edit)
}

/// Rows of `inbox i` joined with `messages m` that count as unread for the inbox's user:
/// what others wrote (and the system conversation's notices; a group's notices are
/// shown but not counted), not recalled, not a revision, not deleted by the user.
pub(super) const COUNTED_IN_SQL: &str = "m.sender_user_id <> i.user_id \
     AND (m.sender_user_id <> '' OR i.conversation_type = 3) AND m.status = 1 AND m.message_type <> 10 \
     AND NOT EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = i.app_id AND d.user_id = i.user_id \
     AND d.message_id = i.message_id)";

/// What a message of a batch did to earlier messages, as `apply_revision` found.
pub(super) enum Applied {
    /// A message, a deletion or a clearing: nothing that webhook events report as a revision.
    Nothing,
    /// Recalled or edited a message `sender` sent.
    Revised { sender: String },
    /// Nothing: its message was recalled, and the revision must not be written.
    Refused,
}

/// The message a clearing goes up to.
struct ClearedPoint {
    message_id: i64,
    /// Its place in its group (0: not a group message).
    position: i64,
    sent_at_ms: i64,
    /// The conversation is a large group's, read on its timeline.
    large: bool,
}

/// A message that can still be recalled or edited.
struct LiveMessage {
    meta: MessageMeta,
    sender: String,
    /// Its receiver: the group, for a message on a large group's timeline.
    group: String,
    /// Its seq on a large group's timeline (0: not on one).
    group_seq: i64,
}

impl SqlStore {
    /// Makes the change `message` (a revision) announces, if its message can still be
    /// changed.
    pub(super) async fn apply_revision(&self, tx: &mut Tx, app: i64, message: &NewMessage) -> StoreResult<Applied> {
        let Some(revision) = revision_of(message) else {
            return Ok(Applied::Nothing);
        };
        let applied = match revision.kind() {
            RevisionKind::Recall | RevisionKind::Edit => {
                let &[id] = revision.message_ids.as_slice() else {
                    return Err(StoreError::Corrupt("a recall or an edit names one message".into()));
                };
                let Some(LiveMessage { mut meta, sender, group, group_seq }) =
                    self.lock_live_message(tx, app, id).await?
                else {
                    return Ok(Applied::Refused);
                };
                let (body, status) = if revision.kind() == RevisionKind::Recall {
                    meta.recalled_by = Some(revision.actor_user_id.clone());
                    meta.recalled_at_ms = message.sent_at_ms;
                    // Erased, not hidden: nothing of the content stays in the row.
                    (Vec::new(), MessageStatus::Recalled)
                } else {
                    meta.edited_at_ms = message.sent_at_ms;
                    let text = revision.text.clone().unwrap_or_default();
                    (MessageBody { content: Some(Content::Text(text)) }.encode_to_vec(), MessageStatus::Normal)
                };
                sqlx::query("UPDATE messages SET body = ?, status = ?, meta = ? WHERE app_id = ? AND id = ?")
                    .bind(body)
                    .bind(i64::from(status as i32))
                    .bind(meta_json(&meta)?)
                    .bind(app)
                    .bind(rows::bigint(id, "id")?)
                    .execute(&mut **tx)
                    .await?;
                let id = rows::bigint(id, "id")?;
                if status == MessageStatus::Recalled {
                    sqlx::query("DELETE FROM message_reactions WHERE app_id = ? AND message_id = ?")
                        .bind(app)
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                    self.unindex(tx, app, id).await?;
                    // Revisions cannot be recalled, so a sender means it was counted.
                    if group_seq > 0 && !sender.is_empty() {
                        self.uncount_recalled(tx, app, (&group, group_seq), (id, &sender)).await?;
                    } else if !sender.is_empty() && message.conversation_type == ConversationType::Group {
                        // Its revision goes where the group's messages go now: to its members'
                        // inboxes, or on the timeline if the group grew large; inboxes of former
                        // members, and of members reading the timeline now, hold it too.
                        self.recount_holders(tx, app, &group, message.sent_at_ms).await?;
                    }
                } else {
                    let text = revision.text.as_ref().map(|text| text.text.as_str()).unwrap_or_default();
                    self.reindex(tx, app, id, text).await?;
                }
                Applied::Revised { sender }
            }
            RevisionKind::Delete => {
                let user = revision.actor_user_id.as_str();
                let ids: Vec<i64> =
                    revision.message_ids.iter().map(|id| rows::bigint(*id, "id")).collect::<StoreResult<_>>()?;
                for chunk in ids.chunks(MAX_IN_LIST) {
                    let sql = format!(
                        "INSERT INTO deleted_messages (app_id, user_id, message_id) VALUES {}{}",
                        rows_of(chunk.len(), 3),
                        self.dialect.ignore_duplicate("message_id")
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for id in chunk {
                        query = query.bind(app).bind(user).bind(*id);
                    }
                    query.execute(&mut **tx).await?;
                }
                Applied::Nothing
            }
            RevisionKind::Clear => {
                let user = revision.actor_user_id.as_str();
                let conversation = message.recipients.first().map(|r| r.conversation_id.as_str()).unwrap_or_default();
                let kind = (message.conversation_type, conversation);
                let up_to = rows::bigint(revision.up_to_seq, "up_to_seq")?;
                let cleared = self.cleared_point(tx, app, user, kind, up_to).await?;
                let key = (i64::from(message.conversation_type as i32), conversation);
                let point = (up_to, cleared.position, cleared.sent_at_ms);
                self.clear_conversation(tx, app, user, key, point, message.sent_at_ms).await?;
                // What is cleared is read, in every kind of conversation: the read point moves
                // up to the clear point (the counts are made again after the batch).
                let read_point = if cleared.large {
                    // The timeline comes after every message the inbox holds of the group.
                    "read_group_seq = {greatest}(read_group_seq, ?), unread = 0, mentions = 0, \
                     read_seq = {greatest}(read_seq, COALESCE((SELECT MAX(i.seq) FROM inbox i WHERE \
                     i.app_id = conversations.app_id AND i.user_id = conversations.user_id \
                     AND i.conversation_type = conversations.conversation_type \
                     AND i.conversation_id = conversations.conversation_id), 0))"
                } else {
                    "read_seq = {greatest}(read_seq, ?)"
                };
                let sql = format!(
                    "UPDATE conversations SET {} WHERE app_id = ? AND user_id = ? AND conversation_type = ? \
                     AND conversation_id = ? AND on_timeline = ?",
                    read_point.replace("{greatest}", self.dialect.greatest())
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(up_to)
                    .bind(app)
                    .bind(user)
                    .bind(key.0)
                    .bind(conversation)
                    .bind(i64::from(cleared.large))
                    .execute(&mut **tx)
                    .await?;
                let cursor = ReadCursor {
                    conversation_type: message.conversation_type,
                    conversation_id: conversation.to_owned(),
                    seq: rows::u64_of(up_to, "up_to_seq")?,
                    message_id: rows::u64_of(cleared.message_id, "message_id")?,
                    updated_at_ms: message.sent_at_ms,
                };
                self.move_read_cursor(tx, app, user, &cursor).await?;
                Applied::Nothing
            }
            RevisionKind::Unspecified => return Err(StoreError::Corrupt("a revision without a kind".into())),
        };
        Ok(applied)
    }

    /// Where the message at the user's `seq` of a conversation (a large group it reads the
    /// timeline of: its group seq) stands in its group and in time, and whether the user
    /// reads the conversation on the timeline.
    async fn cleared_point(
        &self,
        tx: &mut Tx,
        app: i64,
        user: &str,
        (kind, conversation): (ConversationType, &str),
        seq: i64,
    ) -> StoreResult<ClearedPoint> {
        // The user's row says where it reads: a member of a large group on the timeline, a
        // former member in its inbox.
        let large = if kind == ConversationType::Group {
            let on_timeline: Option<i64> = sqlx::query_scalar(
                "SELECT on_timeline FROM conversations WHERE app_id = ? AND user_id = ? AND conversation_type = ? \
                 AND conversation_id = ?",
            )
            .bind(app)
            .bind(user)
            .bind(i64::from(ConversationType::Group as i32))
            .bind(conversation)
            .fetch_optional(&mut **tx)
            .await?;
            on_timeline.unwrap_or(0) != 0
        } else {
            false
        };
        let query = if large {
            sqlx::query(
                "SELECT m.id, m.position, m.sent_at_ms FROM group_timeline t JOIN messages m ON m.app_id = t.app_id \
                 AND m.id = t.message_id WHERE t.app_id = ? AND t.group_id = ? AND t.seq = ?",
            )
            .bind(app)
            .bind(conversation)
        } else {
            sqlx::query(
                "SELECT m.id, m.position, m.sent_at_ms FROM inbox i JOIN messages m ON m.app_id = i.app_id \
                 AND m.id = i.message_id WHERE i.app_id = ? AND i.user_id = ? AND i.seq = ?",
            )
            .bind(app)
            .bind(user)
        };
        let row = query
            .bind(seq)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no message at seq {seq} to clear up to")))?;
        Ok(ClearedPoint {
            message_id: row.try_get("id")?,
            position: row.try_get("position")?,
            sent_at_ms: row.try_get("sent_at_ms")?,
            large,
        })
    }

    /// A message that is not recalled, its row locked.
    async fn lock_live_message(&self, tx: &mut Tx, app: i64, id: u64) -> StoreResult<Option<LiveMessage>> {
        let sql = format!(
            "SELECT meta, sender_user_id, receiver_id, group_seq FROM messages \
             WHERE app_id = ? AND id = ? AND status = ?{}",
            self.dialect.for_update()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(rows::bigint(id, "id")?)
            .bind(i64::from(MessageStatus::Normal as i32))
            .fetch_optional(&mut **tx)
            .await?;
        row.map(|row| {
            Ok(LiveMessage {
                meta: rows::meta(&row.try_get::<String, _>("meta")?)?,
                sender: row.try_get("sender_user_id")?,
                group: row.try_get("receiver_id")?,
                group_seq: row.try_get("group_seq")?,
            })
        })
        .transpose()
    }

    /// Counts the unread messages and mentions of `users`' conversation `(kind, id)`
    /// again, at their new conversation versions (already stored in `user_seqs`); for a
    /// deletion, also finds the latest message left.
    pub(super) async fn recount(
        &self,
        tx: &mut Tx,
        app: i64,
        (kind, id): (i64, &str),
        users: &[&str],
        find_last: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        // A row on a large group's timeline keeps here what its inbox holds of the group's
        // small days; reads and clears on the timeline move its read point past all of it.
        let after = "FROM inbox i JOIN messages m ON m.app_id = i.app_id AND m.id = i.message_id \
             WHERE i.app_id = c.app_id AND i.user_id = c.user_id AND i.conversation_type = c.conversation_type \
             AND i.conversation_id = c.conversation_id AND i.seq > c.read_seq \
             AND (c.on_timeline = 1 OR i.seq > c.cleared_seq)";
        let counts = format!(
            "unread = (SELECT COUNT(*) {after} AND {COUNTED_IN_SQL}), \
             mentions = (SELECT COUNT(*) {after} AND {COUNTED_IN_SQL} AND i.mentioned = 1), \
             version = (SELECT s.conversation_version FROM user_seqs s WHERE s.app_id = c.app_id \
                 AND s.user_id = c.user_id), updated_at_ms = ?"
        );
        self.update_rows(tx, app, (kind, id, users), &counts, None, now_ms).await?;
        if find_last {
            // The latest message the user still has, or none (a timeline's is its group's).
            let latest = |set: &str, column: &str| {
                format!(
                    "{set} = COALESCE((SELECT i.{column} FROM inbox i JOIN messages m ON m.app_id = i.app_id \
                     AND m.id = i.message_id WHERE i.app_id = c.app_id AND i.user_id = c.user_id \
                     AND i.conversation_type = c.conversation_type AND i.conversation_id = c.conversation_id \
                     AND i.seq > c.cleared_seq AND m.message_type <> 10 AND NOT EXISTS (SELECT 1 FROM deleted_messages d \
                     WHERE d.app_id = i.app_id AND d.user_id = i.user_id AND d.message_id = i.message_id) \
                     ORDER BY i.seq DESC LIMIT 1), 0)"
                )
            };
            let sets: Vec<String> =
                [("last_seq", "seq"), ("last_message_id", "message_id"), ("last_at_ms", "sent_at_ms")]
                    .into_iter()
                    .map(|(set, column)| latest(set, column))
                    .collect();
            let sets = format!("{}, updated_at_ms = ?", sets.join(", "));
            self.update_rows(tx, app, (kind, id, users), &sets, Some(false), now_ms).await?;
        }
        Ok(())
    }

    /// Sets `sets` (which bind `now_ms`, once) on the rows of a conversation `(kind, id)`
    /// of `users`, those on a timeline or off it (`on_timeline`), or all.
    async fn update_rows(
        &self,
        tx: &mut Tx,
        app: i64,
        (kind, id, users): (i64, &str, &[&str]),
        sets: &str,
        on_timeline: Option<bool>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let which = match on_timeline {
            Some(on) => format!(" AND c.on_timeline = {}", i64::from(on)),
            None => String::new(),
        };
        for chunk in users.chunks(MAX_IN_LIST) {
            let sql = format!(
                "UPDATE conversations AS c SET {sets} WHERE c.app_id = ? AND c.conversation_type = ? \
                 AND c.conversation_id = ?{which} AND c.user_id IN ({})",
                in_list(chunk.len())
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(app).bind(kind).bind(id);
            bind_in(query, chunk).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// A group message that inboxes hold was recalled: every row of the group that counts
    /// something of its inbox (a member's, a former member's, or the part a row on the
    /// timeline keeps of the group's small days) counts again.
    async fn recount_holders(&self, tx: &mut Tx, app: i64, group: &str, now_ms: i64) -> StoreResult<()> {
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM conversations WHERE app_id = ? AND conversation_type = ? AND conversation_id = ? \
             AND (unread > 0 OR mentions > 0)",
        )
        .bind(app)
        .bind(i64::from(ConversationType::Group as i32))
        .bind(group)
        .fetch_all(&mut **tx)
        .await?;
        if users.is_empty() {
            return Ok(());
        }
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        self.bump_versions(tx, app, &users).await?;
        self.recount(tx, app, (i64::from(ConversationType::Group as i32), group), &users, false, now_ms).await
    }

    async fn add_reaction_in(
        &self,
        tx: &mut Tx,
        app: i64,
        (message_id, user_id, emoji): (i64, &str, &str),
        max_per_user: u32,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome> {
        // The message's row lock orders reactions against each other and a recall.
        if self.lock_live_message(tx, app, rows::u64_of(message_id, "id")?).await?.is_none() {
            return Ok(ReactionOutcome::Recalled);
        }
        let mine: Vec<String> = sqlx::query_scalar(
            "SELECT emoji FROM message_reactions WHERE app_id = ? AND message_id = ? AND user_id = ?",
        )
        .bind(app)
        .bind(message_id)
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?;
        if mine.iter().any(|given| given == emoji) {
            return Ok(ReactionOutcome::AlreadyGiven);
        }
        if mine.len() >= max_per_user as usize {
            return Ok(ReactionOutcome::TooMany);
        }
        sqlx::query(
            "INSERT INTO message_reactions (app_id, message_id, emoji, user_id, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(app)
        .bind(message_id)
        .bind(emoji)
        .bind(user_id)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        Ok(ReactionOutcome::Added)
    }
}

/// The `meta` column's value: empty for the common message with nothing to say.
pub(super) fn meta_json(meta: &MessageMeta) -> StoreResult<String> {
    if meta.is_empty() {
        return Ok(String::new());
    }
    serde_json::to_string(meta).map_err(|err| StoreError::Corrupt(format!("message meta: {err}")))
}

#[async_trait]
impl ReactionStore for SqlStore {
    async fn add_reaction(
        &self,
        app: AppId,
        message_id: u64,
        user_id: &str,
        emoji: &str,
        max_per_user: u32,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome> {
        let app = rows::bigint(app, "app_id")?;
        let key = (rows::bigint(message_id, "message_id")?, user_id, emoji);
        in_tx!(self, |tx| self.add_reaction_in(tx, app, key, max_per_user, now_ms).await)
    }

    async fn remove_reaction(&self, app: AppId, message_id: u64, user_id: &str, emoji: &str) -> StoreResult<bool> {
        let removed = sqlx::query(
            "DELETE FROM message_reactions WHERE app_id = ? AND message_id = ? AND emoji = ? AND user_id = ?",
        )
        .bind(rows::bigint(app, "app_id")?)
        .bind(rows::bigint(message_id, "message_id")?)
        .bind(emoji)
        .bind(user_id)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(removed > 0)
    }

    async fn message_reactions(
        &self,
        app: AppId,
        message_ids: &[u64],
        viewer: &str,
    ) -> StoreResult<Vec<(u64, ReactionCount)>> {
        let ids: Vec<i64> = message_ids.iter().map(|id| rows::bigint(*id, "id")).collect::<StoreResult<_>>()?;
        let mut found = Vec::new();
        for chunk in ids.chunks(MAX_IN_LIST) {
            // In the order each emoji was first given, so that counts do not reshuffle.
            let sql = format!(
                "SELECT message_id, emoji, COUNT(*) AS n, CAST(SUM(CASE WHEN user_id = ? THEN 1 ELSE 0 END) AS SIGNED) \
                 AS mine, MIN(created_at_ms) AS first_ms FROM message_reactions \
                 WHERE app_id = ? AND message_id IN ({}) GROUP BY message_id, emoji \
                 ORDER BY message_id, first_ms, emoji",
                in_list(chunk.len())
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(viewer).bind(rows::bigint(app, "app_id")?);
            for row in bind_in(query, chunk).fetch_all(&self.read).await? {
                found.push((
                    rows::get_u64(&row, "message_id")?,
                    ReactionCount {
                        emoji: row.try_get("emoji")?,
                        count: rows::get_u64(&row, "n")?,
                        mine: row.try_get::<i64, _>("mine")? > 0,
                    },
                ));
            }
        }
        Ok(found)
    }
}
