//! The cluster suite (part of `make test`): the `cluster` experiment, short, on a throwaway
//! local cluster (`cluster.sh` in a temp dir, free ports) of the binaries this build made. All
//! four scenarios must pass their checks: the whole path through the load balancer to viewers
//! on both broadcast instances and to PostgreSQL exactly once; a Redis master killed (no bid
//! lost with durable accept; without it the count is reported); a NATS node killed; a gateway
//! and a broadcast instance killed behind the load balancer.

mod support;

use load_tests::cluster::{self, ClusterArgs, Scenario};
use load_tests::{Outcome, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guarantees_hold_on_the_cluster_through_every_fault() {
    let out = tempfile::tempdir().unwrap();
    let bin_dir = support::service_bin("api-gateway")
        .parent()
        .expect("the binaries' directory")
        .to_owned();
    support::service_bin("broadcast-service");
    support::service_bin("archival-worker");
    let args = ClusterArgs {
        bin_dir,
        script: testkit::cluster::script(),
        rate: 100,
        phase_secs: 3,
        items: 9,
        redis_timeout_ms: 500,
        scenarios: vec![
            Scenario::Path,
            Scenario::RedisFailover,
            Scenario::NatsNode,
            Scenario::Instances,
        ],
        out_dir: out.path().join("cluster"),
    };

    let result = cluster::run(&args).await;
    let result = result.unwrap_or_else(|e| panic!("{e:#}{}", log_tails(&args.out_dir)));

    assert_eq!(
        result.verdict(),
        Verdict::Passed,
        "{}{}",
        result.summary(),
        log_tails(&args.out_dir)
    );
    assert_eq!(result.scenarios.len(), 4);
    // Every bid on the healthy cluster is accepted, or (a Redis call past the debug build's
    // 500 ms deadline on a loaded CI machine) answered with a fast 503 whose effect the
    // scenario's no-lost-update check has already traced to Redis and the archive.
    let path = &result.scenarios[0];
    let unavailable: usize = path
        .answers
        .iter()
        .filter(|(label, _)| label.starts_with("503 "))
        .map(|(_, count)| count)
        .sum();
    assert!(
        path.accepted > 0 && path.accepted + unavailable == path.bids_sent,
        "{}",
        result.summary()
    );
    assert_eq!(path.viewers.len(), 2, "a viewer on each broadcast instance");
    assert!(path.viewers.iter().all(|v| v.events > 0));
    let failover = &result.scenarios[1];
    assert!(
        failover.promoted_after_ms.is_some(),
        "a replica was promoted"
    );
    let durable = failover.durable.as_ref().expect("the durable load");
    assert_eq!((durable.loss.lost, durable.lost_in_redis), (0, 0));
    let readme = std::fs::read_to_string(out.path().join("cluster/README.md")).unwrap();
    assert!(readme.contains("| RedisFailover |"), "{readme}");
}

/// The last lines of every log the run kept for a failed scenario (`logs-<scenario>/`), so a
/// red CI shows what the services said, not only which check failed.
fn log_tails(out_dir: &std::path::Path) -> String {
    const LINES: usize = 30;
    let mut text = String::new();
    let dirs = std::fs::read_dir(out_dir).into_iter().flatten().flatten();
    for dir in dirs.filter(|d| d.file_name().to_string_lossy().starts_with("logs-")) {
        let mut logs: Vec<_> = std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        logs.sort();
        for log in logs {
            let body = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<_> = body.lines().collect();
            let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
            text.push_str(&format!(
                "\n--- {} (last {LINES} lines)\n{tail}",
                log.display()
            ));
        }
    }
    text
}
