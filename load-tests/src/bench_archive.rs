//! `bench-archive`: how fast the archival worker drains a JetStream backlog into PostgreSQL,
//! and how long an accepted bid takes to become a row at a steady bid rate.
//!
//! Phase 1 publishes `--events` valid `bid_placed` events to a fresh stream, then starts the
//! worker on a fresh database; the drain rate comes from the rows' own `archived_at` (first to
//! last batch). Phase 2 runs a gateway and a worker together, posts bids at `--rate` per
//! second for `--steady-secs`, and reads each accepted bid's `archived_at - placed_at` (the
//! batch transaction's start minus the Redis time of acceptance).

use crate::gateway::Gateway;
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use shared::{BidPlaced, Event, EventId, ItemId, Timestamp, UserId};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

#[derive(Debug, Serialize)]
pub struct BenchArchiveResult {
    pub experiment: &'static str,
    pub started_at: String,
    pub cores: usize,
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
    pub rows: i64,
}

#[derive(Debug, Serialize)]
pub struct Steady {
    pub target_rate: u64,
    pub secs: u64,
    pub posted: u64,
    pub accepted: u64,
    pub achieved_rate: f64,
    pub rows: i64,
    pub latency_ms: LatencyMs,
}

#[derive(Debug, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Names unique to one phase: stream, subjects, consumer, database.
struct Phase {
    tag: String,
    database_url: String,
}

impl Phase {
    async fn new(admin_url: &str) -> anyhow::Result<Self> {
        let tag = format!("bench{:012x}", fastrand::u64(..) >> 16);
        let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("create database {tag}"))
            .await?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Ok(Self {
            database_url: format!("{base}/{tag}"),
            tag,
        })
    }

    fn env(&self, nats_url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("NATS_URL", nats_url.to_owned()),
            ("SUBJECT_PREFIX", self.tag.clone()),
            ("ARCHIVE_STREAM", self.tag.to_uppercase()),
            ("REDIS_KEY_PREFIX", format!("{}:", self.tag)),
            ("BID_RATE_PER_USER", "0".to_owned()),
        ]
    }

    async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Rows in `bids`, or 0 before the worker created the table.
    async fn rows(&self, db: &tokio_postgres::Client) -> i64 {
        db.query_one("select count(*) from bids", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0)
    }
}

fn bid(item: &ItemId, seq: u64, user: u64) -> Event {
    let event_id = EventId::new();
    let now = Timestamp::now();
    Event::BidPlaced(BidPlaced {
        event_id,
        item_id: item.clone(),
        seq,
        timestamp: now,
        bid_id: event_id.to_string(),
        user_id: UserId::parse(format!("u{user}")).expect("valid user id"),
        amount_cents: 100 + seq as i64,
        previous_bid_cents: 99 + seq as i64,
        end_time: now,
        extended: false,
        round: 1,
    })
}

async fn drain(args: &BenchArchiveArgs) -> anyhow::Result<Drain> {
    let phase = Phase::new(&args.admin_database_url).await?;
    let js = async_nats::jetstream::new(async_nats::connect(args.nats_url.as_str()).await?);
    let subjects = shared::subjects::Subjects::new(phase.tag.clone());
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: phase.tag.to_uppercase(),
        subjects: vec![subjects.archive_all()],
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let items: Vec<ItemId> = (0..100)
        .map(|i| ItemId::parse(format!("item-{i}")).expect("valid item id"))
        .collect();
    let started = Instant::now();
    let mut pending = Vec::with_capacity(2_000);
    for n in 0..args.events {
        let item = &items[(n % 100) as usize];
        let event = bid(item, n / 100 + 1, n % 1_000);
        pending.push(
            js.publish(subjects.archive(item), event.to_json()?.into())
                .await
                .map_err(|e| anyhow::anyhow!(e))?,
        );
        if pending.len() == 2_000 {
            for ack in futures::future::join_all(
                pending.drain(..).map(std::future::IntoFuture::into_future),
            )
            .await
            {
                ack.map_err(|e| anyhow::anyhow!(e))?;
            }
        }
    }
    for ack in
        futures::future::join_all(pending.drain(..).map(std::future::IntoFuture::into_future)).await
    {
        ack.map_err(|e| anyhow::anyhow!(e))?;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    tracing::info!(events = args.events, publish_secs, "backlog published");

    let started = Instant::now();
    let worker = Gateway::spawn_with_env(&args.worker_bin, &phase.env(&args.nats_url)).await?;
    let db = phase.db().await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut rows = 0;
    while rows < args.events as i64 {
        if Instant::now() > deadline {
            bail!("only {rows} of {} events archived in 600 s", args.events);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = phase.rows(&db).await;
    }
    let wall_secs = started.elapsed().as_secs_f64();
    let span: f64 = db
        .query_one(
            "select extract(epoch from max(archived_at) - min(archived_at))::float8 from bids",
            &[],
        )
        .await?
        .get(0);
    let metrics = reqwest::get(format!("{}/metrics", worker.url()))
        .await?
        .text()
        .await?;
    let metric = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let batches = metric("archive_batch_size_count ");
    worker.shutdown().await?;
    Ok(Drain {
        events: args.events,
        publish_secs,
        drain_secs: span,
        events_per_sec: if span > 0.0 {
            args.events as f64 / span
        } else {
            0.0
        },
        wall_secs,
        mean_batch_size: if batches > 0.0 {
            metric("archive_batch_size_sum ") / batches
        } else {
            0.0
        },
        rows,
    })
}

async fn steady(args: &BenchArchiveArgs) -> anyhow::Result<Steady> {
    let phase = Phase::new(&args.admin_database_url).await?;
    let env = phase.env(&args.nats_url);
    let worker = Gateway::spawn_with_env(&args.worker_bin, &env).await?;
    let gateway = Gateway::spawn_with_env(&args.gateway_bin, &env).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    let items: Vec<String> = (0..50).map(|i| format!("steady-{i}")).collect();
    for item in &items {
        let response = http
            .post(format!("{}/api/v1/items", gateway.url()))
            .json(
                &serde_json::json!({"id": item, "name": "steady", "starting_price": 1,
                "min_increment": 0.01, "end_time": end.to_rfc3339()}),
            )
            .send()
            .await?;
        if response.status() != 201 {
            bail!("creating {item}: {}", response.text().await?);
        }
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let amount = Arc::new(AtomicU64::new(100));
    let total = args.rate * args.steady_secs;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (args.rate / 100).max(1);
    let mut posted = 0;
    while posted < total {
        tick.tick().await;
        for _ in 0..per_tick.min(total - posted) {
            let (http, accepted, amount) = (http.clone(), accepted.clone(), amount.clone());
            let item = items[(posted % items.len() as u64) as usize].clone();
            let url = format!("{}/api/v1/items/{item}/bid", gateway.url());
            tasks.spawn(async move {
                let cents = amount.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({"user_id": format!("u{}", cents % 997),
                    "amount": format!("{}.{:02}", cents / 100, cents % 100)});
                if let Ok(response) = http.post(url).json(&body).send().await
                    && let Ok(reply) = response.json::<serde_json::Value>().await
                    && reply["code"] == "accepted"
                {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            });
            posted += 1;
        }
    }
    while tasks.join_next().await.is_some() {}
    let achieved_rate = posted as f64 / started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    let db = phase.db().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rows = 0;
    while rows < accepted as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = phase.rows(&db).await;
    }
    let row = db
        .query_one(
            "select percentile_cont(0.5) within group (order by d),
                    percentile_cont(0.99) within group (order by d), max(d)
             from (select extract(epoch from archived_at - placed_at)::float8 * 1000 as d
                   from bids) t",
            &[],
        )
        .await?;
    gateway.shutdown().await?;
    worker.shutdown().await?;
    Ok(Steady {
        target_rate: args.rate,
        secs: args.steady_secs,
        posted,
        accepted,
        achieved_rate,
        rows,
        latency_ms: LatencyMs {
            p50: row.get::<_, Option<f64>>(0).unwrap_or(0.0),
            p99: row.get::<_, Option<f64>>(1).unwrap_or(0.0),
            max: row.get::<_, Option<f64>>(2).unwrap_or(0.0),
        },
    })
}

/// Runs both phases and writes the JSON result.
///
/// # Errors
/// When a service cannot start or the archive does not catch up.
pub async fn run(args: &BenchArchiveArgs) -> anyhow::Result<BenchArchiveResult> {
    let started_at = chrono::Utc::now().to_rfc3339();
    let drain = drain(args).await?;
    let steady = steady(args).await?;
    let result = BenchArchiveResult {
        experiment: "bench-archive",
        started_at,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        drain,
        steady,
    };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    Ok(result)
}

/// A human summary.
pub fn summary(r: &BenchArchiveResult) -> String {
    format!(
        "bench-archive ({} cores):\n  drain    {} events in {:.2} s = {:.0} events/s (mean batch {:.0}; wall {:.2} s incl. start)\n  steady   {} bids/s target, {:.0} posted/s, {} accepted, {} rows; accept→row p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.cores,
        r.drain.events,
        r.drain.drain_secs,
        r.drain.events_per_sec,
        r.drain.mean_batch_size,
        r.drain.wall_secs,
        r.steady.target_rate,
        r.steady.achieved_rate,
        r.steady.accepted,
        r.steady.rows,
        r.steady.latency_ms.p50,
        r.steady.latency_ms.p99,
        r.steady.latency_ms.max,
    )
}
