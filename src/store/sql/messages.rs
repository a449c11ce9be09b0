//! The write path of messages (one transaction per batch) and inbox reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use prost::Message as _;
use sqlx::Row;

use super::{SqlStore, Tx, bind_in, conflict_on_unique, in_list, pow2_chunks, rows, rows_of};
use crate::{
    model::{AppId, ConversationType, Group, GroupMember, GroupRole, Message, MessageStatus},
    store::{
        AppendError, Appended, GroupRefusal, HistoryCursor, MessageStore, NewMessage, Notice, Recipient, StoreError,
        StoreResult,
    },
};

type Outcome = Result<Appended, AppendError>;

/// A message of a batch as its `messages` row records it.
struct StoredRow {
    index: usize,
    sender_seq: u64,
    group_seq: u64,
    /// Its place in its group conversation (0 outside groups).
    position: u64,
}

/// A group locked for a batch, with what the batch needs to know of its members.
struct LockedGroup {
    group: Group,
    /// Every member of a small group; the senders' rows of a large one.
    members: HashMap<String, GroupMember>,
    /// The timeline seq handed out last in this batch.
    seq: u64,
    /// The conversation position handed out last in this batch.
    position: u64,
}

impl SqlStore {
    pub(super) async fn append_in(&self, tx: &mut Tx, app: i64, batch: &[NewMessage]) -> StoreResult<Vec<Outcome>> {
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

        // 2. Lock the groups written to, and decide where each group message goes: the
        // members' inboxes (small group) or the timeline (large group).
        let mut groups = self.lock_groups_for(tx, app, batch, &fresh).await?;
        let mut recipients: HashMap<usize, Vec<Recipient>> = HashMap::new();
        let mut on_timeline: BTreeSet<usize> = BTreeSet::new();
        fresh.retain(|&i| {
            let msg = &batch[i];
            if msg.conversation_type != ConversationType::Group {
                recipients.insert(i, msg.recipients.clone());
                return true;
            }
            let Some(locked) = groups.get_mut(msg.receiver_id.as_str()) else {
                outcomes[i] = Some(Err(AppendError::Group(GroupRefusal::NoGroup(msg.receiver_id.clone()))));
                return false;
            };
            if let Err(refusal) = may_send(locked, msg) {
                outcomes[i] = Some(Err(AppendError::Group(refusal)));
                return false;
            }
            let mut inboxes = msg.recipients.clone();
            if locked.group.large {
                on_timeline.insert(i);
            } else {
                let mut members: Vec<&String> = locked.members.keys().collect();
                members.sort();
                inboxes.extend(
                    members
                        .into_iter()
                        .map(|user| Recipient { user_id: user.clone(), conversation_id: msg.receiver_id.clone() }),
                );
            }
            recipients.insert(i, inboxes);
            true
        });

        // 3. Lock the seq rows of every recipient, in key order so that concurrent
        // batches always lock in the same order and cannot deadlock.
        let users: BTreeSet<&str> =
            fresh.iter().flat_map(|i| recipients[i].iter().map(|r| r.user_id.as_str())).collect();
        let mut seqs = self.lock_seqs(tx, app, &users).await?;
        let mut touched: BTreeSet<&str> = BTreeSet::new();

        // 4. Hand out seqs in batch order.
        let mut inbox_rows: Vec<(usize, &str, &str, i64)> = Vec::new();
        let mut stored_rows: Vec<StoredRow> = Vec::new();
        let mut timeline: HashMap<usize, (String, u64)> = HashMap::new();
        for &i in &fresh {
            let msg = &batch[i];
            let targets = &recipients[&i];
            if let Some(missing) = targets.iter().find(|r| !seqs.contains_key(r.user_id.as_str())) {
                outcomes[i] = Some(Err(AppendError::UnknownUser(missing.user_id.clone())));
                continue;
            }
            let mut position = 0;
            if let Some(locked) = groups.get_mut(msg.receiver_id.as_str())
                && msg.conversation_type == ConversationType::Group
            {
                locked.position += 1;
                position = locked.position;
                if on_timeline.contains(&i) {
                    locked.seq += 1;
                    timeline.insert(i, (msg.receiver_id.clone(), locked.seq));
                }
            }
            let mut inboxes = Vec::with_capacity(targets.len());
            for recipient in targets {
                let seq = seqs.get_mut(recipient.user_id.as_str()).map(|seq| {
                    *seq += 1;
                    *seq
                });
                let seq = seq.unwrap_or_default();
                touched.insert(recipient.user_id.as_str());
                inbox_rows.push((i, recipient.user_id.as_str(), recipient.conversation_id.as_str(), seq));
                inboxes.push((recipient.user_id.clone(), rows::unsigned(seq)));
            }
            let sender_seq = inboxes
                .iter()
                .find(|(user, _)| !msg.sender_user_id.is_empty() && *user == msg.sender_user_id)
                .map_or(0, |(_, seq)| *seq);
            let group_seq = timeline.get(&i).map_or(0, |(_, seq)| *seq);
            stored_rows.push(StoredRow { index: i, sender_seq, group_seq, position });
            outcomes[i] = Some(Ok(Appended {
                id: msg.id,
                sent_at_ms: msg.sent_at_ms,
                duplicate: false,
                inboxes,
                sender_seq,
                timeline: timeline.get(&i).cloned(),
            }));
        }
        for (i, first) in repeats {
            outcomes[i] = outcomes[first].clone().map(|outcome| outcome.map(as_duplicate));
        }

        // 5. Write seqs, messages, inbox and timeline entries.
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
        let timeline_rows: Vec<(&str, u64, u64)> =
            timeline.iter().map(|(i, (group, seq))| (group.as_str(), *seq, batch[*i].id)).collect();
        for chunk in pow2_chunks(&timeline_rows) {
            let sql = format!(
                "INSERT INTO group_timeline (app_id, group_id, seq, message_id) VALUES {}",
                rows_of(chunk.len(), 4)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &(group, seq, id) in chunk {
                query = query.bind(app).bind(group).bind(rows::signed(seq)).bind(rows::signed(id));
            }
            query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        }
        for locked in groups.values().filter(|locked| locked.position != locked.group.position) {
            sqlx::query("UPDATE chat_groups SET seq = ?, position = ? WHERE app_id = ? AND group_id = ?")
                .bind(rows::signed(locked.seq))
                .bind(rows::signed(locked.position))
                .bind(app)
                .bind(locked.group.group_id.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(outcomes.into_iter().map(|outcome| outcome.expect("every message of a batch gets an outcome")).collect())
    }

    /// Writes notifications in the transaction of the change they announce.
    pub(super) async fn append_notices_in(
        &self,
        tx: &mut Tx,
        app: i64,
        notices: &[NewMessage],
    ) -> StoreResult<Vec<Notice>> {
        if notices.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = self.append_in(tx, app, notices).await?;
        notices
            .iter()
            .zip(outcomes)
            .map(|(notice, outcome)| match outcome {
                Ok(appended) => Ok((notice.stored(&appended), appended)),
                Err(err) => Err(StoreError::Corrupt(format!("writing a notification: {err}"))),
            })
            .collect()
    }

    /// Locks the groups the batch's fresh group messages go to, with the member rows
    /// the checks need.
    async fn lock_groups_for(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        fresh: &[usize],
    ) -> StoreResult<HashMap<String, LockedGroup>> {
        let ids: BTreeSet<&str> = fresh
            .iter()
            .map(|&i| &batch[i])
            .filter(|m| m.conversation_type == ConversationType::Group)
            .map(|m| m.receiver_id.as_str())
            .collect();
        let mut locked = HashMap::new();
        for group in self.lock_groups(tx, app, &ids).await? {
            let members = if group.large {
                let senders: BTreeSet<&str> = fresh
                    .iter()
                    .map(|&i| &batch[i])
                    .filter(|m| m.receiver_id == group.group_id && !m.sender_user_id.is_empty())
                    .map(|m| m.sender_user_id.as_str())
                    .collect();
                self.members_named(tx, app, &group.group_id, &senders).await?
            } else {
                self.all_members(tx, app, &group.group_id).await?
            };
            let members = members.into_iter().map(|m| (m.user_id.clone(), m)).collect();
            locked.insert(
                group.group_id.clone(),
                LockedGroup { seq: group.seq, position: group.position, group, members },
            );
        }
        Ok(locked)
    }

    /// Group rows, locked, in key order.
    pub(super) async fn lock_groups(&self, tx: &mut Tx, app: i64, ids: &BTreeSet<&str>) -> StoreResult<Vec<Group>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM chat_groups WHERE app_id = ? AND group_id IN ({}) ORDER BY group_id{}",
            rows::GROUP_COLUMNS,
            in_list(ids.len()),
            self.dialect.for_update()
        );
        let ids: Vec<&str> = ids.iter().copied().collect();
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), &ids);
        query.fetch_all(&mut **tx).await?.iter().map(rows::group).collect()
    }

    pub(super) async fn all_members(&self, tx: &mut Tx, app: i64, group_id: &str) -> StoreResult<Vec<GroupMember>> {
        let sql = format!("SELECT {} FROM group_members WHERE app_id = ? AND group_id = ?", rows::MEMBER_COLUMNS);
        let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).bind(group_id).fetch_all(&mut **tx).await?;
        found.iter().map(rows::member).collect()
    }

    pub(super) async fn members_named(
        &self,
        tx: &mut Tx,
        app: i64,
        group_id: &str,
        users: &BTreeSet<&str>,
    ) -> StoreResult<Vec<GroupMember>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM group_members WHERE app_id = ? AND group_id = ? AND user_id IN ({})",
            rows::MEMBER_COLUMNS,
            in_list(users.len())
        );
        let users: Vec<&str> = users.iter().copied().collect();
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).bind(group_id), &users);
        query.fetch_all(&mut **tx).await?.iter().map(rows::member).collect()
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
            "SELECT client_msg_id, sender_user_id, id, sent_at_ms, sender_seq, group_seq, conversation_type, \
             receiver_id FROM messages \
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
            let group_seq = rows::unsigned(row.try_get("group_seq")?);
            let receiver: String = row.try_get("receiver_id")?;
            found.insert(
                (msg.client_msg_id.as_str(), msg.sender_user_id.as_str()),
                Appended {
                    id: rows::unsigned(row.try_get("id")?),
                    sent_at_ms: row.try_get("sent_at_ms")?,
                    duplicate: true,
                    inboxes: Vec::new(),
                    sender_seq: rows::unsigned(row.try_get("sender_seq")?),
                    timeline: (group_seq > 0).then_some((receiver, group_seq)),
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
        chunk: &[StoredRow],
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO messages (app_id, id, client_msg_id, sender_user_id, sender_device_id, conversation_type, \
             receiver_id, message_type, body, sent_at_ms, status, sender_seq, group_seq, position) VALUES {}",
            rows_of(chunk.len(), 14)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            let msg = &batch[row.index];
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
                .bind(rows::signed(row.sender_seq))
                .bind(rows::signed(row.group_seq))
                .bind(rows::signed(row.position));
        }
        query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        Ok(())
    }
}

fn as_duplicate(first: Appended) -> Appended {
    Appended { duplicate: true, inboxes: Vec::new(), ..first }
}

/// May this message go to this group: the group is live, the sender a member who may
/// speak. System messages (no sender) always may.
fn may_send(locked: &LockedGroup, msg: &NewMessage) -> Result<(), GroupRefusal> {
    let group = &locked.group;
    // System messages (no sender) announce changes, the dismissal among them.
    if msg.sender_user_id.is_empty() {
        return Ok(());
    }
    if group.dismissed {
        return Err(GroupRefusal::Dismissed(group.group_id.clone()));
    }
    let member =
        locked.members.get(&msg.sender_user_id).ok_or_else(|| GroupRefusal::NotMember(msg.sender_user_id.clone()))?;
    let speaker = matches!(member.role, GroupRole::Owner | GroupRole::Admin);
    if member.muted_until_ms > msg.sent_at_ms && !speaker {
        return Err(GroupRefusal::Muted(member.muted_until_ms));
    }
    if group.muted_all && !speaker {
        return Err(GroupRefusal::MutedAll);
    }
    Ok(())
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
