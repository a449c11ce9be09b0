use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Registration, Route, RouteError, RouteRegistry, decode, encode,
    rooms::{
        Numbering, Published, REPEAT_WINDOW_MS, RoomCount, RoomRegistry, RoomState, decode_count, encode_count,
        once_key,
    },
};
use crate::model::{AppId, now_ms};

type UserKey = (AppId, String);
type RoomKey = (AppId, String);

/// A room as the Redis registry keeps it.
#[derive(Debug, Default)]
struct Room {
    seq: u64,
    /// The second of the rate window, and the messages counted in it.
    window: (i64, u32),
    /// Each node's `members|expires at`.
    nodes: HashMap<String, String>,
    kept: VecDeque<(u64, Bytes)>,
    touched_ms: i64,
    /// Messages numbered within the repeat window: `{sender} {client_msg_id}` to seq
    /// and time sent, and the same keys oldest first.
    numbered: HashMap<String, (u64, i64)>,
    numbered_order: VecDeque<(i64, String)>,
}

impl Room {
    /// The message numbered before under this key, if within the window.
    fn numbered_before(&mut self, key: &str, now: i64) -> Option<Published> {
        while self.numbered_order.front().is_some_and(|(at, _)| *at <= now - REPEAT_WINDOW_MS) {
            if let Some((_, old)) = self.numbered_order.pop_front() {
                self.numbered.remove(&old);
            }
        }
        self.numbered.get(key).map(|&(seq, sent_at_ms)| Published::Repeat { seq, sent_at_ms })
    }

    fn live_nodes(&mut self, now: i64) -> Vec<String> {
        self.nodes.retain(|_, value| decode_count(value, now).is_some());
        self.nodes.keys().cloned().collect()
    }
}

/// Routes in this process's memory: for `gim serve`, where connect and logic share a
/// process. Behaves like the Redis registry, expiry included.
#[derive(Debug)]
pub struct MemoryRegistry {
    routes: Mutex<HashMap<UserKey, HashMap<String, String>>>,
    /// Live nodes and when their announcement expires.
    nodes: Mutex<HashMap<String, i64>>,
    /// Dead nodes being forgotten, and when their claim runs out.
    claimed: Mutex<HashMap<String, i64>>,
    /// Presence last announced, for users who are online.
    presence: Mutex<HashMap<UserKey, String>>,
    rooms: Mutex<HashMap<RoomKey, Room>>,
    rooms_swept_ms: Mutex<i64>,
    ttl: Duration,
    room_idle: Duration,
}

impl MemoryRegistry {
    pub fn new(ttl: Duration) -> Self {
        Self {
            routes: Mutex::new(HashMap::new()),
            nodes: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashMap::new()),
            presence: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            rooms_swept_ms: Mutex::new(0),
            ttl,
            room_idle: Duration::from_secs(3600),
        }
    }

    /// How long a room nobody is in or sends to is remembered (`rooms.idle_secs`).
    pub fn with_room_idle(mut self, idle: Duration) -> Self {
        self.room_idle = idle;
        self
    }

    /// Forgets the rooms with no live node that nobody sent to for their idle time (or
    /// ever), as Redis expires them; at most once a second, so that it costs nothing per
    /// message.
    fn forget_idle_rooms(&self, rooms: &mut HashMap<RoomKey, Room>, now: i64) {
        let mut swept = self.rooms_swept_ms.lock().expect("sweep lock");
        if now - *swept < 1000 {
            return;
        }
        *swept = now;
        let idle_ms = i64::try_from(self.room_idle.as_millis()).unwrap_or(i64::MAX / 2);
        // A room that only ever had sessions goes with its last node, as in Redis.
        rooms.retain(|_, room| !room.live_nodes(now).is_empty() || (room.seq > 0 && room.touched_ms + idle_ms > now));
    }

    fn expires_at(&self) -> i64 {
        now_ms() + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

fn node_of(value: &str) -> &str {
    value.split('|').next().unwrap_or_default()
}

#[async_trait]
impl RouteRegistry for MemoryRegistry {
    async fn register(&self, route: &Registration, node: &str) -> Result<Option<String>, RouteError> {
        let value = encode(node, route.device_type, self.expires_at());
        let mut routes = self.routes.lock().expect("route lock");
        let devices = routes.entry((route.app, route.user_id.clone())).or_default();
        let now = now_ms();
        devices.retain(|device, value| decode(device, value, now).is_some());
        let previous = devices.insert(route.device_id.clone(), value);
        Ok(previous.map(|v| node_of(&v).to_owned()).filter(|previous| previous != node))
    }

    async fn renew(&self, routes: &[Registration], node: &str) -> Result<Vec<(AppId, String)>, RouteError> {
        let now = now_ms();
        let expires_at = self.expires_at();
        let mut stored = self.routes.lock().expect("route lock");
        let mut back = Vec::new();
        for route in routes {
            let devices = stored.entry((route.app, route.user_id.clone())).or_default();
            let current = devices.get(&route.device_id);
            if current.is_some_and(|value| node_of(value) != node) {
                continue;
            }
            if current.is_none_or(|value| decode(&route.device_id, value, now).is_none()) {
                back.push((route.app, route.user_id.clone()));
            }
            devices.insert(route.device_id.clone(), encode(node, route.device_type, expires_at));
        }
        Ok(back)
    }

    async fn unregister(&self, route: &Registration, node: &str) -> Result<bool, RouteError> {
        let mut routes = self.routes.lock().expect("route lock");
        let key = (route.app, route.user_id.clone());
        let Some(devices) = routes.get_mut(&key) else { return Ok(false) };
        let ours = devices.get(&route.device_id).is_some_and(|value| node_of(value) == node);
        if ours {
            devices.remove(&route.device_id);
            if devices.is_empty() {
                routes.remove(&key);
            }
        }
        Ok(ours)
    }

    async fn lookup(&self, app: AppId, users: &[String]) -> Result<HashMap<String, Vec<Route>>, RouteError> {
        let routes = self.routes.lock().expect("route lock");
        let now = now_ms();
        let mut found = HashMap::new();
        for user in users {
            let Some(devices) = routes.get(&(app, user.clone())) else { continue };
            let live: Vec<Route> = devices.iter().filter_map(|(device, value)| decode(device, value, now)).collect();
            if !live.is_empty() {
                found.insert(user.clone(), live);
            }
        }
        Ok(found)
    }

    async fn announce_node(&self, node: &str) -> Result<(), RouteError> {
        self.nodes.lock().expect("node lock").insert(node.to_owned(), self.expires_at());
        Ok(())
    }

    async fn retire_node(&self, node: &str) -> Result<(), RouteError> {
        self.nodes.lock().expect("node lock").remove(node);
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<String>, RouteError> {
        let now = now_ms();
        let nodes = self.nodes.lock().expect("node lock");
        Ok(nodes.iter().filter(|(_, expires)| **expires > now).map(|(node, _)| node.clone()).collect())
    }

    async fn claim_dead_nodes(&self) -> Result<Vec<String>, RouteError> {
        let now = now_ms();
        let mut nodes = self.nodes.lock().expect("node lock");
        let mut dead: Vec<String> =
            nodes.iter().filter(|(_, expires)| **expires <= now).map(|(node, _)| node.clone()).collect();
        for node in &dead {
            nodes.remove(node);
        }
        let mut claimed = self.claimed.lock().expect("claim lock");
        dead.extend(claimed.iter().filter(|(_, until)| **until <= now).map(|(node, _)| node.clone()));
        for node in &dead {
            claimed.insert(node.clone(), self.expires_at());
        }
        Ok(dead)
    }

    async fn forget_node(&self, node: &str) -> Result<Vec<(AppId, String)>, RouteError> {
        // Routes written from now on (the node is back) are still live then: they stay.
        let cutoff = self.expires_at();
        let mut routes = self.routes.lock().expect("route lock");
        let mut users = Vec::new();
        routes.retain(|user, devices| {
            let before = devices.len();
            devices.retain(|device, value| node_of(value) != node || decode(device, value, cutoff).is_some());
            if devices.len() < before {
                users.push(user.clone());
            }
            !devices.is_empty()
        });
        self.claimed.lock().expect("claim lock").remove(node);
        Ok(users)
    }

    async fn swap_presence(&self, app: AppId, user: &str, state: Option<&str>) -> Result<Option<String>, RouteError> {
        let mut presence = self.presence.lock().expect("presence lock");
        let key = (app, user.to_owned());
        Ok(match state {
            Some(state) => presence.insert(key, state.to_owned()),
            None => presence.remove(&key),
        })
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[async_trait]
impl RoomRegistry for MemoryRegistry {
    async fn report_rooms(&self, node: &str, counts: &[RoomCount]) -> Result<(), RouteError> {
        let (now, expires_at) = (now_ms(), self.expires_at());
        let mut rooms = self.rooms.lock().expect("room lock");
        for count in counts {
            let room = rooms.entry((count.app, count.room.clone())).or_default();
            room.nodes.insert(node.to_owned(), encode_count(count.members, expires_at));
            room.touched_ms = now;
        }
        self.forget_idle_rooms(&mut rooms, now);
        Ok(())
    }

    async fn publish(&self, app: AppId, room: &str, message: Numbering<'_>) -> Result<Option<Published>, RouteError> {
        let now = now_ms();
        let mut rooms = self.rooms.lock().expect("room lock");
        self.forget_idle_rooms(&mut rooms, now);
        let room = rooms.entry((app, room.to_owned())).or_default();
        let once = message.once.map(once_key);
        if let Some(key) = &once
            && let Some(repeat) = room.numbered_before(key, now)
        {
            return Ok(Some(repeat));
        }
        let per_second = message.per_second;
        if per_second > 0 {
            let second = now / 1000;
            if room.window.0 != second {
                room.window = (second, 0);
            }
            if room.window.1 >= per_second {
                return Ok(None);
            }
            room.window.1 += 1;
        }
        room.seq += 1;
        room.touched_ms = now;
        if let Some(key) = once {
            room.numbered.insert(key.clone(), (room.seq, message.sent_at_ms));
            room.numbered_order.push_back((message.sent_at_ms, key));
        }
        Ok(Some(Published::New { seq: room.seq, nodes: room.live_nodes(now) }))
    }

    async fn remember(&self, app: AppId, room: &str, seq: u64, frame: &Bytes, keep: usize) -> Result<(), RouteError> {
        let mut rooms = self.rooms.lock().expect("room lock");
        let room = rooms.entry((app, room.to_owned())).or_default();
        room.kept.push_back((seq, frame.clone()));
        while room.kept.len() > keep {
            room.kept.pop_front();
        }
        Ok(())
    }

    async fn replay(&self, app: AppId, room: &str) -> Result<Vec<(u64, Bytes)>, RouteError> {
        let rooms = self.rooms.lock().expect("room lock");
        Ok(rooms.get(&(app, room.to_owned())).map(|room| room.kept.iter().cloned().collect()).unwrap_or_default())
    }

    async fn room(&self, app: AppId, room: &str) -> Result<RoomState, RouteError> {
        let now = now_ms();
        let mut rooms = self.rooms.lock().expect("room lock");
        let Some(room) = rooms.get_mut(&(app, room.to_owned())) else { return Ok(RoomState::default()) };
        let nodes = room.live_nodes(now);
        let members = room.nodes.values().filter_map(|value| decode_count(value, now)).sum();
        Ok(RoomState { members, last_seq: room.seq, nodes })
    }

    async fn close_room(&self, app: AppId, room: &str) -> Result<Vec<String>, RouteError> {
        let removed = self.rooms.lock().expect("room lock").remove(&(app, room.to_owned()));
        Ok(removed.map(|mut room| room.live_nodes(now_ms())).unwrap_or_default())
    }
}
