//! One NATS connection policy for every service.
//!
//! Services must start, and keep serving what they can, while NATS is down: the client
//! connects in the background, reconnects forever, and retries quickly (50 ms doubling to 1 s)
//! so a restarted NATS is back in use within about a second.
//!
//! [`connect`] is the one way a service connects, and [`archive_stream`] the one definition of
//! the JetStream stream the gateway's relay fills and the worker consumes.

use crate::redact::SecretUrl;
use crate::subjects::Subjects;
use async_nats::jetstream::stream;
use std::time::Duration;

/// Why a NATS client could not be prepared. The URL shows redacted: it may carry a password.
#[derive(Debug, thiserror::Error)]
#[error("invalid NATS address {url}")]
pub struct ConnectError {
    url: SecretUrl,
    #[source]
    source: async_nats::ConnectError,
}

/// Options with the shared policy; callers add their own callbacks and timeouts.
pub fn connect_options(name: impl ToString) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(reconnect_delay)
}

/// Connects with `options` (built on [`connect_options`]) in the background: it returns at
/// once, NATS does not have to be up.
///
/// # Errors
/// When the URL is invalid.
pub async fn connect(
    url: &SecretUrl,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, ConnectError> {
    options
        .connect(url.expose())
        .await
        .map_err(|source| ConnectError {
            url: url.clone(),
            source,
        })
}

/// The archive stream's settings, the same wherever it is created: whichever of the gateway's
/// relay and the worker starts first creates it, so both must ask for the same stream. File
/// storage, because the archive must survive a NATS restart; `duplicate_window` is how long a
/// relay retry of the same `Nats-Msg-Id` is stored only once.
pub fn archive_stream(
    name: impl Into<String>,
    subjects: &Subjects,
    duplicate_window: Duration,
) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subjects.archive_all()],
        storage: stream::StorageType::File,
        duplicate_window,
        ..Default::default()
    }
}

/// Delay before reconnect attempt `attempts`: 50 ms doubling, at most 1 s.
fn reconnect_delay(attempts: usize) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempts.min(5))).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_start_fast_and_cap_at_one_second() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(50));
        assert_eq!(reconnect_delay(2), Duration::from_millis(200));
        assert_eq!(reconnect_delay(50), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn an_invalid_url_is_refused_without_showing_its_password() {
        let url = SecretUrl::from("nats://user:hunter2@[bad");
        let Err(e) = connect(&url, connect_options("t")).await else {
            panic!("an invalid URL was accepted");
        };
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("invalid NATS address"), "{e}");
    }

    #[test]
    fn the_archive_stream_captures_every_archive_subject_on_file() {
        let config = archive_stream("S", &Subjects::new("t1"), Duration::from_secs(120));
        assert_eq!(config.name, "S");
        assert_eq!(config.subjects, ["t1.archive.>"]);
        assert_eq!(config.storage, stream::StorageType::File);
        assert_eq!(config.duplicate_window, Duration::from_secs(120));
    }
}
