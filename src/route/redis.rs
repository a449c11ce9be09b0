//! Routes in Redis: one hash per user (`{prefix}:{app}:route:{user}`), a field per device
//! holding `node|device type|expires at`. Fields expire by that timestamp (readers skip
//! stale ones, writers delete them); the whole hash expires with its last route. Each
//! node also has the users it holds routes of (`{prefix}:nodeusers:{node}`, a sorted set
//! of `app|user` scored by expiry), so that a node that dies unseen can be forgotten; the
//! set outlives its last write by 4 ttls, long enough for a claim that ran out to be
//! taken over.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use redis::{IntoConnectionInfo, Script, aio::ConnectionManager, io::tcp::TcpSettings};

use super::{
    Registration, Route, RouteError, RouteRegistry, decode, encode,
    rooms::{
        Numbering, Published, REPEAT_WINDOW_MS, RoomCount, RoomRegistry, RoomState, decode_count, decode_kept,
        decode_numbered, encode_count, encode_kept, once_key,
    },
};
use crate::model::{AppId, now_ms};

/// Sets a device's route, drops the user's expired routes, returns the previous value;
/// lists the user (ARGV[5]) among the node's (KEYS[2]) until the route expires (ARGV[6]).
const REGISTER: &str = r#"
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local expires = tonumber(string.match(all[i + 1], '|(%d+)$'))
  if expires == nil or expires <= tonumber(ARGV[4]) then redis.call('HDEL', KEYS[1], all[i]) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
redis.call('PEXPIRE', KEYS[2], 4 * tonumber(ARGV[3]))
return previous
"#;

/// Extends a route if it is missing or still points at the node (ARGV[2]), and the
/// user's (ARGV[6]) place among the node's (KEYS[2]) with it (until ARGV[5]). Returns 2
/// when the route was missing or expired at ARGV[7], 1 when it was live, 0 when it
/// points elsewhere.
const RENEW: &str = r#"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and string.sub(current, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then return 0 end
local back = 1
if not current or tonumber(string.match(current, '|(%d+)$') or '0') <= tonumber(ARGV[7]) then back = 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
return back
"#;

/// Takes the nodes whose announcement expired by ARGV[1] off the live list (KEYS[1]) and
/// claims them until ARGV[2] (KEYS[2]); a claim that ran out (its logic node died before
/// forgetting the node) is taken over.
const CLAIM_DEAD_NODES: &str = r#"
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #dead > 0 then redis.call('ZREM', KEYS[1], unpack(dead)) end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])) do table.insert(dead, node) end
for _, node in ipairs(dead) do redis.call('ZADD', KEYS[2], ARGV[2], node) end
return dead
"#;

/// Deletes the user's routes that point at the node (ARGV[1]) and expire by ARGV[2]: a
/// route written since (the node is back) expires later and stays.
const DROP_NODE_ROUTES: &str = r#"
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
    local expires = tonumber(string.match(all[i + 1], '|(%d+)$'))
    if expires == nil or expires <= tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], all[i]) end
  end
end
return 1
"#;

/// Deletes a route only if it points at the node (ARGV[2]).
const UNREGISTER: &str = r#"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and string.sub(current, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"#;

/// Takes a room's next seq within its rate (ARGV[2] per second, 0: no limit), drops the
/// expired node entries and returns the seq and the live nodes (`{0}` over the rate).
/// Fields of the room's hash: `seq`, `w` (`second|count`), `n:{node}` (`members|expires`).
/// With a repeat key (ARGV[4]), the room's numbered messages (KEYS[2], a hash of
/// `seq|sent at`, and KEYS[3], their keys oldest first) are read first: one numbered
/// within ARGV[6] ms is answered `{'r', 'seq|sent at'}`; a new one is added, at ARGV[5].
const PUBLISH: &str = r#"
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if #KEYS > 1 then
  for _ = 1, 100 do
    local oldest = redis.call('LINDEX', KEYS[3], 0)
    if not oldest then break end
    local value = redis.call('HGET', KEYS[2], oldest)
    local at = value and tonumber(string.match(value, '|(%-?%d+)$'))
    if at and at > now - tonumber(ARGV[6]) then break end
    redis.call('LPOP', KEYS[3])
    redis.call('HDEL', KEYS[2], oldest)
  end
  local seen = redis.call('HGET', KEYS[2], ARGV[4])
  if seen then return {'r', seen} end
end
if limit > 0 then
  local second = math.floor(now / 1000)
  local at, count = 0, 0
  local window = redis.call('HGET', KEYS[1], 'w')
  if window then
    local a, c = string.match(window, '^(%d+)|(%d+)$')
    at, count = tonumber(a), tonumber(c)
  end
  if at ~= second then count = 0 end
  if count >= limit then return {'0'} end
  redis.call('HSET', KEYS[1], 'w', second .. '|' .. (count + 1))
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local result = {tostring(seq)}
if #KEYS > 1 then
  redis.call('HSET', KEYS[2], ARGV[4], seq .. '|' .. ARGV[5])
  redis.call('RPUSH', KEYS[3], ARGV[4])
  local keep = math.max(tonumber(ARGV[3]), tonumber(ARGV[6]))
  redis.call('PEXPIRE', KEYS[2], keep)
  redis.call('PEXPIRE', KEYS[3], keep)
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'n:' then
    local expires = tonumber(string.match(all[i + 1], '|(%d+)$'))
    if expires == nil or expires <= now then
      redis.call('HDEL', KEYS[1], all[i])
    else
      table.insert(result, string.sub(all[i], 3))
    end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return result
"#;

/// Sets a node's entry in a room (ARGV[1] = ARGV[2]). A room that has had messages lives
/// its idle time (ARGV[4] ms); one that has only had sessions, the entries' time to live
/// (ARGV[3] ms), so that joining rooms no one writes to leaves nothing behind for long.
const REPORT_ROOM: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[1], 'seq') == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"#;

/// A user as a node's set holds it: `app|user` (app ids have no `|`).
fn node_user(app: AppId, user: &str) -> String {
    format!("{app}|{user}")
}

fn parse_node_user(member: &str) -> Option<(AppId, String)> {
    let (app, user) = member.split_once('|')?;
    Some((app.parse().ok()?, user.to_owned()))
}

/// How long an announced presence is remembered.
const PRESENCE_TTL_SECS: u64 = 24 * 3600;

/// Routes looked up or renewed per Redis round trip.
const PIPELINE: usize = 500;

pub struct RedisRegistry {
    redis: ConnectionManager,
    prefix: String,
    ttl: Duration,
    register: Script,
    renew: Script,
    unregister: Script,
    claim_dead_nodes: Script,
    drop_node_routes: Script,
    publish: Script,
    report_room: Script,
    room_idle: Duration,
}

impl std::fmt::Debug for RedisRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRegistry").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn error(err: redis::RedisError) -> RouteError {
    RouteError(err.to_string())
}

impl RedisRegistry {
    /// Connects to `url` (`redis://host:port`); reconnects by itself when the link drops.
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, RouteError> {
        // Without TCP_NODELAY a pipelined request can wait for a delayed ACK (40 ms).
        let info = url.into_connection_info().map_err(error)?;
        let info = info.set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(error)?;
        let redis = ConnectionManager::new(client).await.map_err(error)?;
        Ok(Self {
            redis,
            prefix: prefix.to_owned(),
            ttl,
            register: Script::new(REGISTER),
            renew: Script::new(RENEW),
            unregister: Script::new(UNREGISTER),
            claim_dead_nodes: Script::new(CLAIM_DEAD_NODES),
            drop_node_routes: Script::new(DROP_NODE_ROUTES),
            publish: Script::new(PUBLISH),
            report_room: Script::new(REPORT_ROOM),
            room_idle: Duration::from_secs(3600),
        })
    }

    /// How long a room nobody is in or sends to is remembered (`rooms.idle_secs`).
    pub fn with_room_idle(mut self, idle: Duration) -> Self {
        self.room_idle = idle;
        self
    }

    /// A room's hash: its seq, rate window and nodes.
    fn room_key(&self, app: AppId, room: &str) -> String {
        format!("{}:{app}:room:{room}", self.prefix)
    }

    /// A room's kept messages (a list). Not `room:{room}:...`: room ids may hold `:`.
    fn kept_key(&self, app: AppId, room: &str) -> String {
        format!("{}:{app}:roomkept:{room}", self.prefix)
    }

    /// A room's numbered messages, for repeats: `{sender} {client_msg_id}` to
    /// `seq|sent at` (a hash), and the same keys oldest first (a list).
    fn numbered_keys(&self, app: AppId, room: &str) -> (String, String) {
        (format!("{}:{app}:roomsent:{room}", self.prefix), format!("{}:{app}:roomsentorder:{room}", self.prefix))
    }

    /// A room lives its idle time, and at least as long as the node entries in it.
    fn room_idle_ms(&self) -> i64 {
        i64::try_from(self.room_idle.max(self.ttl).as_millis()).unwrap_or(i64::MAX / 2)
    }

    fn key(&self, app: AppId, user: &str) -> String {
        format!("{}:{app}:route:{user}", self.prefix)
    }

    fn presence_key(&self, app: AppId, user: &str) -> String {
        format!("{}:{app}:presence:{user}", self.prefix)
    }

    /// The live connect nodes, scored by when their announcement expires.
    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Dead nodes being forgotten, scored by when their claim runs out.
    fn claimed_key(&self) -> String {
        format!("{}:claimednodes", self.prefix)
    }

    /// The users a node holds routes of, scored by when their routes expire.
    fn node_users_key(&self, node: &str) -> String {
        format!("{}:nodeusers:{node}", self.prefix)
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

#[async_trait]
impl RouteRegistry for RedisRegistry {
    async fn register(&self, route: &Registration, node: &str) -> Result<Option<String>, RouteError> {
        let now = now_ms();
        let value = encode(node, route.device_type, now + self.ttl_ms());
        let previous: Option<String> = self
            .register
            .key(self.key(route.app, &route.user_id))
            .key(self.node_users_key(node))
            .arg(&route.device_id)
            .arg(value)
            .arg(self.ttl_ms())
            .arg(now)
            .arg(node_user(route.app, &route.user_id))
            .arg(now + self.ttl_ms())
            .invoke_async(&mut self.redis.clone())
            .await
            .map_err(error)?;
        Ok(previous
            .and_then(|previous| decode(&route.device_id, &previous, now))
            .map(|previous| previous.node)
            .filter(|previous| previous != node))
    }

    async fn renew(&self, routes: &[Registration], node: &str) -> Result<Vec<(AppId, String)>, RouteError> {
        let now = now_ms();
        let expires_at = now + self.ttl_ms();
        let node_users = self.node_users_key(node);
        let mut back = Vec::new();
        let mut failure = None;
        let mut renewed_any = routes.is_empty();
        for chunk in routes.chunks(PIPELINE) {
            // EVALSHA needs the script loaded on this server (it may have restarted).
            let mut pipe = redis::pipe();
            pipe.load_script(&self.renew).ignore();
            for route in chunk {
                let mut invocation = self.renew.key(self.key(route.app, &route.user_id));
                invocation
                    .key(&node_users)
                    .arg(&route.device_id)
                    .arg(node)
                    .arg(encode(node, route.device_type, expires_at))
                    .arg(self.ttl_ms())
                    .arg(expires_at)
                    .arg(node_user(route.app, &route.user_id))
                    .arg(now);
                pipe.invoke_script(&invocation);
            }
            // A chunk that fails waits for the next renewal; the others still count.
            match pipe.query_async::<Vec<i64>>(&mut self.redis.clone()).await {
                Ok(renewed) => {
                    renewed_any = true;
                    let put_back = chunk.iter().zip(renewed).filter(|(_, result)| *result == 2);
                    back.extend(put_back.map(|(r, _)| (r.app, r.user_id.clone())));
                }
                Err(err) => failure = Some(err),
            }
        }
        match failure {
            Some(err) if !renewed_any => return Err(error(err)),
            Some(err) => tracing::warn!(error = %err, "renewing some routes failed; the next renewal retries them"),
            None => {}
        }
        // Users whose routes here all ended (closed, or moved to another node) leave the set.
        let trimmed = redis::pipe()
            .zrembyscore(&node_users, "-inf", now)
            .ignore()
            .pexpire(&node_users, 4 * self.ttl_ms())
            .ignore()
            .query_async::<()>(&mut self.redis.clone())
            .await;
        if let Err(err) = trimmed {
            tracing::warn!(error = %err, "trimming a node's users failed; the next renewal does it");
        }
        Ok(back)
    }

    async fn unregister(&self, route: &Registration, node: &str) -> Result<bool, RouteError> {
        let removed: i64 = self
            .unregister
            .key(self.key(route.app, &route.user_id))
            .arg(&route.device_id)
            .arg(node)
            .invoke_async(&mut self.redis.clone())
            .await
            .map_err(error)?;
        Ok(removed == 1)
    }

    async fn lookup(&self, app: AppId, users: &[String]) -> Result<HashMap<String, Vec<Route>>, RouteError> {
        let now = now_ms();
        let mut found = HashMap::new();
        for chunk in users.chunks(PIPELINE) {
            let mut pipe = redis::pipe();
            for user in chunk {
                pipe.hgetall(self.key(app, user));
            }
            let hashes: Vec<HashMap<String, String>> =
                pipe.query_async(&mut self.redis.clone()).await.map_err(error)?;
            for (user, devices) in chunk.iter().zip(hashes) {
                let live: Vec<Route> =
                    devices.iter().filter_map(|(device, value)| decode(device, value, now)).collect();
                if !live.is_empty() {
                    found.insert(user.clone(), live);
                }
            }
        }
        Ok(found)
    }

    async fn announce_node(&self, node: &str) -> Result<(), RouteError> {
        // Dead entries stay until a logic node claims them (claim_dead_nodes).
        redis::cmd("ZADD")
            .arg(self.nodes_key())
            .arg(now_ms() + self.ttl_ms())
            .arg(node)
            .query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(error)
    }

    async fn retire_node(&self, node: &str) -> Result<(), RouteError> {
        redis::cmd("ZREM")
            .arg(self.nodes_key())
            .arg(node)
            .query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(error)
    }

    async fn nodes(&self) -> Result<Vec<String>, RouteError> {
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.nodes_key())
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut self.redis.clone())
            .await
            .map_err(error)
    }

    async fn claim_dead_nodes(&self) -> Result<Vec<String>, RouteError> {
        let now = now_ms();
        self.claim_dead_nodes
            .key(self.nodes_key())
            .key(self.claimed_key())
            .arg(now)
            .arg(now + self.ttl_ms())
            .invoke_async(&mut self.redis.clone())
            .await
            .map_err(error)
    }

    async fn forget_node(&self, node: &str) -> Result<Vec<(AppId, String)>, RouteError> {
        let cutoff = now_ms() + self.ttl_ms();
        let key = self.node_users_key(node);
        let members: Vec<String> =
            redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query_async(&mut self.redis.clone()).await.map_err(error)?;
        let mut users = Vec::with_capacity(members.len());
        // Members leave the set only once their routes are dropped, and the claim ends
        // only once all are: on a failure it runs out and a later sweep takes it up.
        for chunk in members.chunks(PIPELINE) {
            let mut pipe = redis::pipe();
            pipe.load_script(&self.drop_node_routes).ignore();
            let chunk_users: Vec<(AppId, String)> = chunk.iter().filter_map(|m| parse_node_user(m)).collect();
            for (app, user) in &chunk_users {
                pipe.invoke_script(self.drop_node_routes.key(self.key(*app, user)).arg(node).arg(cutoff)).ignore();
            }
            pipe.zrem(&key, chunk).ignore();
            pipe.query_async::<()>(&mut self.redis.clone()).await.map_err(error)?;
            users.extend(chunk_users);
        }
        redis::cmd("ZREM")
            .arg(self.claimed_key())
            .arg(node)
            .query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(error)?;
        Ok(users)
    }

    async fn swap_presence(&self, app: AppId, user: &str, state: Option<&str>) -> Result<Option<String>, RouteError> {
        let key = self.presence_key(app, user);
        let command = match state {
            // Kept a day at most: a backstop should a node's death go unclaimed.
            Some(state) => redis::cmd("SET").arg(key).arg(state).arg("GET").arg("EX").arg(PRESENCE_TTL_SECS).clone(),
            None => redis::cmd("GETDEL").arg(key).clone(),
        };
        command.query_async(&mut self.redis.clone()).await.map_err(error)
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[async_trait]
impl RoomRegistry for RedisRegistry {
    async fn report_rooms(&self, node: &str, rooms: &[RoomCount]) -> Result<(), RouteError> {
        let expires_at = now_ms() + self.ttl_ms();
        let field = format!("n:{node}");
        for chunk in rooms.chunks(PIPELINE) {
            // EVALSHA needs the script loaded on this server (it may have restarted).
            let mut pipe = redis::pipe();
            pipe.load_script(&self.report_room).ignore();
            for room in chunk {
                let mut invocation = self.report_room.key(self.room_key(room.app, &room.room));
                invocation
                    .arg(&field)
                    .arg(encode_count(room.members, expires_at))
                    .arg(self.ttl_ms())
                    .arg(self.room_idle_ms());
                pipe.invoke_script(&invocation).ignore();
            }
            pipe.query_async::<()>(&mut self.redis.clone()).await.map_err(error)?;
        }
        Ok(())
    }

    async fn publish(&self, app: AppId, room: &str, message: Numbering<'_>) -> Result<Option<Published>, RouteError> {
        let mut invocation = self.publish.key(self.room_key(app, room));
        invocation.arg(now_ms()).arg(message.per_second).arg(self.room_idle_ms());
        if let Some(once) = message.once {
            let (numbered, order) = self.numbered_keys(app, room);
            invocation.key(numbered).key(order).arg(once_key(once)).arg(message.sent_at_ms).arg(REPEAT_WINDOW_MS);
        }
        let reply: Vec<String> = invocation.invoke_async(&mut self.redis.clone()).await.map_err(error)?;
        let mut reply = reply.into_iter();
        let first = reply.next().ok_or_else(|| RouteError("the room script answered nothing".into()))?;
        if first == "r" {
            let repeat = reply.next().as_deref().and_then(decode_numbered);
            return repeat.map(Some).ok_or_else(|| RouteError("the room script answered a bad repeat".into()));
        }
        let seq: u64 = first.parse().map_err(|_| RouteError("the room script answered no seq".into()))?;
        Ok((seq > 0).then(|| Published::New { seq, nodes: reply.collect() }))
    }

    async fn remember(&self, app: AppId, room: &str, seq: u64, frame: &Bytes, keep: usize) -> Result<(), RouteError> {
        let key = self.kept_key(app, room);
        redis::pipe()
            .rpush(&key, encode_kept(seq, frame))
            .ignore()
            .ltrim(&key, -(keep as isize), -1)
            .ignore()
            .pexpire(&key, self.room_idle_ms())
            .ignore()
            .query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(error)
    }

    async fn replay(&self, app: AppId, room: &str) -> Result<Vec<(u64, Bytes)>, RouteError> {
        let kept: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.kept_key(app, room))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis.clone())
            .await
            .map_err(error)?;
        Ok(kept.iter().filter_map(|kept| decode_kept(kept)).collect())
    }

    async fn room(&self, app: AppId, room: &str) -> Result<RoomState, RouteError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.room_key(app, room))
            .query_async(&mut self.redis.clone())
            .await
            .map_err(error)?;
        Ok(room_state(&fields, now_ms()))
    }

    async fn close_room(&self, app: AppId, room: &str) -> Result<Vec<String>, RouteError> {
        let key = self.room_key(app, room);
        let (numbered, order) = self.numbered_keys(app, room);
        let (fields,): (HashMap<String, String>,) = redis::pipe()
            .atomic()
            .hgetall(&key)
            .del(&key)
            .ignore()
            .del(self.kept_key(app, room))
            .ignore()
            .del(&[numbered, order])
            .ignore()
            .query_async(&mut self.redis.clone())
            .await
            .map_err(error)?;
        Ok(room_state(&fields, now_ms()).nodes)
    }
}

/// A room's hash as the room it describes.
fn room_state(fields: &HashMap<String, String>, now: i64) -> RoomState {
    let mut state = RoomState::default();
    for (field, value) in fields {
        if field == "seq" {
            state.last_seq = value.parse().unwrap_or_default();
        } else if let Some(node) = field.strip_prefix("n:")
            && let Some(members) = decode_count(value, now)
        {
            state.members += members;
            state.nodes.push(node.to_owned());
        }
    }
    state
}
