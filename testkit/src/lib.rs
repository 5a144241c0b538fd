//! Test support shared by the services' integration tests.
//!
//! * [`server`]: throwaway Redis and NATS (JetStream) servers on free loopback ports, in temp
//!   dirs, stopped by a `Drop` guard. Tests that kill a dependency use these, never the shared
//!   machine-wide instances.
//! * [`wait_until`]: poll an observable fact until a deadline instead of sleeping.
//! * [`unique_id`]: per-test identifiers so tests sharing a Redis never collide.

pub mod server;

use std::future::Future;
use std::time::{Duration, Instant};

pub use server::{NatsServer, RedisServer};

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
