//! A WebSocket viewer on the broadcast service, as a browser tab is one: it subscribes to its
//! items, hands every text frame to its owner the moment it arrives, and reconnects (and
//! subscribes again) whenever its socket drops. Resilience watches one item through the
//! faults with it; bench-close watches thousands of closing auctions with a few of them.
//!
//! (Fan-out's viewers are a different client: tens of thousands of sockets read from one
//! thread, see [`crate::fanout::viewers`].)

use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Pause between reconnection attempts while the broadcast service is down.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// A running viewer; [`Watcher::stop`] closes it.
pub struct Watcher {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Watches `items` on the broadcast service at `authority` (`host:port`); `on_frame`
    /// receives every text frame.
    pub fn start(
        authority: &str,
        items: Vec<String>,
        on_frame: impl FnMut(&str) + Send + 'static,
    ) -> Self {
        let stop = CancellationToken::new();
        let url = format!("ws://{authority}/ws");
        let task = tokio::spawn(watch(url, items, on_frame, stop.clone()));
        Self { stop, task }
    }

    /// Closes the viewer and waits for its task.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Err(e) = (&mut self.task).await {
            tracing::warn!(error = %e, "a viewer task ended abnormally");
        }
    }
}

impl Drop for Watcher {
    /// An experiment that fails half-way must not leave the viewer connected.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Connects, subscribes, passes frames on until the socket ends, and starts over, until
/// cancelled.
async fn watch(
    url: String,
    items: Vec<String>,
    mut on_frame: impl FnMut(&str),
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = tokio_tungstenite::connect_async(url.as_str()) => connected,
        };
        if let Ok((mut socket, _)) = connected {
            let mut subscribed = true;
            for item in &items {
                let frame = serde_json::json!({"type": "subscribe", "item_id": item});
                subscribed &= socket.send(Message::text(frame.to_string())).await.is_ok();
            }
            // A socket whose subscriptions did not all go out is dropped and made again.
            while subscribed {
                // `StreamExt::next` is cancellation-safe: a frame is returned or left queued.
                let frame = tokio::select! {
                    () = stop.cancelled() => return,
                    frame = socket.next() => frame,
                };
                match frame {
                    Some(Ok(Message::Text(text))) => on_frame(&text),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => subscribed = false,
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}
