//! The mixed load: bids at a steady rate, spread over a few items and alternating between the
//! two gateways, plus some reads, each request recorded with what came back.
//!
//! Why a fixed-rate tokio loop with reqwest rather than goose (used by the other experiments):
//! goose users are closed-loop, each waits for its answer before the next request, so while a
//! component is down and requests hang or fail the offered load changes, and a short outage can
//! fall between two requests of every user. Availability during an outage needs an open-loop
//! schedule (one bid every `1/rate` s whatever happens) and the full outcome of every single
//! request (status, error `code`, transport error, `event_id`), which goose's aggregated metrics
//! do not keep.

use super::timeline::{Clock, Kind, Outcome, Request};
use anyhow::Context;
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest a request may take before it is recorded as a `transport timeout`: far above a
/// healthy answer and above the gateway's own Redis deadline, so a timeout means a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// One read is sent after every this many bids, alternating item and history reads.
const BIDS_PER_READ: u64 = 5;
/// First bid amount on every item (the item's starting price), in cents.
pub const STARTING_CENTS: i64 = 100;

/// Every request sent so far, in completion order (sorted by send time for analysis).
pub type Recorded = Arc<Mutex<Vec<Request>>>;

/// The running load; [`Workload::stop`] ends it.
pub struct Workload {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    recorded: Recorded,
}

/// What the load targets.
#[derive(Debug, Clone)]
pub struct Target {
    pub gateways: Vec<String>,
    pub items: Vec<String>,
    pub rate: u32,
}

impl Workload {
    /// Starts sending.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn start(target: Target, clock: Clock) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        let stop = CancellationToken::new();
        let recorded = Recorded::default();
        let task = tokio::spawn(send_loop(
            target,
            clock,
            http,
            stop.clone(),
            recorded.clone(),
        ));
        Ok(Self {
            stop,
            task,
            recorded,
        })
    }

    /// What has been recorded so far, in send order.
    pub fn snapshot(&self) -> Vec<Request> {
        sorted(&self.recorded)
    }

    /// Stops sending, waits for the requests in flight (bounded by the request timeout) and
    /// returns every request in send order.
    pub async fn stop(mut self) -> Vec<Request> {
        self.stop.cancel();
        if let Err(e) = (&mut self.task).await {
            tracing::warn!(error = %e, "the load task ended abnormally");
        }
        sorted(&self.recorded)
    }
}

impl Drop for Workload {
    /// An experiment that fails half-way must not leave the load running.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn sorted(recorded: &Recorded) -> Vec<Request> {
    let mut requests = match recorded.lock() {
        Ok(requests) => requests.clone(),
        // A poisoned lock only means a recorder panicked mid-push; the data is still usable.
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    requests.sort_by(|a, b| a.sent_ms.total_cmp(&b.sent_ms));
    requests
}

/// Sends bid `n` every `1/rate` s (missed ticks are sent late, not skipped) until cancelled.
async fn send_loop(
    target: Target,
    clock: Clock,
    http: reqwest::Client,
    stop: CancellationToken,
    recorded: Recorded,
) {
    let items = target.items.len().max(1);
    // Next amount per item: one cent above the previous bid sent, so each bid outbids every
    // earlier one on its item and a healthy system accepts it.
    let amounts: Arc<Vec<AtomicI64>> =
        Arc::new((0..items).map(|_| AtomicI64::new(STARTING_CENTS)).collect());
    let mut tick =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(target.rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = JoinSet::new();
    for n in 0u64.. {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        while in_flight.try_join_next().is_some() {}
        let item = (n % items as u64) as usize;
        // Each item's bids alternate between the gateways too.
        let gateway = ((n / items as u64) % target.gateways.len().max(1) as u64) as usize;
        let (Some(base), Some(item_id), Some(next)) = (
            target.gateways.get(gateway),
            target.items.get(item),
            amounts.get(item),
        ) else {
            break;
        };
        let call = Call {
            http: http.clone(),
            clock,
            gateway,
            item,
            recorded: recorded.clone(),
        };
        let amount = next.fetch_add(1, Ordering::Relaxed);
        let url = format!("{base}/api/v1/items/{item_id}/bid");
        let body = serde_json::json!({
            "user_id": format!("u{}", n % 50),
            "amount": crate::money::Decimal(amount),
        });
        in_flight.spawn(call.clone().bid(url, body, amount));
        if n.is_multiple_of(BIDS_PER_READ) {
            let (kind, url) = if (n / BIDS_PER_READ).is_multiple_of(2) {
                (Kind::ItemRead, format!("{base}/api/v1/items/{item_id}"))
            } else {
                (
                    Kind::HistoryRead,
                    format!("{base}/api/v1/items/{item_id}/bids?limit=10"),
                )
            };
            in_flight.spawn(call.read(kind, url));
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// What every request task needs to send and record.
#[derive(Clone)]
struct Call {
    http: reqwest::Client,
    clock: Clock,
    gateway: usize,
    item: usize,
    recorded: Recorded,
}

impl Call {
    async fn bid(self, url: String, body: Value, amount_cents: i64) {
        let sent_ms = self.clock.now_ms();
        let started = Instant::now();
        let (outcome, body) = send(self.http.post(url).json(&body)).await;
        let event_id = match &outcome {
            Outcome::Answered { status: 200, code } if code.as_deref() == Some("accepted") => body
                .get("event_id")
                .and_then(Value::as_str)
                .and_then(|id| Uuid::parse_str(id).ok()),
            _ => None,
        };
        self.record(Request {
            sent_ms,
            gateway: self.gateway,
            kind: Kind::Bid,
            item: self.item,
            amount_cents,
            outcome,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            event_id,
        });
    }

    async fn read(self, kind: Kind, url: String) {
        let sent_ms = self.clock.now_ms();
        let started = Instant::now();
        let (outcome, _) = send(self.http.get(url)).await;
        self.record(Request {
            sent_ms,
            gateway: self.gateway,
            kind,
            item: self.item,
            amount_cents: 0,
            outcome,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            event_id: None,
        });
    }

    fn record(&self, request: Request) {
        match self.recorded.lock() {
            Ok(mut requests) => requests.push(request),
            Err(poisoned) => poisoned.into_inner().push(request),
        }
    }
}

/// Sends one request; the outcome carries the status and the body's `code` (a bid's answer)
/// or `error` (an error body), and the parsed body is returned for the caller's other fields.
async fn send(request: reqwest::RequestBuilder) -> (Outcome, Value) {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return (Outcome::Transport(transport_kind(&e)), Value::Null),
    };
    let status = response.status().as_u16();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(e) if e.is_timeout() => return (Outcome::Transport("timeout"), Value::Null),
        // A non-JSON body (a proxy's page, a truncated answer) still has its status.
        Err(_) => Value::Null,
    };
    let code = body
        .get("code")
        .or_else(|| body.get("error"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    (Outcome::Answered { status, code }, body)
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "other"
    }
}
