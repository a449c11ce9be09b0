//! Per-user rates of social writes (friend requests; posts, likes and comments), so that
//! one user cannot fill others' inboxes with notifications. Token buckets in this node's
//! memory: a cluster of N logic nodes lets a user through up to N times the rate.

use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use super::{Error, Result};
use crate::model::AppId;

/// Users whose buckets a node keeps; past this the least used are forgotten (and start full).
const CAPACITY: usize = 100_000;

/// What a rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Action {
    FriendRequest,
    MomentWrite,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A rate: `burst` at once, refilled evenly over `per`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rate {
    pub burst: u32,
    pub per: Duration,
}

pub(super) struct RateLimits {
    buckets: Cache<(AppId, String, Action), Bucket>,
    friend_requests: Rate,
    moment_writes: Rate,
}

impl RateLimits {
    pub(super) fn new(friend_requests: Rate, moment_writes: Rate) -> Self {
        Self { buckets: Cache::new(CAPACITY), friend_requests, moment_writes }
    }

    /// Takes one token of the user's bucket for `action`, or refuses.
    pub(super) fn take(&self, app: AppId, user: &str, action: Action) -> Result<()> {
        let (rate, what) = match action {
            Action::FriendRequest => (self.friend_requests, "friend requests"),
            Action::MomentWrite => (self.moment_writes, "posts, likes and comments"),
        };
        if rate.burst == 0 {
            return Ok(());
        }
        let key = (app, user.to_owned(), action);
        let now = Instant::now();
        let burst = f64::from(rate.burst);
        let bucket = self.buckets.get(&key).unwrap_or(Bucket { tokens: burst, at: now });
        let refill = now.duration_since(bucket.at).as_secs_f64() / rate.per.as_secs_f64() * burst;
        let tokens = (bucket.tokens + refill).min(burst);
        if tokens < 1.0 {
            self.buckets.insert(key, Bucket { tokens, at: now });
            return Err(Error::ResourceExhausted(format!(
                "too many {what}: at most {} per {} s; try again later",
                rate.burst,
                rate.per.as_secs()
            )));
        }
        self.buckets.insert(key, Bucket { tokens: tokens - 1.0, at: now });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses() {
        let rate = Rate { burst: 3, per: Duration::from_secs(3600) };
        let limits = RateLimits::new(rate, Rate { burst: 0, per: Duration::from_secs(60) });
        for _ in 0..3 {
            limits.take(1, "ann", Action::FriendRequest).unwrap();
        }
        assert!(matches!(limits.take(1, "ann", Action::FriendRequest), Err(Error::ResourceExhausted(_))));
        limits.take(1, "bob", Action::FriendRequest).expect("each user has a bucket of its own");
        limits.take(2, "ann", Action::FriendRequest).expect("and each app");
        for _ in 0..100 {
            limits.take(1, "ann", Action::MomentWrite).expect("a burst of 0 means no limit");
        }
    }
}
