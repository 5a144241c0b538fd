//! Smoke run of the `resilience` experiment: every fault with short outages at a low rate,
//! against its own throwaway Redis, NATS and PostgreSQL and the real service binaries.

mod support;

use load_tests::Outcome;
use load_tests::resilience::{self, ResilienceArgs, faults::Fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_survived_without_losing_an_accepted_bid() {
    let out = tempfile::tempdir().unwrap();
    let args = ResilienceArgs {
        binaries: support::live_binaries(),
        worker_bin: support::service_bin("archival-worker"),
        faults: Fault::ALL.to_vec(),
        outage_secs: None,
        settle_secs: None,
        rate: None,
        out_dir: out.path().join("resilience"),
        smoke: true,
    };

    let result = resilience::run(&args).await.unwrap();

    println!("{}", result.summary());
    assert!(result.passed(), "violations: {:?}", result.violations);
    let reported: Vec<Fault> = result.faults.iter().map(|f| f.fault).collect();
    assert_eq!(reported, Fault::ALL.to_vec());
    assert!(result.loss.accepted > 0, "no bid was accepted");
    assert_eq!(result.loss.lost, 0);
    assert_eq!(result.loss.unexplained, 0);
    let redis = result.faults.iter().find(|f| f.fault == Fault::Redis);
    let answers = &redis.unwrap().outage.answers;
    let got_503 = answers.keys().any(|label| label.starts_with("503"));
    assert!(got_503, "Redis down gave no 503: {answers:?}");
    for file in [
        "result.json",
        "README.md",
        "timeline.svg",
        "availability.svg",
    ] {
        let path = args.out_dir.join(file);
        assert!(path.is_file(), "{} not written", path.display());
    }
    let readme = std::fs::read_to_string(args.out_dir.join("README.md")).unwrap();
    for fault in Fault::ALL {
        let row = format!("| {} |", fault.name());
        assert!(readme.contains(&row), "{fault:?} missing");
    }
}
