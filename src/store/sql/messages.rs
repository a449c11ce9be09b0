//! The write path of messages (one transaction per batch) and inbox reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use prost::Message as _;
use sqlx::Row;

use super::{SqlStore, Tx, bind_in, conflict_on_unique, in_list, pow2_chunks, rows, rows_of};
use crate::{
    model::{AppId, ConversationType, Message, MessageStatus},
    store::{AppendError, Appended, HistoryCursor, MessageStore, NewMessage, StoreResult},
};

type Outcome = Result<Appended, AppendError>;

impl SqlStore {
    async fn append_in(&self, tx: &mut Tx, app: i64, batch: &[NewMessage]) -> StoreResult<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];

        // 1. Sends that repeat a stored message, or an earlier one of this batch.
        let stored = self.stored_sends(tx, app, batch).await?;
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut fresh: Vec<usize> = Vec::new();
        for (i, msg) in batch.iter().enumerate() {
            let key = (msg.client_msg_id.as_str(), msg.sender_user_id.as_str());
            if let Some(earlier) = stored.get(&key) {
                outcomes[i] = Some(Ok(earlier.clone()));
            } else if let Some(&first) = first_of.get(&key) {
                repeats.push((i, first));
            } else {
                first_of.insert(key, i);
                fresh.push(i);
            }
        }

        // 2. Lock the seq rows of every recipient, in key order so that concurrent
        // batches always lock in the same order and cannot deadlock.
        let users: BTreeSet<&str> =
            fresh.iter().flat_map(|&i| batch[i].recipients.iter().map(|r| r.user_id.as_str())).collect();
        let mut seqs = self.lock_seqs(tx, app, &users).await?;
        let mut touched: BTreeSet<&str> = BTreeSet::new();

        // 3. Hand out seqs in batch order.
        let mut inbox_rows: Vec<(usize, &str, &str, i64)> = Vec::new();
        let mut stored_rows: Vec<(usize, u64)> = Vec::new();
        for &i in &fresh {
            let msg = &batch[i];
            if let Some(missing) = msg.recipients.iter().find(|r| !seqs.contains_key(r.user_id.as_str())) {
                outcomes[i] = Some(Err(AppendError::UnknownUser(missing.user_id.clone())));
                continue;
            }
            let mut assigned = Vec::with_capacity(msg.recipients.len());
            for recipient in &msg.recipients {
                let seq = seqs.get_mut(recipient.user_id.as_str()).map(|seq| {
                    *seq += 1;
                    *seq
                });
                let seq = seq.unwrap_or_default();
                touched.insert(recipient.user_id.as_str());
                inbox_rows.push((i, recipient.user_id.as_str(), recipient.conversation_id.as_str(), seq));
                assigned.push(rows::unsigned(seq));
            }
            let sender_seq = msg
                .recipients
                .iter()
                .position(|r| !msg.sender_user_id.is_empty() && r.user_id == msg.sender_user_id)
                .map_or(0, |pos| assigned[pos]);
            stored_rows.push((i, sender_seq));
            outcomes[i] = Some(Ok(Appended {
                id: msg.id,
                sent_at_ms: msg.sent_at_ms,
                duplicate: false,
                seqs: assigned,
                sender_seq,
            }));
        }
        for (i, first) in repeats {
            outcomes[i] = outcomes[first].clone().map(|outcome| outcome.map(as_duplicate));
        }

        // 4. Write seqs, messages and inbox entries.
        self.store_seqs(tx, app, touched.iter().map(|user| (*user, seqs[*user]))).await?;
        for chunk in pow2_chunks(&stored_rows) {
            self.insert_messages(tx, app, batch, chunk).await?;
        }
        for chunk in pow2_chunks(&inbox_rows) {
            let sql = format!(
                "INSERT INTO inbox (app_id, user_id, seq, message_id, conversation_type, conversation_id, sent_at_ms) \
                 VALUES {}",
                rows_of(chunk.len(), 7)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &(i, user, conversation, seq) in chunk {
                let msg = &batch[i];
                query = query
                    .bind(app)
                    .bind(user)
                    .bind(seq)
                    .bind(rows::signed(msg.id))
                    .bind(i64::from(msg.conversation_type as i32))
                    .bind(conversation)
                    .bind(msg.sent_at_ms);
            }
            query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        }
        Ok(outcomes.into_iter().map(|outcome| outcome.expect("every message of a batch gets an outcome")).collect())
    }

    /// Earlier sends among the batch's `(client_msg_id, sender)` pairs.
    async fn stored_sends<'b>(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &'b [NewMessage],
    ) -> StoreResult<HashMap<(&'b str, &'b str), Appended>> {
        let client_ids: BTreeSet<&str> = batch.iter().map(|m| m.client_msg_id.as_str()).collect();
        let sql = format!(
            "SELECT client_msg_id, sender_user_id, id, sent_at_ms, sender_seq FROM messages \
             WHERE app_id = ? AND client_msg_id IN ({})",
            in_list(client_ids.len())
        );
        let client_ids: Vec<&str> = client_ids.into_iter().collect();
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), &client_ids);
        let mut found = HashMap::new();
        for row in query.fetch_all(&mut **tx).await? {
            let client: String = row.try_get("client_msg_id")?;
            let sender: String = row.try_get("sender_user_id")?;
            // Borrow the key from the batch so the map outlives the rows.
            let Some(msg) = batch.iter().find(|m| m.client_msg_id == client && m.sender_user_id == sender) else {
                continue;
            };
            found.insert(
                (msg.client_msg_id.as_str(), msg.sender_user_id.as_str()),
                Appended {
                    id: rows::unsigned(row.try_get("id")?),
                    sent_at_ms: row.try_get("sent_at_ms")?,
                    duplicate: true,
                    seqs: Vec::new(),
                    sender_seq: rows::unsigned(row.try_get("sender_seq")?),
                },
            );
        }
        Ok(found)
    }

    async fn lock_seqs<'u>(
        &self,
        tx: &mut Tx,
        app: i64,
        users: &BTreeSet<&'u str>,
    ) -> StoreResult<BTreeMap<&'u str, i64>> {
        if users.is_empty() {
            return Ok(BTreeMap::new());
        }
        let sql = format!(
            "SELECT user_id, seq FROM user_seqs WHERE app_id = ? AND user_id IN ({}) ORDER BY user_id{}",
            in_list(users.len()),
            self.dialect.for_update()
        );
        let users_list: Vec<&str> = users.iter().copied().collect();
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), &users_list);
        let mut seqs = BTreeMap::new();
        for row in query.fetch_all(&mut **tx).await? {
            let user: String = row.try_get("user_id")?;
            if let Some(key) = users.get(user.as_str()) {
                seqs.insert(*key, row.try_get::<i64, _>("seq")?);
            }
        }
        Ok(seqs)
    }

    async fn store_seqs<'u>(
        &self,
        tx: &mut Tx,
        app: i64,
        seqs: impl Iterator<Item = (&'u str, i64)>,
    ) -> StoreResult<()> {
        let seqs: Vec<(&str, i64)> = seqs.collect();
        for chunk in pow2_chunks(&seqs) {
            let sql = format!(
                "INSERT INTO user_seqs (app_id, user_id, seq) VALUES {}{}",
                rows_of(chunk.len(), 3),
                self.dialect.upsert("app_id, user_id", &["seq"])
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (user, seq) in chunk {
                query = query.bind(app).bind(*user).bind(*seq);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn insert_messages(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        chunk: &[(usize, u64)],
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO messages (app_id, id, client_msg_id, sender_user_id, sender_device_id, conversation_type, \
             receiver_id, message_type, body, sent_at_ms, status, sender_seq) VALUES {}",
            rows_of(chunk.len(), 12)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for &(i, sender_seq) in chunk {
            let msg = &batch[i];
            query = query
                .bind(app)
                .bind(rows::signed(msg.id))
                .bind(msg.client_msg_id.as_str())
                .bind(msg.sender_user_id.as_str())
                .bind(msg.sender_device_id.as_str())
                .bind(i64::from(msg.conversation_type as i32))
                .bind(msg.receiver_id.as_str())
                .bind(i64::from(crate::model::message_type_of(&msg.body) as i32))
                .bind(msg.body.encode_to_vec())
                .bind(msg.sent_at_ms)
                .bind(i64::from(MessageStatus::Normal as i32))
                .bind(rows::signed(sender_seq));
        }
        query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        Ok(())
    }
}

fn as_duplicate(first: Appended) -> Appended {
    Appended { duplicate: true, seqs: Vec::new(), ..first }
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn append(&self, app: AppId, batch: &[NewMessage]) -> StoreResult<Vec<Outcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let app = rows::signed(app);
        self.write_tx(|mut tx| async move {
            let result = self.append_in(&mut tx, app, batch).await;
            (tx, result)
        })
        .await
    }

    async fn latest_seq(&self, app: AppId, user_id: &str) -> StoreResult<Option<u64>> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM user_seqs WHERE app_id = ? AND user_id = ?")
            .bind(rows::signed(app))
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(seq.map(rows::unsigned))
    }

    async fn inbox_after(&self, app: AppId, user_id: &str, after_seq: u64, limit: u32) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {} FROM inbox i JOIN messages m ON m.app_id = i.app_id AND m.id = i.message_id \
             WHERE i.app_id = ? AND i.user_id = ? AND i.seq > ? ORDER BY i.seq LIMIT ?",
            rows::MESSAGE_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::signed(app))
            .bind(user_id)
            .bind(rows::bound(after_seq))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(rows::message).collect()
    }

    async fn history(
        &self,
        app: AppId,
        user_id: &str,
        (conversation_type, conversation_id): (ConversationType, &str),
        cursor: HistoryCursor,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let mut sql = format!(
            "SELECT {} FROM inbox i JOIN messages m ON m.app_id = i.app_id AND m.id = i.message_id \
             WHERE i.app_id = ? AND i.user_id = ? AND i.conversation_type = ? AND i.conversation_id = ?",
            rows::MESSAGE_COLUMNS
        );
        if cursor.before_seq > 0 {
            sql.push_str(" AND i.seq < ?");
        }
        if cursor.before_time_ms > 0 {
            sql.push_str(" AND i.sent_at_ms < ?");
        }
        sql.push_str(" ORDER BY i.seq DESC LIMIT ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::signed(app))
            .bind(user_id)
            .bind(i64::from(conversation_type as i32))
            .bind(conversation_id);
        if cursor.before_seq > 0 {
            query = query.bind(rows::bound(cursor.before_seq));
        }
        if cursor.before_time_ms > 0 {
            query = query.bind(cursor.before_time_ms);
        }
        let found = query.bind(i64::from(limit)).fetch_all(&self.read).await?;
        found.iter().map(rows::message).collect()
    }
}
