//! Smoke runs of issue 18's peer benchmarks (part of `make test`): `bench-write-floor` (the
//! gateway and the floor server, both real processes on the shared Redis) and
//! `bench-fanout-nchan` (the broadcast service and nginx + nchan from Debian's packages, with
//! the same viewers processes, then `fanout-floor` on the same viewers), a few clients or
//! viewers for a second or two each. They prove the pipelines, their checks and the result
//! files, not the figures.

mod support;

use load_tests::bench_write::WriteLoad;
use load_tests::fanout::FanoutLoad;
use load_tests::fanout::nchan::{self, BenchFanoutNchanArgs};
use load_tests::goose_run::RunLength;
use load_tests::write_floor::{self, BenchWriteFloorArgs};
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_floor_takes_the_same_load_as_the_gateway_and_both_keep_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("write-floor.json");
    let args = BenchWriteFloorArgs {
        gateway_bin: support::service_bin("api-gateway"),
        floor_bin: Some(support::service_bin("load-tests")),
        load: WriteLoad {
            clients: vec![4],
            run: RunLength::smoke(2),
        },
        pairs: 1,
        out: out.clone(),
    };

    let result = write_floor::run(&args).await.unwrap();

    let level = &result.levels[0];
    assert_eq!((level.gateway_runs.len(), level.floor_runs.len()), (2, 2));
    for run in level.gateway_runs.iter().chain(&level.floor_runs) {
        assert!(run.passed(), "{:?}", run.violations);
        assert!(run.accepted > 0 && run.errors.is_empty(), "{run:?}");
        assert_eq!(
            run.check.final_seq, run.accepted,
            "seq counts the accepted bids"
        );
    }
    assert!(
        level.floor_bids_per_sec > 0.0 && level.ratio > 0.0,
        "{level:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["levels"][0]["clients"], 4);
    assert_eq!(json["goal_ratio"], 0.6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_and_the_broadcast_service_deliver_every_event_to_the_same_viewers_client() {
    let nginx = PathBuf::from("/usr/sbin/nginx");
    let module = PathBuf::from("/usr/lib/nginx/modules/ngx_nchan_module.so");
    let installed = std::process::Command::new("infrastructure/local/nchan.sh")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .arg("install")
        .status()
        .unwrap();
    assert!(installed.success() && nginx.exists() && module.exists());
    let dir = tempfile::tempdir().unwrap();
    let args = BenchFanoutNchanArgs {
        load: FanoutLoad {
            binaries: support::live_binaries(),
            viewers: vec![30],
            per_process: 20,
            per_client: None,
            rate: 5,
            duration_secs: 1,
            viewers_bin: Some(support::service_bin("load-tests")),
            env: Vec::new(),
        },
        nginx_bin: nginx,
        nchan_module: module,
        pairs: 1,
        out: dir.path().join("fanout-nchan.json"),
    };

    let result = nchan::run(&args).await.unwrap();

    let level = &result.levels[0];
    assert_eq!((level.broadcast_runs.len(), level.nchan_runs.len()), (2, 2));
    for run in level.broadcast_runs.iter().chain(&level.nchan_runs) {
        assert_eq!(run.connected, 30, "{run:?}");
        assert!(run.bids_accepted >= 3, "{run:?}");
        assert_eq!(run.delivery_ratio, 1.0, "{run:?}");
    }
    assert!(
        level.nchan_p99_ms > 0.0 && level.p99_ratio > 0.0,
        "{level:?}"
    );
    let floor = &level.floor.run;
    assert_eq!((floor.viewers, floor.connected), (30, 30), "{floor:?}");
    assert_eq!(floor.delivery_ratio, 1.0, "{floor:?}");
    assert_eq!(floor.frames_expected, 30 * 5, "the level's five events");
    assert!(
        level.floor.p99_ms > 0.0 && level.floor.ratio_to_nchan > 0.0,
        "{level:?}"
    );
    assert!(dir.path().join("fanout-nchan.json").exists());
}
