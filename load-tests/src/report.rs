//! What every experiment's JSON result shares: where it ran, against which
//! gateway, and how the file is written.

use anyhow::Context;
use serde::Serialize;
use std::path::Path;

/// The machine the load generator ran on (the gateway shares it when the
/// bench started it).
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs available to this process (`std::thread::available_parallelism`).
    pub cores: usize,
    pub os: &'static str,
    pub arch: &'static str,
}

impl Machine {
    /// Describes the machine running this process.
    pub fn current() -> Self {
        Self {
            // Unknown parallelism is reported as 0 rather than guessed.
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}

/// The gateway an experiment ran against.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayInfo {
    pub url: String,
    /// Whether the experiment started this gateway itself (`--gateway-bin`).
    pub started_by_bench: bool,
}

/// Writes `result` as pretty JSON to `path`, creating its parent directory.
///
/// # Errors
///
/// The directory or file cannot be written.
pub fn write_json<T: Serialize>(path: &Path, result: &T) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut text = serde_json::to_string_pretty(result).context("cannot serialize the result")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_reports_at_least_one_core_here() {
        let machine = Machine::current();
        assert!(machine.cores >= 1);
        assert_eq!(machine.os, std::env::consts::OS);
    }

    #[test]
    fn result_file_is_pretty_json_in_a_created_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench/results/write.json");
        write_json(
            &path,
            &serde_json::json!({ "experiment": "x", "levels": [] }),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \""), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["experiment"], "x");
    }
}
