//! The files the `fanout-floor` orchestrator and its writer and reader processes pass to each
//! other: a writer's port, a reader's connection count, the start time, the reports and the
//! word to stop. Each is written under a temporary name and renamed into place, so a process
//! polling for one never reads half of it.

use anyhow::{Context, bail};
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes `text` to `path` in one step (write a sibling, then rename).
///
/// # Errors
/// When either file operation fails.
pub fn publish(path: &Path, text: &str) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The number in `path`, `None` while it has not been published.
pub fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Blocks until `path` holds a number, polling every 10 ms (for the child processes, which
/// have no async runtime to spare).
///
/// # Errors
/// When `deadline` passes first.
pub fn wait_for_number(path: &Path, deadline: Instant) -> anyhow::Result<u64> {
    loop {
        if let Some(number) = read_number(path) {
            return Ok(number);
        }
        if Instant::now() > deadline {
            bail!("{} was not written in time", path.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_number_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("start");
        assert_eq!(read_number(&path), None);
        publish(&path, "1700000000123456").unwrap();
        assert_eq!(read_number(&path), Some(1_700_000_000_123_456));
        assert!(!path.with_extension("partial").exists());
    }

    #[test]
    fn waiting_for_a_file_nobody_writes_ends_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let waited = wait_for_number(&dir.path().join("never"), Instant::now());
        assert!(waited.is_err());
    }
}
