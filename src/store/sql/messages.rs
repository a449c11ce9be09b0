//! The write path of messages (one transaction per batch) and inbox reads.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use prost::Message as _;
use sqlx::Row;

use super::{
    MAX_IN_LIST, SqlStore, Tx, bind_in, conflict_on_unique,
    conversations::{Key, Landing, mentions},
    in_list, in_tx, pow2_chunks,
    revisions::{Applied, changes_counts, is_private, meta_json, revision_of},
    rows, rows_of,
    search::Indexed,
    timeline_counts::{HEAD_COLUMNS, TimelineHead, TimelineMention},
};
use crate::{
    model::{
        AppId, Appended, ConversationType, Group, GroupMember, Message, MessageStatus, NewMessage, Recipient, SendState,
    },
    proto::common::v1::message_body::Content,
    store::{AppendError, HistoryCursor, MessageStore, Notice, SendDecider, StoreError, StoreResult},
};

type Outcome = Result<Appended, AppendError>;

/// A message of a batch as its `messages` row records it.
pub(super) struct StoredRow {
    pub index: usize,
    pub sender_seq: u64,
    pub group_seq: u64,
    /// Its place in its group conversation (0 outside groups).
    pub position: u64,
}

/// A row of `inbox`: message `index` of the batch in `user`'s inbox at `seq`.
struct InboxRow<'b> {
    index: usize,
    user: &'b str,
    conversation: &'b str,
    seq: u64,
    /// The message mentions this user (or everyone in its group).
    mentioned: bool,
}

/// A row of `group_timeline`: message `index` of the batch.
struct TimelineRow<'b> {
    index: usize,
    group: &'b str,
    seq: u64,
    message_id: u64,
    /// The group's counted messages through this one.
    counted: u64,
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
    /// The timeline's totals and last message as this batch leaves them.
    head: TimelineHead,
}

/// The senders of the messages a batch's recalls and edits changed, by the revision's
/// index in the batch.
pub(super) type RevisedSenders = HashMap<usize, String>;

/// A message the rules let through, and the inboxes it lands in.
struct Admitted {
    index: usize,
    recipients: Vec<Recipient>,
    on_timeline: bool,
}

/// The batch's messages that are new, and those that repeat an earlier one of the batch
/// (with the index of that one).
struct Fresh {
    new: Vec<usize>,
    repeats: Vec<(usize, usize)>,
}

/// How the senders of a batch's direct messages stand with their receivers, by
/// (sender, receiver).
#[derive(Default)]
struct Relations<'b> {
    friends: BTreeSet<(&'b str, &'b str)>,
    /// (sender, receiver) where the receiver blocked the sender.
    blocked: BTreeSet<(&'b str, &'b str)>,
}

/// Whether a message on a large group's timeline is unread for someone: a user's, not a
/// revision (`group_timeline.counted` counts these; `rebase_timeline` says it in SQL).
fn counted_on_timeline(message: &NewMessage) -> bool {
    !message.sender_user_id.is_empty() && revision_of(message).is_none()
}

/// Whether the rules look at this message's relation between sender and receiver: a user
/// writing to another user.
fn between_users(message: &NewMessage) -> bool {
    message.conversation_type == ConversationType::Direct
        && !message.sender_user_id.is_empty()
        && message.sender_user_id != message.receiver_id
}

impl SqlStore {
    /// Writes a batch in the open transaction: repeats of earlier sends return the first
    /// send's outcome; `decide` admits or refuses each new message on what is read here
    /// under the batch's locks; the admitted get seqs, positions and rows.
    pub(super) async fn append_in(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        decide: &mut SendDecider<'_>,
    ) -> StoreResult<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let fresh = self.find_repeats(tx, app, batch, &mut outcomes).await?;
        let mut groups = self.lock_groups_for(tx, app, batch, &fresh.new).await?;
        let relations = self.relations_of(tx, app, batch, &fresh.new).await?;
        let mut admitted = admit(batch, &fresh.new, &groups, &relations, decide, &mut outcomes);
        // A revision changes its message here; one whose message was recalled is not written.
        let mut applied = Vec::with_capacity(admitted.len());
        let mut revised = RevisedSenders::new();
        for message in admitted {
            match self.apply_revision(tx, app, &batch[message.index]).await? {
                Applied::Nothing => applied.push(message),
                Applied::Revised { sender } => {
                    revised.insert(message.index, sender);
                    applied.push(message);
                }
                Applied::Refused => outcomes[message.index] = Some(Err(AppendError::Recalled)),
            }
        }
        admitted = applied;
        // Seq rows are locked in key order, so that concurrent batches cannot deadlock.
        let users: BTreeSet<&str> =
            admitted.iter().flat_map(|a| a.recipients.iter().map(|r| r.user_id.as_str())).collect();
        let (mut seqs, versions) = self.lock_seqs(tx, app, &users).await?;
        let mut written = Written::default();
        for message in &admitted {
            outcomes[message.index] = Some(assign(batch, message, &mut groups, &mut seqs, &mut written));
        }
        for (index, first) in fresh.repeats {
            outcomes[index] = outcomes[first].clone().map(|outcome| outcome.map(as_duplicate));
        }
        // Every user whose inbox moved has a conversation that changed.
        written.versions = written.touched.iter().map(|user| (*user, versions[*user] + 1)).collect();
        self.write_batch(tx, app, batch, &written, &seqs, &groups).await?;
        self.land(tx, app, batch, &written).await?;
        self.recount_revised(tx, app, batch, &written).await?;
        let outcomes: Vec<Outcome> =
            outcomes.into_iter().map(|outcome| outcome.expect("every message of a batch gets an outcome")).collect();
        self.write_message_events(tx, app, batch, &outcomes, &revised).await?;
        Ok(outcomes)
    }

    /// The webhook events of the batch's new messages, in the batch's transaction;
    /// `revised` names the senders of the messages its recalls and edits changed.
    pub(super) async fn write_message_events(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        outcomes: &[Outcome],
        revised: &RevisedSenders,
    ) -> StoreResult<()> {
        // An app without webhooks pays one look at this node's copy of its endpoints.
        if !self.wants_events(tx, app).await? {
            return Ok(());
        }
        let app_id = rows::u64_of(app, "app_id")?;
        let mut events = Vec::new();
        let mut now = 0;
        for (index, (message, outcome)) in batch.iter().zip(outcomes).enumerate() {
            if let Ok(appended) = outcome
                && !appended.duplicate
            {
                match revised.get(&index) {
                    Some(sender) => {
                        events.extend(crate::webhooks::events::of_revision(app_id, message, appended, sender))
                    }
                    None => events.extend(crate::webhooks::events::of_message(app_id, message, appended)),
                }
                now = now.max(appended.sent_at_ms);
            }
        }
        self.write_events(tx, app, &events, now).await
    }

    /// Marks the batch's repeats of stored sends with the first send's outcome; returns
    /// the new messages and the repeats within the batch.
    async fn find_repeats(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        outcomes: &mut [Option<Outcome>],
    ) -> StoreResult<Fresh> {
        let stored = self.stored_sends(tx, app, batch).await?;
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut fresh = Fresh { new: Vec::new(), repeats: Vec::new() };
        for (i, message) in batch.iter().enumerate() {
            let key = (message.client_msg_id.as_str(), message.sender_user_id.as_str());
            if let Some(earlier) = stored.get(&key) {
                outcomes[i] = Some(Ok(earlier.clone()));
            } else if let Some(&first) = first_of.get(&key) {
                fresh.repeats.push((i, first));
            } else {
                first_of.insert(key, i);
                fresh.new.push(i);
            }
        }
        Ok(fresh)
    }

    /// Friendships and blocks between the senders and receivers of the batch's direct
    /// messages.
    async fn relations_of<'b>(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &'b [NewMessage],
        fresh: &[usize],
    ) -> StoreResult<Relations<'b>> {
        let pairs: BTreeSet<(&str, &str)> = fresh
            .iter()
            .map(|&i| &batch[i])
            .filter(|m| between_users(m))
            .map(|m| (m.sender_user_id.as_str(), m.receiver_id.as_str()))
            .collect();
        if pairs.is_empty() {
            return Ok(Relations::default());
        }
        // Two reads for the whole batch, not two per pair: on SQLite every statement
        // here holds up the one writer.
        let friends = self.pairs_in(tx, app, "friendships", ("user_id", "friend_id"), &pairs).await?;
        let reversed: BTreeSet<(&str, &str)> = pairs.iter().map(|&(sender, receiver)| (receiver, sender)).collect();
        let blocking = self.pairs_in(tx, app, "blocks", ("user_id", "blocked_id"), &reversed).await?;
        let relations =
            Relations { friends, blocked: blocking.into_iter().map(|(receiver, sender)| (sender, receiver)).collect() };
        Ok(relations)
    }

    /// The pairs of `wanted` that `table` has a row for, as (`columns.0`, `columns.1`).
    async fn pairs_in<'b>(
        &self,
        tx: &mut Tx,
        app: i64,
        table: &str,
        columns: (&str, &str),
        wanted: &BTreeSet<(&'b str, &'b str)>,
    ) -> StoreResult<BTreeSet<(&'b str, &'b str)>> {
        let firsts: Vec<&str> = wanted.iter().map(|pair| pair.0).collect::<BTreeSet<_>>().into_iter().collect();
        let seconds: Vec<&str> = wanted.iter().map(|pair| pair.1).collect::<BTreeSet<_>>().into_iter().collect();
        let (first, second) = columns;
        let mut found: HashSet<(String, String)> = HashSet::new();
        for firsts in firsts.chunks(MAX_IN_LIST) {
            for seconds in seconds.chunks(MAX_IN_LIST) {
                let sql = format!(
                    "SELECT {first}, {second} FROM {table} WHERE app_id = ? AND {first} IN ({}) AND {second} IN ({})",
                    in_list(firsts.len()),
                    in_list(seconds.len())
                );
                let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), firsts);
                for row in bind_in(query, seconds).fetch_all(&mut **tx).await? {
                    found.insert((row.try_get(first)?, row.try_get(second)?));
                }
            }
        }
        Ok(wanted.iter().copied().filter(|&(a, b)| found.contains(&(a.to_owned(), b.to_owned()))).collect())
    }

    /// Writes what a batch gave out: seqs, messages, inbox and timeline rows, and the
    /// groups' new seqs and positions.
    async fn write_batch(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        written: &Written<'_>,
        seqs: &BTreeMap<&str, u64>,
        groups: &HashMap<String, LockedGroup>,
    ) -> StoreResult<()> {
        let versions = &written.versions;
        self.store_seqs(tx, app, written.touched.iter().map(|user| (*user, seqs[*user], versions[*user]))).await?;
        for chunk in pow2_chunks(&written.messages) {
            self.insert_messages(tx, app, batch, chunk).await?;
        }
        let mut indexed = Vec::new();
        for row in &written.messages {
            indexed.extend(Indexed::of(rows::u64_of(app, "app_id")?, &batch[row.index], row.position)?);
        }
        self.index_in(tx, app, &indexed).await?;
        for chunk in pow2_chunks(&written.inbox) {
            self.insert_inbox(tx, app, batch, chunk).await?;
        }
        for chunk in pow2_chunks(&written.timeline) {
            let sql = format!(
                "INSERT INTO group_timeline (app_id, group_id, seq, message_id, counted) VALUES {}",
                rows_of(chunk.len(), 5)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(app)
                    .bind(row.group)
                    .bind(rows::bigint(row.seq, "seq")?)
                    .bind(rows::bigint(row.message_id, "message_id")?)
                    .bind(rows::bigint(row.counted, "counted")?);
            }
            query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        }
        for locked in groups.values().filter(|locked| locked.position != locked.group.position) {
            let head = &locked.head;
            sqlx::query(
                "UPDATE chat_groups SET seq = ?, position = ?, counted = ?, last_message_id = ?, \
                 last_message_seq = ?, last_at_ms = ?, changed_at_ms = ? WHERE app_id = ? AND group_id = ?",
            )
            .bind(rows::bigint(locked.seq, "seq")?)
            .bind(rows::bigint(locked.position, "position")?)
            .bind(rows::bigint(head.counted, "counted")?)
            .bind(rows::bigint(head.last_message_id, "last_message_id")?)
            .bind(rows::bigint(head.last_message_seq, "last_message_seq")?)
            .bind(head.last_at_ms)
            .bind(head.changed_at_ms)
            .bind(app)
            .bind(locked.group.group_id.as_str())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn insert_inbox(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        chunk: &[InboxRow<'_>],
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO inbox (app_id, user_id, seq, message_id, conversation_type, conversation_id, sent_at_ms, \
             mentioned) VALUES {}",
            rows_of(chunk.len(), 8)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            let message = &batch[row.index];
            query = query
                .bind(app)
                .bind(row.user)
                .bind(rows::bigint(row.seq, "seq")?)
                .bind(rows::bigint(message.id, "message_id")?)
                .bind(i64::from(message.conversation_type as i32))
                .bind(row.conversation)
                .bind(message.sent_at_ms)
                .bind(i64::from(row.mentioned));
        }
        query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        Ok(())
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
        // Notices have no user sender: nothing to decide.
        let outcomes = self.append_in(tx, app, notices, &mut |_, _| true).await?;
        notices
            .iter()
            .zip(outcomes)
            .map(|(notice, outcome)| match outcome {
                Ok(appended) => Ok(Notice { message: notice.stored(&appended), appended }),
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
            .filter(|m| m.conversation_type == ConversationType::Group && !is_private(m))
            .map(|m| m.receiver_id.as_str())
            .collect();
        let mut locked = HashMap::new();
        for (group, head) in self.lock_groups(tx, app, &ids).await? {
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
                LockedGroup { seq: group.seq, position: group.position, group, members, head },
            );
        }
        Ok(locked)
    }

    /// Group rows, locked, in key order, with their timelines' heads.
    pub(super) async fn lock_groups(
        &self,
        tx: &mut Tx,
        app: i64,
        ids: &BTreeSet<&str>,
    ) -> StoreResult<Vec<(Group, TimelineHead)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {}, {HEAD_COLUMNS} FROM chat_groups WHERE app_id = ? AND group_id IN ({}) ORDER BY group_id{}",
            rows::GROUP_COLUMNS,
            in_list(ids.len()),
            self.dialect.for_update()
        );
        let ids: Vec<&str> = ids.iter().copied().collect();
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), &ids);
        query.fetch_all(&mut **tx).await?.iter().map(|row| Ok((rows::group(row)?, TimelineHead::of(row)?))).collect()
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
    pub(super) async fn stored_sends<'b>(
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
            let group_seq = rows::get_u64(&row, "group_seq")?;
            let receiver: String = row.try_get("receiver_id")?;
            found.insert(
                (msg.client_msg_id.as_str(), msg.sender_user_id.as_str()),
                Appended {
                    id: rows::get_u64(&row, "id")?,
                    sent_at_ms: row.try_get("sent_at_ms")?,
                    duplicate: true,
                    inboxes: Vec::new(),
                    sender_seq: rows::get_u64(&row, "sender_seq")?,
                    timeline: (group_seq > 0).then_some((receiver, group_seq)),
                },
            );
        }
        Ok(found)
    }

    /// The users' inbox seqs and conversation versions, locked.
    async fn lock_seqs<'u>(
        &self,
        tx: &mut Tx,
        app: i64,
        users: &BTreeSet<&'u str>,
    ) -> StoreResult<(BTreeMap<&'u str, u64>, BTreeMap<&'u str, u64>)> {
        if users.is_empty() {
            return Ok(Default::default());
        }
        let sql = format!(
            "SELECT user_id, seq, conversation_version FROM user_seqs WHERE app_id = ? AND user_id IN ({}) \
             ORDER BY user_id{}",
            in_list(users.len()),
            self.dialect.for_update()
        );
        let users_list: Vec<&str> = users.iter().copied().collect();
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), &users_list);
        let (mut seqs, mut versions) = (BTreeMap::new(), BTreeMap::new());
        for row in query.fetch_all(&mut **tx).await? {
            let user: String = row.try_get("user_id")?;
            if let Some(key) = users.get(user.as_str()) {
                seqs.insert(*key, rows::get_u64(&row, "seq")?);
                versions.insert(*key, rows::get_u64(&row, "conversation_version")?);
            }
        }
        Ok((seqs, versions))
    }

    /// Adds the batch's inbox rows to their users' conversations, at the users' new
    /// conversation versions.
    async fn land(&self, tx: &mut Tx, app: i64, batch: &[NewMessage], written: &Written<'_>) -> StoreResult<()> {
        self.land_on_timelines(tx, app, batch, written).await?;
        if written.inbox.is_empty() {
            return Ok(());
        }
        let mut landings: BTreeMap<Key<'_>, Landing> = BTreeMap::new();
        // Revisions change earlier messages; they are not the conversation's activity.
        for row in written.inbox.iter().filter(|row| revision_of(&batch[row.index]).is_none()) {
            let message = &batch[row.index];
            let key = (row.user, i64::from(message.conversation_type as i32), row.conversation);
            landings.entry(key).or_default().add(message, row.user, row.seq, row.mentioned);
        }
        let now_ms = written.inbox.iter().map(|row| batch[row.index].sent_at_ms).max().unwrap_or_default();
        self.land_in_conversations(tx, app, &landings, &written.versions, now_ms).await
    }

    /// Counts the batch's messages on large groups' timelines for their members' rows:
    /// the senders' own, and who they mention.
    async fn land_on_timelines(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        written: &Written<'_>,
    ) -> StoreResult<()> {
        let mut own: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut mentioned = Vec::new();
        for row in &written.timeline {
            let message = &batch[row.index];
            if !counted_on_timeline(message) {
                continue;
            }
            *own.entry((row.group, message.sender_user_id.as_str())).or_default() += 1;
            let Some(Content::Text(text)) = &message.body.content else { continue };
            let users: BTreeSet<&str> = if text.mention_all {
                BTreeSet::from([""])
            } else {
                text.mention_user_ids.iter().map(String::as_str).collect()
            };
            mentioned.extend(users.into_iter().map(|user| TimelineMention {
                group: row.group,
                user,
                seq: row.seq,
                message_id: row.message_id,
            }));
        }
        if own.is_empty() {
            return Ok(());
        }
        self.count_on_timeline(tx, app, &own, &mentioned).await
    }

    /// Counts again the conversations that a recall or a deletion of the batch reached.
    async fn recount_revised(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        written: &Written<'_>,
    ) -> StoreResult<()> {
        let mut reached: BTreeMap<(usize, &str), Vec<&str>> = BTreeMap::new();
        for row in written.inbox.iter().filter(|row| changes_counts(&batch[row.index])) {
            reached.entry((row.index, row.conversation)).or_default().push(row.user);
        }
        for ((index, conversation), users) in reached {
            let message = &batch[index];
            let key = (i64::from(message.conversation_type as i32), conversation);
            self.recount(tx, app, key, &users, is_private(message), message.sent_at_ms).await?;
            // A deletion or a clearing in a large group: its rows on the timeline.
            if message.conversation_type == ConversationType::Group && is_private(message) {
                self.rebase_timeline(tx, app, conversation, &users, message.sent_at_ms).await?;
            }
        }
        Ok(())
    }

    async fn store_seqs<'u>(
        &self,
        tx: &mut Tx,
        app: i64,
        seqs: impl Iterator<Item = (&'u str, u64, u64)>,
    ) -> StoreResult<()> {
        let seqs: Vec<(&str, u64, u64)> = seqs.collect();
        for chunk in pow2_chunks(&seqs) {
            let sql = format!(
                "INSERT INTO user_seqs (app_id, user_id, seq, conversation_version) VALUES {}{}",
                rows_of(chunk.len(), 4),
                self.dialect.upsert("app_id, user_id", &["seq", "conversation_version"])
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (user, seq, version) in chunk {
                query = query
                    .bind(app)
                    .bind(*user)
                    .bind(rows::bigint(*seq, "seq")?)
                    .bind(rows::bigint(*version, "conversation_version")?);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    pub(super) async fn insert_messages(
        &self,
        tx: &mut Tx,
        app: i64,
        batch: &[NewMessage],
        chunk: &[StoredRow],
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO messages (app_id, id, client_msg_id, sender_user_id, sender_device_id, conversation_type, \
             receiver_id, message_type, body, sent_at_ms, status, sender_seq, group_seq, position, meta) VALUES {}",
            rows_of(chunk.len(), 15)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            let msg = &batch[row.index];
            query = query
                .bind(app)
                .bind(rows::bigint(msg.id, "id")?)
                .bind(msg.client_msg_id.as_str())
                .bind(msg.sender_user_id.as_str())
                .bind(msg.sender_device_id.as_str())
                .bind(i64::from(msg.conversation_type as i32))
                .bind(msg.receiver_id.as_str())
                .bind(i64::from(crate::model::message_type_of(&msg.body) as i32))
                .bind(msg.body.encode_to_vec())
                .bind(msg.sent_at_ms)
                .bind(i64::from(MessageStatus::Normal as i32))
                .bind(rows::bigint(row.sender_seq, "sender_seq")?)
                .bind(rows::bigint(row.group_seq, "group_seq")?)
                .bind(rows::bigint(row.position, "position")?)
                .bind(meta_json(&msg.meta)?);
        }
        query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        Ok(())
    }
}

fn as_duplicate(first: Appended) -> Appended {
    Appended { duplicate: true, inboxes: Vec::new(), ..first }
}

/// What the admitted messages of a batch write.
#[derive(Default)]
struct Written<'b> {
    messages: Vec<StoredRow>,
    inbox: Vec<InboxRow<'b>>,
    timeline: Vec<TimelineRow<'b>>,
    /// Users whose seq moved.
    touched: BTreeSet<&'b str>,
    /// Their new conversation versions.
    versions: BTreeMap<&'b str, u64>,
}

/// Asks the rules about each new message, on what the batch read; gives the admitted
/// their inboxes (a small group's members, or the timeline of a large one).
fn admit(
    batch: &[NewMessage],
    fresh: &[usize],
    groups: &HashMap<String, LockedGroup>,
    relations: &Relations<'_>,
    decide: &mut SendDecider<'_>,
    outcomes: &mut [Option<Outcome>],
) -> Vec<Admitted> {
    let mut admitted = Vec::with_capacity(fresh.len());
    for &index in fresh {
        let message = &batch[index];
        let locked = (message.conversation_type == ConversationType::Group && !is_private(message))
            .then(|| groups.get(message.receiver_id.as_str()))
            .flatten();
        let state = match message.conversation_type {
            _ if is_private(message) => SendState::Unchecked,
            ConversationType::Group => SendState::Group {
                group: locked.map(|locked| &locked.group),
                sender: locked.and_then(|locked| locked.members.get(&message.sender_user_id)),
            },
            _ if between_users(message) => {
                let pair = (message.sender_user_id.as_str(), message.receiver_id.as_str());
                SendState::Direct {
                    friends: relations.friends.contains(&pair),
                    blocked: relations.blocked.contains(&pair),
                }
            }
            _ => SendState::Unchecked,
        };
        if !decide(index, &state) {
            outcomes[index] = Some(Err(AppendError::Refused));
            continue;
        }
        let mut recipients = message.recipients.clone();
        let on_timeline = locked.is_some_and(|locked| locked.group.large);
        if let Some(locked) = locked.filter(|locked| !locked.group.large) {
            let mut members: Vec<&String> = locked.members.keys().collect();
            members.sort();
            recipients.extend(
                members
                    .into_iter()
                    .map(|user| Recipient { user_id: user.clone(), conversation_id: message.receiver_id.clone() }),
            );
        }
        admitted.push(Admitted { index, recipients, on_timeline });
    }
    admitted
}

/// Gives an admitted message its seqs (and its group position), in batch order, and
/// queues its rows.
fn assign<'b>(
    batch: &'b [NewMessage],
    admitted: &'b Admitted,
    groups: &mut HashMap<String, LockedGroup>,
    seqs: &mut BTreeMap<&'b str, u64>,
    written: &mut Written<'b>,
) -> Outcome {
    let message = &batch[admitted.index];
    if let Some(missing) = admitted.recipients.iter().find(|r| !seqs.contains_key(r.user_id.as_str())) {
        return Err(AppendError::UnknownUser(missing.user_id.clone()));
    }
    let (mut position, mut timeline) = (0, None);
    if message.conversation_type == ConversationType::Group
        && !is_private(message)
        && let Some(locked) = groups.get_mut(message.receiver_id.as_str())
    {
        locked.position += 1;
        position = locked.position;
        if admitted.on_timeline {
            locked.seq += 1;
            timeline = Some((message.receiver_id.clone(), locked.seq));
            let head = &mut locked.head;
            head.changed_at_ms = head.changed_at_ms.max(message.sent_at_ms);
            if revision_of(message).is_none() {
                head.counted += u64::from(counted_on_timeline(message));
                (head.last_message_id, head.last_message_seq) = (message.id, locked.seq);
                head.last_at_ms = message.sent_at_ms;
            }
            written.timeline.push(TimelineRow {
                index: admitted.index,
                group: message.receiver_id.as_str(),
                seq: locked.seq,
                message_id: message.id,
                counted: head.counted,
            });
        }
    }
    let mut inboxes = Vec::with_capacity(admitted.recipients.len());
    for recipient in &admitted.recipients {
        let user = recipient.user_id.as_str();
        let seq = seqs.get_mut(user).expect("checked above");
        *seq += 1;
        written.touched.insert(user);
        written.inbox.push(InboxRow {
            index: admitted.index,
            user: recipient.user_id.as_str(),
            conversation: recipient.conversation_id.as_str(),
            seq: *seq,
            mentioned: mentions(message, user),
        });
        inboxes.push((recipient.user_id.clone(), *seq));
    }
    let sender_seq = inboxes
        .iter()
        .find(|(user, _)| !message.sender_user_id.is_empty() && *user == message.sender_user_id)
        .map_or(0, |(_, seq)| *seq);
    let group_seq = timeline.as_ref().map_or(0, |(_, seq)| *seq);
    written.messages.push(StoredRow { index: admitted.index, sender_seq, group_seq, position });
    Ok(Appended { id: message.id, sent_at_ms: message.sent_at_ms, duplicate: false, inboxes, sender_seq, timeline })
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn append(
        &self,
        app: AppId,
        batch: &[NewMessage],
        decide: &mut SendDecider<'_>,
    ) -> StoreResult<Vec<Outcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.append_in(tx, app, batch, decide).await)
    }

    async fn latest_seq(&self, app: AppId, user_id: &str) -> StoreResult<Option<u64>> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM user_seqs WHERE app_id = ? AND user_id = ?")
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        seq.map(|seq| rows::u64_of(seq, "seq")).transpose()
    }

    async fn inbox_after(&self, app: AppId, user_id: &str, after_seq: u64, limit: u32) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {} FROM inbox i JOIN messages m ON m.app_id = i.app_id AND m.id = i.message_id \
             WHERE i.app_id = ? AND i.user_id = ? AND i.seq > ? ORDER BY i.seq LIMIT ?",
            rows::MESSAGE_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
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
             WHERE i.app_id = ? AND i.user_id = ? AND i.conversation_type = ? AND i.conversation_id = ? \
             AND {} AND NOT EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = i.app_id \
             AND d.user_id = i.user_id AND d.message_id = i.message_id) \
             AND i.seq > COALESCE((SELECT c.cleared_seq FROM conversations c WHERE c.app_id = i.app_id \
             AND c.user_id = i.user_id AND c.conversation_type = i.conversation_type \
             AND c.conversation_id = i.conversation_id), 0)",
            rows::MESSAGE_COLUMNS,
            rows::NOT_A_REVISION
        );
        if cursor.before_seq > 0 {
            sql.push_str(" AND i.seq < ?");
        }
        if cursor.before_time_ms > 0 {
            sql.push_str(" AND i.sent_at_ms < ?");
        }
        sql.push_str(" ORDER BY i.seq DESC LIMIT ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
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
