//! One test's private corner of the shared Redis and NATS: its own Redis key prefix, NATS
//! subject prefix and JetStream stream, so tests run side by side on the machine's servers (or
//! on throwaway ones when they kill a dependency) without seeing each other's items, events,
//! presence or archive.

use crate::unique_id;
use shared::service_options::{ArchiveOptions, CommonOptions, RedisOptions};
use std::future::Future;
use std::time::Duration;

/// Where one test's services connect, and the names only they use.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub redis_url: String,
    pub nats_url: String,
    /// `<tag>:`
    pub key_prefix: String,
    /// `<tag>`: subjects are `<tag>.live.<item>`, `<tag>.archive.<item>`, ...
    pub subject_prefix: String,
    /// `<TAG>`
    pub stream: String,
}

impl Isolation {
    /// A fresh tag on these servers.
    pub fn new(redis_url: &str, nats_url: &str) -> Self {
        // Subject tokens and stream names allow no '-'.
        let tag = unique_id("t").replace('-', "");
        Self {
            redis_url: redis_url.to_owned(),
            nats_url: nats_url.to_owned(),
            key_prefix: format!("{tag}:"),
            stream: tag.to_uppercase(),
            subject_prefix: tag,
        }
    }

    /// A fresh tag on the machine's shared Redis and NATS.
    pub fn shared() -> Self {
        Self::new(crate::SHARED_REDIS_URL, crate::SHARED_NATS_URL)
    }

    /// Points a service's shared options at this test's servers and names: NATS and the
    /// subject prefix always, Redis and the stream for the services that have them.
    pub fn isolate(
        &self,
        common: &mut CommonOptions,
        redis: Option<&mut RedisOptions>,
        archive: Option<&mut ArchiveOptions>,
    ) {
        common.nats_url = self.nats_url.as_str().into();
        common.subject_prefix = self.subject_prefix.clone();
        if let Some(redis) = redis {
            redis.url = self.redis_url.as_str().into();
            redis.key_prefix = self.key_prefix.clone();
        }
        if let Some(archive) = archive {
            archive.stream = self.stream.clone();
        }
    }

    /// Deletes every Redis key under this test's prefix (best effort).
    pub async fn delete_redis_keys(&self) {
        let Ok(client) = redis::Client::open(self.redis_url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.key_prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<u64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }

    /// [`Isolation::delete_redis_keys`] from a `Drop`.
    pub fn delete_redis_keys_now(&self) {
        let isolation = self.clone();
        finish_on_own_thread(async move { isolation.delete_redis_keys().await });
    }
}

/// Deletes a test's JetStream stream (best effort): streams outlive the test otherwise.
pub async fn delete_stream(nats_url: &str, stream: &str) {
    if let Ok(client) = async_nats::connect(nats_url).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(stream)
            .await;
    }
}

/// [`delete_stream`] from a `Drop`.
pub fn delete_stream_now(nats_url: String, stream: String) {
    finish_on_own_thread(async move { delete_stream(&nats_url, &stream).await });
}

/// Runs a cleanup from a `Drop` to its end, within a few seconds: on a thread and runtime of
/// its own, because a `Drop` cannot await and blocking the test's runtime on itself would
/// deadlock.
fn finish_on_own_thread(cleanup: impl Future<Output = ()> + Send + 'static) {
    let cleaning = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(5), cleanup).await;
        });
    });
    let _ = cleaning.join();
}
