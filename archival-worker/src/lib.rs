//! The archival worker: every auction event from JetStream into PostgreSQL, exactly once.
//!
//! * [`config`]: the clap `Config`.
//! * [`consumer`]: the durable pull consumer loop (batch, transaction, ack; dead letters).
//! * [`store`]: every SQL statement, the migrations (`migrations/`) and the batch write.
//! * [`routes`]: `/health`, `/ready`, `/metrics`.
//! * [`metrics`]: the Prometheus registry.

pub mod config;
pub mod consumer;
pub mod metrics;
pub mod routes;
pub mod store;

use anyhow::Context;
use config::Config;
use consumer::{ConsumerSettings, Health};
use metrics::Metrics;
use shared::subjects::Subjects;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for the batch in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Application {
    listener: TcpListener,
    config: Config,
    store: Store,
    nats: async_nats::Client,
}

impl Application {
    /// Binds the listener and prepares the pool and the NATS client; neither PostgreSQL nor
    /// NATS has to be up yet.
    ///
    /// # Errors
    /// When the address cannot be bound or a URL is invalid.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {}", config.listen_addr))?;
        let store = Store::new(
            &config.database_url,
            config.database_pool_size,
            config.database_timeout(),
        )?;
        let nats = shared::nats::connect_options(format!("archival-worker-{}", std::process::id()))
            .connect(config.nats_url.as_str())
            .await
            .with_context(|| format!("invalid NATS address {}", config.nats_url))?;
        Ok(Self {
            listener,
            config,
            store,
            nats,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Runs until `shutdown`: stops consuming after the batch in flight, then returns.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener,
            config,
            store,
            nats,
        } = self;
        let metrics = Arc::new(Metrics::default());
        let health = Arc::new(Health::default());
        let tasks = TaskTracker::new();
        let settings = ConsumerSettings {
            stream: config.archive_stream.clone(),
            subjects: Subjects::new(config.subject_prefix.clone()),
            consumer_name: config.consumer_name.clone(),
            batch_size: config.batch_size,
            batch_wait: Duration::from_millis(config.batch_wait_ms),
            ack_wait: Duration::from_secs(config.ack_wait_secs),
        };
        tasks.spawn(consumer::run(
            async_nats::jetstream::new(nats.clone()),
            store.clone(),
            settings,
            Arc::clone(&metrics),
            Arc::clone(&health),
            shutdown.clone(),
        ));
        let ctx = routes::HttpContext {
            store,
            nats,
            metrics,
            health,
        };
        tracing::info!(addr = %listener.local_addr()?, "archival-worker listening");
        let served = axum::serve(listener, routes::router(ctx))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("HTTP server failed");
        tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("the batch in flight did not finish within {SHUTDOWN_GRACE:?}");
        }
        tracing::info!("archival-worker stopped");
        served
    }
}
