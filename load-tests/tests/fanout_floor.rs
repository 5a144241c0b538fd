//! Smoke run of `fanout-floor`: three writer and three reader processes of the built binary,
//! 60 sockets, a few passes, so the benchmark and its result file never rot. Needs no stack.

mod support;

use load_tests::Outcome;
use load_tests::fanout_floor::{self, FanoutFloorArgs, frame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_floor_smoke_run_delivers_every_frame_and_writes_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let args = FanoutFloorArgs {
        viewers: vec![60],
        per_process: 25,
        rounds: 3,
        interval_ms: 50,
        frame_bytes: frame::bid_placed_frame_bytes(),
        out: dir.path().join("bench/results/fanout-floor.json"),
        floor_bin: Some(support::service_bin("load-tests")),
    };
    let result = fanout_floor::run(&args).await.unwrap();
    assert!(result.passed(), "{result:?}");
    let level = &result.levels[0];
    assert_eq!(level.connected, 60);
    assert_eq!(level.writer_processes, 3, "60 viewers at 25 per process");
    assert_eq!(level.frames_expected, 180);
    assert_eq!(level.frames_received, 180);
    assert_eq!(level.delivery_ratio, 1.0);
    let latency = level.latency_ms;
    let percentiles = [latency.p50, latency.p99, latency.p999, latency.max];
    assert!(percentiles.iter().all(|ms| *ms > 0.0), "{latency:?}");
    assert!(percentiles.is_sorted(), "{latency:?}");
    assert!(level.pass_ms_median > 0.0 && level.pass_us_per_socket_median > 0.0);

    let text = std::fs::read_to_string(&args.out).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["experiment"], "fanout-floor");
    assert_eq!(json["frame_bytes"], args.frame_bytes);
    let written = &json["levels"][0];
    let fields = "viewers writer_processes frames_expected frames_received delivery_ratio \
                  pass_ms_median pass_us_per_socket_median load_average_before load_average_after";
    for field in fields.split_whitespace() {
        assert!(written[field].is_number(), "{field} missing: {written}");
    }
    for percentile in ["p50", "p99", "p999", "max"] {
        let ms = written["latency_ms"][percentile].as_f64();
        assert!(ms > Some(0.0), "{percentile}: {written}");
    }
}
