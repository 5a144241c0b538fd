//! `resilience`: crash each component in turn under a steady mixed load and measure what the
//! clients see, how long the system takes to recover, and whether any accepted bid was lost.
//!
//! The experiment owns its whole system ([`cluster`]). While the [`open_loop`](crate::open_loop)
//! load sends bids at a fixed rate (and some reads) and a [`Watcher`] watches one item, each of
//! the [`faults`] runs as: `--settle-secs` healthy, SIGKILL (or a crash-like stop),
//! `--outage-secs` down, restart on the same port and data, then healthy again until writes
//! recovered and the archive caught up. Then the load stops and [`loss`] compares the accepted
//! event ids with the archive. [`timeline`] does the arithmetic, [`report`] the README.

pub mod cluster;
pub mod faults;
pub mod loss;
pub mod report;
pub mod timeline;

use crate::api::{ApiClient, NewItem, in_secs};
use crate::archive;
use crate::bench_result::{BenchResult, Started};
use crate::open_loop::{Clock, Kind, Request, STARTING_CENTS, Target, Workload};
use crate::service::LiveBinaries;
use crate::verdict::prefixed;
use crate::watcher::Watcher;
use anyhow::{Context, bail};
use clap::Args;
use cluster::Cluster;
use faults::Fault;
use loss::LossCheck;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use timeline::{Second, WindowStats};
use uuid::Uuid;

/// Bids must succeed continuously this long for the write path to count as recovered.
const RECOVERY_HOLD_MS: f64 = 1_000.0;
/// The longest the after-window waits for writes to recover or the archive to catch up.
const AFTER_BOUND: Duration = Duration::from_secs(30);
/// The longest the final drain waits for the archive to hold every accepted bid.
const DRAIN_BOUND: Duration = Duration::from_secs(60);
/// How often the after-window polls.
const POLL: Duration = Duration::from_millis(250);
/// Redis down must be answered fast: the 99th percentile of the 503s must stay below this.
const FAST_503_P99_MS: f64 = 250.0;
/// How far below the healthy window's availability an outage of a component off the write path
/// may fall before it counts as refusing bids: on a loaded machine a healthy gateway
/// occasionally misses its 80 ms Redis deadline (a 503) too, and that is not the fault's doing.
const BASELINE_TOLERANCE: f64 = 0.01;
/// The same allowance in bids, for short runs where 1 % is less than one bid: a smoke run's
/// outage sends ~30 bids, and one missed deadline on a loaded CI machine is 3 points.
const BASELINE_TOLERANCE_BIDS: f64 = 2.0;
/// Items the bids are spread over.
const ITEMS: usize = 4;
/// One read (alternating item and history reads) is sent after every this many bids.
const BIDS_PER_READ: u64 = 5;

#[derive(Debug, Clone, Args)]
pub struct ResilienceArgs {
    /// The gateway (two instances are started) and the broadcast service.
    #[command(flatten)]
    pub binaries: LiveBinaries,
    /// archival-worker binary.
    #[arg(long)]
    pub worker_bin: PathBuf,
    /// Components to crash, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "nats,postgres,worker,broadcast,gateway,redis"
    )]
    pub faults: Vec<Fault>,
    /// How long each component stays down [default: 10, 1.5 with --smoke].
    #[arg(long)]
    pub outage_secs: Option<f64>,
    /// Healthy time before each fault and (at least) after each restart
    /// [default: 5, 2 with --smoke].
    #[arg(long)]
    pub settle_secs: Option<f64>,
    /// Bids per second, steady (plus one read per 5 bids) [default: 100, 20 with --smoke].
    #[arg(long)]
    pub rate: Option<u32>,
    /// Report directory (result.json, README.md, charts).
    #[arg(long, default_value = "bench/results/resilience")]
    pub out_dir: PathBuf,
    /// Seconds-long run with a low rate, for the test suite.
    #[arg(long)]
    pub smoke: bool,
}

/// The parameters a run used, after `--smoke` defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub faults: Vec<Fault>,
    pub outage_secs: f64,
    pub settle_secs: f64,
    pub rate: u32,
    pub smoke: bool,
}

impl ResilienceArgs {
    pub fn plan(&self) -> Plan {
        let (outage, settle, rate) = if self.smoke {
            (1.5, 2.0, 20)
        } else {
            (10.0, 5.0, 100)
        };
        Plan {
            faults: self.faults.clone(),
            outage_secs: self.outage_secs.unwrap_or(outage),
            settle_secs: self.settle_secs.unwrap_or(settle),
            rate: self.rate.unwrap_or(rate),
            smoke: self.smoke,
        }
    }
}

/// What one fault did.
#[derive(Debug, Clone, Serialize)]
pub struct FaultResult {
    pub fault: Fault,
    pub expectation: &'static str,
    /// When it ran, on the run's clock.
    #[serde(flatten)]
    pub times: FaultTimes,
    /// The `--settle-secs` before the kill.
    pub before: WindowStats,
    /// Kill to restart.
    pub outage: WindowStats,
    /// The outage per gateway instance (index 1 is the one the gateway fault kills).
    pub outage_per_gateway: Vec<WindowStats>,
    /// Restart to the end of the after-window.
    pub after: WindowStats,
    /// Restart to the first bid of a run of ≥ 1 s of bids all answered 2xx.
    pub recovery_ms: Option<f64>,
    /// Restart to the viewer's first event after it.
    pub viewer_resumed_ms: Option<f64>,
    /// Viewer events received during the outage.
    pub viewer_events_in_outage: usize,
    /// Failed checks, in words.
    pub violations: Vec<String>,
}

/// The times one fault ran at (ms on the run's clock), measured while it ran.
#[derive(Debug, Clone, Serialize)]
pub struct FaultTimes {
    /// The start of the `--settle-secs` before the kill.
    pub before_ms: f64,
    pub kill_ms: f64,
    /// When the restart was issued (`kill_ms + outage`).
    pub restart_ms: f64,
    /// When the component accepted connections (dependencies) or answered `/ready` (services).
    pub ready_ms: f64,
    pub after_end_ms: f64,
    /// Restart to the moment PostgreSQL held every bid accepted before the restart.
    pub archive_caught_up_ms: Option<f64>,
}

/// The result of a run (`result.json`).
pub type ResilienceResult = BenchResult<Resilience>;

/// The figures of a run; its violations are every failed check (per fault and the loss check).
#[derive(Debug, Clone, Serialize)]
pub struct Resilience {
    pub plan: Plan,
    pub bids_sent: usize,
    pub reads_sent: usize,
    pub faults: Vec<FaultResult>,
    pub loss: LossCheck,
    pub per_second: Vec<Second>,
}

/// Runs the experiment and writes its report under `--out-dir`.
///
/// # Errors
/// The runtime is single-threaded (the dependency servers are started with blocking calls), a
/// process cannot start or restart, or the report cannot be written. A failed check is not an
/// error: it is in the result's `violations`.
pub async fn run(args: &ResilienceArgs) -> anyhow::Result<ResilienceResult> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() != RuntimeFlavor::MultiThread {
        bail!("resilience needs a multi-threaded tokio runtime");
    }
    let plan = args.plan();
    if plan.faults.is_empty() || plan.rate == 0 {
        bail!("nothing to do: give at least one fault and a rate above 0");
    }
    let started = Started::now("resilience");
    let mut cluster = Cluster::start(args).await?;
    let items = create_items(&cluster).await?;
    let clock = Clock::start();
    // The viewer watches the first item; the arrival times show when the live path stopped.
    let arrivals: Arc<Mutex<Vec<f64>>> = Arc::default();
    let recorder = Arc::clone(&arrivals);
    let watched = items.iter().take(1).cloned().collect();
    let viewer = Watcher::start(cluster.broadcast_authority(), watched, move |text| {
        if text.contains("\"type\":\"bid_placed\"") {
            let mut arrivals = recorder.lock().unwrap_or_else(PoisonError::into_inner);
            arrivals.push(clock.now_ms());
        }
    });
    let target = Target {
        gateways: cluster.gateway_urls(),
        items: items.clone(),
        rate: plan.rate,
        bids_per_read: Some(BIDS_PER_READ),
        bids: None,
    };
    let workload = Workload::start(target, clock)?;
    let mut windows = Vec::with_capacity(plan.faults.len());
    for &fault in &plan.faults {
        windows.push(run_fault(&mut cluster, &workload, &plan, fault, clock).await?);
    }
    let stopped = tokio::time::Instant::now();
    let requests = workload.stop().await;
    viewer.stop().await;
    let arrivals = arrivals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    tracing::info!("load stopped; waiting for the archive to drain");
    let loss = drain_and_compare(&cluster, &requests, &items, stopped).await;
    cluster.shutdown().await?;

    let faults: Vec<FaultResult> = windows
        .into_iter()
        .map(|(fault, times)| times.analyse(fault, &requests, &arrivals))
        .collect();
    let named = |f: &FaultResult| prefixed(f.fault.name(), &f.violations);
    let mut violations: Vec<String> = faults.iter().flat_map(named).collect();
    if !loss.holds() {
        let (lost, unexplained) = (loss.lost, loss.unexplained);
        violations.push(format!(
            "loss check: {lost} accepted bids missing from PostgreSQL, {unexplained} \
             unexplained rows"
        ));
    }
    let figures = Resilience {
        plan,
        bids_sent: requests.iter().filter(|r| r.kind == Kind::Bid).count(),
        reads_sent: requests.iter().filter(|r| r.kind != Kind::Bid).count(),
        faults,
        loss,
        per_second: timeline::per_second(&requests, &arrivals),
    };
    report::write(&args.out_dir, started.result(figures, violations))
}

/// Creates the items the bids go to, open for a day (the run never reaches their end).
async fn create_items(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let urls = cluster.gateway_urls();
    let api = ApiClient::new(urls.first().context("no gateway started")?)?;
    let mut items = Vec::with_capacity(ITEMS);
    for i in 0..ITEMS {
        let (id, name) = (
            testkit::unique_id(&format!("res{i}")),
            format!("resilience item {i}"),
        );
        let item = NewItem::new(id.clone(), &name, (STARTING_CENTS, 1), in_secs(86_400))?;
        api.create_item(&item).await?;
        items.push(id);
    }
    Ok(items)
}

/// Settle, kill, wait out the outage, restart, then stay until writes recovered and the archive
/// caught up (at least `settle`, at most [`AFTER_BOUND`]).
async fn run_fault(
    cluster: &mut Cluster,
    workload: &Workload,
    plan: &Plan,
    fault: Fault,
    clock: Clock,
) -> anyhow::Result<(Fault, FaultTimes)> {
    let settle = Duration::from_secs_f64(plan.settle_secs);
    let before_ms = clock.now_ms();
    tokio::time::sleep(settle).await;
    tracing::info!(fault = fault.name(), "killing");
    cluster.kill(fault).await?;
    // The outage starts once the component is dead: a bid sent while the kill was under way
    // may legitimately have been answered by it.
    let kill_ms = clock.now_ms();
    tokio::time::sleep(Duration::from_secs_f64(plan.outage_secs)).await;
    let restart_ms = clock.now_ms();
    cluster.restart(fault).await?;
    let ready_ms = clock.now_ms();
    let restart_took_ms = ready_ms - restart_ms;
    tracing::info!(fault = fault.name(), restart_took_ms, "restarted");

    let snapshot = workload.snapshot();
    let accepted = snapshot.iter().filter(|r| r.sent_ms < restart_ms);
    let before_restart: Vec<Uuid> = accepted.filter_map(|r| r.event_id).collect();
    let settled_at = tokio::time::Instant::now() + settle;
    let bound = tokio::time::Instant::now() + AFTER_BOUND;
    let mut archive_caught_up_ms = None;
    loop {
        if archive_caught_up_ms.is_none() {
            let archived = archive::count_archived(cluster.database_url(), Some(&before_restart));
            if archived.await.is_ok_and(|n| n >= before_restart.len()) {
                archive_caught_up_ms = Some(clock.now_ms() - restart_ms);
            }
        }
        let now = tokio::time::Instant::now();
        let recovered =
            timeline::recovery_ms(&workload.snapshot(), restart_ms, RECOVERY_HOLD_MS).is_some();
        if now >= bound || (now >= settled_at && recovered && archive_caught_up_ms.is_some()) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let times = FaultTimes {
        before_ms,
        kill_ms,
        restart_ms,
        ready_ms,
        after_end_ms: clock.now_ms(),
        archive_caught_up_ms,
    };
    Ok((fault, times))
}

impl FaultTimes {
    /// What `fault`, run at these times, did and failed, from the whole run's record.
    fn analyse(self, fault: Fault, requests: &[Request], arrivals: &[f64]) -> FaultResult {
        let (kill, restart, end) = (self.kill_ms, self.restart_ms, self.after_end_ms);
        let window = |from, to, gateway| WindowStats::of(requests, from, to, gateway);
        let (before, outage) = (
            window(self.before_ms, kill, None),
            window(kill, restart, None),
        );
        let outage_per_gateway: Vec<WindowStats> =
            (0..2).map(|g| window(kill, restart, Some(g))).collect();
        let until_end: Vec<Request> = requests
            .iter()
            .filter(|r| r.sent_ms < end)
            .cloned()
            .collect();
        let recovery_ms = timeline::recovery_ms(&until_end, restart, RECOVERY_HOLD_MS);
        let viewer_resumed_ms = arrivals
            .iter()
            .find(|t| **t >= restart)
            .map(|t| t - restart);
        let in_outage = arrivals
            .iter()
            .filter(|t| (kill..restart).contains(*t))
            .count();
        let percent = |w: &WindowStats| w.availability * 100.0;
        let mut violations = Vec::new();
        let tolerance = BASELINE_TOLERANCE.max(BASELINE_TOLERANCE_BIDS / outage.bids.max(1) as f64);
        if fault.bids_unaffected() && outage.availability < before.availability - tolerance {
            violations.push(format!(
                "bids refused while it was down (availability {:.1} % against {:.1} % \
                 before: {:?})",
                percent(&outage),
                percent(&before),
                outage.answers
            ));
        }
        if let (Fault::Gateway, Some(survivor)) = (fault, outage_per_gateway.first())
            && survivor.availability < 1.0
        {
            let survivor = percent(survivor);
            violations.push(format!(
                "the surviving gateway refused bids (availability {survivor:.1} %)"
            ));
        }
        if fault == Fault::Redis {
            // Only answers given while Redis was down count: a bid sent just before the restart
            // may be answered by the Redis that came back.
            let mut not_503: Vec<String> = requests
                .iter()
                .filter(|r| r.kind == Kind::Bid && !r.is_503())
                .filter(|r| r.sent_ms >= kill && r.sent_ms + r.latency_ms < restart)
                .map(Request::label)
                .collect();
            not_503.sort();
            if !not_503.is_empty() {
                let answers = not_503.join(", ");
                violations.push(format!(
                    "bids answered otherwise than a fast 503 while Redis was down: {answers}"
                ));
            }
            let p99 = outage.unavailable_latency_ms.p99;
            if p99 >= FAST_503_P99_MS {
                violations.push(format!("503 p99 {p99:.0} ms ≥ {FAST_503_P99_MS} ms"));
            }
        }
        if recovery_ms.is_none() {
            let within = (end - restart) / 1000.0;
            violations.push(format!(
                "bids did not succeed for {RECOVERY_HOLD_MS} ms in a row within {within:.1} s \
                 of the restart"
            ));
        }
        if matches!(fault, Fault::Nats | Fault::Broadcast) && viewer_resumed_ms.is_none() {
            violations.push("the viewer received no event after the restart".to_owned());
        }
        FaultResult {
            fault,
            expectation: fault.expectation(),
            after: window(restart, end, None),
            times: self,
            before,
            outage,
            outage_per_gateway,
            recovery_ms,
            viewer_resumed_ms,
            viewer_events_in_outage: in_outage,
            violations,
        }
    }
}

/// The loss check once the archive drained (at most [`DRAIN_BOUND`] after `stopped`), with the
/// archive stream's count.
async fn drain_and_compare(
    cluster: &Cluster,
    requests: &[Request],
    items: &[String],
    stopped: tokio::time::Instant,
) -> LossCheck {
    let database_url = cluster.database_url();
    let check = LossCheck::after_drain(database_url, requests, items, DRAIN_BOUND, stopped);
    let mut check = check.await;
    let stream = shared::subjects::ARCHIVE_STREAM;
    let messages = archive::stream_messages(&cluster.nats_url(), stream).await;
    check.stream_messages = messages
        .inspect_err(|e| tracing::warn!(error = %format!("{e:#}"), "cannot count the stream"))
        .ok();
    check
}
