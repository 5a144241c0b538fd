//! The four scenarios of `cluster` (see the module docs of [`super`]).

use super::viewers::{OrderedViewer, Seen};
use super::{ClusterArgs, DurableLoad, Scenario, ScenarioResult};
use crate::api::{ApiClient, NewItem, in_secs};
use crate::archive;
use crate::open_loop::{Clock, Kind, Request, STARTING_CENTS, Target, Workload};
use crate::resilience::loss::LossCheck;
use crate::service::Service;
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
        Scenario::NatsNode => nats_node(cluster, args).await,
        Scenario::Instances => instances(cluster, args).await,
    }
}

/// `host:port` of an `http://` URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
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

fn answers(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in requests.iter().filter(|r| r.kind == Kind::Bid) {
        *counts.entry(r.label()).or_default() += 1;
    }
    counts
}

/// Waits (bounded) until PostgreSQL holds every accepted bid of `requests`, then compares;
/// only rows of `items` count.
async fn drain(database_url: &str, requests: &[Request], items: &[String]) -> LossCheck {
    let accepted: Vec<uuid::Uuid> = requests.iter().filter_map(|r| r.event_id).collect();
    let started = tokio::time::Instant::now();
    let mut drained_after_ms = None;
    while started.elapsed() < DRAIN_BOUND {
        let archived = archive::count_archived(database_url, Some(&accepted)).await;
        if archived.is_ok_and(|n| n >= accepted.len()) {
            drained_after_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ours: HashSet<&str> = items.iter().map(String::as_str).collect();
    let rows = archive::archived_bids(database_url)
        .await
        .unwrap_or_default();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| ours.contains(r.item_id.as_str()))
        .collect();
    let mut check = LossCheck::compare(requests, items, &rows);
    check.drained_after_ms = drained_after_ms;
    check
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

/// PostgreSQL exactly once: per item, one row per `seq` 1…final, no more.
async fn exactly_once(
    database_url: &str,
    gateway: &str,
    items: &[String],
    violations: &mut Vec<String>,
) {
    let rows = archive::rows_per_item(database_url)
        .await
        .unwrap_or_default();
    let rows: HashMap<&str, &archive::ItemRows> =
        rows.iter().map(|r| (r.item_id.as_str(), r)).collect();
    let Ok(api) = ApiClient::new(gateway) else {
        return;
    };
    for id in items {
        let Ok(state) = api.item_state(id).await else {
            violations.push(format!("{id}: cannot read its state"));
            continue;
        };
        let (n, distinct, max) = rows
            .get(id.as_str())
            .map_or((0, 0, 0), |r| (r.rows, r.distinct_seqs, r.max_seq));
        if n != state.seq || distinct != n || max != state.seq {
            violations.push(format!(
                "{id}: PostgreSQL holds {n} rows ({distinct} distinct seqs, max {max}) for seq {}",
                state.seq
            ));
        }
    }
}

/// Waits (bounded) until every viewer's last `seq` of every item is the item's final one.
async fn viewers_caught_up(
    gateway: &str,
    viewers: &[OrderedViewer],
    items: &[String],
) -> anyhow::Result<bool> {
    let api = ApiClient::new(gateway)?;
    let mut finals = HashMap::new();
    for id in items {
        finals.insert(id.clone(), api.item_state(id).await?.seq);
    }
    let started = tokio::time::Instant::now();
    while started.elapsed() < VIEWER_BOUND {
        let all = viewers.iter().all(|v| {
            let seen = v.seen();
            finals
                .iter()
                .all(|(id, &seq)| seen.last_seq.get(id).copied().unwrap_or(0) >= seq)
        });
        if all {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// The loads of every scenario: `rate` bids/s over `items` through `gateways`, until stopped.
fn load(
    gateways: Vec<String>,
    items: &[String],
    rate: u32,
    clock: Clock,
) -> anyhow::Result<Workload> {
    let target = Target {
        gateways,
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
    let last = failed
        .iter()
        .map(|r| r.sent_ms + r.latency_ms - fault_ms)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let slowest = failed
        .iter()
        .map(|r| r.latency_ms)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    (last, slowest)
}

fn base(scenario: Scenario, requests: &[Request], loss: LossCheck) -> ScenarioResult {
    ScenarioResult {
        scenario,
        bids_sent: requests.iter().filter(|r| r.kind == Kind::Bid).count(),
        accepted: requests.iter().filter(|r| r.is_accepted_bid()).count(),
        answers: answers(requests),
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

fn check_viewers(seen: &[Seen], violations: &mut Vec<String>, after_fault: bool) {
    for (i, s) in seen.iter().enumerate() {
        if s.out_of_order > 0 {
            violations.push(format!(
                "viewer {i}: {} events out of order",
                s.out_of_order
            ));
        }
        if after_fault && s.events_after_mark == 0 {
            violations.push(format!("viewer {i}: no event after the fault"));
        }
    }
}

/// Whole path, no fault.
async fn path(cluster: &LocalCluster, args: &ClusterArgs) -> anyhow::Result<ScenarioResult> {
    let edge = cluster.get("GATEWAY_URL")?;
    let database_url = cluster.get("DATABASE_URL")?;
    let items = create_items(&edge, "path", args.items).await?;
    let masters: HashSet<u16> = masters_of(cluster, &items)?.into_iter().collect();
    let viewers: Vec<OrderedViewer> = ["BROADCAST_1_URL", "BROADCAST_2_URL"]
        .iter()
        .map(|name| {
            Ok(OrderedViewer::start(
                &authority(&cluster.get(name)?),
                items.clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    // Let both viewers subscribe before the first bid.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let clock = Clock::start();
    let workload = load(vec![edge.clone()], &items, args.rate, clock)?;
    tokio::time::sleep(phase(args) * 2).await;
    let requests = workload.stop().await;
    let loss = drain(&database_url, &requests, &items).await;
    let mut result = base(Scenario::Path, &requests, loss);
    let v = &mut result.violations;
    if masters.len() < 3 {
        v.push(format!(
            "the items live on {} masters, not all 3",
            masters.len()
        ));
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
        v.push(format!(
            "only {} of {} bids accepted on a healthy cluster",
            result.accepted, result.bids_sent
        ));
    }
    if !result.loss.holds() || result.loss.lost > 0 {
        v.push(format!("archive: {:?}", result.loss));
    }
    exactly_once(&database_url, &edge, &items, v).await;
    // No lost update: each item's price is the highest bid applied and its seq the number
    // applied. Applied: answered accepted, or archived although its answer was a timeout.
    let api = ApiClient::new(&edge)?;
    let rows = archive::archived_bids(&database_url).await?;
    for (index, id) in items.iter().enumerate() {
        let mut applied: HashSet<i64> = rows
            .iter()
            .filter(|r| r.item_id == *id)
            .map(|r| r.amount_cents)
            .collect();
        applied.extend(
            requests
                .iter()
                .filter(|r| r.item == index && r.is_accepted_bid())
                .map(|r| r.amount_cents),
        );
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
    if !viewers_caught_up(&edge, &viewers, &items).await? {
        v.push("a viewer did not see every item's final seq".into());
    }
    let mut seen = Vec::new();
    for viewer in viewers {
        seen.push(viewer.stop().await);
    }
    check_viewers(&seen, v, false);
    for (i, s) in seen.iter().enumerate() {
        if s.gaps > 0 {
            v.push(format!("viewer {i}: {} gaps with no fault", s.gaps));
        }
    }
    result.viewers = seen;
    Ok(result)
}

/// Kill the master of the first item under two loads (durable and not).
async fn redis_failover(
    cluster: &LocalCluster,
    args: &ClusterArgs,
) -> anyhow::Result<ScenarioResult> {
    let edge = cluster.get("GATEWAY_URL")?;
    let database_url = cluster.get("DATABASE_URL")?;
    let env = [
        ("REDIS_URL", cluster.get("REDIS_URL")?),
        ("NATS_URL", cluster.get("NATS_URL")?),
        ("DATABASE_URL", database_url.clone()),
        ("JETSTREAM_REPLICAS", "3".to_owned()),
        ("INSTANCE_ID", "gateway-durable".to_owned()),
        ("DURABLE_ACCEPT", "true".to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    let durable_gateway =
        Service::start("gateway", &args.bin_dir.join("api-gateway"), &env).await?;
    let items = create_items(&edge, "failover", args.items).await?;
    let durable_items = create_items(durable_gateway.url(), "durable", args.items).await?;
    let masters = masters_of(cluster, &items)?;
    let durable_masters = masters_of(cluster, &durable_items)?;
    let victim = *masters.first().context("no items")?;
    let affected: HashSet<usize> = (0..items.len()).filter(|&i| masters[i] == victim).collect();
    let clock = Clock::start();
    let plain = load(vec![edge.clone()], &items, args.rate, clock)?;
    let durable = load(
        vec![durable_gateway.url().to_owned()],
        &durable_items,
        args.rate / 2,
        clock,
    )?;
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
    let after = |rs: &[Request]| {
        rs.iter()
            .filter(|r| r.kind == Kind::Bid && r.sent_ms > fault_ms + RECOVERY_BOUND_MS)
            .all(Request::is_2xx)
    };
    if !after(&requests) {
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
        v.push(format!(
            "{} archived rows match no request",
            result.loss.unexplained
        ));
    }
    result.durable = Some(DurableLoad {
        bids_sent: durable_requests
            .iter()
            .filter(|r| r.kind == Kind::Bid)
            .count(),
        accepted: durable_requests
            .iter()
            .filter(|r| r.is_accepted_bid())
            .count(),
        answers: answers(&durable_requests),
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

/// Kill one NATS node under load, restart it.
async fn nats_node(cluster: &LocalCluster, args: &ClusterArgs) -> anyhow::Result<ScenarioResult> {
    let edge = cluster.get("GATEWAY_URL")?;
    let database_url = cluster.get("DATABASE_URL")?;
    let items = create_items(&edge, "nats", args.items).await?;
    let viewers: Vec<OrderedViewer> = ["BROADCAST_1_URL", "BROADCAST_2_URL"]
        .iter()
        .map(|name| {
            Ok(OrderedViewer::start(
                &authority(&cluster.get(name)?),
                items.clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let clock = Clock::start();
    let workload = load(vec![edge.clone()], &items, args.rate, clock)?;
    tokio::time::sleep(phase(args)).await;
    let fault_ms = clock.now_ms();
    tokio::task::block_in_place(|| cluster.kill("nats-n1"))?;
    viewers.iter().for_each(OrderedViewer::mark);
    tokio::time::sleep(phase(args)).await;
    tokio::task::block_in_place(|| cluster.restart("nats-n1"))?;
    tokio::time::sleep(phase(args)).await;
    let requests = workload.stop().await;
    let loss = drain(&database_url, &requests, &items).await;
    let mut result = base(Scenario::NatsNode, &requests, loss);
    let (unavailable, slowest) = outage(&requests, fault_ms, None);
    result.unavailable_ms = unavailable;
    result.slowest_failure_ms = slowest;
    let v = &mut result.violations;
    if !result.loss.holds() || result.loss.drained_after_ms.is_none() {
        v.push(format!(
            "archive: lost {}, drained {:?}",
            result.loss.lost, result.loss.drained_after_ms
        ));
    }
    exactly_once(&database_url, &edge, &items, v).await;
    if !viewers_caught_up(&edge, &viewers, &items).await? {
        v.push("a viewer did not see every item's final seq".into());
    }
    let mut seen = Vec::new();
    for viewer in viewers {
        seen.push(viewer.stop().await);
    }
    check_viewers(&seen, v, true);
    result.viewers = seen;
    Ok(result)
}

/// Kill one gateway and one broadcast instance behind the load balancer, restart them.
async fn instances(cluster: &LocalCluster, args: &ClusterArgs) -> anyhow::Result<ScenarioResult> {
    let edge = cluster.get("GATEWAY_URL")?;
    let database_url = cluster.get("DATABASE_URL")?;
    let broadcast = authority(&cluster.get("BROADCAST_URL")?);
    let items = create_items(&edge, "instances", args.items).await?;
    // Several viewers through the load balancer, so some are on the instance that dies.
    let viewers: Vec<OrderedViewer> = (0..4)
        .map(|_| OrderedViewer::start(&broadcast, items.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let clock = Clock::start();
    let workload = load(vec![edge.clone()], &items, args.rate, clock)?;
    tokio::time::sleep(phase(args)).await;
    let fault_ms = clock.now_ms();
    tokio::task::block_in_place(|| {
        cluster.kill("gateway-2")?;
        cluster.kill("broadcast-2")
    })?;
    viewers.iter().for_each(OrderedViewer::mark);
    tokio::time::sleep(phase(args)).await;
    tokio::task::block_in_place(|| {
        cluster.restart("gateway-2")?;
        cluster.restart("broadcast-2")
    })?;
    tokio::time::sleep(phase(args)).await;
    let requests = workload.stop().await;
    let loss = drain(&database_url, &requests, &items).await;
    let mut result = base(Scenario::Instances, &requests, loss);
    let (unavailable, slowest) = outage(&requests, fault_ms, None);
    result.unavailable_ms = unavailable;
    result.slowest_failure_ms = slowest;
    let v = &mut result.violations;
    if !result.loss.holds() || result.loss.drained_after_ms.is_none() {
        v.push(format!(
            "archive: lost {}, drained {:?}",
            result.loss.lost, result.loss.drained_after_ms
        ));
    }
    exactly_once(&database_url, &edge, &items, v).await;
    if !viewers_caught_up(&edge, &viewers, &items).await? {
        v.push("a viewer did not see every item's final seq".into());
    }
    let mut seen = Vec::new();
    for viewer in viewers {
        seen.push(viewer.stop().await);
    }
    check_viewers(&seen, v, true);
    result.viewers = seen;
    Ok(result)
}
