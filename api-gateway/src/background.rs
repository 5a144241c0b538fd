//! The gateway's core background tasks and the fate of each when it ends before shutdown.
//!
//! Every task is owned by the service's [`Supervisor`]: an end or a panic is logged with the
//! task's name, `/ready` answers 503 listing it under `tasks_down` while it is down, and then
//! either the task is restarted (pauses from [`RESTART`]'s first to its max) or the gateway
//! stops (`Application::run` returns the error). The names, which tests use through
//! `Config::task_faults`, are:
//!
//! | task | fate | why |
//! |---|---|---|
//! | `live_publisher` | stop | it owns the live queue's only receiver; see [`spawn`] |
//! | `price_cache` | restart | a new subscription resumes; meanwhile the pre-filter knows less |
//! | `rate_limit_sync` | restart | the counts live in memory and Redis; meanwhile limits are local |
//! | `outbox_relay.s<n>` | restart | its progress lives in Redis and JetStream |
//! | `closer` | restart | all of its state lives in Redis |
//! | `listing_backfill` | restart | it retries inside itself; its progress lives in Redis |
//! | `accounts_migration` | restart | it retries inside itself; its work is PostgreSQL's |
//! | `suspensions` | restart | it re-reads PostgreSQL; the in-memory set keeps what it had |
//! | `redis_eviction_policy` | restart | it retries inside itself; it only reads Redis's settings |

use crate::accounts_migration;
use crate::closer;
use crate::config::Config;
use crate::eviction_policy::{self, RedisEviction};
use crate::identity_provider::IdentityProvider;
use crate::listing_backfill;
use crate::live_publisher::{self, LivePublisher};
use crate::metrics::Metrics;
use crate::outbox_relay;
use crate::price_cache::{self, PriceCache};
use crate::rate_limit::{self, AuthRules, AuthThrottle, Limiter, RateLimit};
use crate::store::Store;
use crate::store::outbox::OutboxShard;
use crate::store::rate_limits::RateLimitStore;
use crate::suspensions::{self, Suspensions};
use shared::redis_keys::Keyspace;
use shared::subjects::Subjects;
use shared::supervisor::{Backoff, Supervisor};
use std::sync::Arc;
use std::time::Duration;

/// Pauses between restarts of a task that keeps ending: quick at first, since most ends are
/// a dependency blinking, and capped so a task that cannot run is retried every few seconds.
pub const RESTART: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// How long a relay shard's `XREADGROUP` blocks waiting for new entries.
const RELAY_BLOCK: Duration = Duration::from_millis(500);

/// What the request handlers share with the background tasks.
pub struct Handles {
    pub live: Arc<LivePublisher>,
    pub prices: Arc<PriceCache>,
    pub rate_limit: Arc<RateLimit>,
    pub ip_limit: Arc<RateLimit>,
    pub auth_throttle: Arc<AuthThrottle>,
}

/// Starts every core background task under `supervisor`; each stops when the supervisor does.
pub fn spawn(
    supervisor: &Supervisor,
    config: &Config,
    nats: &async_nats::Client,
    store: &Store,
    limit_store: &Arc<RateLimitStore>,
    metrics: &Arc<Metrics>,
) -> Handles {
    let stop = supervisor.shutdown_token();
    let subjects = Subjects::new(config.common.subject_prefix.clone());

    // Stop the service: the receiver moves into the task, so once it ended every accepted
    // bid's live event would be dropped at the queue while the gateway looked healthy, and a
    // new task could not be given the queue back. The gateway is stateless and every event is
    // also in the outbox, so stopping (and being replaced) loses nothing durable, while
    // limping on would silently starve every viewer.
    let (live, queue) = LivePublisher::new(
        subjects.clone(),
        Arc::clone(metrics),
        Duration::from_millis(config.live_reorder_hold_ms),
    );
    supervisor.spawn_critical(
        "live_publisher",
        live_publisher::run(nats.clone(), queue, Arc::clone(metrics), stop.clone()),
    );

    // Restart: it folds live events into memory; a fresh subscription resumes, and while it
    // is down the pre-filter only knows this instance's own replies (bids still reach Redis).
    let prices = Arc::new(PriceCache::new(Duration::from_millis(
        config.price_prefilter_ttl_ms,
    )));
    supervisor.spawn_restarting("price_cache", RESTART, {
        let (nats, prices, stop) = (nats.clone(), Arc::clone(&prices), stop.clone());
        let subject = subjects.live_all();
        move || {
            price_cache::follow_live(
                nats.clone(),
                subject.clone(),
                Arc::clone(&prices),
                stop.clone(),
            )
        }
    });

    // Restart: the limits decide in memory whether or not it runs; while it is down they are
    // only not shared (as with the limiter's Redis down), and a new one syncs on.
    let (rate_limit, ip_limit, auth_throttle) =
        spawn_limits(supervisor, config, limit_store, metrics);

    if config.relay_enabled {
        spawn_relay(supervisor, config, nats, store, metrics, subjects);
    }

    // Restart: every due item, and every close not yet confirmed as announced, is in Redis's
    // closing sets, and the close script decides each item once, so a new closer simply picks
    // up the next tick.
    supervisor.spawn_restarting("closer", RESTART, {
        let (store, live, metrics) = (store.clone(), Arc::clone(&live), Arc::clone(metrics));
        let interval = Duration::from_millis(config.closer_interval_ms);
        let concurrency = usize::try_from(config.closer_concurrency).unwrap_or(usize::MAX);
        move || {
            closer::run(
                store.clone(),
                Arc::clone(&live),
                Arc::clone(&metrics),
                interval,
                concurrency,
                stop.clone(),
            )
        }
    });

    // Restart: the legacy set keeps whatever is not indexed yet and indexing is idempotent,
    // so a new task goes on from there. It retries Redis outages inside itself, so only a
    // panic restarts it and an outage at start never lists it under `tasks_down`.
    supervisor.spawn_restarting("listing_backfill", RESTART, {
        let (store, stop) = (store.clone(), supervisor.shutdown_token());
        move || listing_backfill::run(store.clone(), RESTART, stop.clone())
    });

    Handles {
        live,
        prices,
        rate_limit,
        ip_limit,
        auth_throttle,
    }
}

/// The bid and per-address limits, their sync task, and the sign-in throttle.
fn spawn_limits(
    supervisor: &Supervisor,
    config: &Config,
    limit_store: &Arc<RateLimitStore>,
    metrics: &Arc<Metrics>,
) -> (Arc<RateLimit>, Arc<RateLimit>, Arc<AuthThrottle>) {
    let limits = &config.limits;
    let bids = rate_limit::quota(config.bid_rate_per_user, config.bid_burst_per_user);
    let bids = Arc::new(RateLimit::new("bid", bids, metrics));
    let addresses = rate_limit::quota(limits.ip_rate_per_sec, limits.ip_burst);
    let addresses = Arc::new(RateLimit::new("ip", addresses, metrics));
    let limiter = Arc::new(Limiter::new(
        vec![Arc::clone(&bids), Arc::clone(&addresses)],
        Arc::clone(limit_store),
        config.instance_id.clone(),
        Arc::clone(metrics),
    ));
    let (every, stop) = (limits.sync_interval(), supervisor.shutdown_token());
    supervisor.spawn_restarting("rate_limit_sync", RESTART, move || {
        rate_limit::limiter::run(Arc::clone(&limiter), every, stop.clone())
    });
    let rules = AuthRules {
        failures_per_login: limits.login_failures_per_account,
        failure_window: limits.login_failure_window(),
        attempts_per_address: limits.auth_attempts_per_ip_per_minute,
    };
    let throttle = AuthThrottle::new(Arc::clone(limit_store), rules, Arc::clone(metrics));
    (bids, addresses, Arc::new(throttle))
}

/// Reads Redis's `maxmemory-policy` at start and every minute (see [`eviction_policy`]).
///
/// Restart: it keeps nothing but the reading it shows, which a new one reads again. It retries
/// Redis outages itself (without ending), so only a panic ever restarts it: an evicting policy
/// is warned about, never a reason for `/ready` to fail.
pub fn spawn_eviction_policy(
    supervisor: &Supervisor,
    store: &Store,
    eviction: &Arc<RedisEviction>,
    metrics: &Arc<Metrics>,
) {
    let (store, eviction, metrics) = (store.clone(), Arc::clone(eviction), Arc::clone(metrics));
    let stop = supervisor.shutdown_token();
    supervisor.spawn_restarting("redis_eviction_policy", RESTART, move || {
        eviction_policy::run(
            store.clone(),
            Arc::clone(&eviction),
            Arc::clone(&metrics),
            RESTART,
            stop.clone(),
        )
    });
}

/// Migrates the accounts schema, when this gateway keeps accounts (not with an external
/// issuer).
///
/// Restart: a migration runs in one transaction under an advisory lock, so an attempt cut
/// short left nothing behind and a new one starts over. The task retries PostgreSQL outages
/// itself (without ending), so only a panic ever restarts it, and an outage never lists it
/// under `tasks_down`, which would make the gateway unready for a dependency bids do not use.
pub fn spawn_accounts_migration(supervisor: &Supervisor, identity: &IdentityProvider) {
    let Some(local) = identity.local() else {
        return;
    };
    let accounts = local.sessions.accounts().clone();
    let status = local.status.clone();
    let stop = supervisor.shutdown_token();
    supervisor.spawn_restarting("accounts_migration", RESTART, move || {
        accounts_migration::run(accounts.clone(), status.clone(), RESTART, stop.clone())
    });
}

/// Follows the suspended accounts (when this gateway keeps accounts: with an external issuer
/// the set stays empty).
///
/// Restart: the task retries failed reads inside itself, so only a panic ends it; a new one
/// loads every suspended account again, and meanwhile the set keeps what it had.
pub fn spawn_suspensions(
    supervisor: &Supervisor,
    config: &Config,
    identity: &IdentityProvider,
    nats: &async_nats::Client,
    suspensions: &Arc<Suspensions>,
) {
    let Some(local) = identity.local() else {
        return;
    };
    let accounts = local.sessions.accounts().clone();
    let status = local.status.clone();
    let subject = Subjects::new(config.common.subject_prefix.clone()).suspensions();
    let interval = config.auth.suspension_poll();
    let (nats, suspensions, stop) = (
        nats.clone(),
        Arc::clone(suspensions),
        supervisor.shutdown_token(),
    );
    supervisor.spawn_restarting("suspensions", RESTART, move || {
        suspensions::follow(
            accounts.clone(),
            status.clone(),
            Arc::clone(&suspensions),
            nats.clone(),
            subject.clone(),
            interval,
            stop.clone(),
        )
    });
}

/// One relay task per outbox shard.
///
/// Restart: a shard's progress lives in Redis (entries stay pending until JetStream acked
/// them) and JetStream drops repeats within its duplicate window, so a new reader, with a
/// new connection, reads its own pending entries first and carries on.
fn spawn_relay(
    supervisor: &Supervisor,
    config: &Config,
    nats: &async_nats::Client,
    store: &Store,
    metrics: &Arc<Metrics>,
    subjects: Subjects,
) {
    let relay = Arc::new(outbox_relay::Relay::new(
        async_nats::jetstream::new(nats.clone()),
        subjects,
        config.archive.stream.clone(),
        Duration::from_secs(config.archive.duplicate_window_secs),
        usize::from(config.archive.replicas),
        config.relay_batch,
        Duration::from_millis(config.relay_reclaim_idle_ms),
        Duration::from_millis(config.relay_reclaim_interval_ms),
        Arc::clone(metrics),
    ));
    for shard in Keyspace::shards() {
        let stream = store.keys().outbox(shard);
        let redis = config.redis.clone();
        let consumer = config.instance_id.clone();
        let (relay, stop) = (Arc::clone(&relay), supervisor.shutdown_token());
        supervisor.spawn_restarting(format!("outbox_relay.s{shard}"), RESTART, move || {
            let reader = OutboxShard::new(&redis, stream.clone(), consumer.clone(), RELAY_BLOCK);
            let (relay, stop) = (Arc::clone(&relay), stop.clone());
            async move {
                match reader {
                    Ok(reader) => outbox_relay::run_shard(relay, reader, stop).await,
                    // The store already opened this URL, so this is not expected; the
                    // supervisor logs the end and retries.
                    Err(e) => tracing::error!(error = %e, "cannot open the outbox reader"),
                }
            }
        });
    }
}
