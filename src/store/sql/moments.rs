//! Moments: posts fanned out on write to their readers' feeds, likes and comments.

use async_trait::async_trait;
use prost::Message as _;
use sqlx::Row;

use super::{SqlStore, Tx, bind_in, conflict_on_unique, in_list, in_tx, pow2_chunks, rows, rows_of};
use crate::{
    model::{AppId, Comment, Like, NewMessage, Post, Visibility},
    store::{MomentStore, NewComment, Notice, Noticed, PostPage, Reactions, StoreError, StoreResult},
};

/// Who may see a like or comment: the post's author sees all, anyone else its own and
/// its friends'. `{t}` is the table's alias; binds: viewer, viewer, viewer.
fn seen_by_viewer(t: &str) -> String {
    format!(
        "({t}.author_id = ? OR {t}.user_id = ? OR EXISTS (SELECT 1 FROM friendships fr \
         WHERE fr.app_id = {t}.app_id AND fr.user_id = ? AND fr.friend_id = {t}.user_id))"
    )
}

fn before(page: PostPage) -> i64 {
    if page.before_post_id == 0 { i64::MAX } else { rows::bound(page.before_post_id) }
}

impl SqlStore {
    /// The author of a live post, its row locked against a concurrent delete.
    async fn live_post_in(&self, tx: &mut Tx, app: i64, post_id: u64) -> StoreResult<String> {
        let sql = format!(
            "SELECT author_id FROM posts WHERE app_id = ? AND post_id = ? AND deleted = 0{}",
            self.dialect.for_update()
        );
        let author: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(rows::bigint(post_id, "post_id")?)
            .fetch_optional(&mut **tx)
            .await?;
        author.ok_or(StoreError::NotFound)
    }

    async fn publish_in(
        &self,
        tx: &mut Tx,
        app: i64,
        post: &Post,
        readers: &[String],
        notice: Option<&NewMessage>,
    ) -> StoreResult<Noticed<Post>> {
        let sql = format!(
            "SELECT {}, p.deleted FROM posts p WHERE p.app_id = ? AND p.author_id = ? AND p.client_post_id = ?",
            rows::POST_COLUMNS
        );
        let earlier = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(post.author_id.as_str())
            .bind(post.client_post_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(row) = earlier {
            if row.try_get::<i64, _>("deleted")? != 0 {
                return Err(StoreError::Conflict);
            }
            return Ok(Noticed { value: rows::post(&row)?, notices: Vec::new() });
        }
        let audience = serde_json::to_string(&post.audience)
            .map_err(|err| StoreError::Corrupt(format!("post audience: {err}")))?;
        sqlx::query(
            "INSERT INTO posts (app_id, post_id, author_id, client_post_id, content, visibility, audience, \
             created_at_ms, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(app)
        .bind(rows::bigint(post.post_id, "post_id")?)
        .bind(post.author_id.as_str())
        .bind(post.client_post_id.as_str())
        .bind(post.content.encode_to_vec())
        .bind(i64::from(post.visibility as i32))
        .bind(audience)
        .bind(post.created_at_ms)
        .execute(&mut **tx)
        .await
        .map_err(conflict_on_unique)?;
        let feeds: Vec<&str> = std::iter::once(post.author_id.as_str())
            .chain(readers.iter().map(String::as_str).filter(|reader| *reader != post.author_id))
            .collect();
        self.insert_feed_items(tx, app, post, &feeds).await?;
        let notices = match notice {
            Some(notice) => self.append_notices_in(tx, app, std::slice::from_ref(notice)).await?,
            None => Vec::new(),
        };
        Ok(Noticed { value: post.clone(), notices })
    }

    /// Puts a post into the feeds of `readers`.
    async fn insert_feed_items(&self, tx: &mut Tx, app: i64, post: &Post, readers: &[&str]) -> StoreResult<()> {
        let post_id = rows::bigint(post.post_id, "post_id")?;
        for chunk in pow2_chunks(readers) {
            let sql = format!(
                "INSERT INTO feed_items (app_id, user_id, post_id, author_id) VALUES {}",
                rows_of(chunk.len(), 4)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for reader in chunk {
                query = query.bind(app).bind(*reader).bind(post_id).bind(post.author_id.as_str());
            }
            query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        }
        Ok(())
    }

    async fn like_in(
        &self,
        tx: &mut Tx,
        app: i64,
        (post_id, user): (u64, &str),
        notice: Option<&NewMessage>,
        now_ms: i64,
    ) -> StoreResult<Vec<Notice>> {
        let author = self.live_post_in(tx, app, post_id).await?;
        let liked: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM post_likes WHERE app_id = ? AND post_id = ? AND user_id = ?")
                .bind(app)
                .bind(rows::bigint(post_id, "post_id")?)
                .bind(user)
                .fetch_optional(&mut **tx)
                .await?;
        if liked.is_some() {
            return Ok(Vec::new());
        }
        sqlx::query(
            "INSERT INTO post_likes (app_id, post_id, user_id, author_id, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(app)
        .bind(rows::bigint(post_id, "post_id")?)
        .bind(user)
        .bind(author)
        .bind(now_ms)
        .execute(&mut **tx)
        .await
        .map_err(conflict_on_unique)?;
        match notice {
            Some(notice) => self.append_notices_in(tx, app, std::slice::from_ref(notice)).await,
            None => Ok(Vec::new()),
        }
    }

    async fn comment_in(
        &self,
        tx: &mut Tx,
        app: i64,
        comment: &NewComment,
        notices: &[NewMessage],
    ) -> StoreResult<Noticed<Comment>> {
        self.live_post_in(tx, app, comment.post_id).await?;
        if comment.reply_to_comment_id != 0 {
            let replied: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM post_comments WHERE app_id = ? AND post_id = ? AND comment_id = ?")
                    .bind(app)
                    .bind(rows::bigint(comment.post_id, "post_id")?)
                    .bind(rows::bigint(comment.reply_to_comment_id, "reply_to_comment_id")?)
                    .fetch_optional(&mut **tx)
                    .await?;
            if replied.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        sqlx::query(
            "INSERT INTO post_comments (app_id, post_id, comment_id, user_id, author_id, reply_to_user_id, \
             reply_to_comment_id, text, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(app)
        .bind(rows::bigint(comment.post_id, "post_id")?)
        .bind(rows::bigint(comment.comment_id, "comment_id")?)
        .bind(comment.user_id.as_str())
        .bind(comment.author_id.as_str())
        .bind(comment.reply_to_user_id.as_str())
        .bind(rows::bigint(comment.reply_to_comment_id, "reply_to_comment_id")?)
        .bind(comment.text.as_str())
        .bind(comment.created_at_ms)
        .execute(&mut **tx)
        .await
        .map_err(conflict_on_unique)?;
        let notices = self.append_notices_in(tx, app, notices).await?;
        let stored = Comment {
            post_id: comment.post_id,
            comment_id: comment.comment_id,
            user_id: comment.user_id.clone(),
            reply_to_user_id: comment.reply_to_user_id.clone(),
            reply_to_comment_id: comment.reply_to_comment_id,
            text: comment.text.clone(),
            created_at_ms: comment.created_at_ms,
        };
        Ok(Noticed { value: stored, notices })
    }

    async fn delete_post_in(&self, tx: &mut Tx, app: i64, author_id: &str, post_id: u64) -> StoreResult<bool> {
        // The row stays, emptied, so that its client_post_id is not reused; feed entries
        // stay too and are skipped on read.
        let done = sqlx::query(
            "UPDATE posts SET deleted = 1, content = ?, audience = '[]' \
             WHERE app_id = ? AND post_id = ? AND author_id = ? AND deleted = 0",
        )
        .bind(Vec::<u8>::new())
        .bind(app)
        .bind(rows::bigint(post_id, "post_id")?)
        .bind(author_id)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        for table in ["post_likes", "post_comments"] {
            let sql = format!("DELETE FROM {table} WHERE app_id = ? AND post_id = ?");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(app)
                .bind(rows::bigint(post_id, "post_id")?)
                .execute(&mut **tx)
                .await?;
        }
        Ok(true)
    }
}

#[async_trait]
impl MomentStore for SqlStore {
    async fn publish_post(
        &self,
        app: AppId,
        post: &Post,
        readers: &[String],
        notice: Option<&NewMessage>,
    ) -> StoreResult<Noticed<Post>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.publish_in(tx, app, post, readers, notice).await)
    }

    async fn get_post(&self, app: AppId, post_id: u64) -> StoreResult<Option<Post>> {
        let sql = format!(
            "SELECT {} FROM posts p WHERE p.app_id = ? AND p.post_id = ? AND p.deleted = 0",
            rows::POST_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(rows::bigint(post_id, "post_id")?)
            .fetch_optional(&self.read)
            .await?;
        found.as_ref().map(rows::post).transpose()
    }

    async fn delete_post(&self, app: AppId, author_id: &str, post_id: u64) -> StoreResult<bool> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.delete_post_in(tx, app, author_id, post_id).await)
    }

    async fn feed(&self, app: AppId, user: &str, page: PostPage) -> StoreResult<Vec<Post>> {
        // The feed entry was written for the audience of the time; the friendship must
        // still hold now.
        let sql = format!(
            "SELECT {} FROM feed_items f JOIN posts p ON p.app_id = f.app_id AND p.post_id = f.post_id \
             WHERE f.app_id = ? AND f.user_id = ? AND f.post_id < ? AND p.deleted = 0 \
             AND (f.author_id = f.user_id OR EXISTS (SELECT 1 FROM friendships fr \
             WHERE fr.app_id = f.app_id AND fr.user_id = f.user_id AND fr.friend_id = f.author_id)) \
             ORDER BY f.post_id DESC LIMIT ?",
            rows::POST_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user)
            .bind(before(page))
            .bind(i64::from(page.limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(rows::post).collect()
    }

    async fn author_posts(
        &self,
        app: AppId,
        author_id: &str,
        visibilities: &[Visibility],
        page: PostPage,
    ) -> StoreResult<Vec<Post>> {
        let filter = if visibilities.is_empty() {
            String::new()
        } else {
            format!(" AND p.visibility IN ({})", in_list(visibilities.len()))
        };
        let sql = format!(
            "SELECT {} FROM posts p WHERE p.app_id = ? AND p.author_id = ? AND p.post_id < ? AND p.deleted = 0{filter} \
             ORDER BY p.post_id DESC LIMIT ?",
            rows::POST_COLUMNS
        );
        let values: Vec<i64> = visibilities.iter().map(|v| i64::from(*v as i32)).collect();
        let query =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?).bind(author_id).bind(before(page));
        let found = bind_in(query, &values).bind(i64::from(page.limit)).fetch_all(&self.read).await?;
        found.iter().map(rows::post).collect()
    }

    async fn reactions(&self, app: AppId, viewer: &str, posts: &[u64]) -> StoreResult<Reactions> {
        if posts.is_empty() {
            return Ok(Reactions::default());
        }
        let ids = posts.iter().map(|id| rows::bigint(*id, "post_id")).collect::<StoreResult<Vec<i64>>>()?;
        let sql = format!(
            "SELECT l.post_id, l.user_id, l.created_at_ms FROM post_likes l \
             WHERE l.app_id = ? AND l.post_id IN ({}) AND {} ORDER BY l.post_id, l.created_at_ms, l.user_id",
            in_list(ids.len()),
            seen_by_viewer("l")
        );
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?), &ids);
        let likes = query
            .bind(viewer)
            .bind(viewer)
            .bind(viewer)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| {
                Ok(Like {
                    post_id: rows::get_u64(row, "post_id")?,
                    user_id: row.try_get("user_id")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let columns = rows::COMMENT_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns} FROM post_comments c WHERE c.app_id = ? AND c.post_id IN ({}) AND {} \
             ORDER BY c.post_id, c.comment_id",
            in_list(ids.len()),
            seen_by_viewer("c")
        );
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?), &ids);
        let found = query.bind(viewer).bind(viewer).bind(viewer).fetch_all(&self.read).await?;
        let comments = found.iter().map(rows::comment).collect::<StoreResult<Vec<_>>>()?;
        Ok(Reactions { likes, comments })
    }

    async fn like(
        &self,
        app: AppId,
        post_id: u64,
        user: &str,
        notice: Option<&NewMessage>,
        now_ms: i64,
    ) -> StoreResult<Vec<Notice>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.like_in(tx, app, (post_id, user), notice, now_ms).await)
    }

    async fn unlike(&self, app: AppId, post_id: u64, user: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM post_likes WHERE app_id = ? AND post_id = ? AND user_id = ?")
            .bind(rows::bigint(app, "app_id")?)
            .bind(rows::bigint(post_id, "post_id")?)
            .bind(user)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_comment(
        &self,
        app: AppId,
        comment: &NewComment,
        notices: &[NewMessage],
    ) -> StoreResult<Noticed<Comment>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.comment_in(tx, app, comment, notices).await)
    }

    async fn get_comment(&self, app: AppId, post_id: u64, comment_id: u64) -> StoreResult<Option<Comment>> {
        let sql = format!(
            "SELECT {} FROM post_comments WHERE app_id = ? AND post_id = ? AND comment_id = ?",
            rows::COMMENT_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(rows::bigint(post_id, "post_id")?)
            .bind(rows::bigint(comment_id, "comment_id")?)
            .fetch_optional(&self.read)
            .await?;
        found.as_ref().map(rows::comment).transpose()
    }

    async fn delete_comment(&self, app: AppId, post_id: u64, comment_id: u64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM post_comments WHERE app_id = ? AND post_id = ? AND comment_id = ?")
            .bind(rows::bigint(app, "app_id")?)
            .bind(rows::bigint(post_id, "post_id")?)
            .bind(rows::bigint(comment_id, "comment_id")?)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
