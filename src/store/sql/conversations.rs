//! Conversations: one row per user and conversation, changed in the transaction of what
//! changes it. A batch of messages adds to the rows of every inbox it lands in (one
//! statement for the batch); a read counts what is left from the inbox; a setting
//! writes the row. Each change bumps the user's `conversation_version`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{Row, any::AnyRow};

use super::{AnyQuery, SqlStore, Tx, bind_in, in_list, in_tx, pow2_chunks, revisions::COUNTED_IN_SQL, rows, rows_of};
use crate::{
    model::{AppId, Conversation, ConversationSettings, ConversationType, Message, NewMessage},
    proto::common::v1::message_body::Content,
    store::{ConversationMark, ConversationStore, ConversationTotals, StoreError, StoreResult},
};

/// Where a user's conversation rows come from. Most are kept by the messages that land
/// in the user's inbox, and are read as they are. A large group's row, while the user
/// reads the group's timeline, takes its last message from the group and its counts from
/// the group's running totals (see `timeline_counts`) on top of what it kept from the
/// group's small days. The two are read apart: joining every row with its group made
/// lists and badges twice as slow for users who have no large group at all.
#[derive(Clone, Copy)]
enum Rows {
    Inbox,
    Timeline,
}

impl Rows {
    /// `SELECT ... WHERE` the user's rows of this kind, narrowed by `filter` (on `c`, and
    /// `g` for the timeline); the caller binds app and user first.
    fn select(self, filter: &str) -> String {
        match self {
            Rows::Inbox => format!(
                "SELECT c.conversation_type, c.conversation_id, c.last_seq, c.last_message_id, c.last_at_ms, \
                 c.unread, c.mentions, c.read_seq, c.pinned, c.muted, c.hidden, c.draft, c.version, \
                 c.updated_at_ms, c.cleared_seq, c.on_timeline FROM conversations c \
                 WHERE c.app_id = ? AND c.user_id = ? AND c.on_timeline = 0{filter}"
            ),
            Rows::Timeline => format!(
                "SELECT c.conversation_type, c.conversation_id, \
                 CASE WHEN g.last_message_seq > c.cleared_seq THEN g.last_message_seq ELSE 0 END AS last_seq, \
                 CASE WHEN g.last_message_seq > c.cleared_seq THEN g.last_message_id ELSE 0 END AS last_message_id, \
                 {TIMELINE_LAST_AT} AS last_at_ms, c.unread + {} AS unread, c.mentions + {TIMELINE_MENTIONS} AS mentions, \
                 c.read_group_seq AS read_seq, c.pinned, c.muted, CASE WHEN {TIMELINE_SHOWN} THEN 0 ELSE 1 END AS hidden, \
                 c.draft, c.version, c.updated_at_ms, c.cleared_seq, c.on_timeline {TIMELINE_ROWS}{filter}",
                timeline_unread("g.counted")
            ),
        }
    }
}

/// The user's rows on large groups' timelines, found through its memberships (an
/// index) rather than by reading all its rows; the caller binds app and user.
const TIMELINE_ROWS: &str = "FROM group_members gm JOIN conversations c ON c.app_id = gm.app_id \
     AND c.user_id = gm.user_id AND c.conversation_type = 2 AND c.conversation_id = gm.group_id \
     JOIN chat_groups g ON g.app_id = gm.app_id AND g.group_id = gm.group_id \
     WHERE gm.app_id = ? AND gm.user_id = ? AND c.on_timeline = 1";

const TIMELINE_LAST_AT: &str = "CASE WHEN c.last_at_ms > g.last_at_ms THEN c.last_at_ms ELSE g.last_at_ms END";

/// Not hidden, or hidden before the group's latest message (which brings it back, as a
/// message landing in an inbox does).
const TIMELINE_SHOWN: &str = "(c.hidden = 0 OR g.last_at_ms > c.hidden_at_ms)";

/// A timeline row's unread messages: the group's counted messages (`counted`, its
/// group's total) past the row's base, less those recalled since the read point.
/// Never below 0: a count that went wrong shows as none, and does not fail the whole list.
pub(super) fn timeline_unread(counted: &str) -> String {
    let unread = format!(
        "({counted} - c.counted_base - (SELECT COUNT(*) FROM group_recalls r \
         WHERE r.app_id = c.app_id AND r.group_id = c.conversation_id AND r.seq > c.read_group_seq))"
    );
    format!("(CASE WHEN {unread} > 0 THEN {unread} ELSE 0 END)")
}

/// A timeline row's unread mentions: of the user or of everyone, after the read point,
/// by someone else, neither recalled nor deleted by the user.
pub(super) const TIMELINE_MENTIONS: &str = "(SELECT COUNT(*) FROM group_mentions gm JOIN messages m \
     ON m.app_id = gm.app_id AND m.id = gm.message_id \
     WHERE gm.app_id = c.app_id AND gm.group_id = c.conversation_id AND gm.user_id IN (c.user_id, '') \
     AND gm.seq > c.read_group_seq AND m.status = 1 AND m.sender_user_id <> c.user_id \
     AND NOT EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = m.app_id AND d.user_id = c.user_id \
     AND d.message_id = m.id))";

fn conversation(row: &AnyRow) -> StoreResult<Conversation> {
    let flag = |column: &str| -> StoreResult<bool> { Ok(row.try_get::<i64, _>(column)? != 0) };
    Ok(Conversation {
        conversation_type: rows::get_enum(row, "conversation_type")?,
        conversation_id: row.try_get("conversation_id")?,
        last_seq: rows::get_u64(row, "last_seq")?,
        last_message_id: rows::get_u64(row, "last_message_id")?,
        last_at_ms: row.try_get("last_at_ms")?,
        unread: rows::get_u64(row, "unread")?,
        mentions: rows::get_u64(row, "mentions")?,
        read_seq: rows::get_u64(row, "read_seq")?,
        pinned: flag("pinned")?,
        muted: flag("muted")?,
        hidden: flag("hidden")?,
        draft: row.try_get("draft")?,
        version: rows::get_u64(row, "version")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        cleared_seq: rows::get_u64(row, "cleared_seq")?,
        on_timeline: flag("on_timeline")?,
    })
}

/// Whether `message` mentions `user` (by name, or everyone in a group).
pub(super) fn mentions(message: &NewMessage, user: &str) -> bool {
    match &message.body.content {
        Some(Content::Text(text)) => {
            (text.mention_all && message.conversation_type == ConversationType::Group)
                || text.mention_user_ids.iter().any(|mentioned| mentioned == user)
        }
        _ => false,
    }
}

/// Unread: what others wrote, and the system conversation's notices; a group's notices
/// ("joined", "renamed") are shown but not counted. `COUNTED_IN_SQL` is the same rule
/// for stored rows, which may since have been recalled or deleted.
fn counts_as_unread(kind: ConversationType, sender: &str, user: &str) -> bool {
    sender != user && (!sender.is_empty() || kind == ConversationType::System)
}

/// What a batch does to one user's conversation.
#[derive(Debug, Default)]
pub(super) struct Landing {
    pub last_seq: u64,
    pub last_message_id: u64,
    pub last_at_ms: i64,
    pub unread: u64,
    pub mentions: u64,
}

/// A user's conversation: (user, type, id).
pub(super) type Key<'b> = (&'b str, i64, &'b str);

impl Landing {
    /// One more message in the conversation, at the user's `seq`.
    pub(super) fn add(&mut self, message: &NewMessage, user: &str, seq: u64, mentioned: bool) {
        if seq > self.last_seq {
            self.last_seq = seq;
            self.last_message_id = message.id;
            self.last_at_ms = message.sent_at_ms;
        }
        if counts_as_unread(message.conversation_type, &message.sender_user_id, user) {
            self.unread += 1;
            self.mentions += u64::from(mentioned);
        }
    }
}

impl SqlStore {
    /// The users' conversation versions, locked (their seq rows are locked already, or
    /// are locked here in key order).
    pub(super) async fn lock_version(&self, tx: &mut Tx, app: i64, user_id: &str) -> StoreResult<u64> {
        let sql = format!(
            "SELECT conversation_version FROM user_seqs WHERE app_id = ? AND user_id = ?{}",
            self.dialect.for_update()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        rows::get_u64(&row, "conversation_version")
    }

    pub(super) async fn store_version(&self, tx: &mut Tx, app: i64, user_id: &str, version: u64) -> StoreResult<()> {
        sqlx::query("UPDATE user_seqs SET conversation_version = ? WHERE app_id = ? AND user_id = ?")
            .bind(rows::bigint(version, "conversation_version")?)
            .bind(app)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Writes what a batch of messages did to its recipients' conversations; `versions`
    /// are the recipients' new conversation versions.
    pub(super) async fn land_in_conversations(
        &self,
        tx: &mut Tx,
        app: i64,
        landings: &BTreeMap<Key<'_>, Landing>,
        versions: &BTreeMap<&str, u64>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let landings: Vec<(&Key<'_>, &Landing)> = landings.iter().collect();
        let ex = |column: &str| self.dialect.excluded(column);
        let update = format!(
            "{}last_seq = {}, last_message_id = {}, last_at_ms = {}, unread = unread + {}, mentions = mentions + {}, \
             hidden = 0, version = {}, updated_at_ms = {}",
            self.dialect.on_conflict("app_id, user_id, conversation_type, conversation_id"),
            ex("last_seq"),
            ex("last_message_id"),
            ex("last_at_ms"),
            ex("unread"),
            ex("mentions"),
            ex("version"),
            ex("updated_at_ms"),
        );
        for chunk in pow2_chunks(&landings) {
            let sql = format!(
                "INSERT INTO conversations (app_id, user_id, conversation_type, conversation_id, {COLUMNS_AFTER_KEY}) \
                 VALUES {}{update}",
                rows_of(chunk.len(), 16)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((user, kind, id), landing) in chunk {
                query = query
                    .bind(app)
                    .bind(*user)
                    .bind(*kind)
                    .bind(*id)
                    .bind(rows::bigint(landing.last_seq, "last_seq")?)
                    .bind(rows::bigint(landing.last_message_id, "last_message_id")?)
                    .bind(landing.last_at_ms)
                    .bind(rows::bigint(landing.unread, "unread")?)
                    .bind(rows::bigint(landing.mentions, "mentions")?)
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind("")
                    .bind(rows::bigint(versions[*user], "version")?)
                    .bind(now_ms);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Counts what is left unread of a conversation once the user's read cursor is at
    /// `read_seq`; nothing changes if the row is at or past it already. Returns whether
    /// the read point moved.
    pub(super) async fn read_conversation(
        &self,
        tx: &mut Tx,
        app: i64,
        user_id: &str,
        (kind, id): (i64, &str),
        read_seq: u64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let version = self.lock_version(tx, app, user_id).await? + 1;
        let read = rows::bigint(read_seq, "seq")?;
        let after = "FROM inbox i JOIN messages m ON m.app_id = i.app_id AND m.id = i.message_id \
             WHERE i.app_id = c.app_id AND i.user_id = c.user_id AND i.conversation_type = c.conversation_type \
             AND i.conversation_id = c.conversation_id AND i.seq > ? AND i.seq > c.cleared_seq";
        let sql = format!(
            "UPDATE conversations AS c SET read_seq = ?, \
             unread = (SELECT COUNT(*) {after} AND {COUNTED_IN_SQL}), \
             mentions = (SELECT COUNT(*) {after} AND {COUNTED_IN_SQL} AND i.mentioned = 1), \
             version = ?, updated_at_ms = ? \
             WHERE c.app_id = ? AND c.user_id = ? AND c.conversation_type = ? AND c.conversation_id = ? \
             AND c.read_seq < ?"
        );
        let changed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(read)
            .bind(read)
            .bind(read)
            .bind(rows::bigint(version, "version")?)
            .bind(now_ms)
            .bind(app)
            .bind(user_id)
            .bind(kind)
            .bind(id)
            .bind(read)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if changed > 0 {
            self.store_version(tx, app, user_id, version).await?;
        }
        Ok(changed > 0)
    }

    /// Records where the user cleared a conversation's history (never moving back); the
    /// counts are made again by the caller.
    pub(super) async fn clear_conversation(
        &self,
        tx: &mut Tx,
        app: i64,
        user_id: &str,
        (kind, id): (i64, &str),
        (seq, position, at_ms): (i64, i64, i64),
        now_ms: i64,
    ) -> StoreResult<()> {
        let greatest = self.dialect.greatest();
        let keep_greatest =
            |column: &str| format!("{column} = {greatest}({column}, {})", self.dialect.excluded(column));
        let sql = format!(
            "INSERT INTO conversations (app_id, user_id, conversation_type, conversation_id, {COLUMNS_AFTER_KEY}, \
             cleared_seq, cleared_position, cleared_at_ms) VALUES {}{}{}, {}, {}",
            rows_of(1, 19),
            self.dialect.on_conflict("app_id, user_id, conversation_type, conversation_id"),
            keep_greatest("cleared_seq"),
            keep_greatest("cleared_position"),
            keep_greatest("cleared_at_ms"),
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        new_row(query, (app, user_id, kind, id), &ConversationSettings::default(), 0, now_ms)
            .bind(seq)
            .bind(position)
            .bind(at_ms)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn update_conversation_in(
        &self,
        tx: &mut Tx,
        app: i64,
        user_id: &str,
        (kind, id): (i64, &str),
        settings: &ConversationSettings,
        now_ms: i64,
    ) -> StoreResult<()> {
        let version = self.lock_version(tx, app, user_id).await? + 1;
        let mut sets = vec![
            format!("version = {}", self.dialect.excluded("version")),
            format!("updated_at_ms = {}", self.dialect.excluded("updated_at_ms")),
        ];
        for (column, given) in [
            ("pinned", settings.pinned.is_some()),
            ("muted", settings.muted.is_some()),
            ("hidden", settings.hidden.is_some()),
            ("draft", settings.draft.is_some()),
        ] {
            if given {
                sets.push(format!("{column} = {}", self.dialect.excluded(column)));
            }
        }
        if settings.hidden == Some(true) {
            // A large group's row shows again once its group has a later message.
            sets.push(format!("hidden_at_ms = {}", self.dialect.excluded("updated_at_ms")));
        }
        let sql = format!(
            "INSERT INTO conversations (app_id, user_id, conversation_type, conversation_id, {COLUMNS_AFTER_KEY}) \
             VALUES {}{}{}",
            rows_of(1, 16),
            self.dialect.on_conflict("app_id, user_id, conversation_type, conversation_id"),
            sets.join(", ")
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        new_row(query, (app, user_id, kind, id), settings, rows::bigint(version, "version")?, now_ms)
            .execute(&mut **tx)
            .await?;
        self.store_version(tx, app, user_id, version).await?;
        Ok(())
    }
}

/// Binds a conversation row that has had no message yet: the key, then
/// `COLUMNS_AFTER_KEY` with the settings given.
fn new_row<'q>(
    query: AnyQuery<'q>,
    (app, user_id, kind, id): (i64, &'q str, i64, &'q str),
    settings: &'q ConversationSettings,
    version: i64,
    now_ms: i64,
) -> AnyQuery<'q> {
    let flag = |value: Option<bool>| i64::from(value.unwrap_or(false));
    query
        .bind(app)
        .bind(user_id)
        .bind(kind)
        .bind(id)
        .bind(0_i64) // last_seq
        .bind(0_i64) // last_message_id
        .bind(0_i64) // last_at_ms
        .bind(0_i64) // unread
        .bind(0_i64) // mentions
        .bind(0_i64) // read_seq
        .bind(flag(settings.pinned))
        .bind(flag(settings.muted))
        .bind(flag(settings.hidden))
        .bind(settings.draft.as_deref().unwrap_or(""))
        .bind(version)
        .bind(now_ms)
}

/// The columns an insert gives after the key, in the order `new_row` binds them.
const COLUMNS_AFTER_KEY: &str = "last_seq, last_message_id, last_at_ms, unread, mentions, read_seq, pinned, muted, \
     hidden, draft, version, updated_at_ms";

impl SqlStore {
    /// The user's rows of one kind matching `filter`, with `bind` adding its values.
    async fn fetch_rows(
        &self,
        rows: Rows,
        (app, user_id): (i64, &str),
        filter: &str,
        bind: impl for<'q> FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> StoreResult<Vec<Conversation>> {
        let query = sqlx::query(sqlx::AssertSqlSafe(rows.select(filter))).bind(app).bind(user_id);
        bind(query).fetch_all(&self.read).await?.iter().map(conversation).collect()
    }
}

#[async_trait]
impl ConversationStore for SqlStore {
    async fn conversations(
        &self,
        app: AppId,
        user_id: &str,
        after: Option<&ConversationMark>,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        let page = if after.is_some() {
            " AND (c.last_at_ms < ? OR (c.last_at_ms = ? AND (c.conversation_type > ? \
             OR (c.conversation_type = ? AND c.conversation_id > ?))))"
        } else {
            ""
        };
        let filter = format!(
            " AND c.hidden = 0{page} ORDER BY c.last_at_ms DESC, c.conversation_type, c.conversation_id LIMIT ?"
        );
        let user = (rows::bigint(app, "app_id")?, user_id);
        self.fetch_rows(Rows::Inbox, user, &filter, |mut query| {
            if let Some(mark) = after {
                let kind = i64::from(mark.conversation_type as i32);
                query = query.bind(mark.last_at_ms).bind(mark.last_at_ms).bind(kind).bind(kind);
                query = query.bind(mark.conversation_id.clone());
            }
            query.bind(i64::from(limit))
        })
        .await
    }

    async fn conversation(
        &self,
        app: AppId,
        user_id: &str,
        (conversation_type, conversation_id): (ConversationType, &str),
    ) -> StoreResult<Option<Conversation>> {
        let user = (rows::bigint(app, "app_id")?, user_id);
        let filter = " AND c.conversation_type = ? AND c.conversation_id = ?";
        let kind = i64::from(conversation_type as i32);
        for source in [Rows::Inbox, Rows::Timeline] {
            let id = conversation_id.to_owned();
            let found = self.fetch_rows(source, user, filter, |query| query.bind(kind).bind(id)).await?;
            if let Some(found) = found.into_iter().next() {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    async fn changed_conversations(
        &self,
        app: AppId,
        user_id: &str,
        version: u64,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        let user = (rows::bigint(app, "app_id")?, user_id);
        let filter = " AND c.version > ? ORDER BY c.version, c.conversation_type, c.conversation_id LIMIT ?";
        self.fetch_rows(Rows::Inbox, user, filter, |query| query.bind(rows::bound(version)).bind(i64::from(limit)))
            .await
    }

    async fn conversation_totals(&self, app: AppId, user_id: &str) -> StoreResult<ConversationTotals> {
        // One round trip: the version, the badge summed from the user's rows (which hold
        // all but the timeline counts of large groups), and its large groups' rows.
        let sql = format!(
            "SELECT (SELECT s.conversation_version FROM user_seqs s WHERE s.app_id = ? AND s.user_id = ?) \
             AS conversation_version, (SELECT CAST(SUM(o.unread) AS SIGNED) FROM conversations o \
             WHERE o.app_id = ? AND o.user_id = ? AND o.muted = 0) AS unread, \
             CAST(SUM(CASE WHEN c.muted = 0 THEN {} ELSE 0 END) AS SIGNED) AS timeline_unread, \
             COUNT(*) AS on_timeline {TIMELINE_ROWS}",
            timeline_unread("g.counted")
        );
        let app = rows::bigint(app, "app_id")?;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for _ in 0..3 {
            query = query.bind(app).bind(user_id);
        }
        let row = query.fetch_one(&self.read).await?;
        let version: Option<i64> = row.try_get("conversation_version")?;
        let unread: Option<i64> = row.try_get("unread")?;
        let timeline_unread: Option<i64> = row.try_get("timeline_unread")?;
        Ok(ConversationTotals {
            version: rows::u64_of(version.ok_or(StoreError::NotFound)?, "conversation_version")?,
            unread: rows::u64_of(unread.unwrap_or(0) + timeline_unread.unwrap_or(0), "unread")?,
            on_timeline: rows::get_u64(&row, "on_timeline")?,
        })
    }

    async fn timeline_conversations(
        &self,
        app: AppId,
        user_id: &str,
        after_version: u64,
        margin_ms: i64,
    ) -> StoreResult<Vec<Conversation>> {
        // When the version was reached, no later than: the latest change of a row still at
        // or below it (0 when there is none, and then every such row comes).
        let changed = if after_version == 0 {
            ""
        } else {
            " AND (c.version > ? OR g.changed_at_ms >= (SELECT COALESCE(MAX(o.updated_at_ms), 0) \
             FROM conversations o WHERE o.app_id = c.app_id AND o.user_id = c.user_id AND o.version <= ?) - ?)"
        };
        let user = (rows::bigint(app, "app_id")?, user_id);
        self.fetch_rows(Rows::Timeline, user, changed, |query| match after_version {
            0 => query,
            _ => query.bind(rows::bound(after_version)).bind(rows::bound(after_version)).bind(margin_ms),
        })
        .await
    }

    async fn update_conversation(
        &self,
        app: AppId,
        user_id: &str,
        (conversation_type, conversation_id): (ConversationType, &str),
        settings: &ConversationSettings,
        now_ms: i64,
    ) -> StoreResult<Conversation> {
        let key = (i64::from(conversation_type as i32), conversation_id);
        let app_id = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.update_conversation_in(tx, app_id, user_id, key, settings, now_ms).await)?;
        self.conversation(app, user_id, (conversation_type, conversation_id)).await?.ok_or(StoreError::NotFound)
    }

    async fn messages_by_id(&self, app: AppId, ids: &[u64]) -> StoreResult<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM messages m WHERE m.app_id = ? AND m.id IN ({})",
            rows::BARE_MESSAGE_COLUMNS,
            in_list(ids.len())
        );
        let ids: Vec<i64> = ids.iter().map(|id| rows::bigint(*id, "id")).collect::<StoreResult<_>>()?;
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?), &ids);
        let found = query.fetch_all(&self.read).await?;
        found.iter().map(rows::message).collect()
    }
}
