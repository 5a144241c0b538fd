//! [`Limiter`]: rate limits that hold across every gateway instance, decided locally.
//!
//! Each limit is a [`RateLimit`] (a family of GCRA buckets, one per key: a user id, a client
//! address). A request is decided in memory, against this instance's [`Cell`] for its key: no
//! Redis call on the request path. Every `RATE_LIMIT_SYNC_MS` (50 ms) one task syncs:
//!
//! 1. it charges what each key admitted here since the last sync to the key's bucket in Redis
//!    (`rate_debit.lua`, one key per call, all in one pipeline with `TIME` and `XREAD`), and
//!    folds each bucket's answer, every instance's admissions included, into the local cell;
//! 2. the instance whose debit takes a bucket over its limit (the first time since the bucket
//!    was last full) announces a verdict ("this key's bucket runs until T") on a stream; every
//!    instance reads the stream in the same pipeline and takes the bucket over for that key,
//!    whether or not it has seen the key before. A key kept over its limit is announced once
//!    per episode, not once per sync, so a flood costs the stream one entry per key.
//!
//! So a key over its limit anywhere is refused everywhere within about one sync (50 ms plus a
//! round trip). **Bound**: between two syncs each instance admits at most what its own view
//! allows, so with N instances a key can get at most `(N − 1) × min(burst, what one instance
//! admits for it in one sync interval)` requests beyond its burst, once, when it turns hot on
//! several instances at the same moment. Those admissions are still charged to the shared
//! bucket, so the key then waits them off: over any longer period the cluster admits at most
//! `burst + rate × elapsed`, as one instance would.
//!
//! **Redis down** (or slow): a sync that fails changes nothing here; each instance keeps
//! deciding on its own cells, i.e. the same limit per instance (N instances admit up to N times
//! the rate). `gateway_rate_limit_shared` shows 0 meanwhile, and the failures are counted.
//! Admissions made during the outage are not replayed to Redis afterwards.
//!
//! **Memory**: a cell lives while its key has debt or admissions to sync (a bid key at most
//! `burst / rate` seconds after its last request); idle ones are dropped every second. Redis
//! keys expire a second after their debt is paid, and the verdict stream is capped.

use super::gcra::{Cell, Quota};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::rate_limits::{Debit, RateLimitStore, VERDICTS_START, Verdict};
use dashmap::DashMap;
use prometheus_client::metrics::counter::Counter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often cells that say nothing any more are dropped.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(1);

/// This instance's monotonic clock in µs, the time base of every [`Cell`].
#[derive(Debug, Clone, Copy)]
struct Clock {
    epoch: Instant,
}

impl Clock {
    fn now_us(self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// One limit (`bid` per user, `ip` per client address): a quota and a bucket per key.
pub struct RateLimit {
    /// `None` when the limit is disabled (rate 0): every request passes, nothing is kept.
    family: Option<Family>,
}

struct Family {
    /// Redis key part and metric label: `bid`, `ip`.
    name: &'static str,
    quota: Quota,
    clock: Clock,
    cells: DashMap<String, Cell>,
    /// Keys whose cells gained admissions since the last sync took them, so a sync visits
    /// only those, never every cell.
    dirty: Mutex<Vec<String>>,
    /// `gateway_rate_limited_total{limit=<name>}`.
    refused: Counter,
}

impl RateLimit {
    /// A limit of `quota` (`None`: disabled), counted under `name`. Its buckets are shared once
    /// it is part of a [`Limiter`].
    pub fn new(name: &'static str, quota: Option<Quota>, metrics: &Metrics) -> Self {
        Self {
            family: quota.map(|quota| Family {
                name,
                quota,
                clock: Clock {
                    epoch: Instant::now(),
                },
                cells: DashMap::new(),
                dirty: Mutex::new(Vec::new()),
                refused: metrics.rate_limited(name),
            }),
        }
    }

    /// Whether the limit is on.
    pub fn is_enabled(&self) -> bool {
        self.family.is_some()
    }

    /// Admits one request of `key` now, or says how long it must wait. Memory only.
    ///
    /// # Errors
    /// The wait when `key` is over its limit (a 429 with `Retry-After`).
    pub fn check<K: AsRef<str> + ?Sized>(&self, key: &K) -> Result<(), Duration> {
        let Some(family) = &self.family else {
            return Ok(());
        };
        family.check(key.as_ref()).inspect_err(|_| {
            family.refused.inc();
        })
    }
}

impl Family {
    fn check(&self, key: &str) -> Result<(), Duration> {
        let now = self.clock.now_us();
        let admit = |cell: &mut Cell| {
            let had_pending = cell.has_pending();
            cell.admit(&self.quota, now).map(|()| !had_pending)
        };
        // The lookup allocates nothing; only a key new to this instance is copied.
        let newly_pending = match self.cells.get_mut(key) {
            Some(mut cell) => admit(&mut cell),
            None => admit(&mut self.cells.entry(key.to_owned()).or_default()),
        }?;
        if newly_pending {
            shared::mutex::lock(&self.dirty).push(key.to_owned());
        }
        Ok(())
    }

    /// Takes the pending admissions of every dirty key.
    fn take_pending(&self) -> Vec<(String, u32)> {
        let keys = std::mem::take(&mut *shared::mutex::lock(&self.dirty));
        keys.into_iter()
            .filter_map(|key| {
                let taken = self.cells.get_mut(&key)?.take_pending();
                (taken > 0).then_some((key, taken))
            })
            .collect()
    }

    fn forget_idle(&self) -> usize {
        let now = self.clock.now_us();
        self.cells.retain(|_, cell| !cell.is_idle(now));
        self.cells.len()
    }
}

/// Every shared limit of this instance and the Redis they sync through.
pub struct Limiter {
    limits: Vec<Arc<RateLimit>>,
    store: Arc<RateLimitStore>,
    /// Ours, to skip our own verdicts on the stream.
    instance: String,
    /// Position in the verdict stream; only the sync task touches it.
    cursor: Mutex<String>,
    /// Whether the last sync reached Redis (for logging the change once).
    shared: AtomicBool,
    metrics: Arc<Metrics>,
}

/// What one sync did, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Keys whose admissions were charged to Redis.
    pub debited: usize,
    /// Verdicts this instance announced.
    pub announced: usize,
    /// Other instances' verdicts applied here.
    pub applied: usize,
}

impl Limiter {
    pub fn new(
        limits: Vec<Arc<RateLimit>>,
        store: Arc<RateLimitStore>,
        instance: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.rate_limit_shared.set(1);
        Self {
            limits,
            store,
            instance,
            cursor: Mutex::new(VERDICTS_START.to_owned()),
            shared: AtomicBool::new(true),
            metrics,
        }
    }

    fn families(&self) -> impl Iterator<Item = &Family> {
        self.limits.iter().filter_map(|limit| limit.family.as_ref())
    }

    /// Whether any limit is enabled (with none, there is nothing to sync).
    pub fn is_active(&self) -> bool {
        self.families().next().is_some()
    }

    /// One sync (see the module docs): charge, learn, announce, apply.
    ///
    /// # Errors
    /// When the limiter's Redis fails; the limits then stay local until a sync succeeds.
    pub async fn sync_once(&self) -> Result<SyncStats, StoreError> {
        let taken: Vec<(&Family, String, u32)> = self
            .families()
            .flat_map(|family| {
                let pending = family.take_pending();
                pending.into_iter().map(move |(key, n)| (family, key, n))
            })
            .collect();
        let debits: Vec<Debit<'_>> = taken
            .iter()
            .map(|(family, key, n)| Debit {
                family: family.name,
                key,
                debit_us: u64::from(*n) * family.quota.interval_us(),
                tolerance_us: family.quota.tolerance_us(),
            })
            .collect();
        let cursor = shared::mutex::lock(&self.cursor).clone();
        let reply = match self.store.sync(&debits, &cursor).await {
            Ok(reply) => reply,
            Err(e) => {
                self.lost_redis(&e);
                return Err(e);
            }
        };
        self.reached_redis();

        let mut announce = Vec::new();
        for ((family, key, _), settled) in taken.into_iter().zip(&reply.settled) {
            let now = family.clock.now_us();
            family
                .cells
                .entry(key.clone())
                .or_default()
                .learn(&family.quota, now, settled.debt_us);
            if settled.crossed {
                announce.push(Verdict {
                    family: family.name.to_owned(),
                    key,
                    arrival_ms: reply.redis_now_ms + settled.debt_us.div_ceil(1_000),
                    instance: self.instance.clone(),
                });
            }
        }
        let mut applied = 0;
        for verdict in &reply.verdicts {
            // Ours, or a bucket that is full again by now: nothing to learn.
            if verdict.instance == self.instance || verdict.arrival_ms <= reply.redis_now_ms {
                continue;
            }
            let Some(family) = self.families().find(|f| f.name == verdict.family) else {
                continue;
            };
            let ahead_us = (verdict.arrival_ms - reply.redis_now_ms) * 1_000;
            family.cells.entry(verdict.key.clone()).or_default().learn(
                &family.quota,
                family.clock.now_us(),
                ahead_us,
            );
            applied += 1;
        }
        self.metrics
            .rate_limit_verdicts_applied
            .inc_by(applied as u64);
        *shared::mutex::lock(&self.cursor) = reply.cursor;
        if !announce.is_empty()
            && let Err(e) = self.store.announce(&announce).await
        {
            // The buckets in Redis are charged: the others learn at their next debit.
            self.lost_redis(&e);
            return Err(e);
        }
        Ok(SyncStats {
            debited: reply.settled.len(),
            announced: announce.len(),
            applied,
        })
    }

    /// Drops cells that say nothing any more; returns how many are kept.
    pub fn forget_idle(&self) -> usize {
        let kept = self.families().map(Family::forget_idle).sum();
        self.metrics
            .rate_limit_keys
            .set(i64::try_from(kept).unwrap_or(i64::MAX));
        kept
    }

    fn lost_redis(&self, error: &StoreError) {
        self.metrics.rate_limit_redis_failures.inc();
        self.metrics.rate_limit_shared.set(0);
        if self.shared.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = %error,
                "the rate limits' Redis failed: each instance limits on its own counts until it is back"
            );
        }
    }

    fn reached_redis(&self) {
        self.metrics.rate_limit_shared.set(1);
        if !self.shared.swap(true, Ordering::Relaxed) {
            tracing::info!("the rate limits are shared through Redis again");
        }
    }
}

/// Syncs every `every` and drops idle cells every second, until `shutdown`.
pub async fn run(limiter: Arc<Limiter>, every: Duration, shutdown: CancellationToken) {
    if !limiter.is_active() {
        shutdown.cancelled().await;
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut forgot = Instant::now();
    loop {
        // Cancellation-safe: a tick lost to shutdown is a sync skipped at the end, and the
        // sync itself runs outside the select, so it is never cut in half.
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        // A failure is counted and logged (once per outage) inside; the next tick retries.
        let _ = limiter.sync_once().await;
        if forgot.elapsed() >= FORGET_IDLE_EVERY {
            limiter.forget_idle();
            forgot = Instant::now();
        }
    }
}
