//! The durable path: moves every outbox entry from Redis to JetStream, exactly once in effect.
//!
//! Each gateway instance runs one relay task per outbox shard. Entries are published with
//! `Nats-Msg-Id = event_id` and removed from Redis only after JetStream acknowledged them, so
//! a crash anywhere leaves the entry in Redis to be published again; JetStream's duplicate
//! window (and the archive's unique `event_id`) turn such repeats into no-ops. While NATS is
//! down, bids are still accepted and entries simply wait in Redis.

use crate::metrics::Metrics;
use crate::store::outbox::{OutboxEntry, OutboxShard};
use anyhow::Context as _;
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use shared::subjects::Subjects;
use shared::supervisor::Backoff;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What every shard's relay shares.
pub struct Relay {
    pub jetstream: jetstream::Context,
    pub subjects: Subjects,
    pub stream_name: String,
    pub duplicate_window: Duration,
    /// Replicas of the archive stream if this relay creates it (`JETSTREAM_REPLICAS`).
    pub replicas: usize,
    pub batch: usize,
    pub reclaim_idle: Duration,
    pub reclaim_interval: Duration,
    pub metrics: Arc<Metrics>,
    /// Set once the archive stream is known to exist.
    stream_ready: AtomicBool,
}

impl Relay {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        jetstream: jetstream::Context,
        subjects: Subjects,
        stream_name: String,
        duplicate_window: Duration,
        replicas: usize,
        batch: usize,
        reclaim_idle: Duration,
        reclaim_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            jetstream,
            subjects,
            stream_name,
            duplicate_window,
            replicas,
            batch,
            reclaim_idle,
            reclaim_interval,
            metrics,
            stream_ready: AtomicBool::new(false),
        }
    }

    /// Creates the archive stream if it does not exist (`shared::nats::archive_stream`).
    async fn ensure_stream(&self) -> anyhow::Result<()> {
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let config = shared::nats::archive_stream(
            self.stream_name.as_str(),
            &self.subjects,
            self.duplicate_window,
            self.replicas,
        );
        self.jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("creating JetStream stream {}", self.stream_name))?;
        self.stream_ready.store(true, Ordering::Release);
        Ok(())
    }
}

/// Longest pause between a shard's failed batch and its retry.
/// Pauses after a failed batch: 100 ms, doubling to 2 s.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(2),
};

/// The longest time between two publishes of one entry, which the archive stream's duplicate
/// window must cover so JetStream stores the entry once: an instance that published and died
/// before its `XACK` leaves the entry pending; another instance reclaims it once idle
/// (`reclaim_idle`) at its next reclaim scan (`reclaim_interval`), and publishes it again
/// after at most a failed attempt's backoff and the publish acknowledgement's timeout
/// (`publish_timeout`). Repeats past it (a NATS outage longer than the window between the
/// store and the ack) are still absorbed by the archive's unique `event_id`.
pub fn worst_redelivery(
    reclaim_idle: Duration,
    reclaim_interval: Duration,
    publish_timeout: Duration,
) -> Duration {
    reclaim_idle + reclaim_interval + BACKOFF.max + publish_timeout
}

/// Per-shard progress.
struct ShardState {
    shard: OutboxShard,
    group_ready: bool,
    /// Read this consumer's unacknowledged entries before new ones (after a start or a failure).
    own_pending: bool,
    last_reclaim: Option<Instant>,
}

/// Relays one shard until `shutdown`. A batch in progress is finished before it returns.
pub async fn run_shard(relay: Arc<Relay>, shard: OutboxShard, shutdown: CancellationToken) {
    let mut state = ShardState {
        shard,
        group_ready: false,
        own_pending: true,
        last_reclaim: None,
    };
    let mut pause = BACKOFF.first;
    while !shutdown.is_cancelled() {
        match relay_once(&relay, &mut state).await {
            Ok(_) => pause = BACKOFF.first,
            Err(e) => {
                relay.metrics.relay_failures.inc();
                // `{e:#}`: the whole cause chain without the backtrace that `?e` symbolises
                // when RUST_BACKTRACE is set (the first took a worker thread 154 ms here).
                tracing::warn!(
                    stream = state.shard.stream(),
                    error = format!("{e:#}"),
                    "outbox relay batch failed; retrying"
                );
                state.own_pending = true;
                state.group_ready = false;
                // The stream may have been deleted or the server replaced: check it again.
                relay.stream_ready.store(false, Ordering::Release);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.cancelled() => break,
                }
                pause = BACKOFF.after(pause);
            }
        }
    }
}

/// One step: read (or reclaim) a batch and relay it. Returns how many entries it moved.
///
/// # Errors
/// When Redis or JetStream fails; the batch's entries stay pending in Redis.
async fn relay_once(relay: &Relay, state: &mut ShardState) -> anyhow::Result<usize> {
    if !state.group_ready {
        state.shard.ensure_group().await?;
        state.group_ready = true;
    }
    relay.ensure_stream().await?;
    let reclaim_due = state
        .last_reclaim
        .is_none_or(|at| at.elapsed() >= relay.reclaim_interval);
    let mut entries = Vec::new();
    if reclaim_due {
        state.last_reclaim = Some(Instant::now());
        entries = state.shard.reclaim(relay.reclaim_idle, relay.batch).await?;
        if !entries.is_empty() {
            relay.metrics.relay_reclaimed.inc_by(entries.len() as u64);
            tracing::info!(
                stream = state.shard.stream(),
                count = entries.len(),
                "reclaimed outbox entries"
            );
        }
    }
    if entries.is_empty() {
        entries = state.shard.read(relay.batch, state.own_pending).await?;
        if state.own_pending && entries.is_empty() {
            state.own_pending = false;
        }
    }
    publish_batch(relay, &mut state.shard, entries).await
}

/// Moves an entry that can never be published (it does not decode, or its event does not
/// encode) to the dead stream, its reason the error's text, so it does not block the shard.
async fn dead_letter(
    shard: &mut OutboxShard,
    id: &str,
    reason: impl std::fmt::Display,
) -> anyhow::Result<()> {
    let reason = reason.to_string();
    tracing::error!(entry = %id, %reason, "outbox entry moved to the dead stream");
    shard.dead_letter(id, &reason).await?;
    Ok(())
}

/// Publishes a batch to JetStream, waits for every ack, then removes the acked entries.
#[tracing::instrument(name = "nats.publish_archive", level = "debug", skip_all, fields(count = entries.len()))]
async fn publish_batch(
    relay: &Relay,
    shard: &mut OutboxShard,
    entries: Vec<OutboxEntry>,
) -> anyhow::Result<usize> {
    let mut acks = Vec::with_capacity(entries.len());
    for entry in entries {
        let event = match entry.event {
            Ok(event) => event,
            Err(e) => {
                dead_letter(shard, &entry.id, &e).await?;
                continue;
            }
        };
        let payload = match event.to_json() {
            Ok(payload) => payload,
            Err(e) => {
                dead_letter(shard, &entry.id, &e).await?;
                continue;
            }
        };
        let message = PublishMessage::build()
            .payload(Bytes::from(payload))
            .message_id(event.event_id().to_string());
        let subject = relay.subjects.archive(event.item_id());
        let ack = relay
            .jetstream
            .send_publish(subject, message)
            .await
            .context("publishing to JetStream")?;
        acks.push((entry.id, ack));
    }
    let results = futures::future::join_all(
        acks.into_iter()
            .map(|(id, ack)| async move { (id, ack.await) }),
    )
    .await;
    let mut stored = Vec::with_capacity(results.len());
    let mut failure = None;
    for (id, result) in results {
        match result {
            Ok(_) => stored.push(id),
            Err(e) => failure = Some(e),
        }
    }
    shard.ack_and_delete(&stored).await?;
    relay.metrics.relay_published.inc_by(stored.len() as u64);
    match failure {
        Some(e) => Err(anyhow::anyhow!(e).context("JetStream did not acknowledge an outbox entry")),
        None => Ok(stored.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_redelivery_adds_up_a_reclaim_a_backoff_and_a_publish() {
        let worst = worst_redelivery(
            Duration::from_secs(30),
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        assert_eq!(worst, Duration::from_secs(42));
    }
}
