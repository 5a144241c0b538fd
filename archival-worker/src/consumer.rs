//! The durable JetStream pull consumer: fetch a batch, write it in one transaction, then ack.
//!
//! Acks follow the commit, so a crash anywhere before the ack means redelivery, which the
//! store absorbs (`ON CONFLICT (event_id) DO NOTHING`). A message that cannot be decoded or
//! breaks the schema goes to `dead_letters` in the same transaction and is acked with the
//! batch: it never blocks the stream. A batch PostgreSQL refuses for its data (a NUL in a
//! text, a broken check) is split in halves, each written on its own, until the refused event
//! stands alone; it is dead-lettered with the refusal and the rest is stored. Any other failure
//! (PostgreSQL down, a broken schema) hands the batch back (nak with a delay): the worker
//! reports not-ready, backs off, and resumes by itself.

use crate::config::Config;
use crate::current_state::CurrentState;
use crate::decode::{decode_batch, refused};
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::store::{Batch, Store, StoreError, Written};
use anyhow::Context;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::StreamExt;
use shared::subjects::Subjects;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Settings of the consumer loop.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub stream: String,
    /// The stream's duplicate window if this worker creates it (the gateway's setting).
    pub duplicate_window: Duration,
    /// Replicas of the stream (if this worker creates it) and of the durable consumer
    /// (`JETSTREAM_REPLICAS`): a consumer's state lives on its own replicas, so with one the
    /// consumer would stop when that node dies even though the stream did not.
    pub replicas: usize,
    pub subjects: Subjects,
    pub consumer_name: String,
    pub batch_size: usize,
    pub batch_wait: Duration,
    pub ack_wait: Duration,
}

impl From<&Config> for ConsumerSettings {
    fn from(config: &Config) -> Self {
        Self {
            stream: config.archive.stream.clone(),
            duplicate_window: Duration::from_secs(config.archive.duplicate_window_secs),
            replicas: usize::from(config.archive.replicas),
            subjects: Subjects::new(config.common.subject_prefix.clone()),
            consumer_name: config.consumer_name.clone(),
            batch_size: config.batch_size,
            batch_wait: Duration::from_millis(config.batch_wait_ms),
            ack_wait: Duration::from_secs(config.ack_wait_secs),
        }
    }
}

/// What the HTTP side reads to answer `/ready` (besides pinging PostgreSQL and NATS).
pub struct Health {
    /// The schema is migrated; nothing is consumed before.
    pub migrated: AtomicBool,
    /// The last batch was stored (or there was none yet). False while batches are handed back
    /// for redelivery, so a worker that answers pings but archives nothing is not ready.
    pub archiving: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            migrated: AtomicBool::new(false),
            archiving: AtomicBool::new(true),
        }
    }
}

/// Creates (or finds) the stream and the durable consumer.
///
/// # Errors
/// When JetStream is unreachable.
pub async fn consumer(
    js: &jetstream::Context,
    settings: &ConsumerSettings,
) -> anyhow::Result<PullConsumer> {
    let config = shared::nats::archive_stream(
        settings.stream.as_str(),
        &settings.subjects,
        settings.duplicate_window,
        settings.replicas,
    );
    let stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("getting the archive stream")?;
    stream
        .get_or_create_consumer(
            &settings.consumer_name,
            jetstream::consumer::pull::Config {
                durable_name: Some(settings.consumer_name.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                max_ack_pending: 20_000,
                num_replicas: settings.replicas,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("getting the durable consumer")
}

/// Reads up to `batch_size` messages: waits for the first (until `shutdown`), then takes what
/// arrives within `batch_wait`.
async fn next_batch(
    messages: &mut jetstream::consumer::pull::Stream,
    settings: &ConsumerSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<jetstream::Message>> {
    let mut batch = Vec::with_capacity(settings.batch_size);
    // `next` is cancellation-safe: undelivered messages stay buffered in the stream.
    let first = tokio::select! {
        message = messages.next() => message,
        () = shutdown.cancelled() => return Ok(batch),
    };
    match first {
        Some(message) => batch.push(message.map_err(|e| anyhow::anyhow!(e))?),
        None => anyhow::bail!("the consumer's message stream ended"),
    }
    let deadline = tokio::time::Instant::now() + settings.batch_wait;
    while batch.len() < settings.batch_size {
        match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(Ok(message))) => batch.push(message),
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "message stream hiccup");
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    Ok(batch)
}

/// What the consumer needs for the notifications a batch produces: the items' current state
/// (read before the write) and the publisher (after the commit).
#[derive(Clone)]
pub struct Notify {
    pub state: CurrentState,
    pub publisher: Publisher,
}

/// Writes one batch and acks it, or hands it back for redelivery. The notifications each
/// committed part produced are published right after its commit.
///
/// A part of the batch that PostgreSQL refuses for its data is split in two halves, written
/// in stream order (so a relist is still stored before the bids of its new round), until the
/// refused message stands alone and is dead-lettered with PostgreSQL's reason. Each part is
/// acked as soon as it is committed. A batch with one bad event among `n` costs about
/// `2 log2 n` extra transactions.
///
/// # Errors
/// When the store fails for any other reason: what was not yet committed is nak'd with a
/// delay.
pub async fn process_batch(
    store: &Store,
    metrics: &Metrics,
    health: &Health,
    notify: &Notify,
    messages: Vec<jetstream::Message>,
) -> Result<usize, StoreError> {
    if let Some(info) = messages.last().and_then(|m| m.info().ok()) {
        metrics
            .consumer_lag
            .set(i64::try_from(info.pending).unwrap_or(i64::MAX));
    }
    let mut parts: VecDeque<&[jetstream::Message]> = VecDeque::from([messages.as_slice()]);
    // Read once for the whole batch; the parts of a split batch reuse it.
    let mut items = None;
    while let Some(part) = parts.pop_front() {
        let mut batch = decode_batch(part);
        match &items {
            None => {
                notify.state.read_items(&mut batch).await;
                items = Some(batch.items.clone());
            }
            Some(known) => batch.items.clone_from(known),
        }
        let failure = match store.write_batch(&batch).await {
            Ok(written) => {
                notify.publisher.publish(&written.notifications).await;
                record(metrics, &batch, &written, part.len());
                ack(part).await;
                continue;
            }
            Err(failure) => failure,
        };
        match (failure.refused_data(), part) {
            (Some(_), [_, _, ..]) => {
                let (first, second) = part.split_at(part.len() / 2);
                parts.push_front(second);
                parts.push_front(first);
                metrics.batch_splits.inc();
            }
            (Some(refusal), [message]) => {
                tracing::warn!(subject = %message.subject, reason = %refusal, "PostgreSQL refused an event; dead-lettered");
                let dead = Batch {
                    dead: vec![refused(message, refusal)],
                    ..Batch::default()
                };
                match store.write_batch(&dead).await {
                    Ok(written) => {
                        record(metrics, &dead, &written, 1);
                        ack(part).await;
                    }
                    Err(e) => return hand_back(metrics, health, part, parts, e).await,
                }
            }
            _ => return hand_back(metrics, health, part, parts, failure).await,
        }
    }
    health.archiving.store(true, Ordering::Release);
    Ok(messages.len())
}

/// Counts what one committed part of a batch stored.
fn record(metrics: &Metrics, batch: &Batch, written: &Written, messages: usize) {
    let stored = written.bids + written.closes + written.changes;
    metrics.events_stored.inc_by(stored as u64);
    let events = batch.bids.len() + batch.closes.len() + batch.changes.len();
    metrics
        .duplicates
        .inc_by(events.saturating_sub(stored) as u64);
    metrics.dead_letters.inc_by(written.dead as u64);
    metrics
        .notifications_stored
        .inc_by(written.notifications.len() as u64);
    metrics.batch_size.observe(messages as f64);
}

/// Acks messages whose events are committed.
async fn ack(messages: &[jetstream::Message]) {
    for message in messages {
        // A lost ack only means a redelivery, which the store absorbs.
        if let Err(e) = message.ack().await {
            tracing::debug!(error = %e, "ack failed; the message will be redelivered");
        }
    }
}

/// Hands `part` and every part not yet written back to JetStream for redelivery in a second,
/// and reports the archive as stuck until a batch is stored again.
async fn hand_back(
    metrics: &Metrics,
    health: &Health,
    part: &[jetstream::Message],
    rest: VecDeque<&[jetstream::Message]>,
    failure: StoreError,
) -> Result<usize, StoreError> {
    metrics.batch_failures.inc();
    health.archiving.store(false, Ordering::Release);
    for unwritten in std::iter::once(part).chain(rest) {
        for message in unwritten {
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
    Err(failure)
}

/// Consumes until `shutdown`; a batch in flight is finished (or handed back) first.
pub async fn run(
    js: jetstream::Context,
    store: Store,
    settings: ConsumerSettings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    notify: Notify,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    let pause = |backoff: Duration| {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => {}
            }
        }
    };
    // Migrations first: nothing is consumed before the schema exists.
    while !shutdown.is_cancelled() {
        match store.migrate().await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "migrations not applied yet; retrying");
                pause(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    health.migrated.store(true, Ordering::Release);
    'connect: while !shutdown.is_cancelled() {
        let stream = match consumer(&js, &settings).await {
            Ok(consumer) => consumer
                .stream()
                .max_messages_per_batch(settings.batch_size)
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!(e)),
            Err(e) => Err(e),
        };
        let mut messages = match stream {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "JetStream consumer unavailable; retrying");
                pause(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let batch = match next_batch(&mut messages, &settings, &shutdown).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "lost the consumer's message stream; reconnecting");
                    continue 'connect;
                }
            };
            if batch.is_empty() {
                continue;
            }
            match process_batch(&store, &metrics, &health, &notify, batch).await {
                Ok(_) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, "batch not archived; handed back for redelivery");
                    pause(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
