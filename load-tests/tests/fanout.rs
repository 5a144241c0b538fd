//! Smoke run of the `fanout` experiment: a few viewers for a few seconds against real
//! gateway and broadcast processes (shared Redis and NATS, per-run prefixes), so the
//! experiment and its report never rot.

mod support;

use load_tests::Outcome;
use load_tests::fanout::{self, FanoutArgs, FanoutLoad};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_smoke_run_delivers_every_bid_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let load = FanoutLoad {
        binaries: support::live_binaries(),
        viewers: vec![20, 60],
        per_process: 40,
        per_client: Some(20),
        rate: 5,
        duration_secs: 1,
        viewers_bin: Some(support::service_bin("load-tests")),
        env: Vec::new(),
    };
    let args = FanoutArgs {
        load,
        out_dir: dir.path().join("fanout"),
    };
    let report = fanout::run(&args).await.unwrap();
    assert!(report.passed(), "{:?}", report.violations);
    assert_eq!(report.levels.len(), 2);
    let big = &report.levels[1].level;
    assert_eq!(big.connected, 60);
    assert_eq!(big.broadcast_instances, 2, "60 viewers at 40 per process");
    assert_eq!(big.viewers_processes, 3, "and at 20 per client");
    assert!(big.bids_accepted >= 3, "{big:?}");
    assert_eq!(big.delivery_ratio, 1.0);
    let cdf_top = report.levels[1].latency_cdf.last().map(|p| p.1);
    assert_eq!(cdf_top, Some(1.0), "the CDF reaches every receipt");
    for file in [
        "result.json",
        "README.md",
        "latency-cdf.svg",
        "latency.svg",
        "memory.svg",
    ] {
        assert!(args.out_dir.join(file).is_file(), "{file} missing");
    }
    let readme = std::fs::read_to_string(args.out_dir.join("README.md")).unwrap();
    assert!(readme.contains("| 60 | 60 | 2 |"), "{readme}");
}
