//! The system under test, owned by the experiment: throwaway Redis, NATS and PostgreSQL on free
//! loopback ports (never the machine's shared ones, which other people use), and the services
//! as child processes pointed at them: two gateways, one broadcast service, one archival worker.
//!
//! [`Cluster::kill`] crashes one component (SIGKILL for the services, a crash-like stop for the
//! dependencies) and [`Cluster::restart`] brings it back on the same port with the same data, so
//! every client and every other service finds it again without being told.

use super::faults::Fault;
use crate::service::Service;
use anyhow::Context;
use std::path::PathBuf;
use testkit::{NatsServer, PostgresServer, RedisServer};

/// Outbox entries a killed gateway held unacknowledged are reclaimed by the other instance
/// after this long. The production default (30 s) would make the final drain wait that long
/// after the gateway fault; a shorter idle time changes when, not whether, entries are relayed.
const RELAY_RECLAIM_IDLE_MS: &str = "5000";
/// How often each relay looks for such entries.
const RELAY_RECLAIM_INTERVAL_MS: &str = "1000";

/// The three service binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub gateway: PathBuf,
    pub broadcast: PathBuf,
    pub worker: PathBuf,
}

/// Everything the experiment started; dropping it stops all of it.
pub struct Cluster {
    redis: RedisServer,
    nats: NatsServer,
    postgres: PostgresServer,
    /// The database the worker migrates and the gateways read history from.
    database_url: String,
    gateways: Vec<Service>,
    broadcast: Service,
    worker: Service,
}

/// Runs a blocking testkit call (they start processes and poll ports with `std::thread::sleep`)
/// without stalling the runtime's other tasks, which keep sending the load meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

impl Cluster {
    /// Starts the dependencies, a fresh database, then the services, each ready before the next.
    ///
    /// # Errors
    /// A dependency or service cannot start (missing binary, no free port, not ready in time).
    pub async fn start(bins: &Binaries) -> anyhow::Result<Self> {
        let redis = blocking(RedisServer::start_durable).context("starting Redis")?;
        let nats = blocking(NatsServer::start).context("starting NATS")?;
        let postgres = blocking(PostgresServer::start).context("starting PostgreSQL")?;
        let database_url = testkit::fresh_database(&postgres.url())
            .await
            .context("creating the database")?;
        let env = |instance: &str| {
            vec![
                ("REDIS_URL", redis.url()),
                ("NATS_URL", nats.url()),
                ("DATABASE_URL", database_url.clone()),
                ("INSTANCE_ID", instance.to_owned()),
                ("BID_RATE_PER_USER", "0".to_owned()),
                ("RELAY_RECLAIM_IDLE_MS", RELAY_RECLAIM_IDLE_MS.to_owned()),
                (
                    "RELAY_RECLAIM_INTERVAL_MS",
                    RELAY_RECLAIM_INTERVAL_MS.to_owned(),
                ),
                ("RUST_LOG", "error".to_owned()),
            ]
        };
        // Gateways first: their relay creates the archive stream the worker consumes.
        let mut gateways = Vec::with_capacity(2);
        for i in 0..2 {
            let env = env(&format!("gw-{i}"));
            let gateway = Service::start("gateway", &bins.gateway, &env).await;
            gateways.push(gateway.with_context(|| format!("starting gateway {i}"))?);
        }
        let worker = Service::start("worker", &bins.worker, &env("worker")).await;
        let worker = worker.context("starting the archival worker")?;
        let broadcast = Service::start("broadcast", &bins.broadcast, &env("broadcast")).await;
        let broadcast = broadcast.context("starting the broadcast service")?;
        Ok(Self {
            redis,
            nats,
            postgres,
            database_url,
            gateways,
            broadcast,
            worker,
        })
    }

    /// Base URLs of the two gateways.
    pub fn gateway_urls(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.url().to_owned()).collect()
    }

    /// `host:port` of the broadcast service.
    pub fn broadcast_authority(&self) -> &str {
        self.broadcast.authority()
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// Crashes `fault`'s component. The gateway fault kills the second instance; the first
    /// keeps serving.
    ///
    /// # Errors
    /// A service process cannot be killed.
    pub async fn kill(&mut self, fault: Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Nats => blocking(|| self.nats.stop()),
            Fault::Postgres => blocking(|| self.postgres.stop()),
            Fault::Redis => blocking(|| self.redis.stop()),
            Fault::Worker => self.worker.kill().await?,
            Fault::Broadcast => self.broadcast.kill().await?,
            Fault::Gateway => self.victim_gateway()?.kill().await?,
        }
        Ok(())
    }

    /// Starts `fault`'s component again on the same port and data, and waits until it accepts
    /// connections (dependencies) or answers `/ready` (services).
    ///
    /// # Errors
    /// It does not come back.
    pub async fn restart(&mut self, fault: Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Nats => blocking(|| self.nats.restart()).context("restarting NATS")?,
            Fault::Postgres => {
                blocking(|| self.postgres.restart()).context("restarting PostgreSQL")?;
            }
            Fault::Redis => blocking(|| self.redis.restart()).context("restarting Redis")?,
            Fault::Worker => self
                .worker
                .restart()
                .await
                .context("restarting the worker")?,
            Fault::Broadcast => self
                .broadcast
                .restart()
                .await
                .context("restarting the broadcast service")?,
            Fault::Gateway => self
                .victim_gateway()?
                .restart()
                .await
                .context("restarting the gateway")?,
        }
        Ok(())
    }

    /// The instance the gateway fault kills (index 1), so index 0 is the survivor.
    fn victim_gateway(&mut self) -> anyhow::Result<&mut Service> {
        self.gateways
            .get_mut(VICTIM_GATEWAY)
            .context("the cluster has no second gateway")
    }

    /// Stops the services gracefully (SIGTERM, bounded), then the dependencies.
    ///
    /// # Errors
    /// A service cannot be signalled or waited for.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Self {
            redis,
            nats,
            postgres,
            gateways,
            broadcast,
            worker,
            ..
        } = self;
        broadcast.shutdown().await?;
        for gateway in gateways {
            gateway.shutdown().await?;
        }
        worker.shutdown().await?;
        // The dependency guards stop their servers on drop, which waits for the processes.
        blocking(move || drop((redis, nats, postgres)));
        Ok(())
    }
}

/// Which gateway index the gateway fault kills.
pub const VICTIM_GATEWAY: usize = 1;
