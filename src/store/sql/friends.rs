//! Friends, friend requests and blocks. A friendship is two rows, one per side, made
//! and ended in one transaction with the notices that announce it.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::{Row, any::AnyRow};

use super::{SqlStore, Tx, bind_in, in_list, in_tx, pow2_chunks, rows, rows_of};
use crate::{
    model::{AnswerState, AppId, Friend, FriendRequest, NewMessage, PairsState, Relation, RequestEffect, RequestState},
    store::{
        Answer, AnswerDecider, Backfill, FriendStore, Notice, Noticed, PairsDecider, RequestDecider, RequestNotices,
        RequestOutcome, StoreResult,
    },
};

const FRIEND_COLUMNS: &str = "friend_id, remark, extra, created_at_ms";
const REQUEST_COLUMNS: &str = "from_user_id, to_user_id, greeting, created_at_ms, expires_at_ms, rejected_at_ms";

fn friend(row: &AnyRow) -> StoreResult<Friend> {
    Ok(Friend {
        friend_id: row.try_get("friend_id")?,
        remark: row.try_get("remark")?,
        extra: row.try_get("extra")?,
        since_ms: row.try_get("created_at_ms")?,
    })
}

fn request(row: &AnyRow) -> StoreResult<FriendRequest> {
    Ok(FriendRequest {
        from_user_id: row.try_get("from_user_id")?,
        to_user_id: row.try_get("to_user_id")?,
        greeting: row.try_get("greeting")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        rejected_at_ms: row.try_get("rejected_at_ms")?,
    })
}

impl SqlStore {
    async fn are_friends_in(&self, tx: &mut Tx, app: i64, user: &str, other: &str) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM friendships WHERE app_id = ? AND user_id = ? AND friend_id = ?")
                .bind(app)
                .bind(user)
                .bind(other)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(found.is_some())
    }

    /// Whether `user` blocked `other`.
    async fn blocks_in(&self, tx: &mut Tx, app: i64, user: &str, other: &str) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM blocks WHERE app_id = ? AND user_id = ? AND blocked_id = ?")
                .bind(app)
                .bind(user)
                .bind(other)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(found.is_some())
    }

    /// The request from `from` to `to` if it is still live, locked.
    async fn live_request_in(&self, tx: &mut Tx, app: i64, from: &str, to: &str, now_ms: i64) -> StoreResult<bool> {
        let sql = format!(
            "SELECT expires_at_ms FROM friend_requests WHERE app_id = ? AND from_user_id = ? AND to_user_id = ? \
             AND rejected_at_ms = 0{}",
            self.dialect.for_update()
        );
        let expires: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(from)
            .bind(to)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(expires.is_some_and(|at| at > now_ms))
    }

    /// Deletes the rows between `a` and `b`, both ways, from a table keyed by the pair
    /// of user columns `(one, other)`; returns how many went.
    async fn delete_pair_in(
        &self,
        tx: &mut Tx,
        app: i64,
        (table, one, other): (&str, &str, &str),
        (a, b): (&str, &str),
    ) -> StoreResult<u64> {
        let sql = format!(
            "DELETE FROM {table} WHERE app_id = ? AND (({one} = ? AND {other} = ?) OR ({one} = ? AND {other} = ?))"
        );
        let done =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).bind(a).bind(b).bind(b).bind(a).execute(&mut **tx).await?;
        Ok(done.rows_affected())
    }

    async fn drop_requests_in(&self, tx: &mut Tx, app: i64, a: &str, b: &str) -> StoreResult<()> {
        self.delete_pair_in(tx, app, ("friend_requests", "from_user_id", "to_user_id"), (a, b)).await?;
        Ok(())
    }

    async fn friend_count_in(&self, tx: &mut Tx, app: i64, user: &str) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM friendships WHERE app_id = ? AND user_id = ?")
            .bind(app)
            .bind(user)
            .fetch_one(&mut **tx)
            .await?;
        rows::u64_of(count, "count")
    }

    /// Makes `a` and `b` friends (if they are not already): both rows, the end of their
    /// requests, and each one's latest posts the other may see (`backfill`) in its feed.
    async fn befriend_in(
        &self,
        tx: &mut Tx,
        app: i64,
        (a, b): (&str, &str),
        backfill: Backfill<'_>,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.drop_requests_in(tx, app, a, b).await?;
        if self.are_friends_in(tx, app, a, b).await? {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO friendships (app_id, user_id, friend_id, remark, extra, created_at_ms) \
             VALUES (?, ?, ?, '', '', ?), (?, ?, ?, '', '', ?){}",
            self.dialect.ignore_duplicate("created_at_ms")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(a)
            .bind(b)
            .bind(now_ms)
            .bind(app)
            .bind(b)
            .bind(a)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
        self.backfill_feed_in(tx, app, a, b, backfill).await?;
        self.backfill_feed_in(tx, app, b, a, backfill).await
    }

    /// Puts the author's latest posts that `viewer`, now a friend, may see into its feed.
    async fn backfill_feed_in(
        &self,
        tx: &mut Tx,
        app: i64,
        viewer: &str,
        author: &str,
        backfill: Backfill<'_>,
    ) -> StoreResult<()> {
        if backfill.posts == 0 {
            return Ok(());
        }
        let found = sqlx::query(
            "SELECT post_id, visibility, audience FROM posts WHERE app_id = ? AND author_id = ? AND deleted = 0 \
             ORDER BY post_id DESC LIMIT ?",
        )
        .bind(app)
        .bind(author)
        .bind(i64::from(backfill.posts))
        .fetch_all(&mut **tx)
        .await?;
        let mut visible = Vec::new();
        for row in &found {
            let visibility = rows::get_enum(row, "visibility")?;
            let audience = rows::audience(&row.try_get::<String, _>("audience")?)?;
            if (backfill.shown)(visibility, &audience, viewer) {
                visible.push(row.try_get::<i64, _>("post_id")?);
            }
        }
        for chunk in pow2_chunks(&visible) {
            let sql = format!(
                "INSERT INTO feed_items (app_id, user_id, post_id, author_id) VALUES {}{}",
                rows_of(chunk.len(), 4),
                self.dialect.ignore_duplicate("author_id")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for post_id in chunk {
                query = query.bind(app).bind(viewer).bind(*post_id).bind(author);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn unfriend_in(&self, tx: &mut Tx, app: i64, a: &str, b: &str) -> StoreResult<bool> {
        Ok(self.delete_pair_in(tx, app, ("friendships", "user_id", "friend_id"), (a, b)).await? > 0)
    }

    /// Reads what a friend request is decided on, with the sender's row locked so that
    /// the sender's requests are decided one at a time.
    async fn request_state_in(&self, tx: &mut Tx, app: i64, asked: &FriendRequest) -> StoreResult<RequestState> {
        let (from, to, now_ms) = (asked.from_user_id.as_str(), asked.to_user_id.as_str(), asked.created_at_ms);
        let sql = format!("SELECT user_id FROM users WHERE app_id = ? AND user_id = ?{}", self.dialect.for_update());
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).bind(from).fetch_optional(&mut **tx).await?;
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM friend_requests WHERE app_id = ? AND from_user_id = ? AND to_user_id = ?"
        );
        let earlier =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).bind(from).bind(to).fetch_optional(&mut **tx).await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM friend_requests WHERE app_id = ? AND from_user_id = ? AND to_user_id <> ? \
             AND rejected_at_ms = 0 AND expires_at_ms > ?",
        )
        .bind(app)
        .bind(from)
        .bind(to)
        .bind(now_ms)
        .fetch_one(&mut **tx)
        .await?;
        Ok(RequestState {
            friends: self.are_friends_in(tx, app, from, to).await?,
            blocked_by_other: self.blocks_in(tx, app, to, from).await?,
            blocking_other: self.blocks_in(tx, app, from, to).await?,
            asked_first: self.live_request_in(tx, app, to, from, now_ms).await?,
            earlier: earlier.as_ref().map(request).transpose()?,
            pending: rows::u64_of(pending, "pending")?,
            friend_counts: (self.friend_count_in(tx, app, from).await?, self.friend_count_in(tx, app, to).await?),
        })
    }

    async fn send_request_in(
        &self,
        tx: &mut Tx,
        app: i64,
        request: &FriendRequest,
        notices: &RequestNotices,
        backfill: Backfill<'_>,
        decide: &mut RequestDecider<'_>,
    ) -> StoreResult<Option<RequestOutcome>> {
        let state = self.request_state_in(tx, app, request).await?;
        let (from, to) = (request.from_user_id.as_str(), request.to_user_id.as_str());
        match decide(&state) {
            None => Ok(None),
            Some(RequestEffect::Repeat) => Ok(Some(RequestOutcome::Requested(Vec::new()))),
            Some(RequestEffect::Befriend) => {
                self.befriend_in(tx, app, (from, to), backfill, request.created_at_ms).await?;
                let notices = self.append_notices_in(tx, app, std::slice::from_ref(&notices.accepted)).await?;
                Ok(Some(RequestOutcome::BecameFriends(notices)))
            }
            Some(RequestEffect::Ask) => {
                let sql = format!(
                    "INSERT INTO friend_requests (app_id, from_user_id, to_user_id, greeting, created_at_ms, \
                     expires_at_ms, rejected_at_ms) VALUES (?, ?, ?, ?, ?, ?, 0){}",
                    self.dialect.upsert(
                        "app_id, from_user_id, to_user_id",
                        &["greeting", "created_at_ms", "expires_at_ms", "rejected_at_ms"]
                    )
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(app)
                    .bind(from)
                    .bind(to)
                    .bind(request.greeting.as_str())
                    .bind(request.created_at_ms)
                    .bind(request.expires_at_ms)
                    .execute(&mut **tx)
                    .await?;
                let notices = self.append_notices_in(tx, app, std::slice::from_ref(&notices.requested)).await?;
                Ok(Some(RequestOutcome::Requested(notices)))
            }
        }
    }

    async fn answer_in(
        &self,
        tx: &mut Tx,
        app: i64,
        answer: &Answer<'_>,
        backfill: Backfill<'_>,
        decide: &mut AnswerDecider<'_>,
    ) -> StoreResult<Option<Vec<Notice>>> {
        let (user, from) = (answer.user, answer.from);
        let state = AnswerState {
            live: self.live_request_in(tx, app, from, user, answer.now_ms).await?,
            friend_counts: (self.friend_count_in(tx, app, user).await?, self.friend_count_in(tx, app, from).await?),
        };
        if !decide(&state) {
            return Ok(None);
        }
        let Some(accepted) = answer.accepted else {
            // Kept, with the time: the sender may not ask again before its cool-down ends.
            sqlx::query(
                "UPDATE friend_requests SET rejected_at_ms = ? WHERE app_id = ? AND from_user_id = ? AND to_user_id = ?",
            )
            .bind(answer.now_ms)
            .bind(app)
            .bind(from)
            .bind(user)
            .execute(&mut **tx)
            .await?;
            return Ok(Some(Vec::new()));
        };
        self.befriend_in(tx, app, (user, from), backfill, answer.now_ms).await?;
        Ok(Some(self.append_notices_in(tx, app, std::slice::from_ref(accepted)).await?))
    }

    async fn pairs_state_in(&self, tx: &mut Tx, app: i64, pairs: &[(String, String)]) -> StoreResult<PairsState> {
        let users: Vec<String> =
            pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect::<BTreeSet<_>>().into_iter().collect();
        let mut state =
            PairsState { unknown_users: self.unknown_users(tx, app, &users).await?, ..PairsState::default() };
        for user in &users {
            state.friend_counts.insert(user.clone(), self.friend_count_in(tx, app, user).await?);
        }
        for (a, b) in pairs {
            if self.are_friends_in(tx, app, a, b).await? {
                state.friends_already.insert((a.clone(), b.clone()));
            }
        }
        Ok(state)
    }
}

#[async_trait]
impl FriendStore for SqlStore {
    async fn relation(&self, app: AppId, user: &str, other: &str) -> StoreResult<Relation> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM friendships WHERE app_id = ? AND user_id = ? AND friend_id = ?) AS friends, \
             (SELECT COUNT(*) FROM blocks WHERE app_id = ? AND user_id = ? AND blocked_id = ?) AS blocked_by, \
             (SELECT COUNT(*) FROM blocks WHERE app_id = ? AND user_id = ? AND blocked_id = ?) AS blocking",
        )
        .bind(rows::bigint(app, "app_id")?)
        .bind(user)
        .bind(other)
        .bind(rows::bigint(app, "app_id")?)
        .bind(other)
        .bind(user)
        .bind(rows::bigint(app, "app_id")?)
        .bind(user)
        .bind(other)
        .fetch_one(&self.read)
        .await?;
        Ok(Relation {
            friends: row.try_get::<i64, _>("friends")? > 0,
            blocked_by_other: row.try_get::<i64, _>("blocked_by")? > 0,
            blocking_other: row.try_get::<i64, _>("blocking")? > 0,
        })
    }

    async fn send_friend_request(
        &self,
        app: AppId,
        request: &FriendRequest,
        notices: &RequestNotices,
        backfill: Backfill<'_>,
        decide: &mut RequestDecider<'_>,
    ) -> StoreResult<Option<RequestOutcome>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.send_request_in(tx, app, request, notices, backfill, decide).await)
    }

    async fn answer_friend_request(
        &self,
        app: AppId,
        answer: &Answer<'_>,
        backfill: Backfill<'_>,
        decide: &mut AnswerDecider<'_>,
    ) -> StoreResult<Option<Vec<Notice>>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.answer_in(tx, app, answer, backfill, decide).await)
    }

    async fn friend_requests(
        &self,
        app: AppId,
        user: &str,
        incoming: bool,
        now_ms: i64,
    ) -> StoreResult<Vec<FriendRequest>> {
        let side = if incoming { "to_user_id" } else { "from_user_id" };
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM friend_requests WHERE app_id = ? AND {side} = ? AND expires_at_ms > ? \
             AND rejected_at_ms = 0 ORDER BY created_at_ms DESC"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user)
            .bind(now_ms)
            .fetch_all(&self.read)
            .await?;
        found.iter().map(request).collect()
    }

    async fn make_friends(
        &self,
        app: AppId,
        pairs: &[(String, String)],
        backfill: Backfill<'_>,
        now_ms: i64,
        decide: &mut PairsDecider<'_>,
    ) -> StoreResult<bool> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| async {
            if !decide(&self.pairs_state_in(tx, app, pairs).await?) {
                return Ok(false);
            }
            for (a, b) in pairs {
                self.befriend_in(tx, app, (a, b), backfill, now_ms).await?;
            }
            Ok(true)
        }
        .await)
    }

    async fn break_friends(
        &self,
        app: AppId,
        pairs: &[(String, String)],
        notices: &[NewMessage],
    ) -> StoreResult<Noticed<u64>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| async {
            let mut broken = 0;
            for (a, b) in pairs {
                broken += u64::from(self.unfriend_in(tx, app, a, b).await?);
            }
            let notices = if broken > 0 { self.append_notices_in(tx, app, notices).await? } else { Vec::new() };
            Ok(Noticed { value: broken, notices })
        }
        .await)
    }

    async fn friend(&self, app: AppId, user: &str, friend_id: &str) -> StoreResult<Option<Friend>> {
        let sql =
            format!("SELECT {FRIEND_COLUMNS} FROM friendships WHERE app_id = ? AND user_id = ? AND friend_id = ?");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user)
            .bind(friend_id)
            .fetch_optional(&self.read)
            .await?;
        found.as_ref().map(friend).transpose()
    }

    async fn friends(&self, app: AppId, user: &str, after_friend_id: &str, limit: u32) -> StoreResult<Vec<Friend>> {
        let sql = format!(
            "SELECT {FRIEND_COLUMNS} FROM friendships WHERE app_id = ? AND user_id = ? AND friend_id > ? \
             ORDER BY friend_id LIMIT ?"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user)
            .bind(after_friend_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(friend).collect()
    }

    async fn friend_ids(&self, app: AppId, user: &str) -> StoreResult<Vec<String>> {
        let found: Vec<String> =
            sqlx::query_scalar("SELECT friend_id FROM friendships WHERE app_id = ? AND user_id = ? ORDER BY friend_id")
                .bind(rows::bigint(app, "app_id")?)
                .bind(user)
                .fetch_all(&self.read)
                .await?;
        Ok(found)
    }

    async fn friends_among(&self, app: AppId, user: &str, others: &[String]) -> StoreResult<Vec<String>> {
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT friend_id FROM friendships WHERE app_id = ? AND user_id = ? AND friend_id IN ({})",
            in_list(others.len())
        );
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let query =
            bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?).bind(user), &others);
        let found = query.fetch_all(&self.read).await?;
        found.iter().map(|row| Ok(row.try_get("friend_id")?)).collect()
    }

    async fn update_friend(
        &self,
        app: AppId,
        user: &str,
        friend_id: &str,
        remark: Option<&str>,
        extra: Option<&str>,
    ) -> StoreResult<Option<Friend>> {
        // COALESCE keeps a column that is not being changed.
        sqlx::query(
            "UPDATE friendships SET remark = COALESCE(?, remark), extra = COALESCE(?, extra) \
             WHERE app_id = ? AND user_id = ? AND friend_id = ?",
        )
        .bind(remark)
        .bind(extra)
        .bind(rows::bigint(app, "app_id")?)
        .bind(user)
        .bind(friend_id)
        .execute(&self.write)
        .await?;
        let sql =
            format!("SELECT {FRIEND_COLUMNS} FROM friendships WHERE app_id = ? AND user_id = ? AND friend_id = ?");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user)
            .bind(friend_id)
            .fetch_optional(&self.write)
            .await?;
        found.as_ref().map(friend).transpose()
    }

    async fn block(&self, app: AppId, user: &str, blocked: &str, now_ms: i64) -> StoreResult<bool> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| async {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM blocks WHERE app_id = ? AND user_id = ? AND blocked_id = ?")
                    .bind(app)
                    .bind(user)
                    .bind(blocked)
                    .fetch_optional(&mut **tx)
                    .await?;
            if exists.is_none() {
                sqlx::query("INSERT INTO blocks (app_id, user_id, blocked_id, created_at_ms) VALUES (?, ?, ?, ?)")
                    .bind(app)
                    .bind(user)
                    .bind(blocked)
                    .bind(now_ms)
                    .execute(&mut **tx)
                    .await?;
            }
            sqlx::query("DELETE FROM friend_requests WHERE app_id = ? AND from_user_id = ? AND to_user_id = ?")
                .bind(app)
                .bind(blocked)
                .bind(user)
                .execute(&mut **tx)
                .await?;
            Ok(exists.is_none())
        }
        .await)
    }

    async fn unblock(&self, app: AppId, user: &str, blocked: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM blocks WHERE app_id = ? AND user_id = ? AND blocked_id = ?")
            .bind(rows::bigint(app, "app_id")?)
            .bind(user)
            .bind(blocked)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn blocked(&self, app: AppId, user: &str) -> StoreResult<Vec<String>> {
        let found: Vec<String> =
            sqlx::query_scalar("SELECT blocked_id FROM blocks WHERE app_id = ? AND user_id = ? ORDER BY blocked_id")
                .bind(rows::bigint(app, "app_id")?)
                .bind(user)
                .fetch_all(&self.read)
                .await?;
        Ok(found)
    }
}
