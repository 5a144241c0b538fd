//! One NATS connection policy for every service.
//!
//! Services must start, and keep serving what they can, while NATS is down: the client
//! connects in the background, reconnects forever, and retries quickly (50 ms doubling to 1 s)
//! so a restarted NATS is back in use within about a second.
//!
//! [`connect`] is the one way a service connects (`NATS_URL` may list several comma-separated
//! servers of one cluster: the client picks one and fails over to the others), and
//! [`archive_stream`] the one definition of the JetStream stream the gateway's relay fills and
//! the worker consumes.

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
        .connect(servers(url))
        .await
        .map_err(|source| ConnectError {
            url: url.clone(),
            source,
        })
}

/// The servers `url` lists (one, or several comma-separated of one cluster).
fn servers(url: &SecretUrl) -> Vec<&str> {
    url.expose()
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .collect()
}

/// How long the archive keeps an event: far past any worker outage it must ride out (the
/// worker acks within seconds), and a bound on the disk an unattended stream takes.
pub const ARCHIVE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most events the archive keeps (at about 500 bytes each, some 50 GB); past it the oldest go.
pub const ARCHIVE_MAX_MESSAGES: i64 = 100_000_000;
/// Largest event the archive takes (events are well under a kilobyte; text fields are capped).
pub const ARCHIVE_MAX_MESSAGE_SIZE: i32 = 1024 * 1024;

/// The archive stream's settings, the same wherever it is created: whichever of the gateway's
/// relay and the worker starts first creates it, so both must ask for the same stream.
///
/// * File storage, because the archive must survive a NATS restart.
/// * `duplicate_window`: how long a relay retry of the same `Nats-Msg-Id` is stored only once;
///   the gateway refuses to start with one shorter than its relay's worst redelivery.
/// * `replicas` (`JETSTREAM_REPLICAS`): 1 on one server, 3 on a three-node cluster, so the
///   stream stays available and loses nothing when one node dies.
/// * Explicit limits instead of the server's unlimited defaults: [`ARCHIVE_MAX_AGE`],
///   [`ARCHIVE_MAX_MESSAGES`], [`ARCHIVE_MAX_MESSAGE_SIZE`], discarding the oldest events
///   (long since in PostgreSQL) when full. No byte limit: JetStream reserves a stream's byte
///   limit against the server's storage up front, which would refuse streams on a small disk.
pub fn archive_stream(
    name: impl Into<String>,
    subjects: &Subjects,
    duplicate_window: Duration,
    replicas: usize,
) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subjects.archive_all()],
        storage: stream::StorageType::File,
        duplicate_window,
        num_replicas: replicas,
        max_age: ARCHIVE_MAX_AGE,
        max_messages: ARCHIVE_MAX_MESSAGES,
        max_message_size: ARCHIVE_MAX_MESSAGE_SIZE,
        discard: stream::DiscardPolicy::Old,
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
        let config = archive_stream("S", &Subjects::new("t1"), Duration::from_secs(120), 3);
        assert_eq!(config.name, "S");
        assert_eq!(config.subjects, ["t1.archive.>"]);
        assert_eq!(config.storage, stream::StorageType::File);
        assert_eq!(config.duplicate_window, Duration::from_secs(120));
        assert_eq!(config.num_replicas, 3);
    }

    #[test]
    fn the_archive_stream_has_explicit_limits() {
        let config = archive_stream("S", &Subjects::new("t1"), Duration::from_secs(120), 1);
        assert_eq!(config.max_age, ARCHIVE_MAX_AGE);
        assert_eq!(config.max_messages, ARCHIVE_MAX_MESSAGES);
        assert_eq!(config.max_message_size, ARCHIVE_MAX_MESSAGE_SIZE);
        assert_eq!(config.discard, stream::DiscardPolicy::Old);
    }

    #[test]
    fn a_server_list_is_split_on_commas() {
        let url = SecretUrl::from("nats://a:4222, nats://b:4222,,nats://c:4222");
        assert_eq!(
            servers(&url),
            ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
        assert_eq!(
            servers(&SecretUrl::from("nats://a:4222")),
            ["nats://a:4222"]
        );
    }
}
