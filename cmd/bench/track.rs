//! When each benchmark message was sent, and when and how often it arrived.

use std::{
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::report;

pub struct Tracker {
    base: Instant,
    /// Per message, in ns after `base`: sent, the sender's reply, first and last arrival.
    sent_at: Vec<AtomicU64>,
    replied_at: Vec<AtomicU64>,
    first_arrival: Vec<AtomicU64>,
    last_arrival: Vec<AtomicU64>,
    arrivals: Vec<AtomicU32>,
}

/// What a run's figures are.
pub struct Summary {
    /// Messages that reached every device they should have.
    pub complete: usize,
    pub measured: usize,
    pub arrivals: u64,
    pub to_last: Histogram<u64>,
    pub to_first: Histogram<u64>,
    pub to_reply: Histogram<u64>,
}

impl Tracker {
    pub fn new(messages: usize) -> Self {
        let zeros = || (0..messages).map(|_| AtomicU64::new(0)).collect();
        Self {
            base: Instant::now(),
            sent_at: zeros(),
            replied_at: zeros(),
            first_arrival: (0..messages).map(|_| AtomicU64::new(u64::MAX)).collect(),
            last_arrival: zeros(),
            arrivals: (0..messages).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.sent_at.len()
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    pub fn sent(&self, index: usize) {
        self.sent_at[index].store(self.now(), Ordering::Relaxed);
    }

    pub fn replied(&self, index: usize) {
        self.replied_at[index].store(self.now(), Ordering::Relaxed);
    }

    /// A device got message `index` (ignored if out of range).
    pub fn arrived(&self, index: usize) {
        if index >= self.len() {
            return;
        }
        let now = self.now();
        self.last_arrival[index].fetch_max(now, Ordering::Relaxed);
        self.first_arrival[index].fetch_min(now, Ordering::Relaxed);
        self.arrivals[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Figures over the messages from `skip` on, each expected on `devices` devices.
    pub fn summary(&self, skip: usize, devices: usize) -> Summary {
        let mut summary = Summary {
            complete: 0,
            measured: 0,
            arrivals: 0,
            to_last: report::histogram(),
            to_first: report::histogram(),
            to_reply: report::histogram(),
        };
        let since = |sent: u64, at: u64| Duration::from_nanos(at.saturating_sub(sent));
        for index in skip..self.len() {
            summary.measured += 1;
            let sent = self.sent_at[index].load(Ordering::Relaxed);
            let replied = self.replied_at[index].load(Ordering::Relaxed);
            if replied > 0 {
                report::record(&mut summary.to_reply, since(sent, replied));
            }
            let arrivals = self.arrivals[index].load(Ordering::Relaxed) as usize;
            summary.arrivals += arrivals as u64;
            if arrivals >= devices {
                summary.complete += 1;
                report::record(&mut summary.to_last, since(sent, self.last_arrival[index].load(Ordering::Relaxed)));
                report::record(&mut summary.to_first, since(sent, self.first_arrival[index].load(Ordering::Relaxed)));
            }
        }
        summary
    }
}
