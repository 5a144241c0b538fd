//! Test support shared by the services' integration tests.
//!
//! * [`server`]: throwaway Redis and NATS (JetStream) servers on free loopback ports, in temp
//!   dirs, stopped by a `Drop` guard (and PostgreSQL clusters). Tests that kill a dependency use these, never the shared
//!   machine-wide instances.
//! * [`cluster`]: the local cluster of `infrastructure/local/cluster.sh` (a 3+3 Redis Cluster,
//!   or the whole topology) in a temp dir, its processes killed and restarted by pid file.
//! * [`tls`]: a throwaway CA and the server certificates it signs, for the TLS servers above.
//! * [`wait_until`]: poll an observable fact until a deadline instead of sleeping.
//! * [`unique_id`]: per-test identifiers so tests sharing a Redis never collide.
//!
//! With the `services` feature, for the services' integration tests:
//!
//! * [`service`]: a service started in-process through its `Application`, and the HTTP calls
//!   tests make to it; [`reply`]: its answers and the checks made on them.
//! * [`isolation`]: one test's own Redis key prefix, subject prefix and stream.
//! * [`gateway`]: a real gateway with typed requests (create an item, bid, admin actions),
//!   which every service's tests use to produce real events.

pub mod cluster;
#[cfg(feature = "services")]
pub mod gateway;
#[cfg(feature = "services")]
pub mod isolation;
#[cfg(feature = "services")]
pub mod reply;
pub mod server;
#[cfg(feature = "services")]
pub mod service;
pub mod tls;

use std::future::Future;
use std::time::{Duration, Instant};

pub use server::{NatsServer, PostgresServer, RedisServer, TlsRedisServer};
pub use tls::{ServerCert, TestCa};

/// The shared Redis every ordinary test uses (the machine's, or the one `make test` started).
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The shared NATS with JetStream.
pub const SHARED_NATS_URL: &str = "nats://127.0.0.1:4222";

/// A fresh identifier `<prefix>-<uuid simple>` trimmed to 64 characters.
pub fn unique_id(prefix: &str) -> String {
    let mut id = format!("{prefix}-{}", uuid::Uuid::now_v7().simple());
    id.truncate(64);
    id
}

/// Polls `check` every 20 ms until it returns `Some`, or fails after `timeout`.
///
/// # Errors
/// When the deadline passes; the message names `what` was awaited.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `sample` every 50 ms until `ready` holds for it and it has stayed equal for `quiet`,
/// then returns it; fails after `timeout`.
///
/// Exactly-once checks use this: comparing as soon as a count is reached would pass a run
/// whose duplicates arrive a moment later, so they wait for the value to settle first.
///
/// # Errors
/// When the deadline passes; the message names `what` was awaited.
pub async fn wait_quiescent<T, F, Fut>(
    timeout: Duration,
    quiet: Duration,
    what: &str,
    mut sample: F,
    ready: impl Fn(&T) -> bool,
) -> anyhow::Result<T>
where
    T: PartialEq,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + timeout;
    let mut settled: Option<(T, Instant)> = None;
    loop {
        let value = sample().await;
        let now = Instant::now();
        settled = match settled {
            Some((last, since)) if last == value => Some((last, since)),
            _ => Some((value, now)),
        };
        if let Some((value, since)) = &settled
            && ready(value)
            && now.duration_since(*since) >= quiet
        {
            return Ok(settled.expect("just set").0);
        }
        if now >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what} to settle");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shared PostgreSQL's maintenance database, used to create per-test databases.
pub const SHARED_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Creates an empty database with a unique name on the PostgreSQL at `admin_url` and returns
/// its URL, so every test migrates and uses its own schema.
///
/// # Errors
/// When PostgreSQL is unreachable.
pub async fn fresh_database(admin_url: &str) -> anyhow::Result<String> {
    let name = unique_id("t").replace('-', "_");
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("create database \"{name}\""))
        .await?;
    drop(client);
    let _ = connection.await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}
