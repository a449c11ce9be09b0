//! Webhook endpoints and the outbox: events written in the transactions of their changes,
//! partitions leased by the nodes that deliver them.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use sqlx::{Row, any::AnyRow};

use super::{Dialect, SqlStore, Tx, in_list, in_tx, pow2_chunks, rows, rows_of};
use crate::{
    model::AppId,
    store::{StoreError, StoreResult, WebhookStore},
    webhooks::{
        AttemptOutcome, Delivery, DeliveryFilter, DeliveryState, Endpoint, EndpointPatch, Kinds, NewEndpoint,
        OutboxEvent, PARTITIONS, partition_of,
    },
};

/// How long a node trusts its copy of an app's endpoints. A change on this node applies at
/// once; one made on another node reaches this node's outbox writes within this time.
const SUBSCRIPTIONS_TTL: Duration = Duration::from_secs(1);
const SUBSCRIPTIONS_CAPACITY: usize = 10_000;

/// The enabled endpoints of an app and the kinds each wants, as last read.
#[derive(Debug)]
struct Subscribed {
    endpoints: Vec<(i64, Kinds)>,
    loaded_at: Instant,
}

/// A node's copies of apps' subscriptions, so that a change in an app without webhooks
/// writes nothing and reads nothing more.
#[derive(Debug)]
pub(super) struct Subscriptions {
    apps: quick_cache::sync::Cache<i64, Arc<Subscribed>>,
    /// Woken when events are written, so that this node's dispatcher looks at once.
    written: tokio::sync::Notify,
}

impl Default for Subscriptions {
    fn default() -> Self {
        Self { apps: quick_cache::sync::Cache::new(SUBSCRIPTIONS_CAPACITY), written: tokio::sync::Notify::new() }
    }
}

const ENDPOINT_COLUMNS: &str = "endpoint_id, app_id, url, secret, previous_secret, previous_secret_until_ms, kinds, \
                                enabled, description, disabled_reason, created_at_ms, updated_at_ms";

fn endpoint(row: &AnyRow) -> StoreResult<Endpoint> {
    let kinds: String = row.try_get("kinds")?;
    Ok(Endpoint {
        id: rows::get_u64(row, "endpoint_id")?,
        app: rows::get_u64(row, "app_id")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_until_ms: row.try_get("previous_secret_until_ms")?,
        kinds: Kinds::parse(&kinds).map_err(StoreError::Corrupt)?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        description: row.try_get("description")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

const DELIVERY_COLUMNS: &str = "id, app_id, endpoint_id, lane, kind, payload, created_at_ms, retry_from_ms, state, \
                                attempts, next_at_ms, last_at_ms, last_status, last_error";

fn delivery(row: &AnyRow) -> StoreResult<Delivery> {
    let state: i64 = row.try_get("state")?;
    Ok(Delivery {
        id: rows::get_u64(row, "id")?,
        app: rows::get_u64(row, "app_id")?,
        endpoint_id: rows::get_u64(row, "endpoint_id")?,
        lane: row.try_get("lane")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        created_at_ms: row.try_get("created_at_ms")?,
        retry_from_ms: row.try_get("retry_from_ms")?,
        state: DeliveryState::from_code(state)
            .ok_or_else(|| StoreError::Corrupt(format!("webhook delivery state {state}")))?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        next_at_ms: row.try_get("next_at_ms")?,
        last_at_ms: row.try_get("last_at_ms")?,
        last_status: u16::try_from(row.try_get::<i64, _>("last_status")?).unwrap_or(0),
        last_error: row.try_get("last_error")?,
    })
}

impl SqlStore {
    /// Writes `events` to the outbox in the open transaction, one row per enabled
    /// endpoint of the app that wants the kind; nothing for an app without endpoints.
    pub(super) async fn write_events(
        &self,
        tx: &mut Tx,
        app: i64,
        events: &[OutboxEvent],
        now_ms: i64,
    ) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let subscribed = self.subscribed(tx, app).await?;
        if subscribed.endpoints.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, &OutboxEvent)> = events
            .iter()
            .flat_map(|event| {
                subscribed
                    .endpoints
                    .iter()
                    .filter(|(_, kinds)| kinds.wants(event.kind))
                    .map(move |(id, _)| (*id, event))
            })
            .collect();
        for chunk in pow2_chunks(&rows) {
            let sql = format!(
                "INSERT INTO webhook_outbox (app_id, endpoint_id, part, lane, kind, payload, created_at_ms, \
                 next_at_ms) VALUES {}",
                rows_of(chunk.len(), 8)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (endpoint_id, event) in chunk {
                query = query
                    .bind(app)
                    .bind(*endpoint_id)
                    .bind(i64::from(event.partition()))
                    .bind(event.lane.as_str())
                    .bind(event.kind)
                    .bind(event.payload.as_str())
                    .bind(now_ms)
                    .bind(now_ms);
            }
            query.execute(&mut **tx).await?;
        }
        if !rows.is_empty() {
            self.subscriptions.written.notify_one();
        }
        Ok(())
    }

    /// Whether the app has an enabled endpoint: events are worth making.
    pub(super) async fn wants_events(&self, tx: &mut Tx, app: i64) -> StoreResult<bool> {
        Ok(!self.subscribed(tx, app).await?.endpoints.is_empty())
    }

    /// The app's enabled endpoints, from this node's copy while it is fresh (read in the
    /// transaction otherwise).
    async fn subscribed(&self, tx: &mut Tx, app: i64) -> StoreResult<Arc<Subscribed>> {
        match self.fresh_subscriptions(app) {
            Some(found) => Ok(found),
            None => self.load_subscriptions(&mut **tx, app).await,
        }
    }

    fn fresh_subscriptions(&self, app: i64) -> Option<Arc<Subscribed>> {
        self.subscriptions.apps.get(&app).filter(|found| found.loaded_at.elapsed() < SUBSCRIPTIONS_TTL)
    }

    /// Reads the app's enabled endpoints (in a transaction, or from the read pool) into
    /// this node's copy.
    async fn load_subscriptions<'e, E>(&self, executor: E, app: i64) -> StoreResult<Arc<Subscribed>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let found = sqlx::query("SELECT endpoint_id, kinds FROM webhook_endpoints WHERE app_id = ? AND enabled = 1")
            .bind(app)
            .fetch_all(executor)
            .await?;
        let mut endpoints = Vec::with_capacity(found.len());
        for row in &found {
            let kinds: String = row.try_get("kinds")?;
            endpoints.push((row.try_get("endpoint_id")?, Kinds::parse(&kinds).map_err(StoreError::Corrupt)?));
        }
        let subscribed = Arc::new(Subscribed { endpoints, loaded_at: Instant::now() });
        self.subscriptions.apps.insert(app, subscribed.clone());
        Ok(subscribed)
    }

    /// Files every event not delivered yet under its lane's partition (`partition_of`), a
    /// page at a time: events written by a version that hashed lanes otherwise must share
    /// a partition with the later events of their lanes to go out before them. Delivered
    /// events stay where they are.
    pub(super) async fn refile_events(&self) -> StoreResult<()> {
        let mut after_id = 0;
        loop {
            let page: Vec<(i64, i64, String)> = sqlx::query_as(
                "SELECT id, part, lane FROM webhook_outbox WHERE id > ? AND state <> 1 ORDER BY id LIMIT ?",
            )
            .bind(after_id)
            .bind(super::MAX_IN_LIST as i64)
            .fetch_all(&self.write)
            .await?;
            let Some((last, _, _)) = page.last() else { return Ok(()) };
            after_id = *last;
            let mut moves: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
            for (id, part, lane) in &page {
                let wanted = partition_of(lane);
                if i64::from(wanted) != *part {
                    moves.entry(wanted).or_default().push(*id);
                }
            }
            for (part, ids) in moves {
                let sql = format!("UPDATE webhook_outbox SET part = ? WHERE id IN ({})", in_list(ids.len()));
                let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(i64::from(part));
                super::bind_in(query, &ids).execute(&self.write).await?;
            }
        }
    }

    /// The operator says the endpoint works again: its partitions stop resting.
    async fn end_rests(&self, endpoint_id: u64) -> StoreResult<()> {
        sqlx::query("UPDATE webhook_partitions SET failures = 0, blocked_until_ms = 0 WHERE endpoint_id = ?")
            .bind(rows::bigint(endpoint_id, "endpoint_id")?)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The operator says the endpoint works again: its waiting events are tried at once,
    /// each with its backoff and retry window started over (they may have waited, disabled,
    /// longer than `retry_for_secs`).
    async fn retry_waiting_now(&self, endpoint_id: u64, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = 0, next_at_ms = ?, retry_from_ms = ? WHERE endpoint_id = ? AND state = 0",
        )
        .bind(now_ms)
        .bind(now_ms)
        .bind(rows::bigint(endpoint_id, "endpoint_id")?)
        .execute(&self.write)
        .await?;
        self.subscriptions.written.notify_one();
        Ok(())
    }

    fn forget_subscriptions(&self, app: AppId) {
        if let Ok(app) = i64::try_from(app) {
            self.subscriptions.apps.remove(&app);
        }
    }

    async fn insert_endpoint(&self, tx: &mut Tx, app: i64, new: &NewEndpoint, now_ms: i64) -> StoreResult<i64> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (app_id, url, secret, kinds, enabled, description, created_at_ms, \
             updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(app)
        .bind(new.url.as_str())
        .bind(new.secret.as_str())
        .bind(new.kinds.to_text())
        .bind(i64::from(new.enabled))
        .bind(new.description.as_str())
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        let id: i64 = sqlx::query_scalar(self.dialect.last_insert_id()).fetch_one(&mut **tx).await?;
        let sql =
            format!("INSERT INTO webhook_partitions (endpoint_id, part) VALUES {}", rows_of(PARTITIONS as usize, 2));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for part in 0..PARTITIONS {
            query = query.bind(id).bind(i64::from(part));
        }
        query.execute(&mut **tx).await?;
        Ok(id)
    }

    async fn delete_endpoint_in(&self, tx: &mut Tx, app: i64, endpoint_id: i64) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE app_id = ? AND endpoint_id = ?")
            .bind(app)
            .bind(endpoint_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        for table in ["webhook_partitions", "webhook_outbox"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE endpoint_id = ?")))
                .bind(endpoint_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(true)
    }

    async fn lease_in(
        &self,
        tx: &mut Tx,
        wanted: &[(u64, u32)],
        node: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<(u64, u32)>> {
        // Rows another node is claiming right now are skipped, not waited for.
        let skip_locked = match self.dialect {
            Dialect::MySql => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let mut leased = Vec::new();
        for &(endpoint_id, part) in wanted {
            let sql = format!(
                "SELECT endpoint_id FROM webhook_partitions WHERE endpoint_id = ? AND part = ? \
                 AND (locked_until_ms < ? OR locked_by = ?){skip_locked}"
            );
            let found = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(rows::bigint(endpoint_id, "endpoint_id")?)
                .bind(i64::from(part))
                .bind(now_ms)
                .bind(node)
                .fetch_optional(&mut **tx)
                .await?;
            if found.is_some() {
                leased.push((endpoint_id, part));
            }
        }
        for &(endpoint_id, part) in &leased {
            sqlx::query(
                "UPDATE webhook_partitions SET locked_by = ?, locked_until_ms = ? WHERE endpoint_id = ? AND part = ?",
            )
            .bind(node)
            .bind(until_ms)
            .bind(rows::bigint(endpoint_id, "endpoint_id")?)
            .bind(i64::from(part))
            .execute(&mut **tx)
            .await?;
        }
        Ok(leased)
    }
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_endpoint(&self, app: AppId, new: &NewEndpoint, now_ms: i64) -> StoreResult<Endpoint> {
        let app_id = rows::bigint(app, "app_id")?;
        let id = in_tx!(self, |tx| self.insert_endpoint(tx, app_id, new, now_ms).await)?;
        self.forget_subscriptions(app);
        Ok(Endpoint {
            id: rows::u64_of(id, "endpoint_id")?,
            app,
            url: new.url.clone(),
            secret: new.secret.clone(),
            previous_secret: String::new(),
            previous_secret_until_ms: 0,
            kinds: new.kinds.clone(),
            enabled: new.enabled,
            description: new.description.clone(),
            disabled_reason: String::new(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        })
    }

    async fn endpoints(&self, app: AppId) -> StoreResult<Vec<Endpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = ? ORDER BY endpoint_id");
        let found =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows::bigint(app, "app_id")?).fetch_all(&self.read).await?;
        found.iter().map(endpoint).collect()
    }

    async fn endpoint(&self, endpoint_id: u64) -> StoreResult<Option<Endpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE endpoint_id = ?");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(endpoint_id, "endpoint_id")?)
            .fetch_optional(&self.read)
            .await?;
        found.as_ref().map(endpoint).transpose()
    }

    async fn update_endpoint(
        &self,
        app: AppId,
        endpoint_id: u64,
        patch: &EndpointPatch,
        now_ms: i64,
    ) -> StoreResult<Option<Endpoint>> {
        // Enabling an endpoint again clears the reason gim disabled it for.
        let updated = sqlx::query(
            "UPDATE webhook_endpoints SET url = COALESCE(?, url), kinds = COALESCE(?, kinds), \
             enabled = COALESCE(?, enabled), description = COALESCE(?, description), \
             disabled_reason = CASE WHEN ? = 1 THEN '' ELSE disabled_reason END, updated_at_ms = ? \
             WHERE app_id = ? AND endpoint_id = ?",
        )
        .bind(patch.url.as_deref())
        .bind(patch.kinds.as_ref().map(Kinds::to_text))
        .bind(patch.enabled.map(i64::from))
        .bind(patch.description.as_deref())
        .bind(i64::from(patch.enabled == Some(true)))
        .bind(now_ms)
        .bind(rows::bigint(app, "app_id")?)
        .bind(rows::bigint(endpoint_id, "endpoint_id")?)
        .execute(&self.write)
        .await?
        .rows_affected();
        self.forget_subscriptions(app);
        if updated == 0 {
            return Ok(None);
        }
        if patch.enabled == Some(true) {
            self.end_rests(endpoint_id).await?;
            self.retry_waiting_now(endpoint_id, now_ms).await?;
        }
        Ok(self.endpoint(endpoint_id).await?.filter(|found| found.app == app))
    }

    async fn delete_endpoint(&self, app: AppId, endpoint_id: u64) -> StoreResult<bool> {
        let (app_id, id) = (rows::bigint(app, "app_id")?, rows::bigint(endpoint_id, "endpoint_id")?);
        let deleted = in_tx!(self, |tx| self.delete_endpoint_in(tx, app_id, id).await)?;
        self.forget_subscriptions(app);
        Ok(deleted)
    }

    async fn disable_endpoint(&self, endpoint_id: u64, reason: &str, now_ms: i64) -> StoreResult<()> {
        let app: Option<i64> = sqlx::query_scalar("SELECT app_id FROM webhook_endpoints WHERE endpoint_id = ?")
            .bind(rows::bigint(endpoint_id, "endpoint_id")?)
            .fetch_optional(&self.read)
            .await?;
        sqlx::query(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, updated_at_ms = ? WHERE endpoint_id = ?",
        )
        .bind(reason)
        .bind(now_ms)
        .bind(rows::bigint(endpoint_id, "endpoint_id")?)
        .execute(&self.write)
        .await?;
        if let Some(app) = app {
            self.subscriptions.apps.remove(&app);
        }
        Ok(())
    }

    async fn rotate_endpoint_secret(
        &self,
        app: AppId,
        endpoint_id: u64,
        secret: &str,
        previous_until_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Option<Endpoint>> {
        // MySQL assigns left to right, each seeing the ones before: the previous secret is
        // taken before the secret changes.
        let rotated = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = CASE WHEN ? > 0 THEN secret ELSE '' END, \
             previous_secret_until_ms = ?, secret = ?, updated_at_ms = ? WHERE app_id = ? AND endpoint_id = ?",
        )
        .bind(previous_until_ms)
        .bind(previous_until_ms)
        .bind(secret)
        .bind(now_ms)
        .bind(rows::bigint(app, "app_id")?)
        .bind(rows::bigint(endpoint_id, "endpoint_id")?)
        .execute(&self.write)
        .await?
        .rows_affected();
        if rotated == 0 {
            return Ok(None);
        }
        Ok(self.endpoint(endpoint_id).await?.filter(|found| found.app == app))
    }

    async fn forget_previous_secrets(&self, now_ms: i64) -> StoreResult<u64> {
        let forgotten = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = '', previous_secret_until_ms = 0 \
             WHERE previous_secret_until_ms > 0 AND previous_secret_until_ms <= ?",
        )
        .bind(now_ms)
        .execute(&self.write)
        .await?;
        Ok(forgotten.rows_affected())
    }

    async fn record_events(&self, app: AppId, events: &[OutboxEvent], now_ms: i64) -> StoreResult<()> {
        let app = rows::bigint(app, "app_id")?;
        // Most apps have no endpoints: know that without a write transaction (on SQLite
        // one would wait for the single writer).
        let subscribed = match self.fresh_subscriptions(app) {
            Some(found) => found,
            None => self.load_subscriptions(&self.read, app).await?,
        };
        if subscribed.endpoints.is_empty() {
            return Ok(());
        }
        in_tx!(self, |tx| self.write_events(tx, app, events, now_ms).await)
    }

    async fn due_partitions(&self, now_ms: i64, node: &str, limit: u32) -> StoreResult<Vec<(u64, u32)>> {
        // From the partitions (a few per endpoint), each asking its own index range
        // whether an event is due, rather than from all the waiting events.
        let found = sqlx::query(
            "SELECT p.endpoint_id, p.part FROM webhook_partitions p \
             JOIN webhook_endpoints e ON e.endpoint_id = p.endpoint_id AND e.enabled = 1 \
             WHERE (p.locked_until_ms < ? OR p.locked_by = ?) AND p.blocked_until_ms <= ? AND EXISTS (SELECT 1 FROM webhook_outbox o \
             WHERE o.endpoint_id = p.endpoint_id AND o.part = p.part AND o.state = 0 AND o.next_at_ms <= ?) \
             LIMIT ?",
        )
        .bind(now_ms)
        .bind(node)
        .bind(now_ms)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        found
            .iter()
            .map(|row| {
                let part: i64 = row.try_get("part")?;
                Ok((rows::get_u64(row, "endpoint_id")?, u32::try_from(part).unwrap_or(0)))
            })
            .collect()
    }

    async fn lease_partitions(
        &self,
        wanted: &[(u64, u32)],
        node: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<(u64, u32)>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        in_tx!(self, |tx| self.lease_in(tx, wanted, node, now_ms, until_ms).await)
    }

    async fn renew_lease(&self, partition: (u64, u32), node: &str, until_ms: i64) -> StoreResult<bool> {
        let renewed = sqlx::query(
            "UPDATE webhook_partitions SET locked_until_ms = ? WHERE endpoint_id = ? AND part = ? AND locked_by = ?",
        )
        .bind(until_ms)
        .bind(rows::bigint(partition.0, "endpoint_id")?)
        .bind(i64::from(partition.1))
        .bind(node)
        .execute(&self.write)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn release_lease(&self, partition: (u64, u32), node: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_partitions SET locked_by = '', locked_until_ms = 0 \
             WHERE endpoint_id = ? AND part = ? AND locked_by = ?",
        )
        .bind(rows::bigint(partition.0, "endpoint_id")?)
        .bind(i64::from(partition.1))
        .bind(node)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn waiting_deliveries(&self, partition: (u64, u32), after_id: u64, limit: u32) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE endpoint_id = ? AND part = ? AND state = 0 \
             AND id > ? ORDER BY id LIMIT ?"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(partition.0, "endpoint_id")?)
            .bind(i64::from(partition.1))
            .bind(rows::bigint(after_id, "after_id")?)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        found.iter().map(delivery).collect()
    }

    async fn finish_delivered(&self, delivered: &[(u64, u16)], now_ms: i64) -> StoreResult<()> {
        let mut by_status: std::collections::BTreeMap<u16, Vec<i64>> = std::collections::BTreeMap::new();
        for &(id, status) in delivered {
            by_status.entry(status).or_default().push(rows::bigint(id, "id")?);
        }
        for (status, ids) in by_status {
            for ids in ids.chunks(super::MAX_IN_LIST) {
                let sql = format!(
                    "UPDATE webhook_outbox SET state = 1, attempts = attempts + 1, next_at_ms = ?, last_at_ms = ?, \
                     last_status = ?, last_error = '' WHERE state = 0 AND id IN ({})",
                    in_list(ids.len())
                );
                let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(now_ms).bind(i64::from(status));
                super::bind_in(query, ids).execute(&self.write).await?;
            }
        }
        Ok(())
    }

    async fn finish_attempt(&self, id: u64, attempts: u32, outcome: &AttemptOutcome, now_ms: i64) -> StoreResult<()> {
        let (state, next_at_ms, status, error) = match outcome {
            AttemptOutcome::Delivered { status } => (DeliveryState::Delivered, now_ms, *status, ""),
            AttemptOutcome::Retry { next_at_ms, status, error } => {
                (DeliveryState::Waiting, *next_at_ms, *status, error.as_str())
            }
            AttemptOutcome::Dead { status, error } => (DeliveryState::Dead, now_ms, *status, error.as_str()),
        };
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "UPDATE webhook_outbox SET state = ?, attempts = ?, next_at_ms = ?, last_at_ms = ?, last_status = ?, \
             last_error = ? WHERE id = ? AND state = 0",
        )
        .bind(state as i64)
        .bind(i64::from(attempts))
        .bind(next_at_ms)
        .bind(now_ms)
        .bind(i64::from(status))
        .bind(error)
        .bind(rows::bigint(id, "id")?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn deliveries(&self, app: AppId, endpoint_id: u64, filter: DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let state = filter.state.map_or(String::new(), |state| format!(" AND state = {}", state as i64));
        let before = if filter.before_id > 0 { " AND id < ?" } else { "" };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE endpoint_id = ? AND app_id = ?{state}{before} \
             ORDER BY id DESC LIMIT ?"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows::bigint(endpoint_id, "endpoint_id")?)
            .bind(rows::bigint(app, "app_id")?);
        if filter.before_id > 0 {
            query = query.bind(rows::bigint(filter.before_id, "before_id")?);
        }
        let found = query.bind(i64::from(filter.limit)).fetch_all(&self.read).await?;
        found.iter().map(delivery).collect()
    }

    async fn partition_failures(&self, partition: (u64, u32)) -> StoreResult<u32> {
        let failures: Option<i64> =
            sqlx::query_scalar("SELECT failures FROM webhook_partitions WHERE endpoint_id = ? AND part = ?")
                .bind(rows::bigint(partition.0, "endpoint_id")?)
                .bind(i64::from(partition.1))
                .fetch_optional(&self.read)
                .await?;
        Ok(failures.map_or(0, |failures| u32::try_from(failures).unwrap_or(0)))
    }

    async fn rest_partition(
        &self,
        partition: (u64, u32),
        failures: u32,
        until_ms: i64,
        expired_before_ms: i64,
        error: &str,
    ) -> StoreResult<()> {
        let (endpoint_id, part) = (rows::bigint(partition.0, "endpoint_id")?, i64::from(partition.1));
        in_tx!(self, |tx| async {
            sqlx::query(
                "UPDATE webhook_partitions SET failures = ?, blocked_until_ms = ? WHERE endpoint_id = ? AND part = ?",
            )
            .bind(i64::from(failures))
            .bind(until_ms)
            .bind(endpoint_id)
            .bind(part)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE webhook_outbox SET state = 2, next_at_ms = ?, last_error = ? \
                 WHERE endpoint_id = ? AND part = ? AND state = 0 AND created_at_ms < ? AND retry_from_ms < ?",
            )
            .bind(crate::model::now_ms())
            .bind(error)
            .bind(endpoint_id)
            .bind(part)
            .bind(expired_before_ms)
            .bind(expired_before_ms)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
        .await)
    }

    async fn recover_partition(&self, partition: (u64, u32)) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_partitions SET failures = 0, blocked_until_ms = 0 WHERE endpoint_id = ? AND part = ?",
        )
        .bind(rows::bigint(partition.0, "endpoint_id")?)
        .bind(i64::from(partition.1))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn events_written(&self) {
        self.subscriptions.written.notified().await;
    }

    async fn defer_lane(&self, partition: (u64, u32), lane: &str, after_id: u64, until_ms: i64) -> StoreResult<()> {
        let sql = format!(
            "UPDATE webhook_outbox SET next_at_ms = {}(next_at_ms, ?) \
             WHERE endpoint_id = ? AND part = ? AND state = 0 AND id > ? AND lane = ?",
            self.dialect.greatest()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(until_ms)
            .bind(rows::bigint(partition.0, "endpoint_id")?)
            .bind(i64::from(partition.1))
            .bind(rows::bigint(after_id, "after_id")?)
            .bind(lane)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn prune_deliveries(&self, delivered_before_ms: i64, dead_before_ms: i64, limit: u32) -> StoreResult<u64> {
        // Partition by partition, oldest first along the partition's index (events finish
        // about in the order they were written; a finished event's next_at_ms is when it
        // finished), in pieces, so that no statement holds the table long.
        let partitions: Vec<(i64, i64)> =
            sqlx::query_as("SELECT endpoint_id, part FROM webhook_partitions").fetch_all(&self.read).await?;
        let limit = i64::from(limit.min(super::MAX_IN_LIST as u32));
        let mut deleted = 0;
        for (endpoint_id, part) in partitions {
            for (state, before) in
                [(DeliveryState::Delivered, delivered_before_ms), (DeliveryState::Dead, dead_before_ms)]
            {
                // The oldest few, kept if not old enough: a bounded read, whatever the backlog.
                let oldest: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT id, next_at_ms FROM webhook_outbox WHERE endpoint_id = ? AND part = ? AND state = ? \
                     ORDER BY id LIMIT ?",
                )
                .bind(endpoint_id)
                .bind(part)
                .bind(state as i64)
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
                let ids: Vec<i64> = oldest.into_iter().filter(|(_, at)| *at < before).map(|(id, _)| id).collect();
                if ids.is_empty() {
                    continue;
                }
                let sql = format!("DELETE FROM webhook_outbox WHERE id IN ({})", in_list(ids.len()));
                let query = super::bind_in(sqlx::query(sqlx::AssertSqlSafe(sql)), &ids);
                deleted += query.execute(&self.write).await?.rows_affected();
            }
        }
        Ok(deleted)
    }

    async fn replay_dead(&self, app: AppId, endpoint_id: u64, ids: &[u64], now_ms: i64) -> StoreResult<u64> {
        let only = if ids.is_empty() { String::new() } else { format!(" AND id IN ({})", in_list(ids.len())) };
        let sql = format!(
            "UPDATE webhook_outbox SET state = 0, attempts = 0, next_at_ms = ?, retry_from_ms = ? \
             WHERE endpoint_id = ? AND app_id = ? AND state = 2{only}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms)
            .bind(now_ms)
            .bind(rows::bigint(endpoint_id, "endpoint_id")?)
            .bind(rows::bigint(app, "app_id")?);
        let ids: Vec<i64> = ids.iter().map(|&id| rows::bigint(id, "id")).collect::<StoreResult<_>>()?;
        query = super::bind_in(query, &ids);
        let replayed = query.execute(&self.write).await?.rows_affected();
        // A replay follows a fix on the receiver's side: try it at once.
        self.end_rests(endpoint_id).await?;
        if replayed > 0 {
            self.subscriptions.written.notify_one();
        }
        Ok(replayed)
    }
}
