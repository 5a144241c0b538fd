//! The four scenarios of `cluster` (see the module docs of [`super`]).

use super::viewers::{OrderedViewer, Seen};
use super::{ClusterArgs, DurableLoad, Scenario, ScenarioResult};
use crate::api::{ApiClient, NewItem, in_secs};
use crate::archive;
use crate::open_loop::{Clock, Kind, Request, STARTING_CENTS, Target, Workload};
use crate::resilience::loss::LossCheck;
use crate::service::{Service, Stores};
use anyhow::Context;
use shared::ItemId;
use shared::redis_keys::Keyspace;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use testkit::cluster::{LocalCluster, master_of};

/// Longest the archive may take to hold every accepted bid once the load stops.
const DRAIN_BOUND: Duration = Duration::from_secs(30);
/// Longest viewers may take to show every item's final `seq`.
const VIEWER_BOUND: Duration = Duration::from_secs(10);
/// Longest bids may fail after a fault before the scenario counts a violation.
const RECOVERY_BOUND_MS: f64 = 10_000.0;

pub async fn run(
    scenario: Scenario,
    cluster: &LocalCluster,
    args: &ClusterArgs,
) -> anyhow::Result<ScenarioResult> {
    match scenario {
        Scenario::Path => path(cluster, args).await,
        Scenario::RedisFailover => redis_failover(cluster, args).await,
        Scenario::NatsNode => {
            let watch = ["BROADCAST_1_URL", "BROADCAST_2_URL"];
            killed(cluster, args, scenario, "nats", &watch, &["nats-n1"]).await
        }
        // Several viewers through the load balancer, so some are on the instance that dies.
        Scenario::Instances => {
            let (watch, victims) = (["BROADCAST_URL"; 4], ["gateway-2", "broadcast-2"]);
            killed(cluster, args, scenario, "instances", &watch, &victims).await
        }
    }
}

/// Creates `n` items named after the scenario through `gateway`.
async fn create_items(gateway: &str, tag: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let api = ApiClient::new(gateway)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut items = Vec::new();
    for i in 0..n {
        let id = format!("{tag}-{}-{i}", &run[run.len() - 8..]);
        let item = NewItem::new(id.clone(), "cluster", (STARTING_CENTS, 1), in_secs(3_600))?;
        // As a client does: a fast 503 (a gateway still learning a new slot map after the
        // previous scenario's failover) is retried for a few seconds; a 409 on a retry means
        // the earlier attempt, answered `outcome_unknown`, did create it.
        let mut attempts = 0;
        loop {
            match api.create_item(&item).await {
                Ok(()) => break,
                Err(e) if attempts > 0 && format!("{e:#}").contains("409") => break,
                Err(e) if attempts < 50 && format!("{e:#}").contains("503") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.context(format!("creating {id}"))),
            }
        }
        items.push(id);
    }
    Ok(items)
}

/// Redis port of the master serving each item.
fn masters_of(cluster: &LocalCluster, items: &[String]) -> anyhow::Result<Vec<u16>> {
    let nodes = cluster.redis_nodes()?;
    let keys = Keyspace::default();
    items
        .iter()
        .map(|id| {
            let key = keys.item(&ItemId::parse(id.as_str())?).item;
            let slot = cluster.slot_of(&key)?;
            master_of(&nodes, slot)
                .map(|n| n.port)
                .with_context(|| format!("no master serves slot {slot}"))
        })
        .collect()
}

/// Bids sent, bids accepted and the count of each answer.
fn tally(requests: &[Request]) -> (usize, usize, BTreeMap<String, usize>) {
    let mut answers = BTreeMap::new();
    let bids = requests.iter().filter(|r| r.kind == Kind::Bid);
    for r in bids.clone() {
        *answers.entry(r.label()).or_default() += 1;
    }
    let accepted = requests.iter().filter(|r| r.is_accepted_bid()).count();
    (bids.count(), accepted, answers)
}

/// The archive once drained ([`DRAIN_BOUND`]) against the accepted bids of `requests`.
async fn drain(database_url: &str, requests: &[Request], items: &[String]) -> LossCheck {
    let since = tokio::time::Instant::now();
    LossCheck::after_drain(database_url, requests, items, DRAIN_BOUND, since).await
}

/// Accepted bids whose `seq` Redis answered again to a later accepted bid, or that lie above
/// the item's final `seq`: their effect is gone from Redis (a failover lost them).
async fn lost_in_redis(gateway: &str, requests: &[Request], items: &[String]) -> usize {
    let Ok(api) = ApiClient::new(gateway) else {
        return 0;
    };
    let mut lost = 0;
    for (index, id) in items.iter().enumerate() {
        let seqs: Vec<u64> = requests
            .iter()
            .filter(|r| r.item == index && r.event_id.is_some())
            .filter_map(|r| r.seq)
            .collect();
        let distinct: HashSet<u64> = seqs.iter().copied().collect();
        let final_seq = api.item_state(id).await.map(|s| s.seq).unwrap_or(0);
        lost += seqs.len() - distinct.len();
        lost += distinct.iter().filter(|&&s| s > final_seq).count();
    }
    lost
}

/// The loads of every scenario: `rate` bids/s over `items` through `gateway`, until stopped.
fn load(gateway: &str, items: &[String], rate: u32, clock: Clock) -> anyhow::Result<Workload> {
    let target = Target {
        gateways: vec![gateway.to_owned()],
        items: items.to_vec(),
        rate,
        bids_per_read: None,
        bids: None,
    };
    Workload::start(target, clock)
}

fn phase(args: &ClusterArgs) -> Duration {
    Duration::from_secs(args.phase_secs)
}

/// Failed bids after `fault_ms` on `affected` items (all when `None`): how long from the fault
/// to the last failure, and the slowest failure.
fn outage(
    requests: &[Request],
    fault_ms: f64,
    affected: Option<&HashSet<usize>>,
) -> (Option<f64>, Option<f64>) {
    let failed: Vec<&Request> = requests
        .iter()
        .filter(|r| r.kind == Kind::Bid && r.sent_ms >= fault_ms && !r.is_2xx())
        .filter(|r| affected.is_none_or(|a| a.contains(&r.item)))
        .collect();
    let most = |value: fn(&Request) -> f64| failed.iter().map(|r| value(r)).reduce(f64::max);
    let last = most(|r| r.sent_ms + r.latency_ms).map(|end| end - fault_ms);
    (last, most(|r| r.latency_ms))
}

fn base(scenario: Scenario, requests: &[Request], loss: LossCheck) -> ScenarioResult {
    let (bids_sent, accepted, answers) = tally(requests);
    ScenarioResult {
        scenario,
        bids_sent,
        accepted,
        answers,
        loss,
        lost_in_redis: 0,
        durable: None,
        viewers: Vec::new(),
        unavailable_ms: None,
        slowest_failure_ms: None,
        promoted_after_ms: None,
        violations: Vec::new(),
    }
}

/// A scenario's own items through the load balancer, the viewers watching them, and when the
/// load on them started.
struct Watched<'a> {
    cluster: &'a LocalCluster,
    args: &'a ClusterArgs,
    edge: String,
    database_url: String,
    items: Vec<String>,
    viewers: Vec<OrderedViewer>,
    clock: Clock,
}

impl<'a> Watched<'a> {
    /// Starts a viewer of `items` at each broadcast address named in `watch`, lets them
    /// subscribe, then starts the load.
    async fn start(
        cluster: &'a LocalCluster,
        args: &'a ClusterArgs,
        items: Vec<String>,
        watch: &[&str],
    ) -> anyhow::Result<(Self, Workload)> {
        let (edge, database_url) = (cluster.get("GATEWAY_URL")?, cluster.get("DATABASE_URL")?);
        let viewers = watch
            .iter()
            .map(|name| {
                let authority = Service::external(&cluster.get(name)?)
                    .authority()
                    .to_owned();
                Ok(OrderedViewer::start(&authority, items.clone()))
            })
            .collect::<anyhow::Result<_>>()?;
        // Let the viewers subscribe before the first bid.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let clock = Clock::start();
        let workload = load(&edge, &items, args.rate, clock)?;
        let watched = Self {
            cluster,
            args,
            edge,
            database_url,
            items,
            viewers,
            clock,
        };
        Ok((watched, workload))
    }

    /// After a phase of load, kills the cluster's processes `victims`, restarts them a phase
    /// later and lets a last phase run; when they were killed.
    async fn fault(&self, victims: &[&str]) -> anyhow::Result<f64> {
        let each = |act: fn(&LocalCluster, &str) -> anyhow::Result<()>| {
            tokio::task::block_in_place(|| victims.iter().try_for_each(|v| act(self.cluster, v)))
        };
        tokio::time::sleep(phase(self.args)).await;
        let fault_ms = self.clock.now_ms();
        each(LocalCluster::kill)?;
        self.viewers.iter().for_each(OrderedViewer::mark);
        tokio::time::sleep(phase(self.args)).await;
        each(LocalCluster::restart)?;
        tokio::time::sleep(phase(self.args)).await;
        Ok(fault_ms)
    }

    /// The stopped load's figures: the drained archive against it and, after a fault at
    /// `fault_ms`, how long bids failed.
    async fn result(
        &self,
        scenario: Scenario,
        requests: &[Request],
        fault_ms: Option<f64>,
    ) -> ScenarioResult {
        let loss = drain(&self.database_url, requests, &self.items).await;
        let mut result = base(scenario, requests, loss);
        if let Some(fault_ms) = fault_ms {
            (result.unavailable_ms, result.slowest_failure_ms) = outage(requests, fault_ms, None);
        }
        result
    }

    /// The checks of every watched scenario: PostgreSQL holds exactly one row per `seq` 1…final
    /// of each item, every viewer saw every item's final `seq`, no event out of order and,
    /// `after_fault`, events after the fault. The viewers' records go into `result`.
    async fn judge(self, result: &mut ScenarioResult, after_fault: bool) -> anyhow::Result<()> {
        let v = &mut result.violations;
        let rows = archive::rows_per_item(&self.database_url).await;
        let rows = rows.unwrap_or_default();
        let rows: HashMap<&str, &archive::ItemRows> =
            rows.iter().map(|r| (r.item_id.as_str(), r)).collect();
        let api = ApiClient::new(&self.edge)?;
        let mut finals = HashMap::new();
        for id in &self.items {
            let Ok(state) = api.item_state(id).await else {
                v.push(format!("{id}: cannot read its state"));
                continue;
            };
            let (n, distinct, max) = rows
                .get(id.as_str())
                .map_or((0, 0, 0), |r| (r.rows, r.distinct_seqs, r.max_seq));
            if n != state.seq || distinct != n || max != state.seq {
                v.push(format!(
                    "{id}: PostgreSQL holds {n} rows ({distinct} distinct seqs, max {max}) for seq {}",
                    state.seq
                ));
            }
            finals.insert(id.clone(), state.seq);
        }
        let caught_up = |v: &OrderedViewer| {
            let seen = v.seen();
            let at = |id: &String| seen.last_seq.get(id).copied().unwrap_or(0);
            finals.iter().all(|(id, &seq)| at(id) >= seq)
        };
        let started = tokio::time::Instant::now();
        while !self.viewers.iter().all(caught_up) {
            if started.elapsed() >= VIEWER_BOUND {
                v.push("a viewer did not see every item's final seq".into());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut seen: Vec<Seen> = Vec::new();
        for viewer in self.viewers {
            seen.push(viewer.stop().await);
        }
        for (i, s) in seen.iter().enumerate() {
            if s.out_of_order > 0 {
                let n = s.out_of_order;
                v.push(format!("viewer {i}: {n} events out of order"));
            }
            if after_fault && s.events_after_mark == 0 {
                v.push(format!("viewer {i}: no event after the fault"));
            }
        }
        result.viewers = seen;
        Ok(())
    }
}

/// Whole path, no fault.
async fn path(cluster: &LocalCluster, args: &ClusterArgs) -> anyhow::Result<ScenarioResult> {
    let items = create_items(&cluster.get("GATEWAY_URL")?, "path", args.items).await?;
    let masters: HashSet<u16> = masters_of(cluster, &items)?.into_iter().collect();
    let watch = ["BROADCAST_1_URL", "BROADCAST_2_URL"];
    let (run, workload) = Watched::start(cluster, args, items, &watch).await?;
    tokio::time::sleep(phase(args) * 2).await;
    let requests = workload.stop().await;
    let mut result = run.result(Scenario::Path, &requests, None).await;
    let v = &mut result.violations;
    if masters.len() < 3 {
        let n = masters.len();
        v.push(format!("the items live on {n} masters, not all 3"));
    }
    // On a healthy cluster bids are accepted; a loaded machine may still answer a few with a
    // fast 503 (a timeout: `outcome_unknown`, whose effect then shows in Redis and the
    // archive), or `bid_too_low` when two in flight on one item swapped. Anything else (a
    // 4xx, a 500, no answer) is wrong.
    let odd: Vec<&String> = result
        .answers
        .keys()
        .filter(|label| !label.starts_with("200 ") && !label.starts_with("503 "))
        .collect();
    if !odd.is_empty() {
        v.push(format!("answers a healthy cluster never gives: {odd:?}"));
    }
    if result.accepted * 10 < result.bids_sent * 9 {
        let (accepted, sent) = (result.accepted, result.bids_sent);
        v.push(format!(
            "only {accepted} of {sent} bids accepted on a healthy cluster"
        ));
    }
    if !result.loss.holds() || result.loss.lost > 0 {
        v.push(format!("archive: {:?}", result.loss));
    }
    // No lost update: each item's price is the highest bid applied and its seq the number
    // applied. Applied: answered accepted, or archived although its answer was a timeout.
    let api = ApiClient::new(&run.edge)?;
    let rows = archive::archived_bids(&run.database_url).await?;
    for (index, id) in run.items.iter().enumerate() {
        let archived = rows.iter().filter(|r| r.item_id == *id);
        let mut applied: HashSet<i64> = archived.map(|r| r.amount_cents).collect();
        let answered = requests
            .iter()
            .filter(|r| r.item == index && r.is_accepted_bid());
        applied.extend(answered.map(|r| r.amount_cents));
        let highest = applied.iter().copied().max();
        let state = api.item_state(id).await?;
        if state.current_bid_cents != highest || state.seq != applied.len() as u64 {
            v.push(format!(
                "{id}: price {:?} seq {} for highest applied {highest:?} of {}",
                state.current_bid_cents,
                state.seq,
                applied.len()
            ));
        }
    }
    run.judge(&mut result, false).await?;
    for (i, s) in result.viewers.iter().enumerate() {
        if s.gaps > 0 {
            let gaps = s.gaps;
            result
                .violations
                .push(format!("viewer {i}: {gaps} gaps with no fault"));
        }
    }
    Ok(result)
}

/// Cluster processes `victims` killed under load and restarted, viewers watching at `watch`:
/// `nats-node` and `instances`.
async fn killed(
    cluster: &LocalCluster,
    args: &ClusterArgs,
    scenario: Scenario,
    tag: &str,
    watch: &[&str],
    victims: &[&str],
) -> anyhow::Result<ScenarioResult> {
    let items = create_items(&cluster.get("GATEWAY_URL")?, tag, args.items).await?;
    let (run, workload) = Watched::start(cluster, args, items, watch).await?;
    let fault_ms = run.fault(victims).await?;
    let requests = workload.stop().await;
    let mut result = run.result(scenario, &requests, Some(fault_ms)).await;
    let loss = &result.loss;
    if !loss.holds() || loss.drained_after_ms.is_none() {
        let (lost, drained) = (loss.lost, loss.drained_after_ms);
        let archive = format!("archive: lost {lost}, drained {drained:?}");
        result.violations.push(archive);
    }
    run.judge(&mut result, true).await?;
    Ok(result)
}

/// Kill the master of the first item under two loads (durable and not).
async fn redis_failover(
    cluster: &LocalCluster,
    args: &ClusterArgs,
) -> anyhow::Result<ScenarioResult> {
    let edge = cluster.get("GATEWAY_URL")?;
    let database_url = cluster.get("DATABASE_URL")?;
    let stores = Stores {
        redis_url: cluster.get("REDIS_URL")?,
        nats_url: cluster.get("NATS_URL")?,
        database_url: Some(database_url.clone()),
        replicas: 3,
    };
    let mut env = stores.env();
    env.extend([
        ("INSTANCE_ID", "gateway-durable".to_owned()),
        ("DURABLE_ACCEPT", "true".to_owned()),
        ("REDIS_TIMEOUT_MS", args.redis_timeout_ms.to_string()),
        ("RUST_LOG", "error".to_owned()),
    ]);
    let durable_gateway =
        Service::start("gateway", &args.bin_dir.join("api-gateway"), &env).await?;
    let items = create_items(&edge, "failover", args.items).await?;
    let durable_items = create_items(durable_gateway.url(), "durable", args.items).await?;
    let masters = masters_of(cluster, &items)?;
    let durable_masters = masters_of(cluster, &durable_items)?;
    let victim = *masters.first().context("no items")?;
    let affected: HashSet<usize> = (0..items.len()).filter(|&i| masters[i] == victim).collect();
    let clock = Clock::start();
    let plain = load(&edge, &items, args.rate, clock)?;
    let durable = load(durable_gateway.url(), &durable_items, args.rate / 2, clock)?;
    tokio::time::sleep(phase(args)).await;

    let fault_ms = clock.now_ms();
    let victim_name = format!("redis-{victim}");
    tokio::task::block_in_place(|| cluster.kill(&victim_name))?;
    tracing::info!(port = victim, "killed a Redis master");
    // Promotion: another node serves the victim's slots and the cluster says ok.
    let mut promoted_after_ms = None;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let ok = tokio::task::block_in_place(|| {
            cluster.redis_ok()
                && masters_of(cluster, &items[..1]).is_ok_and(|m| m.first() != Some(&victim))
        });
        if ok {
            promoted_after_ms = Some(clock.now_ms() - fault_ms);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old master comes back as its replica's replica, so durable writes find a replica
    // to acknowledge them again.
    tokio::task::block_in_place(|| cluster.restart(&victim_name))?;
    tokio::time::sleep(phase(args) * 2).await;
    let requests = plain.stop().await;
    let durable_requests = durable.stop().await;

    let loss = drain(&database_url, &requests, &items).await;
    let durable_loss = drain(&database_url, &durable_requests, &durable_items).await;
    let mut result = base(Scenario::RedisFailover, &requests, loss);
    result.lost_in_redis = lost_in_redis(&edge, &requests, &items).await;
    let durable_lost_in_redis = lost_in_redis(&edge, &durable_requests, &durable_items).await;
    let (unavailable, slowest) = outage(&requests, fault_ms, Some(&affected));
    result.unavailable_ms = unavailable;
    result.slowest_failure_ms = slowest;
    result.promoted_after_ms = promoted_after_ms;
    let v = &mut result.violations;
    if promoted_after_ms.is_none() {
        v.push("no replica was promoted within 20 s".into());
    }
    if unavailable.is_some_and(|ms| ms > RECOVERY_BOUND_MS) {
        v.push(format!("bids failed for {unavailable:?} ms after the kill"));
    }
    if slowest.is_some_and(|ms| ms >= 2_000.0) {
        v.push(format!(
            "a failed bid took {slowest:?} ms (a hang, not a fast 503)"
        ));
    }
    let recovered = requests
        .iter()
        .filter(|r| r.kind == Kind::Bid && r.sent_ms > fault_ms + RECOVERY_BOUND_MS)
        .all(Request::is_2xx);
    if !recovered {
        v.push("bids still fail after the recovery bound".into());
    }
    if !durable_masters.contains(&victim) {
        v.push("no durable item on the killed master".into());
    }
    if durable_loss.lost > 0 || durable_lost_in_redis > 0 || durable_loss.unexplained > 0 {
        v.push(format!(
            "durable accept lost bids: {} not archived, {durable_lost_in_redis} gone from Redis",
            durable_loss.lost
        ));
    }
    if result.loss.unexplained > 0 {
        let n = result.loss.unexplained;
        v.push(format!("{n} archived rows match no request"));
    }
    let (bids_sent, accepted, answers) = tally(&durable_requests);
    result.durable = Some(DurableLoad {
        bids_sent,
        accepted,
        answers,
        loss: durable_loss,
        lost_in_redis: durable_lost_in_redis,
    });
    durable_gateway.stop().await;
    // The next scenario starts on a settled cluster: every node agrees and says ok.
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20)
        && !tokio::task::block_in_place(|| cluster.redis_ok())
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(result)
}
