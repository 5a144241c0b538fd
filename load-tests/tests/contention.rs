//! Smoke run of `contention` (part of `make test`): both strategies against freshly started
//! gateways, a few users for two seconds and a handful of mixed items, through the same `run`
//! the command line calls. It proves the pipeline and its checks work, not the figures.

mod support;

use load_tests::contention::{self, ContentionArgs, Strategy};
use load_tests::goose_run::RunLength;
use load_tests::{Outcome, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_run_compares_both_strategies_checks_them_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("bench/results/contention");
    let args = ContentionArgs {
        gateway_bin: support::service_bin("api-gateway"),
        strategies: vec![Strategy::Lua, Strategy::Optimistic],
        users: vec![4],
        run: RunLength::smoke(2),
        mixed_users: 4,
        mixed_items: 5,
        prefilter: false,
        redis_timeout_ms: 2_000,
        nats_url: testkit::SHARED_NATS_URL.to_owned(),
        out_dir: out_dir.clone(),
    };

    let result = contention::run(&args).await.unwrap();

    let violations = &result.violations;
    assert_eq!(result.verdict(), Verdict::Passed, "{violations:#?}");
    let names: Vec<Strategy> = result.strategies.iter().map(|s| s.strategy).collect();
    assert_eq!(names, [Strategy::Lua, Strategy::Optimistic]);
    for s in &result.strategies {
        assert_eq!(s.hot.len(), 1);
        assert!(s.hot[0].accepted > 0, "{:?}: no accepted bid", s.strategy);
        assert!(s.hot[0].bids.requests >= s.hot[0].accepted);
        assert!(
            s.mixed.accepted > 0,
            "{:?}: no accepted mixed bid",
            s.strategy
        );
        assert_eq!(s.archive.found, s.archive.expected);
    }
    let lua_retries = result.strategies[0].hot[0].optimistic_retries;
    assert_eq!(lua_retries, Some(0), "the Lua strategy never retries");

    let json = std::fs::read_to_string(out_dir.join("result.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["experiment"], "contention");
    assert_eq!(json["strategies"][1]["strategy"], "optimistic");
    let readme = std::fs::read_to_string(out_dir.join("README.md")).unwrap();
    assert!(readme.contains("| optimistic | 4 |"), "{readme}");
    for chart in ["throughput", "p99", "latency-cdf", "mixed"] {
        let svg = std::fs::read_to_string(out_dir.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{chart}.svg is not an SVG");
        let link = format!("({chart}.svg)");
        assert!(readme.contains(&link), "README links {chart}.svg");
    }
}
