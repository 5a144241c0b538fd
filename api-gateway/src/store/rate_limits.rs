//! The Redis side of the limits every gateway shares (`crate::rate_limit`): the batched debits
//! of the GCRA buckets, the stream of "over the limit" verdicts, and the exact attempt counters
//! of the sign-in throttle.
//!
//! It has a connection of its own, to `RATE_LIMIT_REDIS_URL` (by default the auctions' Redis):
//! a sync pipeline never queues in front of a bid's script, and a limiter Redis that is slow or
//! down costs the bids nothing (the limits fall back to each instance's own counts).
//!
//! Every command touches one key (each script exactly one), so it all runs on Redis Cluster.

use super::StoreError;
use redis::Value;
use redis::streams::StreamReadReply;
use shared::redis_connection::RedisHandle;
use shared::redis_keys::Keyspace;
use shared::service_options::RedisOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// About how many verdicts the stream keeps (`MAXLEN ~`): many more than can be in force at
/// once, since a verdict lasts as long as one key's debt.
const VERDICTS_KEPT: u32 = 10_000;
/// Most verdicts one sync reads; a backlog is read over the next syncs.
const VERDICTS_PER_SYNC: u32 = 512;

/// Stream entry fields of a verdict.
const FAMILY: &str = "f";
const KEY: &str = "k";
const ARRIVAL_MS: &str = "t";
const INSTANCE: &str = "i";

/// The stream position before every entry: a new instance reads the verdicts still in force.
pub const VERDICTS_START: &str = "0-0";

struct LimitScripts {
    debit: redis::Script,
    count_attempt: redis::Script,
}

fn scripts() -> &'static LimitScripts {
    static SCRIPTS: std::sync::OnceLock<LimitScripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| LimitScripts {
        debit: redis::Script::new(include_str!("../scripts/rate_debit.lua")),
        count_attempt: redis::Script::new(include_str!("../scripts/count_attempt.lua")),
    })
}

/// Handle to the limiter's Redis (cheap to share behind an `Arc`).
pub struct RateLimitStore {
    redis: RedisHandle,
    keys: Keyspace,
    /// Whether the scripts are known to be in this Redis. A pipeline does not load a missing
    /// script by itself (unlike a single `EVALSHA` through `redis::Script`), so until this is
    /// true, and again after any failure (a restarted Redis has none), a pipeline starts with
    /// `SCRIPT LOAD`.
    loaded: AtomicBool,
}

/// Admissions one instance charges to one bucket.
#[derive(Debug, Clone, Copy)]
pub struct Debit<'a> {
    pub family: &'a str,
    pub key: &'a str,
    /// Admissions × the family's interval, µs (positive).
    pub debit_us: u64,
    /// (burst − 1) × the interval, µs.
    pub tolerance_us: u64,
}

/// What a bucket says after a debit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// How far (µs) the bucket runs ahead of now, every instance's admissions included.
    pub debt_us: u64,
    /// This debit took the bucket over its limit, for the first time since it was last full:
    /// announce it (see `rate_debit.lua`).
    pub crossed: bool,
}

/// "This key went over its limit; its bucket runs until then", from the instance that saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub family: String,
    pub key: String,
    /// The bucket's arrival time, Redis time (ms since the epoch): the key is refused until
    /// its tolerance before it, then admitted at the rate.
    pub arrival_ms: u64,
    /// `INSTANCE_ID` of the announcer, which needs no news of its own verdict.
    pub instance: String,
}

/// One sync's answer.
#[derive(Debug, Clone)]
pub struct SyncReply {
    /// Redis's clock when the pipeline ran (ms), to tell which verdicts are still in force.
    pub redis_now_ms: u64,
    /// One per debit, in order.
    pub settled: Vec<Settled>,
    /// Verdicts announced since the cursor.
    pub verdicts: Vec<Verdict>,
    /// Where the next sync reads from (unchanged when nothing new came).
    pub cursor: String,
}

/// An attempt counter to read, or to add to.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// `fail` (failed sign-ins of one login), `reg` (registrations of one login), `ip`.
    pub kind: &'a str,
    pub key: &'a str,
    /// The counter's life from its first attempt.
    pub window: Duration,
    /// 0 only reads.
    pub add: u32,
}

/// A counter's value after an [`Attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub count: u64,
    /// Until the window ends.
    pub ttl: Duration,
}

impl RateLimitStore {
    /// Prepares a lazily connected handle; Redis does not have to be up.
    ///
    /// # Errors
    /// When the URL or its TLS settings are invalid.
    pub fn new(redis: &RedisOptions, keys: Keyspace, deadline: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            redis: RedisHandle::connect_lazily(redis, deadline)?,
            keys,
            loaded: AtomicBool::new(false),
        })
    }

    /// One round trip: charges every debit, reads Redis's clock and the verdicts after
    /// `cursor`.
    ///
    /// # Errors
    /// [`StoreError`] by the usual classification; nothing is retried here (the next sync is
    /// ~50 ms away, and the caller falls back to local counts meanwhile).
    pub async fn sync(&self, debits: &[Debit<'_>], cursor: &str) -> Result<SyncReply, StoreError> {
        let mut pipe = self.pipeline();
        pipe.cmd("TIME");
        pipe.cmd("XREAD")
            .arg("COUNT")
            .arg(VERDICTS_PER_SYNC)
            .arg("STREAMS")
            .arg(self.keys.rate_verdicts())
            .arg(cursor);
        for debit in debits {
            let mut invocation = scripts().debit.prepare_invoke();
            invocation
                .key(self.keys.rate_bucket(debit.family, debit.key))
                .arg(debit.debit_us)
                .arg(debit.tolerance_us);
            pipe.invoke_script(&invocation);
        }
        let values = self.query(&pipe).await?;
        decode_sync(values, debits.len(), cursor).map_err(StoreError::Internal)
    }

    /// Announces verdicts to every instance (one `XADD` each, pipelined).
    ///
    /// # Errors
    /// [`StoreError`] by the usual classification.
    pub async fn announce(&self, verdicts: &[Verdict]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        let stream = self.keys.rate_verdicts();
        for verdict in verdicts {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(VERDICTS_KEPT)
                .arg("*")
                .arg(FAMILY)
                .arg(&verdict.family)
                .arg(KEY)
                .arg(&verdict.key)
                .arg(ARRIVAL_MS)
                .arg(verdict.arrival_ms)
                .arg(INSTANCE)
                .arg(&verdict.instance)
                .ignore();
        }
        Ok(self.redis.query_pipeline::<()>(&pipe).await?)
    }

    /// Reads or adds to attempt counters in one round trip; one [`Counted`] per attempt.
    ///
    /// # Errors
    /// [`StoreError`] by the usual classification.
    pub async fn count_attempts(
        &self,
        attempts: &[Attempt<'_>],
    ) -> Result<Vec<Counted>, StoreError> {
        let build = |pipe: &mut redis::Pipeline| {
            for attempt in attempts {
                let mut invocation = scripts().count_attempt.prepare_invoke();
                invocation
                    .key(self.keys.auth_attempts(attempt.kind, attempt.key))
                    .arg(millis(attempt.window))
                    .arg(attempt.add);
                pipe.invoke_script(&invocation);
            }
        };
        let mut pipe = self.pipeline();
        build(&mut pipe);
        let values = match self.query(&pipe).await {
            Ok(values) => values,
            // A Redis that lost the scripts (restarted) answers NOSCRIPT once: load and retry.
            Err(StoreError::Internal(_)) => {
                let mut pipe = self.pipeline();
                build(&mut pipe);
                self.query(&pipe).await?
            }
            Err(other) => return Err(other),
        };
        values
            .into_iter()
            .map(|value| {
                let (count, ttl_ms): (u64, u64) = redis::from_redis_value(value)
                    .map_err(|e| anyhow::anyhow!("count_attempt reply: {e}"))?;
                Ok(Counted {
                    count,
                    ttl: Duration::from_millis(ttl_ms),
                })
            })
            .collect()
    }

    /// Deletes an attempt counter (a successful sign-in forgets the login's failures).
    ///
    /// # Errors
    /// [`StoreError`] by the usual classification.
    pub async fn forget_attempts(&self, kind: &str, key: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.keys.auth_attempts(kind, key));
        Ok(self.redis.query::<()>(&cmd).await?)
    }

    /// A pipeline, loading the scripts first unless they are known to be loaded.
    fn pipeline(&self) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        if !self.loaded.load(Ordering::Relaxed) {
            let scripts = scripts();
            pipe.load_script(&scripts.debit).ignore();
            pipe.load_script(&scripts.count_attempt).ignore();
        }
        pipe
    }

    async fn query(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, StoreError> {
        match self.redis.query_pipeline::<Vec<Value>>(pipe).await {
            Ok(values) => {
                self.loaded.store(true, Ordering::Relaxed);
                Ok(values)
            }
            Err(e) => {
                self.loaded.store(false, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Splits a sync pipeline's reply: `TIME`, `XREAD`, then one reply per debit.
fn decode_sync(values: Vec<Value>, debits: usize, cursor: &str) -> anyhow::Result<SyncReply> {
    let mut values = values.into_iter();
    let (Some(time), Some(read)) = (values.next(), values.next()) else {
        anyhow::bail!("sync reply lacks TIME and XREAD");
    };
    let (secs, micros): (u64, u64) =
        redis::from_redis_value(time).map_err(|e| anyhow::anyhow!("TIME reply: {e}"))?;
    let read: Option<StreamReadReply> =
        redis::from_redis_value(read).map_err(|e| anyhow::anyhow!("XREAD reply: {e}"))?;
    let mut cursor = cursor.to_owned();
    let mut verdicts = Vec::new();
    for entry in read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
        // An entry that does not decode (written by something else) is skipped, not fatal.
        if let (Some(family), Some(key), Some(arrival_ms), Some(instance)) = (
            entry.get::<String>(FAMILY),
            entry.get::<String>(KEY),
            entry.get::<u64>(ARRIVAL_MS),
            entry.get::<String>(INSTANCE),
        ) {
            verdicts.push(Verdict {
                family,
                key,
                arrival_ms,
                instance,
            });
        }
        cursor = entry.id;
    }
    let settled = values
        .map(|value| {
            let (debt, crossed): (i64, i64) = redis::from_redis_value(value)
                .map_err(|e| anyhow::anyhow!("rate_debit reply: {e}"))?;
            Ok(Settled {
                debt_us: u64::try_from(debt).unwrap_or(0),
                crossed: crossed == 1,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if settled.len() != debits {
        anyhow::bail!("{} debit replies for {debits} debits", settled.len());
    }
    Ok(SyncReply {
        redis_now_ms: secs * 1_000 + micros / 1_000,
        settled,
        verdicts,
        cursor,
    })
}
