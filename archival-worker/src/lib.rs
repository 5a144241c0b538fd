//! The archival worker: every auction event from JetStream into PostgreSQL, exactly once.
//!
//! * [`config`]: the clap `Config`.
//! * [`consumer`]: the durable pull consumer loop (batch, transaction, ack; a refused event
//!   isolated by splitting its batch; the batch's notifications published after the commit).
//! * [`notifications`]: a user's private notifications (`outbid`, `won`, `lost`,
//!   `ending_soon`) and their frames.
//! * [`ending_soon`]: the periodic pass that notifies the auctions ending soon.
//! * [`current_state`]: the Redis reads notifications need (never the archive).
//! * [`publisher`]: notifications out on core NATS `<prefix>.user.<user_id>`.
//! * [`decode`]: what a message becomes: an event, or a dead letter with its reason.
//! * [`store`]: every SQL statement, the migrations (`migrations/`) and the batch write.
//! * [`routes`]: `/health`, `/ready`, `/metrics`, and a JSON 404 for anything else.
//! * [`metrics`]: the Prometheus registry.

pub mod config;
pub mod consumer;
pub mod current_state;
pub mod decode;
pub mod ending_soon;
pub mod metrics;
pub mod notifications;
pub mod publisher;
pub mod routes;
pub mod store;

use config::Config;
use consumer::{ConsumerSettings, Health, Notify};
use current_state::CurrentState;
use metrics::Metrics;
use publisher::Publisher;
use shared::http_server::HttpListener;
use shared::redis_connection::RedisHandle;
use shared::redis_keys::Keyspace;
use shared::subjects::Subjects;
use shared::supervisor::{Backoff, Supervisor};
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for the batch in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pauses before the consumer is started again after it ended: quick at first, capped so a
/// consumer that cannot run is retried every few seconds.
pub const RESTART: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

pub struct Application {
    listener: HttpListener,
    config: Config,
    store: Store,
    nats: async_nats::Client,
    redis: RedisHandle,
}

impl Application {
    /// Binds the listener and prepares the pool and the NATS client; neither PostgreSQL nor
    /// NATS has to be up yet.
    ///
    /// # Errors
    /// When the address cannot be bound or a URL is invalid.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = HttpListener::bind(
            "archival-worker",
            config.listen_addr,
            SHUTDOWN_GRACE,
            config.common.http.clone(),
        )
        .await?;
        let store = Store::new(
            config.database.url.expose(),
            config.database_pool_size,
            config.database_timeout(),
        )?;
        let name = format!("archival-worker-{}", std::process::id());
        let nats =
            shared::nats::connect(&config.common.nats_url, shared::nats::connect_options(name))
                .await?;
        let redis = RedisHandle::connect_lazily(&config.redis, config.redis_timeout())?;
        Ok(Self {
            listener,
            config,
            store,
            nats,
            redis,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// Runs until `shutdown`: stops consuming after the batch in flight, then returns.
    ///
    /// The consumer is supervised as task `consumer`; if it ends before shutdown it is logged,
    /// `/ready` answers 503 naming it, and it is started again after [`RESTART`]'s pause. A
    /// restart is the right fate because all of its progress lives outside it: unacked
    /// messages are redelivered by JetStream and PostgreSQL ignores events it already holds,
    /// so a fresh consumer resumes exactly where the old one stopped. Stopping the worker
    /// would only trade this for a slower restart of the whole process.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let metrics = Arc::new(Metrics::default());
        let health = Arc::new(Health::default());
        let supervisor = Supervisor::new(self.config.task_faults.clone());
        let settings = ConsumerSettings::from(&self.config);
        let notify = Notify {
            state: CurrentState::new(
                self.redis.clone(),
                Keyspace::new(self.config.redis.key_prefix.clone()),
                Arc::clone(&metrics),
            ),
            publisher: Publisher::new(
                self.nats.clone(),
                Subjects::new(self.config.common.subject_prefix.clone()),
                Arc::clone(&metrics),
            ),
        };
        supervisor.spawn_restarting("consumer", RESTART, {
            let js = async_nats::jetstream::new(self.nats.clone());
            let (store, metrics, health, notify) = (
                self.store.clone(),
                Arc::clone(&metrics),
                Arc::clone(&health),
                notify.clone(),
            );
            let stop = supervisor.shutdown_token();
            move || {
                consumer::run(
                    js.clone(),
                    store.clone(),
                    settings.clone(),
                    Arc::clone(&metrics),
                    Arc::clone(&health),
                    notify.clone(),
                    stop.clone(),
                )
            }
        });
        // Restarted like the consumer: its progress is the notifications table.
        supervisor.spawn_restarting("ending_soon", RESTART, {
            let (store, settings) = (self.store.clone(), self.config.ending_soon());
            let stop = supervisor.shutdown_token();
            move || {
                ending_soon::run(
                    notify.state.clone(),
                    store.clone(),
                    notify.publisher.clone(),
                    settings,
                    stop.clone(),
                )
            }
        });
        let state = routes::AppState {
            store: self.store,
            nats: self.nats,
            metrics,
            health,
            tasks: supervisor.health(),
        };
        // Both supervised tasks are restarted, so nothing but `shutdown` stops the worker.
        self.listener
            .serve(routes::router(state), shutdown, &supervisor)
            .await
    }
}
