//! `bench-archive`: how fast the archival worker drains a JetStream backlog into PostgreSQL,
//! and how long an accepted bid takes to become a row at a steady bid rate.
//!
//! The drain phase publishes `--events` valid `bid_placed` events to a fresh stream, then starts
//! the worker on a fresh database; the rate comes from the rows' own `archived_at` (first to
//! last batch). The steady phase runs a gateway and a worker, posts bids at `--rate` per second
//! (the [`open_loop`](crate::open_loop) load) and reads each row's `archived_at - placed_at`.
//! It passes when the archive holds exactly the backlog and exactly the accepted bids, and most
//! bids were accepted (a run of refusals measures nothing).

use crate::api::{ApiClient, NewItem, in_secs};
use crate::archive::{archive_delays, archive_span_secs, wait_for_rows};
use crate::bench_result::{BenchResult, Started};
use crate::latency::LatencyMs;
use crate::open_loop::{Clock, STARTING_CENTS, Target, Workload};
use crate::service::{Service, namespace, run_tag, shutdown_all, start_services};
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use shared::{BidPlaced, Event, EventId, ItemId, Timestamp, UserId};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Longest the worker may take to drain the backlog.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest the steady phase's last rows may take to appear.
const STEADY_TIMEOUT: Duration = Duration::from_secs(60);
/// Items the backlog's events and the steady bids are spread over.
const ITEMS: u64 = 100;
/// Publishes in flight before their acks are awaited.
const PUBLISH_WINDOW: usize = 2_000;

#[derive(Debug, Clone, Args)]
pub struct BenchArchiveArgs {
    /// archival-worker binary, e.g. target/release/archival-worker.
    #[arg(long)]
    pub worker_bin: PathBuf,
    /// api-gateway binary for the steady-rate phase.
    #[arg(long)]
    pub gateway_bin: PathBuf,
    /// Backlog size for the drain phase.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Bids per second in the steady phase.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Length of the steady phase.
    #[arg(long, default_value_t = 10)]
    pub steady_secs: u64,
    /// NATS with JetStream.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// A PostgreSQL database to create the benchmark databases from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub admin_database_url: String,
    #[arg(long, default_value = "bench/results/archive.json")]
    pub out: PathBuf,
}

/// The figures of a bench-archive run (its JSON result, in [`BenchResult`]).
#[derive(Debug, Serialize)]
pub struct Archive {
    pub drain: Drain,
    pub steady: Steady,
}

#[derive(Debug, Serialize)]
pub struct Drain {
    pub events: u64,
    pub publish_secs: f64,
    /// First batch start to last batch start, from the rows.
    pub drain_secs: f64,
    pub events_per_sec: f64,
    /// Worker start to the last row visible, including startup and migrations.
    pub wall_secs: f64,
    pub mean_batch_size: f64,
    pub rows: u64,
}

#[derive(Debug, Serialize)]
pub struct Steady {
    pub target_rate: u64,
    pub secs: u64,
    pub posted: u64,
    pub accepted: u64,
    pub achieved_rate: f64,
    pub rows: u64,
    /// Accepted bid to row.
    pub latency_ms: LatencyMs,
}

/// A phase's own stream, subjects, consumer and database.
struct Phase {
    tag: String,
    database_url: String,
}

impl Phase {
    async fn new(admin_url: &str) -> anyhow::Result<Self> {
        let database_url = testkit::fresh_database(admin_url).await;
        Ok(Self {
            tag: run_tag("bench"),
            database_url: database_url.context("creating the phase's database")?,
        })
    }

    fn env(&self, nats_url: &str) -> Vec<(&'static str, String)> {
        let mut env = namespace(&self.tag);
        env.push(("DATABASE_URL", self.database_url.clone()));
        env.push(("NATS_URL", nats_url.to_owned()));
        env
    }
}

/// Publishes `events` `bid_placed` events over [`ITEMS`] items to a fresh stream of the
/// phase's; returns how long that took.
async fn publish_backlog(args: &BenchArchiveArgs, tag: &str) -> anyhow::Result<f64> {
    let nats = async_nats::connect(args.nats_url.as_str()).await?;
    let js = async_nats::jetstream::new(nats);
    let subjects = shared::subjects::Subjects::new(tag);
    let stream = async_nats::jetstream::stream::Config {
        name: tag.to_uppercase(),
        subjects: vec![subjects.archive_all()],
        ..Default::default()
    };
    js.get_or_create_stream(stream)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let items = (0..ITEMS).map(|i| ItemId::parse(format!("item-{i}")));
    let items = items.collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(PUBLISH_WINDOW);
    for n in 0..args.events {
        let Some(item) = items.get((n % ITEMS) as usize) else {
            break;
        };
        let (seq, now, event_id) = (n / ITEMS + 1, Timestamp::now(), EventId::new());
        let event = Event::BidPlaced(BidPlaced {
            event_id,
            item_id: item.clone(),
            seq,
            timestamp: now,
            bid_id: event_id.to_string(),
            user_id: UserId::parse(format!("u{}", n % 1_000))?,
            amount_cents: i64::try_from(100 + seq)?,
            previous_bid_cents: i64::try_from(99 + seq)?,
            end_time: now,
            extended: false,
            round: 1,
            seller_id: None,
            automatic: false,
            answered: false,
        });
        let ack = js
            .publish(subjects.archive(item), event.to_json()?.into())
            .await;
        pending.push(ack.map_err(|e| anyhow::anyhow!(e))?.into_future());
        if pending.len() == PUBLISH_WINDOW || n + 1 == args.events {
            for ack in futures::future::join_all(pending.drain(..)).await {
                ack.map_err(|e| anyhow::anyhow!(e))?;
            }
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn drain(args: &BenchArchiveArgs) -> anyhow::Result<Drain> {
    let phase = Phase::new(&args.admin_database_url).await?;
    let publish_secs = publish_backlog(args, &phase.tag).await?;
    tracing::info!(events = args.events, publish_secs, "backlog published");
    let started = Instant::now();
    let worker = Service::start("worker", &args.worker_bin, &phase.env(&args.nats_url)).await?;
    let events = usize::try_from(args.events)?;
    let rows = wait_for_rows(&phase.database_url, events, DRAIN_TIMEOUT).await as u64;
    let wall_secs = started.elapsed().as_secs_f64();
    let drain_secs = archive_span_secs(&phase.database_url).await?;
    let metrics = ApiClient::new(worker.url())?;
    let batches = metrics.counter("archive_batch_size_count").await?;
    let batched = metrics.counter("archive_batch_size_sum").await?;
    worker.shutdown().await?;
    // A ratio over nothing (no time, no batch) is 0.
    let ratio = |n: f64, d: f64| if d > 0.0 { n / d } else { 0.0 };
    Ok(Drain {
        events: args.events,
        publish_secs,
        drain_secs,
        events_per_sec: ratio(args.events as f64, drain_secs),
        wall_secs,
        mean_batch_size: ratio(batched.unwrap_or(0.0), batches.unwrap_or(0.0)),
        rows,
    })
}

async fn steady(args: &BenchArchiveArgs) -> anyhow::Result<Steady> {
    let phase = Phase::new(&args.admin_database_url).await?;
    let env = phase.env(&args.nats_url);
    let binaries = [
        ("worker", &*args.worker_bin),
        ("gateway", &args.gateway_bin),
    ];
    let [worker, gateway] = start_services(binaries, &env).await?;
    let api = ApiClient::new(gateway.url())?;
    let items: Vec<String> = (0..ITEMS / 2).map(|i| format!("steady-{i}")).collect();
    let new = |id: &String| NewItem::new(id.clone(), "steady", (STARTING_CENTS, 1), in_secs(3_600));
    api.create_items(items.iter().map(new).collect::<Result<_, _>>()?)
        .await?;
    let clock = Clock::start();
    let target = Target {
        gateways: vec![gateway.url().to_owned()],
        items,
        rate: u32::try_from(args.rate)?,
        bids_per_read: None,
        bids: Some(args.rate * args.steady_secs),
    };
    let requests = Workload::start(target, clock)?.finish().await;
    let achieved_rate = requests.len() as f64 / (clock.now_ms() / 1000.0);
    let accepted = requests.iter().filter(|r| r.is_accepted_bid()).count();
    let rows = wait_for_rows(&phase.database_url, accepted, STEADY_TIMEOUT).await;
    let delays = archive_delays(&phase.database_url).await?;
    shutdown_all([gateway, worker]).await?;
    Ok(Steady {
        target_rate: args.rate,
        secs: args.steady_secs,
        posted: requests.len() as u64,
        accepted: accepted as u64,
        achieved_rate,
        rows: rows as u64,
        latency_ms: delays.latency().unwrap_or_default(),
    })
}

/// Runs both phases and writes the JSON result.
///
/// # Errors
/// When a service cannot start, PostgreSQL or NATS cannot be used, or the file not written.
pub async fn run(args: &BenchArchiveArgs) -> anyhow::Result<BenchResult<Archive>> {
    let started = Started::now("bench-archive");
    let drain = drain(args).await?;
    let steady = steady(args).await?;
    let (rows, events) = (drain.rows, drain.events);
    let mut violations = vec![];
    if rows != events {
        violations.push(format!("{rows} rows for a backlog of {events} events"));
    }
    let (rows, accepted, posted) = (steady.rows, steady.accepted, steady.posted);
    if rows != accepted {
        violations.push(format!("{rows} rows for {accepted} accepted bids"));
    }
    if accepted * 2 < posted {
        violations.push(format!(
            "only {accepted} of {posted} bids accepted: it measured refusals"
        ));
    }
    started.finish(Archive { drain, steady }, violations, &args.out)
}
