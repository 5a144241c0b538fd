//! The NATS connection: connected in the background, reconnecting forever, and telling the
//! hub each time it (re)connects, because core NATS does not replay what was published while
//! this instance was away.
//!
//! [`subscribe_retrying`] is how rooms and user feeds subscribe: a subscription that fails
//! (the client's command queue closed, say) is tried again until the owner stops.
//!
//! [`barrier`] answers "has the server registered every subscription I sent so far?". A
//! subscription must be in force before a snapshot is read from Redis, or an event committed
//! after the read but published before the subscription took effect would be missed.
//! `Client::flush` only says the bytes left this process, so the barrier goes further: it
//! publishes to a fresh inbox this connection subscribes to and waits for the message to come
//! back. The server handles one connection's commands in order, so the echo proves every
//! earlier `SUB` is in force.

use anyhow::Context;
use futures::StreamExt;
use shared::redact::SecretUrl;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Connects in the background; returns the client and a [`Notify`] that is signalled on every
/// (re)connection, the first one included.
///
/// # Errors
/// When the URL is invalid.
pub async fn connect(
    url: &SecretUrl,
    name: &str,
) -> Result<(async_nats::Client, Arc<Notify>), shared::nats::ConnectError> {
    let connected = Arc::new(Notify::new());
    let signal = Arc::clone(&connected);
    let options = shared::nats::connect_options(name).event_callback(move |event| {
        let signal = Arc::clone(&signal);
        async move {
            match event {
                async_nats::Event::Connected => {
                    tracing::info!("connected to NATS");
                    signal.notify_one();
                }
                async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS"),
                async_nats::Event::SlowConsumer(sid) => {
                    // Dropped live messages show up as seq gaps, which resync viewers.
                    tracing::warn!(sid, "NATS subscription overflowed; viewers will resync");
                }
                other => tracing::debug!(event = %other, "NATS event"),
            }
        }
    });
    let client = shared::nats::connect(url, options).await?;
    Ok((client, connected))
}

/// Longest a new room or user feed waits for NATS to confirm its subscription (the barrier's
/// budget) before serving anyway: a reconnect resyncs every viewer, so nothing is lost when
/// NATS was slow or away.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until `ready` is true (the room's or feed's subscription confirmed by a [`barrier`]);
/// false when that took longer than twice [`CONFIRM_TIMEOUT`] (the subscribe before the
/// barrier gets as long again), and the caller goes on without the confirmation.
pub async fn confirmed(ready: &tokio::sync::watch::Sender<bool>) -> bool {
    let mut ready = ready.subscribe();
    tokio::time::timeout(CONFIRM_TIMEOUT * 2, ready.wait_for(|ready| *ready))
        .await
        .is_ok()
}

/// Returns once the server has processed every subscription this client sent before the
/// call, or fails after `timeout`.
///
/// # Errors
/// When NATS is unreachable or does not echo within `timeout`.
pub async fn barrier(client: &async_nats::Client, timeout: Duration) -> anyhow::Result<()> {
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .context("subscribing to the barrier inbox")?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .context("publishing the barrier probe")?;
    tokio::time::timeout(timeout, echo.next())
        .await
        .context("barrier probe did not come back in time")?
        .context("barrier subscription closed")?;
    // Best effort: a dropped subscriber also unsubscribes.
    let _ = echo.unsubscribe().await;
    Ok(())
}

/// Pause between attempts when subscribing fails.
const SUBSCRIBE_RETRY: Duration = Duration::from_secs(1);

/// Subscribes to `subject`, trying again every [`SUBSCRIBE_RETRY`] until it works; `None` once
/// `stop` is cancelled first.
pub async fn subscribe_retrying(
    client: &async_nats::Client,
    subject: &str,
    stop: &CancellationToken,
) -> Option<async_nats::Subscriber> {
    loop {
        match client.subscribe(subject.to_owned()).await {
            Ok(subscription) => return Some(subscription),
            Err(e) => {
                tracing::warn!(subject, error = %e, "subscribing failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(SUBSCRIBE_RETRY) => {}
                }
            }
        }
    }
}
