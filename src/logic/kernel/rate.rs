//! How fast each caller may go, so that one device, user, app or address cannot take a
//! node's capacity or flood other users: GCRA token buckets (`governor`) in this node's
//! memory, one per key. A cluster of N logic nodes lets a caller through up to N times
//! a rate. Keys are hashes with keys of this process's own, so a check allocates
//! nothing; buckets that are full again are dropped every `TIDY_EVERY`.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hash},
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};

use crate::logic::{Error, Result};
use crate::{config::RatesConfig, model::AppId};

/// How often buckets that are full again are dropped (they hold nothing a fresh one
/// would not), which bounds memory by the callers of the last moments.
pub const TIDY_EVERY: Duration = Duration::from_secs(60);

/// One rate, over keys of one kind.
struct Rate {
    /// `None` when the configured count is 0: no limit.
    limiter: Option<RateLimiter<u64, DefaultKeyedStateStore<u64>, DefaultClock>>,
    keys: RandomState,
    /// What a refusal says, e.g. "calls from this device: at most 20 a second".
    refusal: String,
}

impl Rate {
    /// `count` per `period`, in bursts of up to `burst` (at least 1).
    fn new(count: u32, period: Duration, burst: u32, what: &str, per: &str) -> Self {
        let limiter = NonZeroU32::new(count).and_then(|count| {
            let quota = Quota::with_period(period / count.get())?;
            Some(RateLimiter::keyed(quota.allow_burst(NonZeroU32::new(burst.max(1))?)))
        });
        Self { limiter, keys: RandomState::new(), refusal: format!("{what}: at most {count} {per}") }
    }

    /// Takes one call from the bucket of `key`, or says how long to wait.
    fn take(&self, key: impl Hash) -> Result<()> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(&self.keys.hash_one(key)).map_err(|not_until| Error::TooFast {
            what: self.refusal.clone(),
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }

    fn tidy(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// One rate of whole apps, each at the quota its settings give (they change at run time,
/// so each app keeps a bucket of its own rather than one keyed limiter for all).
struct AppRate {
    buckets: dashmap::DashMap<
        AppId,
        (u32, RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>),
    >,
    /// What a refusal is about, e.g. "business calls of this app".
    what: &'static str,
}

impl AppRate {
    fn new(what: &'static str) -> Self {
        Self { buckets: dashmap::DashMap::new(), what }
    }

    /// Takes one from `app`'s bucket at `per_second` (bursts of twice that; 0: no limit).
    fn take(&self, app: AppId, per_second: u32) -> Result<()> {
        let Some(rate) = NonZeroU32::new(per_second) else { return Ok(()) };
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
        let check = |limiter: &RateLimiter<_, _, DefaultClock>| {
            limiter.check().map_err(|not_until| Error::TooFast {
                what: format!("{}: at most {per_second} a second", self.what),
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
        };
        if let Some(bucket) = self.buckets.get(&app)
            && bucket.0 == per_second
        {
            return check(&bucket.1);
        }
        let limiter = RateLimiter::direct(Quota::per_second(rate).allow_burst(burst));
        let result = check(&limiter);
        self.buckets.insert(app, (per_second, limiter));
        result
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Who is guessing a password: the address a sign-in came from, or the signed-in device
/// that asks to change its password (and its address).
#[derive(Debug, Clone, Copy, Hash)]
enum Guesser<'a> {
    Address(Option<IpAddr>),
    Device(&'a str),
}

/// Failed password checks (sign-ins, and old passwords given to change one) in the
/// current minute, per username and per (username, guesser). Failures, not attempts, are
/// counted per username, so that strangers guessing a password cannot lock its owner
/// out: once a username has failed too often, only the guessers that failed are refused.
struct PasswordFailures {
    /// Failures a username may have per window (0: no limit).
    max: u32,
    counts: quick_cache::sync::Cache<u64, (Instant, u32)>,
    keys: RandomState,
}

impl PasswordFailures {
    /// Usernames and pairs whose failures a node keeps at most (beyond, the least used
    /// are forgotten).
    const CAPACITY: usize = 100_000;

    fn new(max: u32) -> Self {
        Self { max, counts: quick_cache::sync::Cache::new(Self::CAPACITY), keys: RandomState::new() }
    }

    /// Failures counted under `key` in the current window.
    fn count(&self, key: u64, now: Instant) -> u32 {
        self.counts.get(&key).filter(|(since, _)| now.duration_since(*since) < MINUTE).map_or(0, |(_, count)| count)
    }

    fn add(&self, key: u64, now: Instant) {
        let count = self.count(key, now);
        let since = if count == 0 { now } else { self.counts.get(&key).map_or(now, |(since, _)| since) };
        self.counts.insert(key, (since, count + 1));
    }

    /// Refuses when the username has failed too often and any of `guessers` failed.
    fn check(&self, app: AppId, username: &str, guessers: &[Guesser<'_>]) -> Result<()> {
        if self.max == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let user = self.keys.hash_one((app, username));
        if self.count(user, now) < self.max {
            return Ok(());
        }
        if guessers.iter().all(|guesser| self.count(self.keys.hash_one((app, username, guesser)), now) == 0) {
            return Ok(());
        }
        let since = self.counts.get(&user).map_or(now, |(since, _)| since);
        Err(Error::TooFast {
            what: format!("failed password checks for this username: at most {} a minute", self.max),
            retry_after: MINUTE.saturating_sub(now.duration_since(since)),
        })
    }

    fn failed(&self, app: AppId, username: &str, guessers: &[Guesser<'_>]) {
        if self.max == 0 {
            return;
        }
        let now = Instant::now();
        self.add(self.keys.hash_one((app, username)), now);
        for guesser in guessers {
            self.add(self.keys.hash_one((app, username, guesser)), now);
        }
    }
}

/// Every rate a logic node enforces (`[rates]`).
pub struct Rates {
    device_calls: Rate,
    user_calls: Rate,
    app_calls: AppRate,
    app_sends: AppRate,
    password_failures: PasswordFailures,
    sign_ins_per_address: Rate,
    sign_ups_per_address: Rate,
    friend_requests: Rate,
    moment_writes: Rate,
    typing: Rate,
}

impl Rates {
    pub fn new(config: &RatesConfig) -> Self {
        // Per-second rates take bursts of twice the rate; slower ones, the whole count.
        let per_second = |count: u32, what: &str| Rate::new(count, SECOND, count.saturating_mul(2), what, "a second");
        Self {
            device_calls: per_second(config.device_calls_per_second, "calls from this device"),
            user_calls: per_second(config.user_calls_per_second, "calls from this user's devices"),
            app_calls: AppRate::new("business calls of this app"),
            app_sends: AppRate::new("messages sent by this app's devices and backend"),
            password_failures: PasswordFailures::new(config.failed_sign_ins_per_username_per_minute),
            sign_ins_per_address: Rate::new(
                config.sign_ins_per_address_per_minute,
                MINUTE,
                config.sign_ins_per_address_per_minute,
                "sign-in attempts from this address",
                "a minute",
            ),
            sign_ups_per_address: Rate::new(
                config.sign_ups_per_address_per_hour,
                HOUR,
                config.sign_ups_per_address_per_hour,
                "sign-ups from this address",
                "an hour",
            ),
            friend_requests: Rate::new(
                config.friend_requests_per_hour,
                HOUR,
                config.friend_requests_per_hour,
                "friend requests",
                "an hour",
            ),
            moment_writes: Rate::new(
                config.moment_writes_per_minute,
                MINUTE,
                config.moment_writes_per_minute,
                "posts, likes and comments",
                "a minute",
            ),
            typing: Rate::new(
                config.typing_per_minute,
                MINUTE,
                config.typing_per_minute,
                "typing notices from this device",
                "a minute",
            ),
        }
    }

    /// A call a device made (over gRPC or its WebSocket): the device's rate and its user's.
    pub fn device_call(&self, app: AppId, user: &str, device: &str) -> Result<()> {
        self.device_calls.take((app, user, device))?;
        self.user_calls.take((app, user))
    }

    /// A business call of `app`, at its quota of calls a second.
    pub fn app_call(&self, app: AppId, per_second: u32) -> Result<()> {
        self.app_calls.take(app, per_second)
    }

    /// A message sent in `app`, at its quota of sends a second.
    pub fn app_send(&self, app: AppId, per_second: u32) -> Result<()> {
        self.app_sends.take(app, per_second)
    }

    /// A sign-in attempt, before the password is looked at (so that a refusal takes the
    /// same time whether the user exists or not): counted for its address; refused when
    /// the username has failed too often lately and this address is among those that
    /// failed (others, its owner's among them, may still try).
    pub fn sign_in(&self, app: AppId, username: &str, address: Option<IpAddr>) -> Result<()> {
        if let Some(address) = address {
            self.sign_ins_per_address.take(address)?;
        }
        self.password_failures.check(app, username, &[Guesser::Address(address)])
    }

    /// A sign-in that failed: it counts for the username and for the address.
    pub fn sign_in_failed(&self, app: AppId, username: &str, address: Option<IpAddr>) {
        self.password_failures.failed(app, username, &[Guesser::Address(address)]);
    }

    /// A signed-in device gives its user's old password to change it: refused, like a
    /// sign-in, when the username has failed too often and this device or its address
    /// is among those that failed.
    pub fn password_check(&self, app: AppId, username: &str, (address, device): (Option<IpAddr>, &str)) -> Result<()> {
        self.password_failures.check(app, username, &[Guesser::Address(address), Guesser::Device(device)])
    }

    /// A wrong old password: it counts for the username, the device and the address.
    pub fn password_check_failed(&self, app: AppId, username: &str, (address, device): (Option<IpAddr>, &str)) {
        self.password_failures.failed(app, username, &[Guesser::Address(address), Guesser::Device(device)]);
    }

    pub fn sign_up(&self, address: Option<IpAddr>) -> Result<()> {
        address.map_or(Ok(()), |address| self.sign_ups_per_address.take(address))
    }

    pub fn friend_request(&self, app: AppId, user: &str) -> Result<()> {
        self.friend_requests.take((app, user))
    }

    pub fn moment_write(&self, app: AppId, user: &str) -> Result<()> {
        self.moment_writes.take((app, user))
    }

    pub fn typing(&self, app: AppId, user: &str, device: &str) -> Result<()> {
        self.typing.take((app, user, device))
    }

    /// Drops buckets that are full again.
    pub fn tidy(&self) {
        for rate in [
            &self.device_calls,
            &self.user_calls,
            &self.sign_ins_per_address,
            &self.sign_ups_per_address,
            &self.friend_requests,
            &self.moment_writes,
            &self.typing,
        ] {
            rate.tidy();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RatesConfig {
        RatesConfig {
            device_calls_per_second: 2,
            user_calls_per_second: 6,
            app_calls_per_second: 0,
            app_sends_per_second: 0,
            failed_sign_ins_per_username_per_minute: 3,
            sign_ins_per_address_per_minute: 100,
            sign_ups_per_address_per_hour: 1,
            friend_requests_per_hour: 2,
            moment_writes_per_minute: 0,
            typing_per_minute: 0,
        }
    }

    #[test]
    fn a_device_gets_its_burst_then_waits_and_its_user_shares_a_budget() {
        let rates = Rates::new(&config());
        for _ in 0..4 {
            rates.device_call(1, "ann", "phone").unwrap();
        }
        let Err(Error::TooFast { what, retry_after }) = rates.device_call(1, "ann", "phone") else {
            panic!("the fifth call in a burst of four is refused");
        };
        assert!(
            what.contains("device") && retry_after > Duration::ZERO && retry_after <= SECOND,
            "{what} {retry_after:?}"
        );
        for _ in 0..4 {
            rates.device_call(1, "ann", "laptop").unwrap();
        }
        for _ in 0..4 {
            rates.device_call(1, "ann", "tablet").expect("the user's burst is twelve");
        }
        assert!(
            matches!(rates.device_call(1, "ann", "watch"), Err(Error::TooFast { .. })),
            "the user's budget is spent"
        );
        rates.device_call(2, "ann", "phone").expect("another app's ann has buckets of her own");
    }

    #[test]
    fn failed_sign_ins_refuse_the_addresses_that_failed_not_the_owner() {
        let rates = Rates::new(&config());
        let (attacker, owner) = (Some(IpAddr::from([10, 0, 0, 1])), Some(IpAddr::from([10, 0, 0, 2])));
        for _ in 0..3 {
            rates.sign_in(1, "ann", attacker).unwrap();
            rates.sign_in_failed(1, "ann", attacker);
        }
        let Err(Error::TooFast { retry_after, .. }) = rates.sign_in(1, "ann", attacker) else {
            panic!("the address that failed three times is refused");
        };
        assert!(retry_after <= MINUTE);
        rates.sign_in(1, "ann", owner).expect("an address that never failed may still try");
        rates.password_check(1, "ann", (owner, "phone")).expect("nor a device that never failed");
        rates.password_check(1, "ann", (attacker, "phone")).expect_err("an address that failed signing in");
        rates.sign_in(1, "bob", attacker).expect("another username");
        rates.sign_in(2, "ann", attacker).expect("another app's ann");
        rates.sign_up(attacker).unwrap();
        assert!(rates.sign_up(attacker).is_err(), "one sign-up an hour");
        rates.sign_up(None).expect("no address known: only the other rates apply");
        for _ in 0..1000 {
            rates.app_call(7, 0).expect("0: no limit");
        }
        rates.tidy();
    }

    #[test]
    fn each_app_has_its_own_quota_which_may_change() {
        let rates = Rates::new(&config());
        for _ in 0..4 {
            rates.app_send(1, 2).unwrap();
        }
        let Err(Error::TooFast { what, .. }) = rates.app_send(1, 2) else {
            panic!("a burst is twice the rate");
        };
        assert!(what.contains("at most 2 a second"), "{what}");
        rates.app_send(2, 2).expect("another app has a bucket of its own");
        rates.app_call(1, 2).expect("calls and sends are counted apart");
        for _ in 0..20 {
            rates.app_send(1, 10).expect("a raised quota takes effect at once");
        }
    }

    #[test]
    fn wrong_old_passwords_count_with_failed_sign_ins() {
        let rates = Rates::new(&config());
        let (thief, owner) = (Some(IpAddr::from([10, 0, 0, 1])), Some(IpAddr::from([10, 0, 0, 2])));
        for _ in 0..3 {
            rates.password_check(1, "ann", (thief, "stolen")).unwrap();
            rates.password_check_failed(1, "ann", (thief, "stolen"));
        }
        assert!(rates.password_check(1, "ann", (thief, "stolen")).is_err(), "the device that failed");
        assert!(rates.password_check(1, "ann", (owner, "stolen")).is_err(), "from any address");
        assert!(rates.sign_in(1, "ann", thief).is_err(), "nor may its address sign in");
        rates.sign_in(1, "ann", owner).expect("the owner signs in from elsewhere");
        rates.password_check(1, "ann", (owner, "laptop")).expect("and changes it from another device");
    }
}
