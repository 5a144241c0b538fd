//! Smoke run of `bench-write` with its token-versus-open comparison (part of `make test`): a
//! gateway verifying real tokens (two bidders registered through the API, the others signed
//! with the run's key) and a second one in `AUTH_MODE=open`, a few users for two seconds each,
//! through the same `run` the command line calls. It proves the pipeline and its checks work,
//! not the figures.

mod support;

use load_tests::bench_write::{self, BenchWriteArgs, WriteLoad};
use load_tests::contention::HotLevel;
use load_tests::goose_run::RunLength;
use std::path::PathBuf;

/// A smoke run of `clients` users, two seconds a level, against a gateway the bench starts,
/// writing to `out`; no registered bidders, comparison, database or proxy bidders.
fn smoke(clients: u32, out: PathBuf) -> BenchWriteArgs {
    BenchWriteArgs {
        gateway_url: None,
        gateway_bin: Some(support::service_bin("api-gateway")),
        load: WriteLoad {
            clients: vec![clients],
            run: RunLength::smoke(2),
        },
        out,
        registered_bidders: 0,
        compare_open_clients: None,
        database_url: None,
        proxy_bidders: false,
    }
}

/// A level that passed its checks, with bids accepted and no request failed.
fn assert_clean(level: &HotLevel) {
    assert!(level.passed(), "{:?}", level.violations);
    assert!(level.accepted > 0 && level.errors.is_empty(), "{level:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_run_bids_with_tokens_compares_open_mode_and_writes_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("write.json");
    let args = BenchWriteArgs {
        registered_bidders: 2,
        compare_open_clients: Some(4),
        database_url: Some(
            testkit::fresh_database(testkit::SHARED_POSTGRES_ADMIN_URL)
                .await
                .unwrap(),
        ),
        ..smoke(4, out.clone())
    };

    let result = bench_write::run(&args).await.unwrap();

    let level = &result.levels[0];
    assert_clean(level);
    let comparison = result.auth_comparison.as_ref().expect("compared");
    assert_eq!(
        (comparison.token_levels.len(), comparison.open_levels.len()),
        (2, 2)
    );
    for level in comparison
        .token_levels
        .iter()
        .chain(&comparison.open_levels)
    {
        assert_clean(level);
    }
    assert!(
        comparison.figures.open_bids_per_sec > 0.0 && comparison.figures.token_bids_per_sec > 0.0
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let written = &json["auth_comparison"];
    assert_eq!(written["clients"], 4);
    assert!(
        written["ratio"].as_f64().is_some_and(|r| r > 0.0),
        "{written}"
    );
    assert_eq!(written["budget_percent"], 10.0);
}

/// Half the users bid with a maximum (`--proxy-bidders`): the level's checks hold with the
/// automatic bids (final price, `seq` and `bid_count` against the events the answers report),
/// and both kinds are timed apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_run_with_proxy_bidders_keeps_every_check_and_times_both_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("write-proxy.json");
    let args = BenchWriteArgs {
        proxy_bidders: true,
        ..smoke(6, out.clone())
    };

    let result = bench_write::run(&args).await.unwrap();

    let level = &result.levels[0];
    assert_clean(level);
    let comparison = level.proxy_comparison.as_ref().expect("both kinds timed");
    assert_eq!((comparison.plain.clients, comparison.proxy.clients), (3, 3));
    assert!(
        comparison.plain.requests > 0 && comparison.proxy.requests > 0,
        "{comparison:?}"
    );
    assert_eq!(
        level.requests,
        comparison.plain.requests + comparison.proxy.requests
    );
    assert!(
        level.check.final_seq >= level.accepted,
        "automatic bids add events: {level:?}"
    );
}
