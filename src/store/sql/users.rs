use async_trait::async_trait;
use sqlx::Row;

use super::{SqlStore, Tx, bind_in, conflict_on_unique, in_list, in_tx, pow2_chunks, rows, rows_of};
use crate::{
    model::{AppId, Device, ProfilePatch, TokenGenerations, User},
    store::{DeviceDecider, NewDevice, NewUser, StoreError, StoreResult, UserStore},
};

impl SqlStore {
    /// Inserts users (and their seq rows) that do not exist yet, inside `tx`.
    async fn insert_users(&self, tx: &mut Tx, app: i64, users: &[NewUser], now_ms: i64) -> StoreResult<Vec<bool>> {
        let ids: Vec<&str> = users.iter().map(|u| u.user_id.as_str()).collect();
        let sql = format!("SELECT user_id FROM users WHERE app_id = ? AND user_id IN ({})", in_list(ids.len()));
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app), &ids);
        let existing: std::collections::HashSet<String> =
            query.fetch_all(&mut **tx).await?.iter().map(|row| row.try_get("user_id")).collect::<Result<_, _>>()?;

        let mut seen = std::collections::HashSet::new();
        let created: Vec<bool> =
            users.iter().map(|u| !existing.contains(&u.user_id) && seen.insert(u.user_id.as_str())).collect();
        let fresh: Vec<&NewUser> = users.iter().zip(&created).filter(|(_, c)| **c).map(|(u, _)| u).collect();
        if fresh.is_empty() {
            return Ok(created);
        }
        for chunk in pow2_chunks(&fresh) {
            let sql = format!(
                "INSERT INTO users (app_id, user_id, nickname, avatar_url, extra, created_at_ms, updated_at_ms) VALUES {}",
                rows_of(chunk.len(), 7)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for user in chunk {
                query = query
                    .bind(app)
                    .bind(user.user_id.as_str())
                    .bind(user.nickname.as_str())
                    .bind(user.avatar_url.as_str())
                    .bind(user.extra.as_str())
                    .bind(now_ms)
                    .bind(now_ms);
            }
            query.execute(&mut **tx).await.map_err(conflict_on_unique)?;

            let sql = format!("INSERT INTO user_seqs (app_id, user_id, seq) VALUES {}", rows_of(chunk.len(), 3));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for user in chunk {
                query = query.bind(app).bind(user.user_id.as_str()).bind(0_i64);
            }
            query.execute(&mut **tx).await.map_err(conflict_on_unique)?;
        }
        Ok(created)
    }

    async fn upsert_device_in(
        &self,
        tx: &mut Tx,
        app: i64,
        device: &NewDevice,
        now_ms: i64,
        decide: &mut DeviceDecider<'_>,
    ) -> StoreResult<Option<Device>> {
        let dialect = self.dialect;
        // Lock the user's row so that concurrent registrations count correctly.
        let sql = format!("SELECT user_id FROM users WHERE app_id = ? AND user_id = ?{}", dialect.for_update());
        let user = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(device.user_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if user.is_none() {
            return Err(StoreError::NotFound);
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE app_id = ? AND user_id = ? AND device_id <> ?")
                .bind(app)
                .bind(device.user_id.as_str())
                .bind(device.device_id.as_str())
                .fetch_one(&mut **tx)
                .await?;
        if !decide(rows::u64_of(count, "count")?) {
            return Ok(None);
        }
        let sql = format!(
            "INSERT INTO devices (app_id, user_id, device_id, device_type, model, os_version, sdk_version, \
                     created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?){}",
            dialect.upsert(
                "app_id, user_id, device_id",
                &["device_type", "model", "os_version", "sdk_version", "updated_at_ms"]
            )
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(device.user_id.as_str())
            .bind(device.device_id.as_str())
            .bind(i64::from(device.device_type as i32))
            .bind(device.model.as_str())
            .bind(device.os_version.as_str())
            .bind(device.sdk_version.as_str())
            .bind(now_ms)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
        let sql =
            format!("SELECT {} FROM devices WHERE app_id = ? AND user_id = ? AND device_id = ?", rows::DEVICE_COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .bind(device.user_id.as_str())
            .bind(device.device_id.as_str())
            .fetch_one(&mut **tx)
            .await?;
        let stored = rows::device(&row)?;
        if stored.created_at_ms == now_ms {
            let event = crate::webhooks::events::device_registered(rows::u64_of(app, "app_id")?, &stored);
            self.write_events(tx, app, &[event], now_ms).await?;
        }
        Ok(Some(stored))
    }

    async fn remove_device_in(&self, tx: &mut Tx, app: i64, user_id: &str, device_id: &str) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM devices WHERE app_id = ? AND user_id = ? AND device_id = ?")
            .bind(app)
            .bind(user_id)
            .bind(device_id)
            .execute(&mut **tx)
            .await?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        let now = crate::model::now_ms();
        let event = crate::webhooks::events::device_removed(rows::u64_of(app, "app_id")?, user_id, device_id, now);
        self.write_events(tx, app, &[event], now).await?;
        Ok(true)
    }
    async fn insert_account(
        &self,
        tx: &mut Tx,
        app: i64,
        username: &str,
        password_hash: &str,
        user: &NewUser,
        now_ms: i64,
    ) -> StoreResult<()> {
        let created = self.insert_users(tx, app, std::slice::from_ref(user), now_ms).await?;
        if created.first() != Some(&true) {
            return Err(StoreError::Conflict);
        }
        sqlx::query(
            "INSERT INTO accounts (app_id, username, user_id, password_hash, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(app)
        .bind(username)
        .bind(user.user_id.as_str())
        .bind(password_hash)
        .bind(now_ms)
        .execute(&mut **tx)
        .await
        .map_err(conflict_on_unique)?;
        Ok(())
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_users(&self, app: AppId, users: &[NewUser], now_ms: i64) -> StoreResult<Vec<bool>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.insert_users(tx, app, users, now_ms).await)
    }

    async fn get_users(&self, app: AppId, ids: &[String]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM users WHERE app_id = ? AND user_id IN ({})",
            rows::USER_COLUMNS,
            in_list(ids.len())
        );
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let query = bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?), &ids);
        query.fetch_all(&self.read).await?.iter().map(rows::user).collect()
    }

    async fn update_user(
        &self,
        app: AppId,
        user_id: &str,
        patch: &ProfilePatch,
        now_ms: i64,
    ) -> StoreResult<Option<User>> {
        let result = sqlx::query(
            "UPDATE users SET nickname = COALESCE(?, nickname), avatar_url = COALESCE(?, avatar_url), \
             extra = COALESCE(?, extra), updated_at_ms = ? WHERE app_id = ? AND user_id = ?",
        )
        .bind(patch.nickname.as_deref())
        .bind(patch.avatar_url.as_deref())
        .bind(patch.extra.as_deref())
        .bind(now_ms)
        .bind(rows::bigint(app, "app_id")?)
        .bind(user_id)
        .execute(&self.write)
        .await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(self.get_users(app, &[user_id.to_owned()]).await?.pop())
    }

    async fn list_users(&self, app: AppId, after_user_id: &str, limit: u32) -> StoreResult<Vec<User>> {
        let sql = format!(
            "SELECT {} FROM users WHERE app_id = ? AND user_id > ? ORDER BY user_id LIMIT ?",
            rows::USER_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(after_user_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(rows::user).collect()
    }

    async fn upsert_device(
        &self,
        app: AppId,
        device: &NewDevice,
        now_ms: i64,
        decide: &mut DeviceDecider<'_>,
    ) -> StoreResult<Option<Device>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.upsert_device_in(tx, app, device, now_ms, decide).await)
    }
    async fn get_device(&self, app: AppId, user_id: &str, device_id: &str) -> StoreResult<Option<Device>> {
        let sql =
            format!("SELECT {} FROM devices WHERE app_id = ? AND user_id = ? AND device_id = ?", rows::DEVICE_COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .bind(device_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::device).transpose()
    }

    async fn list_devices(&self, app: AppId, user_id: &str) -> StoreResult<Vec<Device>> {
        let sql =
            format!("SELECT {} FROM devices WHERE app_id = ? AND user_id = ? ORDER BY device_id", rows::DEVICE_COLUMNS);
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .fetch_all(&self.read)
            .await?;
        found.iter().map(rows::device).collect()
    }

    async fn remove_device(&self, app: AppId, user_id: &str, device_id: &str) -> StoreResult<bool> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| self.remove_device_in(tx, app, user_id, device_id).await)
    }

    async fn ack(&self, app: AppId, user_id: &str, device_id: &str, seq: u64) -> StoreResult<u64> {
        let sql = format!(
            "UPDATE devices SET acked_seq = {}(acked_seq, ?) WHERE app_id = ? AND user_id = ? AND device_id = ?",
            self.dialect.greatest()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(seq, "seq")?)
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .bind(device_id)
            .execute(&self.write)
            .await?;
        // Read back rather than trust the row count: MySQL counts only changed rows.
        let acked: Option<i64> =
            sqlx::query_scalar("SELECT acked_seq FROM devices WHERE app_id = ? AND user_id = ? AND device_id = ?")
                .bind(rows::bigint(app, "app_id")?)
                .bind(user_id)
                .bind(device_id)
                .fetch_optional(&self.write)
                .await?;
        let acked = acked.ok_or(StoreError::NotFound)?;
        Ok(rows::u64_of(acked, "acked_seq")?)
    }

    async fn token_generations(
        &self,
        app: AppId,
        user_id: &str,
        device_id: &str,
    ) -> StoreResult<Option<TokenGenerations>> {
        let row = sqlx::query(
            "SELECT u.token_gen AS user_gen, d.token_gen AS device_gen, d.device_type FROM users u \
             JOIN devices d ON d.app_id = u.app_id AND d.user_id = u.user_id \
             WHERE u.app_id = ? AND u.user_id = ? AND d.device_id = ?",
        )
        .bind(rows::bigint(app, "app_id")?)
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(TokenGenerations {
                user: rows::get_u64(&row, "user_gen")?,
                device: rows::get_u64(&row, "device_gen")?,
                device_type: rows::get_enum(&row, "device_type")?,
            })
        })
        .transpose()
    }

    async fn bump_token_generation(&self, app: AppId, user_id: &str, device_id: Option<&str>) -> StoreResult<bool> {
        let query = match device_id {
            Some(device_id) => sqlx::query(
                "UPDATE devices SET token_gen = token_gen + 1 WHERE app_id = ? AND user_id = ? AND device_id = ?",
            )
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .bind(device_id),
            None => sqlx::query("UPDATE users SET token_gen = token_gen + 1 WHERE app_id = ? AND user_id = ?")
                .bind(rows::bigint(app, "app_id")?)
                .bind(user_id),
        };
        Ok(query.execute(&self.write).await?.rows_affected() > 0)
    }

    async fn create_account(
        &self,
        app: AppId,
        username: &str,
        password_hash: &str,
        user: &NewUser,
        device: &NewDevice,
        now_ms: i64,
    ) -> StoreResult<Device> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| async {
            self.insert_account(tx, app, username, password_hash, user, now_ms).await?;
            // A new user has no other device: any limit admits its first.
            let device = self.upsert_device_in(tx, app, device, now_ms, &mut |_| true).await?;
            device.ok_or_else(|| StoreError::Corrupt("a new user's first device was refused".into()))
        }
        .await)
    }
    async fn account_by_username(&self, app: AppId, username: &str) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query("SELECT user_id, password_hash FROM accounts WHERE app_id = ? AND username = ?")
            .bind(rows::bigint(app, "app_id")?)
            .bind(username)
            .fetch_optional(&self.read)
            .await?;
        row.map(|row| Ok((row.try_get("user_id")?, row.try_get("password_hash")?))).transpose()
    }

    async fn account_of(&self, app: AppId, user_id: &str) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query("SELECT username, password_hash FROM accounts WHERE app_id = ? AND user_id = ?")
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|row| Ok((row.try_get("username")?, row.try_get("password_hash")?))).transpose()
    }

    async fn set_password_hash(&self, app: AppId, user_id: &str, password_hash: &str) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE accounts SET password_hash = ? WHERE app_id = ? AND user_id = ?")
            .bind(password_hash)
            .bind(rows::bigint(app, "app_id")?)
            .bind(user_id)
            .execute(&self.write)
            .await?;
        Ok(result.rows_affected() > 0)
    }
}
