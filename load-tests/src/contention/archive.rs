//! The outbox check: every bid a strategy accepted reaches its run's own JetStream stream
//! exactly once.
//!
//! Each strategy's gateway publishes to a stream nobody else writes (`ARCHIVE_STREAM` is
//! per run) and no worker consumes, and only accepted bids put events in the outbox here
//! (items end long after the run), so the stream's message count must come to exactly the
//! number of bids accepted. The relay drains asynchronously, so the count is polled until it
//! matches or a bounded wait runs out; a count above the expected one fails at once.

use crate::archive::{delete_stream, stream_messages};
use serde::Serialize;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// How often the stream's message count is read while waiting.
const POLL: Duration = Duration::from_millis(200);

/// The stream's count against the accepted bids.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveCheck {
    pub stream: String,
    /// Bids accepted over every run against this gateway.
    pub expected: u64,
    /// Messages the stream held when the wait ended.
    pub found: u64,
    /// How long it took the count to match (or the whole wait when it did not).
    pub waited_secs: f64,
}

impl ArchiveCheck {
    /// The violation to list when the count does not match.
    pub fn violation(&self) -> Option<String> {
        let Self {
            stream,
            expected,
            found,
            waited_secs,
        } = self;
        (expected != found).then(|| {
            format!(
                "JetStream stream {stream} holds {found} messages after {waited_secs:.1} s, \
                 {expected} bids were accepted"
            )
        })
    }
}

/// Waits up to `wait` until `stream` holds `expected` messages, then deletes the stream
/// (it belongs to this run only).
///
/// # Errors
/// NATS cannot be reached or the stream cannot be read once the wait is over.
pub async fn wait_for_archive(
    nats_url: &str,
    stream: &str,
    expected: u64,
    wait: Duration,
) -> anyhow::Result<ArchiveCheck> {
    let started = Instant::now();
    let found = loop {
        let found = match stream_messages(nats_url, stream).await {
            Ok(found) => found,
            // The relay creates the stream when the gateway starts; until then it holds nothing.
            Err(_) if started.elapsed() < wait => 0,
            Err(e) => return Err(e),
        };
        if found >= expected || started.elapsed() >= wait {
            break found;
        }
        sleep(POLL).await;
    };
    let waited_secs = crate::figures::round_to(started.elapsed().as_secs_f64(), 2);
    if let Err(e) = delete_stream(nats_url, stream).await {
        // The figures are complete; a leftover stream is worth a warning, not the run.
        tracing::warn!(stream, error = %format!("{e:#}"), "cannot delete the run's stream");
    }
    let stream = stream.to_owned();
    Ok(ArchiveCheck {
        stream,
        expected,
        found,
        waited_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exactly_the_accepted_count_passes() {
        let check = |found| ArchiveCheck {
            stream: "CT1".into(),
            expected: 10,
            found,
            waited_secs: 0.4,
        };
        assert_eq!(check(10).violation(), None);
        assert!(check(9).violation().is_some_and(|v| v.contains("holds 9")));
        assert!(check(11).violation().is_some(), "a duplicated event");
    }
}
