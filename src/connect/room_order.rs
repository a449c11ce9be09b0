//! Room pushes put back in seq order on this node. A room's messages get their seqs in
//! the registry but reach connect nodes through whichever logic node took them, so two
//! messages sent a moment apart may arrive in either order. A push that comes before
//! one it follows waits, at most `WAIT`, for the missing one; then it goes anyway (the
//! missing push was lost, or comes late and goes when it comes). Nothing is dropped.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::Bytes;

use super::fanout::TopicKey;
use crate::delivery::DeviceRef;

/// The longest an early push waits for the ones before it.
pub const WAIT: Duration = Duration::from_millis(200);

/// A room push, as the fan-out takes it.
#[derive(Debug, Clone)]
pub struct Ready {
    pub seq: u64,
    pub frame: Bytes,
    pub skip: Option<DeviceRef>,
}

#[derive(Debug)]
struct Room {
    /// The seq that goes next.
    next: u64,
    /// Pushes that came before `next`, with when they came.
    early: BTreeMap<u64, (Ready, Instant)>,
}

impl Room {
    /// Takes the pushes that may go now, in order.
    fn release(&mut self, now: Instant, out: &mut Vec<Ready>) {
        loop {
            match self.early.first_key_value() {
                Some((seq, _)) if *seq <= self.next => {}
                Some((_, (_, came))) if now.duration_since(*came) >= WAIT => {}
                _ => return,
            }
            let (seq, (ready, _)) = self.early.pop_first().expect("checked above");
            self.next = self.next.max(seq + 1);
            out.push(ready);
        }
    }
}

/// Every room's order on this node.
#[derive(Debug, Default)]
pub struct RoomOrder {
    rooms: Mutex<HashMap<TopicKey, Room>>,
}

impl RoomOrder {
    /// A push arrived: returns what may go now, in order (possibly nothing yet).
    pub fn arrived(&self, key: TopicKey, push: Ready) -> Vec<Ready> {
        let now = Instant::now();
        let mut rooms = self.rooms.lock().expect("room order lock");
        let room = rooms.entry(key).or_insert_with(|| Room { next: push.seq, early: BTreeMap::new() });
        let mut out = Vec::new();
        if push.seq < room.next {
            // Late (its wait is over, or the room started over): it goes at once.
            out.push(push);
            return out;
        }
        room.early.insert(push.seq, (push, now));
        room.release(now, &mut out);
        out
    }

    /// The pushes that have waited long enough, by room.
    pub fn overdue(&self) -> Vec<(TopicKey, Vec<Ready>)> {
        let now = Instant::now();
        let mut rooms = self.rooms.lock().expect("room order lock");
        let mut due = Vec::new();
        for (key, room) in rooms.iter_mut().filter(|(_, room)| !room.early.is_empty()) {
            let mut out = Vec::new();
            room.release(now, &mut out);
            if !out.is_empty() {
                due.push((key.clone(), out));
            }
        }
        due
    }

    /// Forgets a room (closed, or no session here is in it any more).
    pub fn forget(&self, key: &TopicKey) -> Vec<Ready> {
        let removed = self.rooms.lock().expect("room order lock").remove(key);
        removed.map(|room| room.early.into_values().map(|(ready, _)| ready).collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::fanout::Topic;

    fn push(seq: u64) -> Ready {
        Ready { seq, frame: Bytes::new(), skip: None }
    }

    fn seqs(ready: &[Ready]) -> Vec<u64> {
        ready.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn an_early_push_waits_for_the_one_before_it() {
        let order = RoomOrder::default();
        let key = (1, Topic::Room("r".into()));
        assert_eq!(seqs(&order.arrived(key.clone(), push(1))), [1], "the first goes at once");
        assert!(order.arrived(key.clone(), push(3)).is_empty(), "3 waits for 2");
        assert_eq!(seqs(&order.arrived(key.clone(), push(2))), [2, 3]);
        assert_eq!(seqs(&order.arrived(key.clone(), push(4))), [4]);
        assert_eq!(seqs(&order.arrived(key.clone(), push(2))), [2], "a repeat or a late one is not held");
    }

    #[test]
    fn a_push_that_waited_long_enough_goes_without_the_missing_one() {
        let order = RoomOrder::default();
        let key = (1, Topic::Room("r".into()));
        order.arrived(key.clone(), push(1));
        assert!(order.arrived(key.clone(), push(3)).is_empty());
        assert!(order.overdue().is_empty(), "not yet");
        std::thread::sleep(WAIT);
        let due = order.overdue();
        assert_eq!(seqs(&due[0].1), [3]);
        assert_eq!(seqs(&order.arrived(key.clone(), push(2))), [2], "the lost one, if it comes, goes late");
        assert_eq!(seqs(&order.arrived(key.clone(), push(4))), [4]);
        assert!(order.forget(&key).is_empty());
    }
}
