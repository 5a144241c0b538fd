//! What the machine says about itself and its processes: cores, resident memory, load average
//! and the open-file limit the socket-heavy experiments raise.

use serde::Serialize;
use std::path::Path;

/// The machine the load generator ran on (the services share it when the run started them).
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs available to this process; 0 when unknown rather than guessed.
    pub cores: usize,
    pub os: &'static str,
    pub arch: &'static str,
}

impl Machine {
    pub fn current() -> Self {
        Self {
            cores: cores(),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}

/// CPUs available to this process (0 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// Resident memory of process `pid` in KiB (`VmRSS`), 0 where it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system, seconds) process `pid` has used so far, 0 where it cannot be read.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) end with ')': utime and stime are
    // the 14th and 15th fields of the line, the 12th and 13th after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// The 1-minute load average (`/proc/loadavg`), 0 where it cannot be read.
pub fn load_average() -> f64 {
    read_load_average(Path::new("/proc/loadavg")).unwrap_or(0.0)
}

fn read_load_average(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Raises this process's open-file limit to its hard limit: a level holds tens of thousands
/// of sockets, far past the usual soft limit of 1,024.
pub fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(e) = setrlimit(Resource::Nofile, raised) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_and_process_report_cores_memory_and_the_load_average() {
        let machine = Machine::current();
        assert!(machine.cores >= 1);
        assert_eq!(machine.os, std::env::consts::OS);
        assert!(rss_kib(std::process::id()) > 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loadavg");
        std::fs::write(&path, "1.52 0.98 0.40 3/512 12345\n").unwrap();
        assert_eq!(read_load_average(&path), Some(1.52));
        assert_eq!(read_load_average(&dir.path().join("missing")), None);
    }
}
