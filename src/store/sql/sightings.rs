//! Messages as one user stands to them, for logic's visibility rule: whether each reached
//! the user's inbox, whether the user deleted it or cleared past it, and the user's
//! membership of its group.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::Row;

use super::{SqlStore, bind_in, in_list, rows};
use crate::{
    model::{AppId, ConversationType, GroupMember, Sighting},
    store::{GroupStore, SightingStore, StoreResult},
};

#[async_trait]
impl SightingStore for SqlStore {
    async fn sightings(&self, app: AppId, viewer: &str, ids: &[u64]) -> StoreResult<Vec<Sighting>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // The conversation as the viewer names it: the other user of a direct one (itself,
        // for a note to self), nothing for the system one, the group of a group message.
        let viewed_conversation = format!(
            "CASE WHEN m.conversation_type = {direct} THEN \
             (CASE WHEN m.receiver_id = ? THEN m.sender_user_id ELSE m.receiver_id END) \
             WHEN m.conversation_type = {system} THEN '' ELSE m.receiver_id END",
            direct = ConversationType::Direct as i32,
            system = ConversationType::System as i32,
        );
        // The inbox is searched newest first: the messages users act on are mostly recent.
        let sql = format!(
            "SELECT {columns}, m.position, \
             (SELECT i.seq FROM inbox i WHERE i.app_id = m.app_id AND i.user_id = ? \
             AND i.conversation_type = m.conversation_type AND i.conversation_id = {viewed_conversation} \
             AND i.message_id = m.id ORDER BY i.seq DESC LIMIT 1) AS inbox_seq, \
             CASE WHEN EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = m.app_id AND d.user_id = ? \
             AND d.message_id = m.id) THEN 1 ELSE 0 END AS deleted_by_viewer, \
             COALESCE(c.cleared_seq, 0) AS cleared_seq, COALESCE(c.cleared_position, 0) AS cleared_position \
             FROM messages m LEFT JOIN conversations c ON c.app_id = m.app_id AND c.user_id = ? \
             AND c.conversation_type = m.conversation_type AND c.conversation_id = {viewed_conversation} \
             WHERE m.app_id = ? AND m.id IN ({ids})",
            columns = rows::BARE_MESSAGE_COLUMNS,
            ids = in_list(ids.len()),
        );
        let ids: Vec<i64> = ids.iter().map(|id| rows::bigint(*id, "id")).collect::<StoreResult<_>>()?;
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(viewer)
            .bind(viewer)
            .bind(viewer)
            .bind(viewer)
            .bind(viewer)
            .bind(rows::bigint(app, "app_id")?);
        let found = bind_in(query, &ids).fetch_all(&self.read).await?;
        let mut sightings = found
            .iter()
            .map(|row| {
                Ok(Sighting {
                    message: rows::message(row)?,
                    position: rows::get_u64(row, "position")?,
                    inbox_seq: row
                        .try_get::<Option<i64>, _>("inbox_seq")?
                        .map(|seq| rows::u64_of(seq, "inbox_seq"))
                        .transpose()?,
                    deleted_by_viewer: row.try_get::<i64, _>("deleted_by_viewer")? != 0,
                    cleared_seq: rows::get_u64(row, "cleared_seq")?,
                    cleared_position: rows::get_u64(row, "cleared_position")?,
                    history_visible: false,
                    member: None,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let groups: BTreeSet<&str> = sightings
            .iter()
            .filter(|s| s.message.conversation_type == ConversationType::Group)
            .map(|s| s.message.receiver_id.as_str())
            .collect();
        if groups.is_empty() {
            return Ok(sightings);
        }
        let groups: Vec<&str> = groups.into_iter().collect();
        let shown: HashMap<String, bool> =
            self.get_groups(app, &groups).await?.into_iter().map(|g| (g.group_id, g.history_visible)).collect();
        let memberships: HashMap<String, GroupMember> =
            self.memberships(app, viewer, &groups).await?.into_iter().collect();
        for sighting in sightings.iter_mut().filter(|s| s.message.conversation_type == ConversationType::Group) {
            let group = sighting.message.receiver_id.as_str();
            sighting.history_visible = shown.get(group).copied().unwrap_or(false);
            sighting.member = memberships.get(group).cloned();
        }
        Ok(sightings)
    }
}

impl SqlStore {
    /// The user's memberships of these groups, by group.
    async fn memberships(&self, app: AppId, user: &str, groups: &[&str]) -> StoreResult<Vec<(String, GroupMember)>> {
        let sql = format!(
            "SELECT group_id, {} FROM group_members WHERE app_id = ? AND user_id = ? AND group_id IN ({})",
            rows::MEMBER_COLUMNS,
            in_list(groups.len())
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?).bind(user);
        let found = bind_in(query, groups).fetch_all(&self.read).await?;
        found.iter().map(|row| Ok((row.try_get("group_id")?, rows::member(row)?))).collect()
    }
}
