//! One WebSocket viewer on the broadcast service, watching one item, recording when each
//! `bid_placed` event arrives. It reconnects whenever its socket drops, as a browser tab would,
//! so the arrivals show when the real-time path stopped and when it came back (broadcast
//! service or NATS outage).

use super::timeline::Clock;
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Pause between reconnection attempts while the broadcast service is down.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// The running viewer; [`Viewer::stop`] closes it and returns the arrival times.
pub struct Viewer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    arrivals: Arc<Mutex<Vec<f64>>>,
}

impl Viewer {
    /// Starts watching `item` on the broadcast service at `authority` (`host:port`).
    pub fn start(authority: &str, item: &str, clock: Clock) -> Self {
        let url = format!("ws://{authority}/ws?item_id={item}");
        let stop = CancellationToken::new();
        let arrivals: Arc<Mutex<Vec<f64>>> = Arc::default();
        let task = tokio::spawn(watch(url, clock, stop.clone(), arrivals.clone()));
        Self {
            stop,
            task,
            arrivals,
        }
    }

    /// Arrival times (ms on the run's clock) of the events received so far.
    pub fn arrivals(&self) -> Vec<f64> {
        copy(&self.arrivals)
    }

    /// Closes the viewer and returns every arrival time.
    pub async fn stop(mut self) -> Vec<f64> {
        self.stop.cancel();
        if let Err(e) = (&mut self.task).await {
            tracing::warn!(error = %e, "the viewer task ended abnormally");
        }
        copy(&self.arrivals)
    }
}

impl Drop for Viewer {
    /// An experiment that fails half-way must not leave the viewer connected.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn copy(arrivals: &Mutex<Vec<f64>>) -> Vec<f64> {
    match arrivals.lock() {
        Ok(times) => times.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Connects, records events until the socket ends, and starts over, until cancelled.
async fn watch(url: String, clock: Clock, stop: CancellationToken, arrivals: Arc<Mutex<Vec<f64>>>) {
    while !stop.is_cancelled() {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = tokio_tungstenite::connect_async(url.as_str()) => connected,
        };
        if let Ok((mut socket, _)) = connected {
            loop {
                // `StreamExt::next` on the socket is cancellation-safe: a frame is either
                // returned or left in the stream.
                let frame = tokio::select! {
                    () = stop.cancelled() => return,
                    frame = socket.next() => frame,
                };
                match frame {
                    Some(Ok(Message::Text(text))) if text.contains("\"type\":\"bid_placed\"") => {
                        let now = clock.now_ms();
                        match arrivals.lock() {
                            Ok(mut times) => times.push(now),
                            Err(poisoned) => poisoned.into_inner().push(now),
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}
