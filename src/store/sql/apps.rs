use async_trait::async_trait;
use sqlx::Row;

use super::{Dialect, SqlStore, Tx, in_tx, rows};
use crate::{
    model::{App, AppId, AppSecret, AppSettings},
    store::{AppChange, AppStore, StoreError, StoreResult},
};

fn settings_json(settings: &AppSettings) -> StoreResult<String> {
    serde_json::to_string(settings).map_err(|err| StoreError::Corrupt(err.to_string()))
}

async fn insert_app(
    tx: &mut Tx,
    dialect: Dialect,
    name: &str,
    settings: String,
    secret_hash: &str,
    now_ms: i64,
) -> StoreResult<i64> {
    sqlx::query("INSERT INTO apps (name, settings, created_at_ms) VALUES (?, ?, ?)")
        .bind(name)
        .bind(settings)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    let app_id: i64 = sqlx::query_scalar(dialect.last_insert_id()).fetch_one(&mut **tx).await?;
    sqlx::query("INSERT INTO app_secrets (app_id, secret_hash, created_at_ms) VALUES (?, ?, ?)")
        .bind(app_id)
        .bind(secret_hash)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    Ok(app_id)
}

#[async_trait]
impl AppStore for SqlStore {
    async fn create_app(&self, name: &str, settings: &AppSettings, secret_hash: &str, now_ms: i64) -> StoreResult<App> {
        let settings_text = settings_json(settings)?;
        let app_id =
            in_tx!(self, |tx| insert_app(tx, self.dialect, name, settings_text.clone(), secret_hash, now_ms).await)?;
        Ok(App {
            id: rows::u64_of(app_id, "app_id")?,
            name: name.to_owned(),
            settings: settings.clone(),
            created_at_ms: now_ms,
        })
    }
    async fn get_app(&self, app: AppId) -> StoreResult<Option<App>> {
        let sql = format!("SELECT {} FROM apps WHERE app_id = ?", rows::APP_COLUMNS);
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?).fetch_optional(&self.read).await?;
        row.as_ref().map(rows::app).transpose()
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        let sql = format!("SELECT {} FROM apps ORDER BY app_id", rows::APP_COLUMNS);
        let found = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.read).await?;
        found.iter().map(rows::app).collect()
    }

    async fn update_app(&self, app: AppId, name: Option<&str>, change: &mut AppChange<'_>) -> StoreResult<Option<App>> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| async {
            let sql = format!("SELECT {} FROM apps WHERE app_id = ?{}", rows::APP_COLUMNS, self.dialect.for_update());
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app).fetch_optional(&mut **tx).await?;
            let Some(mut found) = row.as_ref().map(rows::app).transpose()? else { return Ok(None) };
            if !change(&mut found.settings) {
                return Ok(None);
            }
            if let Some(name) = name {
                found.name = name.to_owned();
            }
            sqlx::query("UPDATE apps SET name = ?, settings = ? WHERE app_id = ?")
                .bind(found.name.as_str())
                .bind(settings_json(&found.settings)?)
                .bind(app)
                .execute(&mut **tx)
                .await?;
            Ok(Some(found))
        }
        .await)
    }

    async fn app_secrets(&self, app: AppId, now_ms: i64) -> StoreResult<Vec<AppSecret>> {
        let found = sqlx::query(
            "SELECT secret_hash, expires_at_ms FROM app_secrets \
             WHERE app_id = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?)",
        )
        .bind(rows::bigint(app, "app_id")?)
        .bind(now_ms)
        .fetch_all(&self.read)
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(AppSecret { hash: row.try_get("secret_hash")?, expires_at_ms: row.try_get("expires_at_ms")? })
            })
            .collect()
    }

    async fn rotate_secret(&self, app: AppId, new_hash: &str, retire_at_ms: i64, now_ms: i64) -> StoreResult<()> {
        let app = rows::bigint(app, "app_id")?;
        in_tx!(self, |tx| replace_secret(tx, app, new_hash, retire_at_ms, now_ms).await)
    }
}

async fn replace_secret(tx: &mut Tx, app: i64, new_hash: &str, retire_at_ms: i64, now_ms: i64) -> StoreResult<()> {
    // Expired secrets are of no use to anyone: drop them while here.
    sqlx::query("DELETE FROM app_secrets WHERE app_id = ? AND expires_at_ms <= ?")
        .bind(app)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE app_secrets SET expires_at_ms = ? \
                     WHERE app_id = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?)",
    )
    .bind(retire_at_ms)
    .bind(app)
    .bind(retire_at_ms)
    .execute(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO app_secrets (app_id, secret_hash, created_at_ms) VALUES (?, ?, ?)")
        .bind(app)
        .bind(new_hash)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
