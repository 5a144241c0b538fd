//! The auction platform's stateless HTTP gateway.
//!
//! A bid is one atomic Lua script on Redis that validates it, applies it, bumps the item's
//! `seq` and appends the event to an outbox stream; the gateway then publishes the event on
//! core NATS for viewers, and its outbox relay moves the outbox to JetStream for the archive.
//!
//! * [`auth`]: accounts, passwords, access and refresh tokens, JWKS (no HTTP in it).
//! * [`identity_provider`]: who signs or is trusted, built from the configuration.
//! * [`suspensions`]: the suspended accounts in memory, and the task that follows them.
//! * [`bidder_pseudonyms`]: how the public bid history names bidders.
//! * [`promote_admin`]: the `promote-admin` subcommand (the first admin).
//! * [`accounts_migration`]: the accounts schema migrated in the background, and its status.
//! * [`config`]: the clap `Config`.
//! * [`error`]: `ApiError`, the one error type of the API.
//! * [`routes`]: HTTP handlers, one module per resource, and the verified-token cache.
//! * [`store`]: every Redis call and the Lua scripts (`scripts/`).
//! * [`live_publisher`]: ordered, never-blocking publishing on `auction.live.<item>`.
//! * [`price_cache`]: the local price pre-filter.
//! * [`rate_limit`]: the limits shared by every instance (bids per user, requests per address)
//!   and the sign-in throttle (429), and whom a request counts against.
//! * [`read_model`]: history and statistics reads from PostgreSQL (archival-worker's schema).
//! * [`closer`]: closes auctions at their end time, exactly once across instances.
//! * [`listing_backfill`]: fills the listing sets from the legacy `items:index` at start.
//! * [`eviction_policy`]: whether Redis may evict keys (`maxmemory-policy`), warned about.
//! * [`outbox_relay`]: outbox → JetStream, with reclaim of a crashed instance's entries.
//! * [`background`]: the core background tasks and what happens when one ends.
//! * [`metrics`]: the Prometheus registry.

pub mod accounts_migration;
pub mod auth;
pub mod background;
pub mod bidder_pseudonyms;
pub mod closer;
pub mod config;
pub mod error;
pub mod eviction_policy;
pub mod identity_provider;
pub mod listing_backfill;
pub mod live_publisher;
pub mod metrics;
pub mod outbox_relay;
pub mod price_cache;
pub mod promote_admin;
pub mod rate_limit;
pub mod read_model;
pub mod routes;
pub mod store;
pub mod suspensions;

use anyhow::Context;
use config::Config;
use identity_provider::IdentityProvider;
use metrics::Metrics;
use shared::http_server::HttpListener;
use shared::redis_connection::RedisTopology;
use shared::redis_keys::Keyspace;
use shared::supervisor::Supervisor;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use store::rate_limits::RateLimitStore;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for background tasks (relay batches, live queue) to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a JetStream request (the relay's publish acknowledgement) may take.
const NATS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A built gateway: listener bound, clients prepared, nothing running yet.
pub struct Application {
    listener: HttpListener,
    config: Arc<Config>,
    nats: async_nats::Client,
    store: Store,
    limit_store: Arc<RateLimitStore>,
    read_model: read_model::ReadModel,
    identity: IdentityProvider,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Binds the listener and prepares the Redis, NATS and PostgreSQL clients and the token
    /// keys. No dependency has to be up: requests get 503 until Redis answers, live events
    /// wait for NATS, and the auth routes answer 503 until the accounts schema is migrated.
    ///
    /// # Errors
    /// When the address cannot be bound, a URL is invalid, or the signing key cannot be read
    /// or is not an Ed25519 PKCS#8 PEM (the message names the flag).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        warn_if_open(config.auth.auth_mode);
        let identity = IdentityProvider::from_config(&config)?;
        let worst_redelivery = outbox_relay::worst_redelivery(
            Duration::from_millis(config.relay_reclaim_idle_ms),
            Duration::from_millis(config.relay_reclaim_interval_ms),
            NATS_REQUEST_TIMEOUT,
        );
        if Duration::from_secs(config.archive.duplicate_window_secs) < worst_redelivery {
            anyhow::bail!(
                "--archive-duplicate-window-secs ({}) is shorter than the relay's worst \
                 redelivery ({} s: RELAY_RECLAIM_IDLE_MS + RELAY_RECLAIM_INTERVAL_MS + backoff + \
                 publish timeout); JetStream would store a reclaimed entry twice",
                config.archive.duplicate_window_secs,
                worst_redelivery.as_secs_f64().ceil()
            );
        }
        let listener = HttpListener::bind(
            "api-gateway",
            config.listen_addr,
            SHUTDOWN_GRACE,
            config.common.http.clone(),
        )
        .await?;
        let store = Store::new(
            &config.redis,
            Keyspace::new(config.redis.key_prefix.clone()),
            config.redis_timeout(),
        )
        .context("invalid REDIS_URL")?;
        // The limits' own connection (see `store::rate_limits`), to the auctions' Redis unless
        // configured otherwise (with the same key prefix and CA file).
        let mut limit_redis = config.redis.clone();
        if let Some(url) = &config.limits.rate_limit_redis_url {
            limit_redis.url = url.clone();
        }
        let limit_store = RateLimitStore::new(
            &limit_redis,
            Keyspace::new(config.redis.key_prefix.clone()),
            config.redis_timeout(),
        )
        .context("invalid RATE_LIMIT_REDIS_URL")?;
        let metrics = Arc::new(Metrics::default());
        let store = match config.redis_strategy {
            config::RedisStrategy::Lua => store,
            // `WATCH` needs every command of an attempt on one server connection; a cluster
            // connection routes each by key and may reconnect between them.
            config::RedisStrategy::Optimistic
                if RedisTopology::of(&config.redis) == RedisTopology::Cluster =>
            {
                anyhow::bail!(
                    "--redis-strategy optimistic needs a single Redis server, but REDIS_URL \
                     lists a cluster; use --redis-strategy lua"
                )
            }
            config::RedisStrategy::Optimistic => {
                store.with_optimistic_bids(&config.redis, 64, metrics.optimistic_retries.clone())?
            }
        };
        if config.durable_accept && config.redis_strategy == config::RedisStrategy::Optimistic {
            anyhow::bail!(
                "--durable-accept waits on the scripts' writes: use --redis-strategy lua"
            );
        }
        let store = if config.durable_accept {
            store.with_durable_accept(Duration::from_millis(config.durable_accept_timeout_ms))
        } else {
            store
        };
        // In the background: the gateway starts, and accepts bids, while NATS is down.
        let nats = shared::nats::connect(
            &config.common.nats_url,
            shared::nats::connect_options(&config.instance_id)
                .request_timeout(Some(NATS_REQUEST_TIMEOUT)),
        )
        .await?;
        let read_model = read_model::ReadModel::new(
            config.database.url.expose(),
            Duration::from_millis(config.database_timeout_ms),
        )?;
        Ok(Self {
            listener,
            config: Arc::new(config),
            nats,
            store,
            limit_store: Arc::new(limit_store),
            read_model,
            identity,
            metrics,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, finishes in-flight
    /// requests, drains the live queue, lets each relay finish its batch, and returns.
    /// Background tasks stop only after the HTTP server has drained, so no accepted bid's
    /// live event is left behind.
    ///
    /// A background task that ends early is restarted, or it stops the gateway in the same
    /// order as `shutdown` does (see [`background`] for which and why).
    ///
    /// # Errors
    /// When the server fails, or a background task whose end stops the gateway ended.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let supervisor = Supervisor::new(self.config.task_faults.clone());
        let handles = background::spawn(
            &supervisor,
            &self.config,
            &self.nats,
            &self.store,
            &self.limit_store,
            &self.metrics,
        );
        background::spawn_accounts_migration(&supervisor, &self.identity);
        let redis_eviction = Arc::new(eviction_policy::RedisEviction::default());
        background::spawn_eviction_policy(&supervisor, &self.store, &redis_eviction, &self.metrics);
        let suspensions = Arc::new(suspensions::Suspensions::default());
        background::spawn_suspensions(
            &supervisor,
            &self.config,
            &self.identity,
            &self.nats,
            &suspensions,
        );
        let state = routes::AppState {
            config: Arc::clone(&self.config),
            store: self.store,
            nats: self.nats,
            live: handles.live,
            prices: handles.prices,
            rate_limit: handles.rate_limit,
            ip_limit: handles.ip_limit,
            auth_throttle: handles.auth_throttle,
            proxies: Arc::new(self.config.limits.trusted_proxies.clone()),
            read_model: self.read_model,
            identity: self.identity,
            verified_tokens: Arc::new(routes::verified_tokens::VerifiedTokens::default()),
            suspensions,
            metrics: self.metrics,
            redis_eviction,
            tasks: supervisor.health(),
        };
        self.listener
            .serve(routes::router(state), shutdown, &supervisor)
            .await
    }
}

/// `--auth-mode open` takes bids without a token: say so loudly at every start, so nobody runs
/// it by accident.
fn warn_if_open(mode: config::AuthMode) {
    if mode == config::AuthMode::Open {
        tracing::warn!(
            auth_mode = "open",
            "AUTH_MODE=open: bids without an access token are taken as their body's user_id \
             says, so anyone can bid as anyone. Only for the original system's clients and \
             comparisons; never in production. Item creation and admin actions still need tokens."
        );
    }
}
