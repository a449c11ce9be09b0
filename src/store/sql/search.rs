//! Full-text search: the `message_search` index (FTS5 on SQLite, InnoDB FULLTEXT on
//! MySQL), written in the transaction of the messages, recalls and edits that change
//! it, and read for one user: what the user can see, less what it deleted for itself.

use async_trait::async_trait;
use prost::Message as _;
use sqlx::Row;

use super::{Dialect, MAX_IN_LIST, SqlStore, Tx, rows, rows_of};
use crate::{
    model::{AppId, ConversationType, Message, MessageBody, NewMessage},
    proto::common::v1::message_body::Content,
    store::{SearchQuery, SearchStore, StoreError, StoreResult},
    terms,
};

/// Groups of a user whose terms a search names; a user in more is searched by SQL alone.
const MAX_GROUP_TERMS: usize = 500;

/// Messages read per round when indexing what was stored before the index existed.
const BACKFILL_BATCH: i64 = 500;

/// The words of a body that search finds: a text, a file's name, a place's name.
fn searchable_text(body: &MessageBody) -> Option<String> {
    match &body.content {
        Some(Content::Text(text)) => Some(text.text.clone()),
        Some(Content::File(file)) => Some(file.name.clone()),
        Some(Content::Location(location)) => Some(format!("{} {}", location.title, location.address)),
        _ => None,
    }
}

/// A row of the index: what a user wrote in a direct or group conversation.
pub(super) struct Indexed<'b> {
    pub message_id: i64,
    pub conversation_type: i64,
    pub sender: &'b str,
    pub receiver: &'b str,
    pub position: i64,
    pub sent_at_ms: i64,
    pub terms: String,
}

/// What the index holds of a message: its words, and who may find it.
fn terms_of(app: AppId, kind: ConversationType, sender: &str, receiver: &str, text: &str) -> String {
    let seen_by = match kind {
        ConversationType::Group => terms::seen_by_group(app, receiver),
        _ => format!("{} {}", terms::seen_by_user(app, sender), terms::seen_by_user(app, receiver)),
    };
    format!("{} {seen_by}", terms::indexed(text))
}

impl<'b> Indexed<'b> {
    /// The row of `message` (at `position` in its group), if it has words to find.
    pub(super) fn of(app: AppId, message: &'b NewMessage, position: u64) -> StoreResult<Option<Self>> {
        let by_user = !message.sender_user_id.is_empty()
            && matches!(message.conversation_type, ConversationType::Direct | ConversationType::Group);
        let Some(text) = searchable_text(&message.body).filter(|_| by_user) else { return Ok(None) };
        let (sender, receiver) = (&message.sender_user_id, &message.receiver_id);
        Ok(Some(Self {
            message_id: rows::bigint(message.id, "id")?,
            conversation_type: i64::from(message.conversation_type as i32),
            sender,
            receiver,
            position: rows::bigint(position, "position")?,
            sent_at_ms: message.sent_at_ms,
            terms: terms_of(app, message.conversation_type, sender, receiver, &text),
        }))
    }
}

impl Dialect {
    /// The index joined to its messages, and the condition that a row holds every one of
    /// `all` and at least one of `any`, with the value to bind.
    fn matching(self, all: &[String], any: &[String]) -> (&'static str, String) {
        match self {
            Dialect::MySql => {
                let mut query: Vec<String> = all.iter().map(|term| format!("+{term}")).collect();
                if !any.is_empty() {
                    query.push(format!("+({})", any.join(" ")));
                }
                (
                    "message_search s JOIN messages m ON m.app_id = s.app_id AND m.id = s.message_id \
                     WHERE MATCH(s.terms) AGAINST (? IN BOOLEAN MODE)",
                    query.join(" "),
                )
            }
            Dialect::Sqlite => {
                let quoted = |terms: &[String]| terms.iter().map(|term| format!("\"{term}\"")).collect::<Vec<_>>();
                let mut query = quoted(all).join(" AND ");
                if !any.is_empty() {
                    query = format!("{query} AND ({})", quoted(any).join(" OR "));
                }
                (
                    "message_search_fts f JOIN message_search s ON s.rowid = f.rowid \
                     JOIN messages m ON m.app_id = s.app_id AND m.id = s.message_id WHERE f.terms MATCH ?",
                    query,
                )
            }
        }
    }
}

impl SqlStore {
    pub(super) async fn index_in(&self, tx: &mut Tx, app: i64, rows: &[Indexed<'_>]) -> StoreResult<()> {
        for chunk in rows.chunks(MAX_IN_LIST / 8) {
            let sql = format!(
                "INSERT INTO message_search (message_id, app_id, conversation_type, sender_user_id, receiver_id, \
                 position, sent_at_ms, terms) VALUES {}",
                rows_of(chunk.len(), 8),
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(row.message_id)
                    .bind(app)
                    .bind(row.conversation_type)
                    .bind(row.sender)
                    .bind(row.receiver)
                    .bind(row.position)
                    .bind(row.sent_at_ms)
                    .bind(row.terms.as_str());
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// A recall: nothing of the message can be found any more.
    pub(super) async fn unindex(&self, tx: &mut Tx, app: i64, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM message_search WHERE message_id = ? AND app_id = ?")
            .bind(id)
            .bind(app)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// An edit: the message is found by its new text.
    pub(super) async fn reindex(&self, tx: &mut Tx, app: i64, id: i64, text: &str) -> StoreResult<()> {
        let row = sqlx::query(
            "SELECT conversation_type, sender_user_id, receiver_id FROM message_search \
             WHERE message_id = ? AND app_id = ?",
        )
        .bind(id)
        .bind(app)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(()) };
        let (sender, receiver): (String, String) = (row.try_get("sender_user_id")?, row.try_get("receiver_id")?);
        let kind = rows::get_enum(&row, "conversation_type")?;
        sqlx::query("UPDATE message_search SET terms = ? WHERE message_id = ? AND app_id = ?")
            .bind(terms_of(rows::u64_of(app, "app_id")?, kind, &sender, &receiver, text))
            .bind(id)
            .bind(app)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Indexes the messages stored before the index existed, in key order, a batch per
    /// transaction.
    pub(super) async fn index_stored_messages(&self) -> StoreResult<()> {
        let (mut app, mut after) = (0_i64, -1_i64);
        loop {
            let found = sqlx::query(
                "SELECT app_id, id, conversation_type, sender_user_id, receiver_id, position, sent_at_ms, body, \
                 status FROM messages WHERE app_id > ? OR (app_id = ? AND id > ?) ORDER BY app_id, id LIMIT ?",
            )
            .bind(app)
            .bind(app)
            .bind(after)
            .bind(BACKFILL_BATCH)
            .fetch_all(&self.write)
            .await?;
            let Some(last) = found.last() else { return Ok(()) };
            (app, after) = (last.try_get("app_id")?, last.try_get("id")?);
            let mut tx = self.begin().await?;
            for row in &found {
                let body: Vec<u8> = row.try_get("body")?;
                let body = MessageBody::decode(body.as_slice())
                    .map_err(|err| StoreError::Corrupt(format!("message body: {err}")))?;
                let message = NewMessage {
                    id: rows::get_u64(row, "id")?,
                    client_msg_id: String::new(),
                    sender_user_id: row.try_get("sender_user_id")?,
                    sender_device_id: String::new(),
                    conversation_type: rows::get_enum(row, "conversation_type")?,
                    receiver_id: row.try_get("receiver_id")?,
                    body,
                    meta: Default::default(),
                    reply_to: None,
                    sent_at_ms: row.try_get("sent_at_ms")?,
                    recipients: Vec::new(),
                };
                let status: i64 = row.try_get("status")?;
                let live = status == i64::from(crate::model::MessageStatus::Normal as i32);
                let app: i64 = row.try_get("app_id")?;
                let position = rows::get_u64(row, "position")?;
                if let Some(indexed) = Indexed::of(rows::u64_of(app, "app_id")?, &message, position)?.filter(|_| live) {
                    // A run cut short and started again finds some indexed already.
                    self.unindex(&mut tx, app, indexed.message_id).await?;
                    self.index_in(&mut tx, app, std::slice::from_ref(&indexed)).await?;
                }
            }
            tx.commit().await?;
        }
    }

    /// The terms of which a match must hold one: the user's own, and its groups' (or the
    /// one conversation searched). Past `MAX_GROUP_TERMS` groups, none: the SQL that
    /// follows decides who may see a match on its own.
    async fn seen_by(&self, app: AppId, query: &SearchQuery<'_>) -> StoreResult<Vec<String>> {
        let own = terms::seen_by_user(app, query.user_id);
        match query.conversation {
            Some((ConversationType::Group, group)) => return Ok(vec![terms::seen_by_group(app, group)]),
            Some(_) => return Ok(vec![own]),
            None => {}
        }
        let groups: Vec<String> = sqlx::query_scalar(
            "SELECT group_id FROM group_members WHERE app_id = ? AND user_id = ? ORDER BY group_id LIMIT ?",
        )
        .bind(rows::bigint(app, "app_id")?)
        .bind(query.user_id)
        .bind(MAX_GROUP_TERMS as i64 + 1)
        .fetch_all(&self.read)
        .await?;
        if groups.len() > MAX_GROUP_TERMS {
            return Ok(Vec::new());
        }
        Ok(std::iter::once(own).chain(groups.iter().map(|group| terms::seen_by_group(app, group))).collect())
    }

    /// Runs what migrations left to gim (`schema_tasks`), once each.
    pub(super) async fn run_schema_tasks(&self) -> StoreResult<()> {
        let pending: Vec<String> =
            sqlx::query_scalar("SELECT name FROM schema_tasks WHERE done_at_ms = 0").fetch_all(&self.write).await?;
        for task in pending {
            match task.as_str() {
                "index_messages_for_search" => {
                    tracing::info!("indexing the messages stored so far for search");
                    self.index_stored_messages().await?;
                }
                "refile_webhook_events" => {
                    tracing::info!("filing the webhook events not delivered yet by their lanes' partitions");
                    self.refile_events().await?;
                }
                other => return Err(StoreError::Corrupt(format!("unknown schema task {other}"))),
            }
            sqlx::query("UPDATE schema_tasks SET done_at_ms = ? WHERE name = ?")
                .bind(crate::model::now_ms())
                .bind(task.as_str())
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SearchStore for SqlStore {
    async fn search_messages(&self, app: AppId, query: &SearchQuery<'_>) -> StoreResult<Vec<Message>> {
        let seen_by = self.seen_by(app, query).await?;
        let (matching, terms) = self.dialect.matching(query.terms, &seen_by);
        // Who may see a match: a user of its direct conversation, or a member of its group
        // from the member's join on (unless the group shows its history to newcomers).
        let mut sql = format!(
            "SELECT {} FROM {matching} AND s.app_id = ? \
             AND ((s.conversation_type = 1 AND (s.sender_user_id = ? OR s.receiver_id = ?)) \
                 OR (s.conversation_type = 2 AND EXISTS (SELECT 1 FROM group_members gm \
                     JOIN chat_groups g ON g.app_id = gm.app_id AND g.group_id = gm.group_id \
                     WHERE gm.app_id = s.app_id AND gm.group_id = s.receiver_id AND gm.user_id = ? \
                     AND (g.history_visible = 1 OR s.position > gm.joined_position)))) \
             AND NOT EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = s.app_id AND d.user_id = ? \
                 AND d.message_id = s.message_id) \
             AND s.sent_at_ms > COALESCE((SELECT c.cleared_at_ms FROM conversations c WHERE c.app_id = s.app_id \
                 AND c.user_id = ? AND c.conversation_type = s.conversation_type AND c.conversation_id = \
                 CASE WHEN s.conversation_type = 2 THEN s.receiver_id WHEN s.sender_user_id = ? THEN s.receiver_id \
                 ELSE s.sender_user_id END), 0)",
            rows::BARE_MESSAGE_COLUMNS
        );
        let user = query.user_id;
        let mut binds: Vec<Bind<'_>> = vec![Bind::Text(terms), Bind::Int(rows::bigint(app, "app_id")?)];
        binds.extend((0..6).map(|_| Bind::Str(user)));
        match query.conversation {
            Some((ConversationType::Direct, peer)) => {
                sql.push_str(
                    " AND s.conversation_type = 1 AND ((s.sender_user_id = ? AND s.receiver_id = ?) \
                     OR (s.sender_user_id = ? AND s.receiver_id = ?))",
                );
                binds.extend([Bind::Str(user), Bind::Str(peer), Bind::Str(peer), Bind::Str(user)]);
            }
            Some((ConversationType::Group, group)) => {
                sql.push_str(" AND s.conversation_type = 2 AND s.receiver_id = ?");
                binds.push(Bind::Str(group));
            }
            Some(_) => return Ok(Vec::new()),
            None => {}
        }
        if let Some(sender) = query.sender_user_id {
            sql.push_str(" AND s.sender_user_id = ?");
            binds.push(Bind::Str(sender));
        }
        if query.after_ms > 0 {
            sql.push_str(" AND s.sent_at_ms >= ?");
            binds.push(Bind::Int(query.after_ms));
        }
        if query.before_ms > 0 {
            sql.push_str(" AND s.sent_at_ms < ?");
            binds.push(Bind::Int(query.before_ms));
        }
        if query.before_message_id > 0 {
            sql.push_str(" AND s.message_id < ?");
            binds.push(Bind::Int(rows::bound(query.before_message_id)));
        }
        sql.push_str(" ORDER BY s.message_id DESC LIMIT ?");
        binds.push(Bind::Int(i64::from(query.limit)));
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            statement = match bind {
                Bind::Text(value) => statement.bind(value),
                Bind::Str(value) => statement.bind(value),
                Bind::Int(value) => statement.bind(value),
            };
        }
        let found = statement.fetch_all(&self.read).await?;
        found.iter().map(rows::message).collect()
    }
}

/// A value of a statement built piece by piece.
enum Bind<'a> {
    Text(String),
    Str(&'a str),
    Int(i64),
}
