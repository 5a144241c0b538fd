//! The open-loop bid load of fan-out, bench-archive's steady phase and resilience: bids at a
//! fixed rate whatever happens, spread over items and gateways, optionally with reads, every
//! request recorded with what came back. Not goose: its users are closed-loop (each waits for
//! its answer), so while requests hang the offered load changes and a short outage can fall
//! between two requests of every user.

use crate::api::{Answer, ApiClient, Outcome, history_path, item_path};
use shared::Cents;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest a request may take before it is recorded as `transport timeout`: far above a
/// healthy answer and the gateway's own Redis deadline, so a timeout means a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// First bid amount on every item (the items' starting price), in cents.
pub const STARTING_CENTS: i64 = 100;

/// Milliseconds since the start of the run, shared by every recorder, and the wall clock at
/// that start, for latencies that end in another process.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_wall_us: u64,
}

impl Clock {
    pub fn start() -> Self {
        let (start, start_wall_us) = (Instant::now(), crate::latency::wall_clock_us());
        Self {
            start,
            start_wall_us,
        }
    }

    pub fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// The wall clock (µs since the epoch) at `ms` on this clock.
    pub fn wall_us(&self, ms: f64) -> u64 {
        self.start_wall_us + (ms * 1000.0) as u64
    }
}

/// Which call a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bid,
    /// `GET /api/v1/items/{id}` (Redis).
    ItemRead,
    /// `GET /api/v1/items/{id}/bids` (PostgreSQL).
    HistoryRead,
}

/// One request as the load saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub sent_ms: f64,
    pub gateway: usize,
    pub kind: Kind,
    pub item: usize,
    /// The bid's amount (unique per item, so an archived row can be traced back to its bid).
    pub amount_cents: i64,
    pub outcome: Outcome,
    pub latency_ms: f64,
    /// For an accepted bid, the event the gateway says it stored, and its `seq`.
    pub event_id: Option<Uuid>,
    pub seq: Option<u64>,
}

impl Request {
    /// A bid on item 0 sent at `sent_ms` to `gateway` that came out as `outcome` (`None`: no
    /// answer, `transport connect`) after `latency_ms`; a 200 carries a fresh event id.
    #[cfg(test)]
    pub fn bid(
        sent_ms: f64,
        gateway: usize,
        amount: i64,
        status: Option<u16>,
        latency_ms: f64,
    ) -> Self {
        let outcome = match status {
            None => Outcome::Transport("connect"),
            Some(status) => Outcome::Answered {
                status,
                code: Some(
                    if status == 200 {
                        "accepted"
                    } else {
                        "unavailable"
                    }
                    .into(),
                ),
            },
        };
        Self {
            sent_ms,
            gateway,
            kind: Kind::Bid,
            item: 0,
            amount_cents: amount,
            outcome,
            latency_ms,
            event_id: (status == Some(200)).then(Uuid::now_v7),
            seq: None,
        }
    }

    /// Answered 2xx: the service handled it (an outbid `bid_too_low` counts: it was processed).
    pub fn is_2xx(&self) -> bool {
        matches!(self.outcome, Outcome::Answered { status, .. } if (200..300).contains(&status))
    }

    pub fn is_accepted_bid(&self) -> bool {
        self.kind == Kind::Bid && self.event_id.is_some()
    }

    pub fn is_503(&self) -> bool {
        matches!(self.outcome, Outcome::Answered { status: 503, .. })
    }

    /// The label reports count: `200 accepted`, `503 unavailable`, `transport connect`.
    pub fn label(&self) -> String {
        match &self.outcome {
            Outcome::Answered {
                status,
                code: Some(code),
            } => format!("{status} {code}"),
            Outcome::Answered { status, code: None } => status.to_string(),
            Outcome::Transport(kind) => format!("transport {kind}"),
        }
    }
}

/// What the load targets.
#[derive(Debug, Clone)]
pub struct Target {
    pub gateways: Vec<String>,
    pub items: Vec<String>,
    pub rate: u32,
    /// One read after every this many bids, alternating item and history reads.
    pub bids_per_read: Option<u64>,
    /// Stop after this many bids (`None`: until stopped).
    pub bids: Option<u64>,
}

/// The running load.
pub struct Workload {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    recorded: Arc<Mutex<Vec<Request>>>,
}

impl Workload {
    /// Starts sending.
    ///
    /// # Errors
    /// An HTTP client cannot be built.
    pub fn start(target: Target, clock: Clock) -> anyhow::Result<Self> {
        let clients = target.gateways.iter();
        let clients = clients.map(|url| ApiClient::with_timeout(url, REQUEST_TIMEOUT));
        let clients = clients.collect::<anyhow::Result<Vec<_>>>()?;
        let stop = CancellationToken::new();
        let recorded = Arc::default();
        let sender = send_loop(target, clients, clock, stop.clone(), Arc::clone(&recorded));
        Ok(Self {
            stop,
            task: tokio::spawn(sender),
            recorded,
        })
    }

    /// What has been recorded so far, in send order.
    pub fn snapshot(&self) -> Vec<Request> {
        sorted(&self.recorded)
    }

    /// Stops sending, waits for the requests in flight (bounded by the request timeout) and
    /// returns every request in send order.
    pub async fn stop(self) -> Vec<Request> {
        self.stop.cancel();
        self.finish().await
    }

    /// Waits until the target's bid count is sent and answered (forever without one).
    pub async fn finish(mut self) -> Vec<Request> {
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

fn sorted(recorded: &Mutex<Vec<Request>>) -> Vec<Request> {
    // A poisoned lock only means a recorder panicked mid-push; the data is still usable.
    let mut requests = recorded
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    requests.sort_by(|a, b| a.sent_ms.total_cmp(&b.sent_ms));
    requests
}

/// Sends bid `n` every `1/rate` s (missed ticks are sent late, not skipped) until cancelled
/// or the bid count is reached.
async fn send_loop(
    target: Target,
    clients: Vec<ApiClient>,
    clock: Clock,
    stop: CancellationToken,
    recorded: Arc<Mutex<Vec<Request>>>,
) {
    let items = target.items.len().max(1) as u64;
    // Next amount per item: one cent above the previous bid sent, so each bid outbids every
    // earlier one on its item and a healthy system accepts it.
    let amounts: Vec<AtomicI64> = target.items.iter().map(|_| STARTING_CENTS.into()).collect();
    let period = Duration::from_secs_f64(1.0 / f64::from(target.rate.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = JoinSet::new();
    for n in 0..target.bids.unwrap_or(u64::MAX) {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        while in_flight.try_join_next().is_some() {}
        let item = (n % items) as usize;
        // Each item's bids alternate between the gateways too.
        let gateway = ((n / items) % clients.len().max(1) as u64) as usize;
        let (Some(api), Some(item_id), Some(next)) = (
            clients.get(gateway),
            target.items.get(item),
            amounts.get(item),
        ) else {
            break;
        };
        let Ok(amount) = Cents::new(next.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        let call = Call {
            clock,
            gateway,
            item,
            recorded: Arc::clone(&recorded),
        };
        let (bidder, id, user) = (api.clone(), item_id.clone(), format!("u{}", n % 50));
        in_flight.spawn(call.clone().record(Kind::Bid, amount.get(), async move {
            bidder.bid(&id, &user, amount).await
        }));
        let Some(every) = target.bids_per_read.filter(|&k| n.is_multiple_of(k)) else {
            continue;
        };
        let (kind, path) = if (n / every).is_multiple_of(2) {
            (Kind::ItemRead, item_path(item_id))
        } else {
            (Kind::HistoryRead, history_path(item_id, 10))
        };
        let api = api.clone();
        in_flight.spawn(call.record(kind, 0, async move { api.get(&path).await }));
    }
    while in_flight.join_next().await.is_some() {}
}

/// Where one request task records what it saw.
#[derive(Clone)]
struct Call {
    clock: Clock,
    gateway: usize,
    item: usize,
    recorded: Arc<Mutex<Vec<Request>>>,
}

impl Call {
    async fn record(self, kind: Kind, amount_cents: i64, request: impl Future<Output = Answer>) {
        let sent_ms = self.clock.now_ms();
        let started = Instant::now();
        let answer = request.await;
        let seq = answer.accepted_seq().filter(|_| kind == Kind::Bid);
        let request = Request {
            sent_ms,
            gateway: self.gateway,
            kind,
            item: self.item,
            amount_cents,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            event_id: answer.reply.event_id.filter(|_| seq.is_some()),
            seq,
            outcome: answer.outcome,
        };
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        recorded.push(request);
    }
}
