//! What the experiments' smoke tests share: the service binaries they start as child processes,
//! as at full scale (`make test` builds every binary into this test's target directory).

use load_tests::service::LiveBinaries;
use std::path::PathBuf;

/// Path of the workspace binary `name` (e.g. `api-gateway`) in this test's target directory.
///
/// # Panics
/// When the binary has not been built (`cargo build --workspace` first).
pub fn service_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace` (or `make test`) first",
        bin.display()
    );
    bin
}

/// The gateway and broadcast binaries of this test's target directory.
#[allow(dead_code)] // Not every test binary starts the live path.
pub fn live_binaries() -> LiveBinaries {
    LiveBinaries {
        gateway_bin: service_bin("api-gateway"),
        broadcast_bin: service_bin("broadcast-service"),
    }
}
