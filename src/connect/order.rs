//! Where a device stands in one seq space (its inbox, or a large group's timeline), and
//! what to do with the next push there: write it, drop it as a duplicate, hold it until
//! the device has synced, or fill a gap first.

use std::collections::BTreeSet;

/// Own sent seqs a stream remembers at most (beyond: the oldest are forgotten).
const MAX_OWN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Write,
    Drop,
    /// The device has not synced yet: keep the push until it has.
    Hold,
    /// A push is missing before this one: read what follows `floor` first.
    Gap,
}

#[derive(Debug, Default)]
pub(super) struct Stream {
    /// The highest seq the device has; `None` until known.
    floor: Option<u64>,
    /// Seqs of messages the device sent itself, above `floor`: it has them already.
    own: BTreeSet<u64>,
}

impl Stream {
    pub(super) fn floor(&self) -> Option<u64> {
        self.floor
    }

    /// The device sent the message at `seq` and holds it.
    pub(super) fn sent(&mut self, seq: u64) {
        if seq > self.floor.unwrap_or(0) {
            self.own.insert(seq);
            if self.own.len() > MAX_OWN {
                self.own.pop_first();
            }
        }
        self.absorb();
    }

    /// The device has everything up to `seq` (a sync answered).
    pub(super) fn reached(&mut self, seq: u64) {
        self.floor = Some(self.floor.map_or(seq, |floor| floor.max(seq)));
        self.absorb();
    }

    /// What to do with a push at `seq`; `Write` moves the floor to it.
    pub(super) fn step(&mut self, seq: u64) -> Step {
        self.absorb();
        match self.floor {
            None => Step::Hold,
            Some(floor) if seq <= floor => Step::Drop,
            Some(floor) if seq == floor + 1 => {
                self.floor = Some(seq);
                Step::Write
            }
            Some(_) => Step::Gap,
        }
    }

    /// A message read while filling a gap; `true` if the device needs it written.
    pub(super) fn caught_up(&mut self, seq: u64) -> bool {
        self.floor = Some(self.floor.map_or(seq, |floor| floor.max(seq)));
        !self.own.remove(&seq)
    }

    /// Takes a push after a gap could not be closed: write it and move on.
    pub(super) fn force(&mut self, seq: u64) {
        self.floor = Some(self.floor.map_or(seq, |floor| floor.max(seq)));
    }

    /// Moves `floor` over the device's own messages that follow it.
    fn absorb(&mut self) {
        let Some(mut floor) = self.floor else { return };
        while self.own.remove(&(floor + 1)) {
            floor += 1;
        }
        self.own.retain(|seq| *seq > floor);
        self.floor = Some(floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_are_held_until_the_first_sync_then_written_in_order_once() {
        let mut stream = Stream::default();
        assert_eq!(stream.step(5), Step::Hold);
        stream.reached(4);
        assert_eq!(stream.step(5), Step::Write);
        assert_eq!(stream.step(5), Step::Drop);
        assert_eq!(stream.step(7), Step::Gap);
        assert!(stream.caught_up(6));
        assert_eq!(stream.step(7), Step::Write);
    }

    #[test]
    fn the_devices_own_sends_count_as_delivered() {
        let mut stream = Stream::default();
        stream.reached(10);
        stream.sent(11);
        assert_eq!(stream.floor(), Some(11));
        stream.sent(13);
        assert_eq!(stream.step(12), Step::Write);
        assert_eq!(stream.floor(), Some(12));
        assert_eq!(stream.step(14), Step::Write, "13 was the device's own");
        assert_eq!(stream.step(13), Step::Drop);
    }

    #[test]
    fn an_own_send_before_the_first_push_does_not_hide_earlier_pushes() {
        // The device sent seq 3 while the push of seq 2 was still queued for it.
        let mut stream = Stream::default();
        stream.sent(3);
        stream.reached(1);
        assert_eq!(stream.step(2), Step::Write);
        assert_eq!(stream.step(4), Step::Write, "3 was the device's own");
    }
}
