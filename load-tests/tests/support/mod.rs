//! What the experiments' smoke tests share: the service binaries they start.
//!
//! `make test` runs `cargo test --workspace --all-targets`, which builds every
//! service binary into the same target directory as this test before running
//! it; the experiments start those binaries as child processes, as they do
//! at full scale.

use std::path::PathBuf;

/// Path of the workspace binary `name` (e.g. `api-gateway`) next to this test's
/// own target directory.
///
/// # Panics
///
/// When the binary has not been built: build the workspace first
/// (`cargo build --workspace`, or run the tests with `--workspace`).
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
