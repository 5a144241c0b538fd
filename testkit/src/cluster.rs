//! The local cluster, as `infrastructure/local/cluster.sh` starts it (the one way to build the
//! topology, for people and tests alike), in a temp dir on free ports: a 3+3 Redis Cluster and,
//! unless only Redis is asked for, three NATS nodes, two of each service and HAProxy.
//!
//! [`LocalCluster::kill`] sends SIGKILL to a process by the pid file the script wrote (never
//! anything found by name), [`LocalCluster::restart`] asks the script to start it again with
//! the same command, port and data, and dropping the cluster runs `cluster.sh down`.

use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A Redis Cluster node as `CLUSTER NODES` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisNode {
    pub port: u16,
    pub master: bool,
    /// Slot ranges it serves (masters only).
    pub slots: Vec<(u16, u16)>,
}

/// A running local cluster; dropping it stops everything it started.
pub struct LocalCluster {
    script: PathBuf,
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

/// `infrastructure/local/cluster.sh` of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infrastructure/local/cluster.sh")
}

impl LocalCluster {
    /// Runs `cluster.sh up` with the services of `bin_dir` and `service_env` for every service
    /// (`SERVICE_ENV` words), in a fresh temp dir; both gateways sign and verify with
    /// `signing_key_pem`, so tokens the caller mints with it are theirs.
    ///
    /// # Errors
    /// The script fails (its output is in the error).
    pub fn up(
        script: &Path,
        bin_dir: &Path,
        service_env: &str,
        signing_key_pem: &str,
    ) -> anyhow::Result<Self> {
        Self::start(
            script,
            &[
                ("BIN_DIR", bin_dir.as_os_str()),
                ("SERVICE_ENV", service_env.as_ref()),
                ("JWT_SIGNING_KEY", signing_key_pem.as_ref()),
            ],
        )
    }

    /// The Redis Cluster alone (`CLUSTER_ONLY=redis`): its `REDIS_URL` lists the six nodes.
    ///
    /// # Errors
    /// The script fails (its output is in the error).
    pub fn redis_only() -> anyhow::Result<Self> {
        Self::start(&script(), &[("CLUSTER_ONLY", "redis".as_ref())])
    }

    /// The Redis Cluster and the NATS cluster, no services (`CLUSTER_ONLY=stores`).
    ///
    /// # Errors
    /// The script fails (its output is in the error).
    pub fn stores_only(script: &Path) -> anyhow::Result<Self> {
        Self::start(script, &[("CLUSTER_ONLY", "stores".as_ref())])
    }

    fn start(script: &Path, env: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("cluster-").tempdir()?;
        let out = Command::new(script)
            .arg("up")
            .env("CLUSTER_DIR", dir.path())
            .envs(env.iter().copied())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "cluster.sh up failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(dir.path().join("env")).context("reading env")?;
        let env = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        Ok(Self {
            script: script.to_owned(),
            dir,
            env,
        })
    }

    /// A value of the cluster's `env` file (`GATEWAY_URL`, `REDIS_URL`, …).
    ///
    /// # Errors
    /// The script wrote no such value.
    pub fn get(&self, name: &str) -> anyhow::Result<String> {
        self.env
            .get(name)
            .cloned()
            .with_context(|| format!("{name} missing from the cluster's env"))
    }

    /// Copies every process's log (`logs/<name>.log`) into `to`, for a run that failed: the
    /// temp dir, logs and all, goes when the cluster is dropped.
    ///
    /// # Errors
    /// A log cannot be read or `to` cannot be written.
    pub fn save_logs(&self, to: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        for entry in std::fs::read_dir(self.dir.path().join("logs"))? {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, to.join(name))
                    .with_context(|| format!("copying {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// The pid of process `name` (`gateway-2`, `nats-n1`, `redis-<port>`).
    fn pid(&self, name: &str) -> anyhow::Result<i32> {
        let path = self.dir.path().join("pids").join(format!("{name}.pid"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("no pid file {name}"))?;
        text.trim()
            .parse()
            .with_context(|| format!("bad pid file {name}"))
    }

    /// The pid of every process whose name starts with `prefix` (`redis-`, `nats-`).
    pub fn pids(&self, prefix: &str) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("pids")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with(prefix))
            .filter_map(|name| self.pid(name.trim_end_matches(".pid")).ok())
            .filter_map(|pid| u32::try_from(pid).ok())
            .collect()
    }

    /// SIGKILLs process `name` and waits until it is gone.
    ///
    /// # Errors
    /// It has no pid file, or it does not die within 5 s.
    pub fn kill(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.pid(name)?;
        let pid = rustix::process::Pid::from_raw(pid).context("pid 0")?;
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        // The script's processes are not our children: poll until the pid is gone (or a
        // zombie its new parent has yet to reap).
        while rustix::process::test_kill_process(pid).is_ok() && !zombie(pid.as_raw_nonzero().get())
        {
            if Instant::now() > deadline {
                bail!("{name} (pid {pid:?}) did not die");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts process `name` again (same command, port and data).
    ///
    /// # Errors
    /// The script refuses (unknown name, still running).
    pub fn restart(&self, name: &str) -> anyhow::Result<()> {
        let out = Command::new(&self.script)
            .args(["restart", name])
            .env("CLUSTER_DIR", self.dir.path())
            .output()?;
        if !out.status.success() {
            bail!("restart {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// The Redis nodes' ports, from `REDIS_URL`.
    ///
    /// # Errors
    /// `REDIS_URL` is missing or malformed.
    pub fn redis_ports(&self) -> anyhow::Result<Vec<u16>> {
        self.get("REDIS_URL")?
            .split(',')
            .map(|url| {
                let port = url.rsplit(':').next().unwrap_or_default();
                port.parse().with_context(|| format!("bad Redis URL {url}"))
            })
            .collect()
    }

    /// The cluster as the first node that answers sees it.
    ///
    /// # Errors
    /// No node answers.
    pub fn redis_nodes(&self) -> anyhow::Result<Vec<RedisNode>> {
        for port in self.redis_ports()? {
            if let Ok(text) = redis_cli(port, &["cluster", "nodes"]) {
                return Ok(parse_nodes(&text));
            }
        }
        bail!("no Redis node answers CLUSTER NODES")
    }

    /// The slot of `key`.
    ///
    /// # Errors
    /// No node answers.
    pub fn slot_of(&self, key: &str) -> anyhow::Result<u16> {
        for port in self.redis_ports()? {
            if let Ok(text) = redis_cli(port, &["cluster", "keyslot", key]) {
                return text.trim().parse().context("CLUSTER KEYSLOT");
            }
        }
        bail!("no Redis node answers CLUSTER KEYSLOT")
    }

    /// Whether every live node reports `cluster_state:ok`.
    pub fn redis_ok(&self) -> bool {
        let Ok(ports) = self.redis_ports() else {
            return false;
        };
        let answers: Vec<String> = ports
            .iter()
            .filter_map(|&port| redis_cli(port, &["cluster", "info"]).ok())
            .collect();
        !answers.is_empty() && answers.iter().all(|a| a.contains("cluster_state:ok"))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("down")
            .env("CLUSTER_DIR", self.dir.path())
            .output();
    }
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// The master serving `slot` among `nodes`.
pub fn master_of(nodes: &[RedisNode], slot: u16) -> Option<&RedisNode> {
    nodes
        .iter()
        .find(|n| n.master && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
}

fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.starts_with("Could not connect") || text.is_empty() {
        bail!("redis-cli on {port}: {text}");
    }
    Ok(text)
}

/// `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <state> <slots>…`.
fn parse_nodes(text: &str) -> Vec<RedisNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let addr = fields.get(1)?;
            let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags = fields.get(2)?;
            if flags.contains("fail") && !flags.contains("fail?") {
                return None;
            }
            let slots = fields
                .iter()
                .skip(8)
                .filter_map(|range| match range.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => range.parse().ok().map(|s| (s, s)),
                })
                .collect();
            Some(RedisNode {
                port,
                master: flags.contains("master"),
                slots,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_parsed_with_their_slots_and_failed_nodes_left_out() {
        let text = "\
a 127.0.0.1:13600@23600 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:13601@23601 slave a 0 0 1 connected
c 127.0.0.1:13602@23602 master - 0 0 2 connected 5461-10922 12000
d 127.0.0.1:13603@23603 master,fail - 0 0 3 disconnected
";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].slots, [(0, 5460)]);
        assert!(!nodes[1].master);
        assert_eq!(master_of(&nodes, 12000).map(|n| n.port), Some(13602));
        assert_eq!(master_of(&nodes, 11000), None);
    }
}
