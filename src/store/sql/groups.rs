//! Groups: each change locks the group's row, reads the state logic decides on, and
//! writes the effects logic answers with and the system message announcing them, in one
//! transaction. No rule lives here.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::Row;

use super::{MAX_IN_LIST, SqlStore, Tx, bind_in, in_list, in_tx, pow2_chunks, rows, rows_of};
use crate::{
    model::{
        AppId, ConversationType, Group, GroupEffects, GroupLoad, GroupMember, GroupState, JoinRequest, Message,
        NewGroup,
    },
    store::{GroupDecider, GroupOutcome, GroupStore, Notice, StoreError, StoreResult},
};

impl SqlStore {
    async fn lock_group(&self, tx: &mut Tx, app: i64, group_id: &str) -> StoreResult<Option<Group>> {
        Ok(self.lock_groups(tx, app, &BTreeSet::from([group_id])).await?.pop().map(|(group, _)| group))
    }

    /// Users among `ids` that do not exist in the app.
    pub(super) async fn unknown_users(&self, tx: &mut Tx, app: i64, ids: &[String]) -> StoreResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT user_id FROM users WHERE app_id = ? AND user_id IN ({})", in_list(ids.len()));
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let found: BTreeSet<String> = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), &refs)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| row.try_get("user_id"))
            .collect::<Result<_, _>>()?;
        let mut unknown: Vec<String> = ids.iter().filter(|id| !found.contains(*id)).cloned().collect();
        unknown.sort();
        unknown.dedup();
        Ok(unknown)
    }

    /// Users among `ids` with a request to join the group.
    async fn requested_among(&self, tx: &mut Tx, app: i64, group_id: &str, ids: &[String]) -> StoreResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT user_id FROM group_join_requests WHERE app_id = ? AND group_id = ? AND user_id IN ({})",
            in_list(ids.len())
        );
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).bind(group_id), &refs)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| Ok(row.try_get("user_id")?))
            .collect()
    }

    /// Reads what a change needs, the group already locked.
    async fn group_state(&self, tx: &mut Tx, app: i64, group: Group, load: &GroupLoad) -> StoreResult<GroupState> {
        let group_id = group.group_id.as_str();
        let found = if load.all_members {
            self.all_members(tx, app, group_id).await?
        } else {
            let mut names: BTreeSet<&str> = load.users.iter().map(String::as_str).collect();
            names.extend(load.actor.as_deref());
            names.insert(&group.owner_id);
            self.members_named(tx, app, group_id, &names).await?
        };
        let members: HashMap<String, GroupMember> = found.into_iter().map(|m| (m.user_id.clone(), m)).collect();
        let actor = load.actor.as_ref().and_then(|user| members.get(user).cloned());
        let unknown_users = self.unknown_users(tx, app, &load.users).await?;
        let requested = self.requested_among(tx, app, group_id, &load.users).await?;
        Ok(GroupState { group, actor, members, unknown_users, requested })
    }

    async fn insert_members(&self, tx: &mut Tx, app: i64, group_id: &str, members: &[GroupMember]) -> StoreResult<()> {
        for chunk in pow2_chunks(members) {
            let sql = format!(
                "INSERT INTO group_members (app_id, group_id, user_id, role, nickname, muted_until_ms, \
                 joined_group_seq, joined_position, joined_at_ms) VALUES {}",
                rows_of(chunk.len(), 9)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for member in chunk {
                query = query
                    .bind(app)
                    .bind(group_id)
                    .bind(member.user_id.as_str())
                    .bind(i64::from(member.role as i32))
                    .bind(member.nickname.as_str())
                    .bind(member.muted_until_ms)
                    .bind(rows::bigint(member.joined_group_seq, "joined_group_seq")?)
                    .bind(rows::bigint(member.joined_position, "joined_position")?)
                    .bind(member.joined_at_ms);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Deletes the rows of `users` from a table keyed by (app, group, user).
    async fn delete_users(
        &self,
        tx: &mut Tx,
        table: &str,
        app: i64,
        group_id: &str,
        users: &[String],
    ) -> StoreResult<()> {
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        for chunk in users.chunks(MAX_IN_LIST) {
            let sql = format!(
                "DELETE FROM {table} WHERE app_id = ? AND group_id = ? AND user_id IN ({})",
                in_list(chunk.len())
            );
            bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).bind(group_id), chunk).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Writes a group row's settings, owner, size and mode.
    async fn save_group(&self, tx: &mut Tx, app: i64, group: &Group) -> StoreResult<()> {
        sqlx::query(
            "UPDATE chat_groups SET name = ?, avatar_url = ?, introduction = ?, extra = ?, owner_id = ?, \
             join_policy = ?, muted_all = ?, history_visible = ?, member_count = ?, large = ?, dismissed = ?, \
             updated_at_ms = ? WHERE app_id = ? AND group_id = ?",
        )
        .bind(group.name.as_str())
        .bind(group.avatar_url.as_str())
        .bind(group.introduction.as_str())
        .bind(group.extra.as_str())
        .bind(group.owner_id.as_str())
        .bind(i64::from(group.join_policy as i32))
        .bind(i64::from(group.muted_all))
        .bind(i64::from(group.history_visible))
        .bind(rows::bigint(group.member_count, "member_count")?)
        .bind(i64::from(group.large))
        .bind(i64::from(group.dismissed))
        .bind(group.updated_at_ms)
        .bind(app)
        .bind(group.group_id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn set_member(&self, tx: &mut Tx, app: i64, group_id: &str, member: &GroupMember) -> StoreResult<()> {
        sqlx::query(
            "UPDATE group_members SET role = ?, nickname = ?, muted_until_ms = ? \
             WHERE app_id = ? AND group_id = ? AND user_id = ?",
        )
        .bind(i64::from(member.role as i32))
        .bind(member.nickname.as_str())
        .bind(member.muted_until_ms)
        .bind(app)
        .bind(group_id)
        .bind(member.user_id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn add_join_request(&self, tx: &mut Tx, app: i64, group_id: &str, request: &JoinRequest) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO group_join_requests (app_id, group_id, user_id, message, requested_at_ms) VALUES (?, ?, ?, ?, ?){}",
            self.dialect.upsert("app_id, group_id, user_id", &["message", "requested_at_ms"])
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(group_id)
            .bind(request.user_id.as_str())
            .bind(request.message.as_str())
            .bind(request.requested_at_ms)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Reads the state, lets `decide` answer, and writes its effects; `None` if it refused.
    async fn decide_and_apply(
        &self,
        tx: &mut Tx,
        app: i64,
        group: Group,
        load: &GroupLoad,
        decide: &mut GroupDecider<'_>,
    ) -> StoreResult<Option<GroupOutcome>> {
        let state = self.group_state(tx, app, group, load).await?;
        let Some(effects) = decide(&state) else { return Ok(None) };
        self.apply(tx, app, state.group, effects).await.map(Some)
    }

    /// Writes a decided change: members, requests, the group row, then the event (which
    /// reaches the members as they are after the change).
    async fn apply(&self, tx: &mut Tx, app: i64, group: Group, fx: GroupEffects) -> StoreResult<GroupOutcome> {
        let group_id = group.group_id.as_str();
        if let Some(request) = &fx.join_request {
            self.add_join_request(tx, app, group_id, request).await?;
        }
        if fx.drop_all_requests {
            sqlx::query("DELETE FROM group_join_requests WHERE app_id = ? AND group_id = ?")
                .bind(app)
                .bind(group_id)
                .execute(&mut **tx)
                .await?;
        } else if !fx.drop_requests.is_empty() {
            self.delete_users(tx, "group_join_requests", app, group_id, &fx.drop_requests).await?;
        }
        if !fx.delete.is_empty() {
            self.delete_users(tx, "group_members", app, group_id, &fx.delete).await?;
        }
        self.insert_members(tx, app, group_id, &fx.insert).await?;
        for member in &fx.update {
            self.set_member(tx, app, group_id, member).await?;
        }
        if let Some(saved) = &fx.group {
            self.save_group(tx, app, saved).await?;
        }
        let joined_large = if fx.subscribe_everyone {
            let mut everyone: Vec<String> =
                self.all_members(tx, app, group_id).await?.into_iter().map(|m| m.user_id).collect();
            everyone.sort();
            everyone
        } else {
            fx.subscribe
        };
        let Some(message) = fx.system_message else {
            let group = fx.group.unwrap_or(group);
            return Ok(GroupOutcome { group, affected: Vec::new(), event: None, joined_large, left_large: Vec::new() });
        };
        let now_ms = message.sent_at_ms;
        // A system message has no user sender: nothing to decide.
        let written = self.append_in(tx, app, std::slice::from_ref(&message), &mut |_, _| true).await?;
        let event = match written.into_iter().next() {
            Some(Ok(appended)) => Notice { message: message.stored(&appended), appended },
            Some(Err(err)) => return Err(StoreError::Corrupt(format!("writing a group event: {err}"))),
            None => return Err(StoreError::Corrupt("writing a group event gave no outcome".into())),
        };
        // After the event, which is on the timeline for those who stay and in the inbox
        // of those who leave.
        self.enter_timeline(tx, app, group_id, &joined_large, now_ms).await?;
        self.leave_timeline(tx, app, group_id, &fx.unsubscribe, now_ms).await?;
        // Read back: the event moved the group's seq and position.
        let group = self.lock_group(tx, app, group_id).await?.ok_or(StoreError::NotFound)?;
        Ok(GroupOutcome { group, affected: fx.affected, event: Some(event), joined_large, left_large: fx.unsubscribe })
    }

    async fn create_group_in(
        &self,
        tx: &mut Tx,
        app: i64,
        new: &NewGroup,
        load: &GroupLoad,
        decide: &mut GroupDecider<'_>,
    ) -> StoreResult<Option<GroupOutcome>> {
        let result = sqlx::query(
            "INSERT INTO chat_groups (app_id, group_id, name, avatar_url, introduction, extra, owner_id, join_policy, \
             muted_all, history_visible, member_count, large, seq, position, dismissed, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, 0, 0, 0, 0, ?, ?)",
        )
        .bind(app)
        .bind(new.group_id.as_str())
        .bind(new.name.as_str())
        .bind(new.avatar_url.as_str())
        .bind(new.introduction.as_str())
        .bind(new.extra.as_str())
        .bind(new.owner_id.as_str())
        .bind(i64::from(new.join_policy as i32))
        .bind(i64::from(new.history_visible))
        .bind(new.created_at_ms)
        .bind(new.created_at_ms)
        .execute(&mut **tx)
        .await;
        result.map_err(super::conflict_on_unique)?;
        let group = self.lock_group(tx, app, &new.group_id).await?.ok_or(StoreError::NotFound)?;
        self.decide_and_apply(tx, app, group, load, decide).await
    }
}

#[async_trait]
impl GroupStore for SqlStore {
    async fn create_group(
        &self,
        app: AppId,
        group: &NewGroup,
        load: &GroupLoad,
        decide: &mut GroupDecider<'_>,
    ) -> StoreResult<Option<GroupOutcome>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.create_group_in(tx, app, group, load, decide).await)
    }

    async fn change_group(
        &self,
        app: AppId,
        group_id: &str,
        load: &GroupLoad,
        decide: &mut GroupDecider<'_>,
    ) -> StoreResult<Option<GroupOutcome>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| match self.lock_group(tx, app, group_id).await {
            Ok(Some(group)) => self.decide_and_apply(tx, app, group, load, decide).await,
            Ok(None) => Err(StoreError::NotFound),
            Err(err) => Err(err),
        })
    }

    async fn get_group(&self, app: AppId, group_id: &str) -> StoreResult<Option<Group>> {
        let sql = format!("SELECT {} FROM chat_groups WHERE app_id = ? AND group_id = ?", rows::GROUP_COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(group_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::group).transpose()
    }

    async fn get_groups(&self, app: AppId, group_ids: &[&str]) -> StoreResult<Vec<Group>> {
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM chat_groups WHERE app_id = ? AND group_id IN ({})",
            rows::GROUP_COLUMNS,
            in_list(group_ids.len())
        );
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?), group_ids);
        let found = query.fetch_all(&self.read).await?;
        found.iter().map(rows::group).collect()
    }

    async fn group_member(&self, app: AppId, group_id: &str, user_id: &str) -> StoreResult<Option<GroupMember>> {
        let sql = format!(
            "SELECT {} FROM group_members WHERE app_id = ? AND group_id = ? AND user_id = ?",
            rows::MEMBER_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(group_id)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::member).transpose()
    }

    async fn group_members(
        &self,
        app: AppId,
        group_id: &str,
        after_user_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<GroupMember>> {
        let sql = format!(
            "SELECT {} FROM group_members WHERE app_id = ? AND group_id = ? AND user_id > ? ORDER BY user_id LIMIT ?",
            rows::MEMBER_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(group_id)
            .bind(after_user_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(rows::member).collect()
    }

    async fn user_groups(
        &self,
        app: AppId,
        user_id: &str,
        after_group_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<Group>> {
        let columns: Vec<String> = rows::GROUP_COLUMNS.split(", ").map(|c| format!("g.{c}")).collect();
        let sql = format!(
            "SELECT {} FROM group_members m JOIN chat_groups g ON g.app_id = m.app_id AND g.group_id = m.group_id \
             WHERE m.app_id = ? AND m.user_id = ? AND m.group_id > ? ORDER BY m.group_id LIMIT ?",
            columns.join(", ")
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .bind(after_group_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(rows::group).collect()
    }

    async fn user_large_groups(&self, app: AppId, user_id: &str) -> StoreResult<Vec<(String, u64)>> {
        let found = sqlx::query(
            "SELECT g.group_id, g.seq FROM group_members m JOIN chat_groups g \
             ON g.app_id = m.app_id AND g.group_id = m.group_id \
             WHERE m.app_id = ? AND m.user_id = ? AND g.large = 1 ORDER BY g.group_id",
        )
        .bind(rows::bigint(app, "app_id")?)
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        found.iter().map(|row| Ok((row.try_get("group_id")?, rows::get_u64(row, "seq")?))).collect()
    }

    async fn join_requests(&self, app: AppId, group_id: &str) -> StoreResult<Vec<JoinRequest>> {
        let found = sqlx::query(
            "SELECT user_id, message, requested_at_ms FROM group_join_requests WHERE app_id = ? AND group_id = ? \
             ORDER BY requested_at_ms",
        )
        .bind(rows::bigint(app, "app_id")?)
        .bind(group_id)
        .fetch_all(&self.read)
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(JoinRequest {
                    user_id: row.try_get("user_id")?,
                    message: row.try_get("message")?,
                    requested_at_ms: row.try_get("requested_at_ms")?,
                })
            })
            .collect()
    }

    async fn timeline_after(
        &self,
        app: AppId,
        group_id: &str,
        viewer: &str,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {} FROM group_timeline t JOIN messages m ON m.app_id = t.app_id AND m.id = t.message_id \
             WHERE t.app_id = ? AND t.group_id = ? AND t.seq > ? ORDER BY t.seq LIMIT ?",
            rows::VIEWED_MESSAGE_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(viewer)
            .bind(rows::bigint(app, "app_id")?)
            .bind(group_id)
            .bind(rows::bound(after_seq))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(rows::message).collect()
    }

    async fn group_history(
        &self,
        app: AppId,
        group_id: &str,
        viewer: &str,
        after_position: u64,
        before_position: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, Message)>> {
        let sql = format!(
            "SELECT {}, m.position FROM messages m WHERE m.app_id = ? AND m.conversation_type = ? \
             AND m.receiver_id = ? AND m.position > ? AND m.position < ? AND {} AND {} \
             AND m.position > COALESCE((SELECT c.cleared_position FROM conversations c WHERE c.app_id = m.app_id \
             AND c.user_id = ? AND c.conversation_type = 2 AND c.conversation_id = m.receiver_id), 0) \
             ORDER BY m.position DESC LIMIT ?",
            rows::BARE_MESSAGE_COLUMNS,
            rows::NOT_A_REVISION,
            rows::NOT_DELETED_BY_VIEWER
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(i64::from(ConversationType::Group as i32))
            .bind(group_id)
            .bind(rows::bound(after_position))
            .bind(rows::bound(before_position))
            .bind(viewer)
            .bind(viewer)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(|row| Ok((rows::get_u64(row, "position")?, rows::message(row)?))).collect()
    }
}
