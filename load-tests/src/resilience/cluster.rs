//! The system under test, owned by the experiment: throwaway Redis, NATS and PostgreSQL on free
//! ports (never the shared ones), two gateways, one broadcast service and one archival worker.
//! [`Cluster::kill`] crashes one component and [`Cluster::restart`] brings it back on the same
//! port with the same data, so every client and service finds it again without being told.

use super::ResilienceArgs;
use super::faults::Fault;
use crate::service::{Service, Stores};
use anyhow::Context;
use testkit::{NatsServer, PostgresServer, RedisServer};

/// Which gateway index the gateway fault kills; index 0 is the survivor.
pub const VICTIM_GATEWAY: usize = 1;

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
    /// Starts the dependencies (Redis durable: an append-only file written before each reply),
    /// a fresh database, then the services, each ready before the next.
    ///
    /// # Errors
    /// A dependency or service cannot start (missing binary, no free port, not ready in time).
    pub async fn start(bins: &ResilienceArgs) -> anyhow::Result<Self> {
        let redis = blocking(RedisServer::start_durable).context("starting Redis")?;
        let nats = blocking(NatsServer::start).context("starting NATS")?;
        let postgres = blocking(PostgresServer::start).context("starting PostgreSQL")?;
        let database_url = testkit::fresh_database(&postgres.url()).await;
        let database_url = database_url.context("creating the database")?;
        let stores = Stores {
            redis_url: redis.url(),
            nats_url: nats.url(),
            database_url: Some(database_url.clone()),
            replicas: 1,
        };
        let start = async |role, binary, instance: &str| {
            let mut env = stores.env();
            env.extend([
                ("INSTANCE_ID", instance.to_owned()),
                // Outbox entries a killed gateway held are reclaimed by the other after this
                // long. The production 30 s would make the final drain wait that long after
                // the gateway fault; a shorter idle time changes when, not whether, they go.
                ("RELAY_RECLAIM_IDLE_MS", "5000".to_owned()),
                ("RELAY_RECLAIM_INTERVAL_MS", "1000".to_owned()),
                ("RUST_LOG", "error".to_owned()),
            ]);
            let service = Service::start(role, binary, &env).await;
            service.with_context(|| format!("starting {instance}"))
        };
        // Gateways first: their relay creates the archive stream the worker consumes.
        let gateways = vec![
            start("gateway", &bins.binaries.gateway_bin, "gw-0").await?,
            start("gateway", &bins.binaries.gateway_bin, "gw-1").await?,
        ];
        let worker = start("worker", &bins.worker_bin, "worker").await?;
        let broadcast = start("broadcast", &bins.binaries.broadcast_bin, "broadcast").await?;
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

    /// The service process `fault` kills (the gateway fault kills [`VICTIM_GATEWAY`]).
    fn service(&mut self, fault: Fault) -> anyhow::Result<&mut Service> {
        match fault {
            Fault::Worker => Ok(&mut self.worker),
            Fault::Broadcast => Ok(&mut self.broadcast),
            Fault::Gateway => self
                .gateways
                .get_mut(VICTIM_GATEWAY)
                .context("no second gateway"),
            Fault::Nats | Fault::Postgres | Fault::Redis => {
                anyhow::bail!("{fault:?} is no service")
            }
        }
    }

    /// Crashes `fault`'s component.
    ///
    /// # Errors
    /// A service process cannot be killed.
    pub async fn kill(&mut self, fault: Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Nats => blocking(|| self.nats.stop()),
            Fault::Postgres => blocking(|| self.postgres.stop()),
            Fault::Redis => blocking(|| self.redis.stop()),
            Fault::Worker | Fault::Broadcast | Fault::Gateway => {
                self.service(fault)?.kill().await?
            }
        }
        Ok(())
    }

    /// Starts `fault`'s component again on the same port and data, and waits until it accepts
    /// connections (dependencies) or answers `/ready` (services).
    ///
    /// # Errors
    /// It does not come back.
    pub async fn restart(&mut self, fault: Fault) -> anyhow::Result<()> {
        let restarted = match fault {
            Fault::Nats => blocking(|| self.nats.restart()),
            Fault::Postgres => blocking(|| self.postgres.restart()),
            Fault::Redis => blocking(|| self.redis.restart()),
            Fault::Worker | Fault::Broadcast | Fault::Gateway => {
                self.service(fault)?.restart().await
            }
        };
        restarted.with_context(|| format!("restarting {}", fault.name()))
    }

    /// Stops the services gracefully (SIGTERM, bounded), then the dependencies.
    ///
    /// # Errors
    /// A service cannot be signalled or waited for.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let services = [self.broadcast]
            .into_iter()
            .chain(self.gateways)
            .chain([self.worker]);
        for service in services {
            service.shutdown().await?;
        }
        // The dependency guards stop their servers on drop, which waits for the processes.
        let dependencies = (self.redis, self.nats, self.postgres);
        blocking(move || drop(dependencies));
        Ok(())
    }
}
