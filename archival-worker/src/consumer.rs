//! The durable JetStream pull consumer: fetch a batch, write it in one transaction, then ack.
//!
//! Acks follow the commit, so a crash anywhere before the ack means redelivery, which the
//! store absorbs (`ON CONFLICT (event_id) DO NOTHING`). A message that cannot be decoded or
//! breaks the schema goes to `dead_letters` in the same transaction and is acked with the
//! batch: it never blocks the stream. When PostgreSQL fails, the batch is handed back (nak with
//! a delay), the worker reports not-ready, backs off, and resumes by itself.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Batch, Change, DeadLetter, Store, StoreError};
use anyhow::Context;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::StreamExt;
use shared::Event;
use shared::subjects::Subjects;
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
#[derive(Default)]
pub struct Health {
    /// The schema is migrated; nothing is consumed before.
    pub migrated: AtomicBool,
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

/// Decodes messages into a batch; undecodable ones become dead letters.
pub fn decode_batch(messages: &[jetstream::Message]) -> Batch {
    let mut batch = Batch::default();
    for message in messages {
        decode(message, &mut batch);
    }
    batch
}

/// Why an event cannot be archived. Its text is the dead letter's `reason`.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The payload is not an event of the shared schema.
    #[error("undecodable event: {0}")]
    Undecodable(#[from] serde_json::Error),
    /// A bid's `seq` is 0; every accepted bid's is 1 or more.
    #[error("seq must be positive")]
    ZeroSeq,
    /// A bid of zero or less.
    #[error("amount must be positive")]
    NonPositiveAmount,
    /// A bid whose previous price is below zero.
    #[error("previous bid must not be negative")]
    NegativePreviousBid,
}

/// Decodes one message into the batch: an event, or a dead letter with the reason.
fn decode(message: &jetstream::Message, batch: &mut Batch) {
    let event = serde_json::from_slice::<Event>(&message.payload)
        .map_err(Rejected::from)
        .and_then(|event| validate(&event).map(|()| event));
    match event {
        Ok(Event::BidPlaced(bid)) => batch.bids.push(bid),
        Ok(Event::AuctionClosed(close)) => batch.closes.push(close),
        Ok(Event::AuctionExtended(e)) => batch.changes.push(Change::Extended(e)),
        Ok(Event::AuctionRelisted(e)) => batch.changes.push(Change::Relisted(e)),
        Err(rejected) => batch.dead.push(DeadLetter {
            stream_sequence: message.info().map(|i| i.stream_sequence).unwrap_or(0),
            subject: message.subject.to_string(),
            payload: message.payload.to_vec(),
            reason: rejected.to_string(),
        }),
    }
}

/// Rules the schema enforces, checked first so one bad event cannot fail a whole batch.
fn validate(event: &Event) -> Result<(), Rejected> {
    match event {
        Event::BidPlaced(bid) if bid.seq == 0 => Err(Rejected::ZeroSeq),
        Event::BidPlaced(bid) if bid.amount_cents <= 0 => Err(Rejected::NonPositiveAmount),
        Event::BidPlaced(bid) if bid.previous_bid_cents < 0 => Err(Rejected::NegativePreviousBid),
        _ => Ok(()),
    }
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

/// Writes one batch and acks it, or hands it back for redelivery.
///
/// # Errors
/// When the store fails (the batch is nak'd with a delay).
pub async fn process_batch(
    store: &Store,
    metrics: &Metrics,
    messages: Vec<jetstream::Message>,
) -> Result<usize, StoreError> {
    let batch = decode_batch(&messages);
    match store.write_batch(&batch).await {
        Ok(written) => {
            for message in &messages {
                // A lost ack only means a redelivery, which the store absorbs.
                if let Err(e) = message.ack().await {
                    tracing::debug!(error = %e, "ack failed; the message will be redelivered");
                }
            }
            let stored = written.bids + written.closes + written.changes;
            metrics.events_stored.inc_by(stored as u64);
            metrics.duplicates.inc_by(
                (batch.bids.len() + batch.closes.len() + batch.changes.len()).saturating_sub(stored)
                    as u64,
            );
            metrics.dead_letters.inc_by(written.dead as u64);
            metrics.batch_size.observe(messages.len() as f64);
            if let Some(info) = messages.last().and_then(|m| m.info().ok()) {
                metrics
                    .consumer_lag
                    .set(i64::try_from(info.pending).unwrap_or(i64::MAX));
            }
            Ok(messages.len())
        }
        Err(e) => {
            metrics.batch_failures.inc();
            for message in &messages {
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
            Err(e)
        }
    }
}

/// Consumes until `shutdown`; a batch in flight is finished (or handed back) first.
pub async fn run(
    js: jetstream::Context,
    store: Store,
    settings: ConsumerSettings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
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
            match process_batch(&store, &metrics, batch).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_keep_their_dead_letter_reasons() {
        assert_eq!(Rejected::ZeroSeq.to_string(), "seq must be positive");
        assert_eq!(
            Rejected::NonPositiveAmount.to_string(),
            "amount must be positive"
        );
        assert_eq!(
            Rejected::NegativePreviousBid.to_string(),
            "previous bid must not be negative"
        );
        let Err(e) = serde_json::from_slice::<Event>(b"{") else {
            panic!("a truncated payload decoded");
        };
        assert!(
            Rejected::from(e)
                .to_string()
                .starts_with("undecodable event: ")
        );
    }
}
