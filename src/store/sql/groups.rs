//! Groups: changes under the group's row lock, each with the system message that
//! announces it, in one transaction.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::Row;

use super::{SqlStore, Tx, bind_in, in_list, rows};
use crate::{
    model::{AppId, ConversationType, Group, GroupMember, GroupRole, JoinRequest, Message, MessageBody},
    proto::common::v1::{SystemBody, message_body::Content},
    store::{
        GroupActor, GroupChange, GroupEvent, GroupOutcome, GroupRefusal, GroupStore, GroupWrite, NewGroup, NewMessage,
        Recipient, StoreError, StoreResult,
    },
};

fn refused(refusal: GroupRefusal) -> StoreError {
    StoreError::Refused(refusal)
}

fn role_rank(role: GroupRole) -> u8 {
    match role {
        GroupRole::Owner => 3,
        GroupRole::Admin => 2,
        GroupRole::Member => 1,
        GroupRole::Unspecified => 0,
    }
}

/// The actor's standing in the group: the app outranks everyone.
fn actor_rank(actor: &GroupActor, member: Option<&GroupMember>) -> u8 {
    match actor {
        GroupActor::App => 4,
        GroupActor::User(_) => member.map_or(0, |m| role_rank(m.role)),
    }
}

fn require(rank: u8, needed: GroupRole, user: Option<&str>) -> StoreResult<()> {
    if rank >= role_rank(needed) {
        return Ok(());
    }
    Err(refused(match needed {
        GroupRole::Owner => GroupRefusal::NotOwner,
        GroupRole::Admin => GroupRefusal::NotAdmin,
        _ => GroupRefusal::NotMember(user.unwrap_or_default().to_owned()),
    }))
}

impl SqlStore {
    async fn lock_group(&self, tx: &mut Tx, app: i64, group_id: &str) -> StoreResult<Group> {
        let group = self.lock_groups(tx, app, &BTreeSet::from([group_id])).await?.pop();
        group.ok_or_else(|| refused(GroupRefusal::NoGroup(group_id.to_owned())))
    }

    async fn member_in(
        &self,
        tx: &mut Tx,
        app: i64,
        group_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<GroupMember>> {
        Ok(self.members_named(tx, app, group_id, &BTreeSet::from([user_id])).await?.pop())
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
        Ok(ids.iter().filter(|id| !found.contains(*id)).cloned().collect())
    }

    async fn insert_members(
        &self,
        tx: &mut Tx,
        app: i64,
        group: &Group,
        users: &[(String, GroupRole)],
        write: &GroupWrite,
    ) -> StoreResult<()> {
        for (user, role) in users {
            sqlx::query(
                "INSERT INTO group_members (app_id, group_id, user_id, role, nickname, muted_until_ms, \
                 joined_group_seq, joined_event_id, joined_at_ms) VALUES (?, ?, ?, ?, '', 0, ?, ?, ?)",
            )
            .bind(app)
            .bind(group.group_id.as_str())
            .bind(user.as_str())
            .bind(i64::from(*role as i32))
            .bind(rows::signed(group.seq))
            .bind(rows::signed(write.event.id))
            .bind(write.now_ms)
            .execute(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM group_join_requests WHERE app_id = ? AND group_id = ? AND user_id = ?")
                .bind(app)
                .bind(group.group_id.as_str())
                .bind(user.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn delete_members(&self, tx: &mut Tx, app: i64, group_id: &str, users: &[String]) -> StoreResult<()> {
        for user in users {
            sqlx::query("DELETE FROM group_members WHERE app_id = ? AND group_id = ? AND user_id = ?")
                .bind(app)
                .bind(group_id)
                .bind(user.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Writes member count, size mode and owner back to the group row.
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
        .bind(rows::signed(group.member_count))
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

    async fn member_ids(&self, tx: &mut Tx, app: i64, group_id: &str) -> StoreResult<Vec<String>> {
        let mut ids: Vec<String> = self.all_members(tx, app, group_id).await?.into_iter().map(|m| m.user_id).collect();
        ids.sort();
        Ok(ids)
    }

    /// Adds members, switching the group to a timeline once it passes the threshold.
    /// Returns (added, members who now read the timeline).
    async fn add_members_in(
        &self,
        tx: &mut Tx,
        app: i64,
        group: &mut Group,
        users: &[String],
        write: &GroupWrite,
    ) -> StoreResult<(Vec<String>, Vec<String>)> {
        let rules = &write.rules;
        let unknown = self.unknown_users(tx, app, users).await?;
        if !unknown.is_empty() {
            return Err(refused(GroupRefusal::UnknownUsers(unknown.join(", "))));
        }
        let wanted: BTreeSet<&str> = users.iter().map(String::as_str).collect();
        let existing: BTreeSet<String> =
            self.members_named(tx, app, &group.group_id, &wanted).await?.into_iter().map(|m| m.user_id).collect();
        let added: Vec<String> = wanted.iter().filter(|u| !existing.contains(**u)).map(|u| (*u).to_owned()).collect();
        if added.is_empty() {
            return Ok((added, Vec::new()));
        }
        if group.member_count + added.len() as u64 > rules.max_members {
            return Err(refused(GroupRefusal::Full(rules.max_members)));
        }
        let with_roles: Vec<(String, GroupRole)> = added.iter().map(|u| (u.clone(), GroupRole::Member)).collect();
        self.insert_members(tx, app, group, &with_roles, write).await?;
        group.member_count += added.len() as u64;
        let joined_large = if group.large {
            added.clone()
        } else if group.member_count > rules.large_threshold {
            group.large = true;
            self.member_ids(tx, app, &group.group_id).await?
        } else {
            Vec::new()
        };
        Ok((added, joined_large))
    }

    /// Appends a group's system message in the open transaction: about `affected`,
    /// and also to the inboxes of `also_to` (members who just left).
    async fn announce(
        &self,
        tx: &mut Tx,
        app: i64,
        group_id: &str,
        actor: &GroupActor,
        event: &GroupEvent,
        (affected, also_to): (&[String], &[String]),
    ) -> StoreResult<(Message, crate::store::Appended)> {
        let body = MessageBody {
            content: Some(Content::System(SystemBody {
                event: event.event.clone(),
                actor_user_id: match actor {
                    GroupActor::User(user) => user.clone(),
                    GroupActor::App => String::new(),
                },
                target_user_ids: affected.to_vec(),
                detail: event.detail.clone(),
            })),
        };
        let message = NewMessage {
            id: event.id,
            client_msg_id: format!("event-{}", event.id),
            sender_user_id: String::new(),
            sender_device_id: String::new(),
            conversation_type: ConversationType::Group,
            receiver_id: group_id.to_owned(),
            body,
            sent_at_ms: event.sent_at_ms,
            recipients: also_to
                .iter()
                .map(|user| Recipient { user_id: user.clone(), conversation_id: group_id.to_owned() })
                .collect(),
        };
        let outcome = self.append_in(tx, app, std::slice::from_ref(&message)).await?.pop();
        match outcome {
            Some(Ok(appended)) => Ok((message.stored(&appended), appended)),
            Some(Err(err)) => Err(StoreError::Corrupt(format!("writing a group event: {err}"))),
            None => Err(StoreError::Corrupt("writing a group event gave no outcome".into())),
        }
    }

    async fn change_group_in(
        &self,
        tx: &mut Tx,
        app: i64,
        group_id: &str,
        actor: &GroupActor,
        change: &GroupChange,
        write: &GroupWrite,
    ) -> StoreResult<GroupOutcome> {
        let now_ms = write.now_ms;
        let mut group = self.lock_group(tx, app, group_id).await?;
        if group.dismissed {
            return Err(refused(GroupRefusal::Dismissed(group_id.to_owned())));
        }
        let actor_user = match actor {
            GroupActor::User(user) => Some(user.as_str()),
            GroupActor::App => None,
        };
        let actor_member = match actor_user {
            Some(user) => self.member_in(tx, app, group_id, user).await?,
            None => None,
        };
        let rank = actor_rank(actor, actor_member.as_ref());
        let target = |member: Option<GroupMember>, user: &str| {
            member.ok_or_else(|| refused(GroupRefusal::NotMember(user.to_owned())))
        };
        let (mut affected, mut also_to, mut joined_large, mut left_large) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut announce = true;
        match change {
            GroupChange::Update(patch) => {
                require(rank, GroupRole::Admin, actor_user)?;
                let set = |field: &mut String, value: &Option<String>| {
                    if let Some(value) = value {
                        field.clone_from(value);
                    }
                };
                set(&mut group.name, &patch.name);
                set(&mut group.avatar_url, &patch.avatar_url);
                set(&mut group.introduction, &patch.introduction);
                set(&mut group.extra, &patch.extra);
                group.join_policy = patch.join_policy.unwrap_or(group.join_policy);
                group.muted_all = patch.muted_all.unwrap_or(group.muted_all);
                group.history_visible = patch.history_visible.unwrap_or(group.history_visible);
            }
            GroupChange::AddMembers { users, role_needed } => {
                // Joining oneself (free join, approved request) needs no role.
                let joining_self = users.len() == 1 && actor_user == Some(users[0].as_str());
                if !joining_self {
                    require(rank, *role_needed, actor_user)?;
                }
                let (added, now_large) = self.add_members_in(tx, app, &mut group, users, write).await?;
                announce = !added.is_empty();
                affected = added;
                joined_large = now_large;
            }
            GroupChange::RemoveMembers(users) => {
                require(rank, GroupRole::Admin, actor_user)?;
                let named: BTreeSet<&str> = users.iter().map(String::as_str).collect();
                let members = self.members_named(tx, app, group_id, &named).await?;
                for member in &members {
                    if member.role == GroupRole::Owner {
                        return Err(refused(GroupRefusal::Owner));
                    }
                    if member.role == GroupRole::Admin && rank < role_rank(GroupRole::Owner) {
                        return Err(refused(GroupRefusal::Peer));
                    }
                }
                affected = members.into_iter().map(|m| m.user_id).collect();
                announce = !affected.is_empty();
            }
            GroupChange::Leave => {
                let member = target(actor_member.clone(), actor_user.unwrap_or_default())?;
                if member.role == GroupRole::Owner {
                    return Err(refused(GroupRefusal::Owner));
                }
                affected = vec![member.user_id];
            }
            GroupChange::SetRole { user, role } => {
                require(rank, GroupRole::Owner, actor_user)?;
                let mut member = target(self.member_in(tx, app, group_id, user).await?, user)?;
                if member.role == GroupRole::Owner {
                    return Err(refused(GroupRefusal::Owner));
                }
                announce = member.role != *role;
                member.role = *role;
                self.set_member(tx, app, group_id, &member).await?;
                affected = vec![user.clone()];
            }
            GroupChange::TransferOwnership(new_owner) => {
                require(rank, GroupRole::Owner, actor_user)?;
                let mut heir = target(self.member_in(tx, app, group_id, new_owner).await?, new_owner)?;
                if let Some(mut old) = self.member_in(tx, app, group_id, &group.owner_id).await?
                    && old.user_id != heir.user_id
                {
                    old.role = GroupRole::Admin;
                    self.set_member(tx, app, group_id, &old).await?;
                }
                announce = heir.role != GroupRole::Owner;
                heir.role = GroupRole::Owner;
                self.set_member(tx, app, group_id, &heir).await?;
                group.owner_id.clone_from(new_owner);
                affected = vec![new_owner.clone()];
            }
            GroupChange::Mute { user, until_ms } => {
                require(rank, GroupRole::Admin, actor_user)?;
                let mut member = target(self.member_in(tx, app, group_id, user).await?, user)?;
                if role_rank(member.role) >= role_rank(GroupRole::Admin) && rank <= role_rank(member.role) {
                    return Err(refused(GroupRefusal::Peer));
                }
                member.muted_until_ms = *until_ms;
                self.set_member(tx, app, group_id, &member).await?;
                affected = vec![user.clone()];
            }
            GroupChange::Nickname { user, nickname } => {
                if actor_user != Some(user.as_str()) {
                    require(rank, GroupRole::Admin, actor_user)?;
                }
                let mut member = target(self.member_in(tx, app, group_id, user).await?, user)?;
                announce = member.nickname != *nickname;
                member.nickname.clone_from(nickname);
                self.set_member(tx, app, group_id, &member).await?;
                affected = vec![user.clone()];
            }
            GroupChange::Dismiss => {
                require(rank, GroupRole::Owner, actor_user)?;
                affected = self.member_ids(tx, app, group_id).await?;
            }
        }
        // Members who leave get the news in their inbox: they no longer read the group.
        if matches!(change, GroupChange::RemoveMembers(_) | GroupChange::Leave | GroupChange::Dismiss) {
            self.delete_members(tx, app, group_id, &affected).await?;
            group.member_count = group.member_count.saturating_sub(affected.len() as u64);
            if group.large {
                left_large = affected.clone();
            }
            also_to = affected.clone();
            if matches!(change, GroupChange::Dismiss) {
                group.dismissed = true;
                sqlx::query("DELETE FROM group_join_requests WHERE app_id = ? AND group_id = ?")
                    .bind(app)
                    .bind(group_id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        if !announce {
            return Ok(GroupOutcome { group, affected: Vec::new(), event: None, joined_large, left_large });
        }
        group.updated_at_ms = now_ms;
        self.save_group(tx, app, &group).await?;
        let stored = self.announce(tx, app, group_id, actor, &write.event, (&affected, &also_to)).await?;
        let group = self.lock_group(tx, app, group_id).await?;
        Ok(GroupOutcome { group, affected, event: Some(stored), joined_large, left_large })
    }

    async fn create_group_in(
        &self,
        tx: &mut Tx,
        app: i64,
        new: &NewGroup,
        members: &[String],
        write: &GroupWrite,
    ) -> StoreResult<GroupOutcome> {
        let now_ms = write.now_ms;
        if self.unknown_users(tx, app, std::slice::from_ref(&new.owner_id)).await?.len() == 1 {
            return Err(refused(GroupRefusal::UnknownUsers(new.owner_id.clone())));
        }
        let result = sqlx::query(
            "INSERT INTO chat_groups (app_id, group_id, name, avatar_url, introduction, extra, owner_id, join_policy, \
             muted_all, history_visible, member_count, large, seq, dismissed, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 1, 0, 0, 0, ?, ?)",
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
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut **tx)
        .await;
        result.map_err(super::conflict_on_unique)?;
        let mut group = self.lock_group(tx, app, &new.group_id).await?;
        self.insert_members(tx, app, &group, &[(new.owner_id.clone(), GroupRole::Owner)], write).await?;
        let others: Vec<String> = members.iter().filter(|m| **m != new.owner_id).cloned().collect();
        let (mut affected, joined_large) = self.add_members_in(tx, app, &mut group, &others, write).await?;
        affected.insert(0, new.owner_id.clone());
        self.save_group(tx, app, &group).await?;
        let actor = GroupActor::User(new.owner_id.clone());
        let stored = self.announce(tx, app, &new.group_id, &actor, &write.event, (&affected, &[])).await?;
        let group = self.lock_group(tx, app, &new.group_id).await?;
        Ok(GroupOutcome { group, affected, event: Some(stored), joined_large, left_large: Vec::new() })
    }
}

#[async_trait]
impl GroupStore for SqlStore {
    async fn create_group(
        &self,
        app: AppId,
        group: &NewGroup,
        members: &[String],
        write: &GroupWrite,
    ) -> StoreResult<GroupOutcome> {
        let app = rows::signed(app);
        self.write_tx(|mut tx| async move {
            let result = self.create_group_in(&mut tx, app, group, members, write).await;
            (tx, result)
        })
        .await
    }

    async fn change_group(
        &self,
        app: AppId,
        group_id: &str,
        actor: &GroupActor,
        change: &GroupChange,
        write: &GroupWrite,
    ) -> StoreResult<GroupOutcome> {
        let app = rows::signed(app);
        self.write_tx(|mut tx| async move {
            let result = self.change_group_in(&mut tx, app, group_id, actor, change, write).await;
            (tx, result)
        })
        .await
    }

    async fn get_group(&self, app: AppId, group_id: &str) -> StoreResult<Option<Group>> {
        let sql = format!("SELECT {} FROM chat_groups WHERE app_id = ? AND group_id = ?", rows::GROUP_COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::signed(app))
            .bind(group_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::group).transpose()
    }

    async fn group_member(&self, app: AppId, group_id: &str, user_id: &str) -> StoreResult<Option<GroupMember>> {
        let sql = format!(
            "SELECT {} FROM group_members WHERE app_id = ? AND group_id = ? AND user_id = ?",
            rows::MEMBER_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::signed(app))
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
            .bind(rows::signed(app))
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
            .bind(rows::signed(app))
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
        .bind(rows::signed(app))
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        found.iter().map(|row| Ok((row.try_get("group_id")?, rows::unsigned(row.try_get("seq")?)))).collect()
    }

    async fn add_join_request(&self, app: AppId, group_id: &str, request: &JoinRequest) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO group_join_requests (app_id, group_id, user_id, message, requested_at_ms) VALUES (?, ?, ?, ?, ?){}",
            self.dialect.upsert("app_id, group_id, user_id", &["message", "requested_at_ms"])
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::signed(app))
            .bind(group_id)
            .bind(request.user_id.as_str())
            .bind(request.message.as_str())
            .bind(request.requested_at_ms)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn join_requests(&self, app: AppId, group_id: &str) -> StoreResult<Vec<JoinRequest>> {
        let found = sqlx::query(
            "SELECT user_id, message, requested_at_ms FROM group_join_requests WHERE app_id = ? AND group_id = ? \
             ORDER BY requested_at_ms",
        )
        .bind(rows::signed(app))
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

    async fn drop_join_request(&self, app: AppId, group_id: &str, user_id: &str) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM group_join_requests WHERE app_id = ? AND group_id = ? AND user_id = ?")
            .bind(rows::signed(app))
            .bind(group_id)
            .bind(user_id)
            .execute(&self.write)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn timeline_after(
        &self,
        app: AppId,
        group_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {} FROM group_timeline t JOIN messages m ON m.app_id = t.app_id AND m.id = t.message_id \
             WHERE t.app_id = ? AND t.group_id = ? AND t.seq > ? ORDER BY t.seq LIMIT ?",
            rows::BARE_MESSAGE_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::signed(app))
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
        after_id: u64,
        before_id: u64,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {} FROM messages m WHERE m.app_id = ? AND m.conversation_type = ? AND m.receiver_id = ? \
             AND m.id > ? AND m.id < ? ORDER BY m.id DESC LIMIT ?",
            rows::BARE_MESSAGE_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::signed(app))
            .bind(i64::from(ConversationType::Group as i32))
            .bind(group_id)
            .bind(rows::bound(after_id))
            .bind(rows::bound(before_id))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(rows::message).collect()
    }
}
