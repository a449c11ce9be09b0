//! Message ids: 41 bits of milliseconds since 2024-01-01, 10 bits of node id, 12 bits
//! of sequence. Unique per node and ordered by time; the store rejects the rare
//! collision between two nodes and the write is retried with fresh ids.

use std::sync::Mutex;

use crate::model::now_ms;

const EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;

#[derive(Debug)]
pub struct IdGenerator {
    node: u64,
    /// How far this generator's clock runs from the machine's (0 but in tests of nodes
    /// whose clocks disagree).
    offset_ms: i64,
    /// (milliseconds of the last id, sequence within that millisecond)
    last: Mutex<(i64, u64)>,
}

impl IdGenerator {
    /// `node` is masked to 10 bits.
    pub fn new(node: u16) -> Self {
        Self::skewed(node, 0)
    }

    /// A generator whose clock runs `offset_ms` ahead of (or behind) the machine's, as a
    /// node's would on a host whose clock is off.
    pub fn skewed(node: u16, offset_ms: i64) -> Self {
        Self { node: u64::from(node) & ((1 << NODE_BITS) - 1), offset_ms, last: Mutex::new((0, 0)) }
    }

    /// A generator with a random node id.
    pub fn random() -> Self {
        Self::new(rand::random::<u16>())
    }

    /// The next id and the millisecond it stands for. Never goes backwards: if the
    /// clock does, or a millisecond's 4096 ids run out, ids borrow from the next one.
    pub fn next(&self) -> (u64, i64) {
        let mut last = self.last.lock().expect("id generator lock");
        let now = (now_ms() + self.offset_ms).max(EPOCH_MS);
        if now > last.0 {
            *last = (now, 0);
        } else if last.1 < MAX_SEQUENCE {
            last.1 += 1;
        } else {
            *last = (last.0 + 1, 0);
        }
        let millis = (last.0 - EPOCH_MS) as u64;
        let id = (millis << (NODE_BITS + SEQUENCE_BITS)) | (self.node << SEQUENCE_BITS) | last.1;
        (id, last.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_strictly_even_past_4096_in_one_millisecond() {
        let ids = IdGenerator::new(5);
        let mut previous = 0;
        for _ in 0..20_000 {
            let (id, at) = ids.next();
            assert!(id > previous);
            assert!(at >= EPOCH_MS);
            assert_eq!((id >> SEQUENCE_BITS) & 0x3ff, 5);
            previous = id;
        }
    }
}
