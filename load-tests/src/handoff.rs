//! How an orchestrator and the client processes it starts (fan-out's viewers, the floor's
//! writers and readers) talk: small files in one directory per level. Each file is written
//! under a temporary name and renamed into place, so a process polling for one never reads
//! half of it.

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
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
/// run no async runtime to spare).
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

/// How many sockets each client process of a level holds: `total` split into the fewest
/// processes of at most `per_process`, as evenly as whole counts allow.
pub fn shares(total: usize, per_process: usize) -> Vec<usize> {
    let processes = total.div_ceil(per_process.max(1));
    let per = total.div_ceil(processes.max(1));
    (0..processes)
        .map(|k| per.min(total.saturating_sub(k * per)))
        .collect()
}

/// Runs `level` for each of `counts` in turn (the levels of a fan-out experiment), raising the
/// open-file limit first: a level holds tens of thousands of sockets.
///
/// # Errors
/// The first level that fails.
pub async fn each_level<T>(
    what: &str,
    counts: &[usize],
    mut level: impl AsyncFnMut(usize) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    crate::host::raise_fd_limit();
    let mut levels = Vec::with_capacity(counts.len());
    for &count in counts {
        tracing::info!(viewers = count, "{what} level");
        levels.push(level(count).await?);
    }
    Ok(levels)
}

/// One level's directory of files, removed again when dropped.
#[derive(Debug)]
pub struct Handoff {
    dir: PathBuf,
}

impl Handoff {
    /// A fresh directory under the system's temporary directory.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn create(prefix: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}{:010x}", fastrand::u64(..) >> 24));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// The file `name` of client process `k` (`name` alone for `k = None`).
    pub fn file(&self, name: &str, k: Option<usize>) -> PathBuf {
        match k {
            Some(k) => self.dir.join(format!("{name}-{k}")),
            None => self.dir.join(name),
        }
    }

    /// Starts one client process `load-tests <role> --count <share>` per share: `bin`, else this
    /// program (tests, whose own executable is the test harness, pass the built binary); `args`
    /// adds process `k`'s other flags. Each is killed if dropped.
    ///
    /// # Errors
    /// When this program cannot find its own path or a process cannot start.
    pub fn spawn(
        &self,
        bin: Option<&Path>,
        role: &str,
        shares: &[usize],
        args: impl Fn(usize, &mut tokio::process::Command),
    ) -> anyhow::Result<Vec<tokio::process::Child>> {
        let bin = match bin {
            Some(bin) => bin.to_owned(),
            None => std::env::current_exe().context("finding the load-tests binary")?,
        };
        let spawn = |(k, count): (usize, &usize)| {
            let mut command = tokio::process::Command::new(&bin);
            command.arg(role).args(["--count", &count.to_string()]);
            args(k, command.kill_on_drop(true));
            command
                .spawn()
                .with_context(|| format!("starting a {role} process"))
        };
        shares.iter().enumerate().map(spawn).collect()
    }

    /// Waits until processes `0..n` have each published `name` and returns the sum of their
    /// numbers (e.g. how many sockets each connected).
    ///
    /// # Errors
    /// When one is not published within `timeout`.
    pub async fn sum(&self, name: &str, n: usize, timeout: Duration) -> anyhow::Result<u64> {
        let mut sum = 0;
        for k in 0..n {
            sum += self
                .wait(name, k, timeout)
                .await?
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
        Ok(sum)
    }

    /// Waits for the JSON report `name` of each process `0..n`.
    ///
    /// # Errors
    /// When one is not published within `timeout` or is not a `T`.
    pub async fn reports<T: DeserializeOwned>(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<T>> {
        let mut reports = Vec::with_capacity(n);
        for k in 0..n {
            let text = self.wait(name, k, timeout).await?;
            reports.push(serde_json::from_str(&text).with_context(|| format!("{name}-{k}"))?);
        }
        Ok(reports)
    }

    /// The text process `k` published as `name`, once it has.
    ///
    /// # Errors
    /// When it is not published within `timeout`.
    pub async fn wait(&self, name: &str, k: usize, timeout: Duration) -> anyhow::Result<String> {
        let path = self.file(name, Some(k));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Ok(text);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} not written within {timeout:?}", path.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_number_reads_back_and_a_missing_one_is_none_until_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("start");
        assert_eq!(read_number(&path), None);
        assert!(wait_for_number(&path, Instant::now()).is_err());
        publish(&path, "1700000000123456").unwrap();
        assert_eq!(read_number(&path), Some(1_700_000_000_123_456));
        assert!(!path.with_extension("partial").exists());
    }

    #[tokio::test]
    async fn the_numbers_of_every_process_are_summed_and_the_directory_goes_away() {
        let handoff = Handoff::create("handoff-test").unwrap();
        publish(&handoff.file("ready", Some(0)), "3").unwrap();
        publish(&handoff.file("ready", Some(1)), "4").unwrap();
        let sum = handoff.sum("ready", 2, Duration::from_secs(1)).await;
        assert_eq!(sum.unwrap(), 7);
        assert!(handoff.sum("ready", 3, Duration::ZERO).await.is_err());
        let dir = handoff.dir.clone();
        drop(handoff);
        assert!(!dir.exists());
    }

    #[test]
    fn a_level_is_split_into_the_fewest_processes_as_evenly_as_possible() {
        assert_eq!(shares(60, 25), [20, 20, 20]);
        assert_eq!(shares(60, 40), [30, 30]);
        assert_eq!(shares(10, 4), [4, 4, 2]);
    }
}
