//! The services under test as child processes: one type starts any of the platform's binaries
//! (gateway, broadcast service and archival worker share `LISTEN_ADDR` and `GET /ready`), or
//! stands for a gateway someone else runs; [`start_services`] starts a set of them in order.
//!
//! A started service listens on a free loopback port, inherits this process's environment (so
//! `REDIS_URL`/`NATS_URL` pass through) plus the run's own, logs to this process's stderr, and
//! is killed on drop, so an early error never leaves it running. [`Service::kill`] and
//! [`Service::restart`] crash it (SIGKILL) and start it again on the same address with the
//! same environment, as a supervisor would (the `resilience` experiment).

use crate::api::ApiClient;
use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// The Redis deadline (REDIS_TIMEOUT_MS) of a gateway a benchmark or experiment starts. Its
/// production default (80 ms) turns slow answers on a machine shared with the load generator
/// into 503s whose bids may still have been applied, which the checks cannot reconcile; these
/// runs measure throughput and contention, not the deadline, so they give Redis longer.
pub const LOADED_REDIS_TIMEOUT_MS: u64 = 2_000;

/// The role of `bench-write-floor`'s floor server, which verifies tokens as a gateway does.
pub const WRITE_FLOOR_ROLE: &str = "write-floor";
/// How long a started service gets to answer `GET /ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a started service gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The live path's binaries, the flags of every run that starts it (`fanout`, `bench-fanout`,
/// `bench-fanout-nchan`, `bench-close`, `resilience`).
#[derive(Debug, Clone, clap::Args)]
pub struct LiveBinaries {
    /// api-gateway binary, e.g. target/release/api-gateway.
    #[arg(long)]
    pub gateway_bin: PathBuf,
    /// broadcast-service binary, e.g. target/release/broadcast-service.
    #[arg(long)]
    pub broadcast_bin: PathBuf,
}

impl LiveBinaries {
    /// Both binaries in `dir` (a cargo target directory).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            gateway_bin: dir.join("api-gateway"),
            broadcast_bin: dir.join("broadcast-service"),
        }
    }
}

/// A random tag for one run's keys, subjects and stream: letters and digits only, so it is a
/// valid NATS token and (upper-cased) stream name.
pub fn run_tag(prefix: &str) -> String {
    format!("{prefix}{:010x}", fastrand::u64(..) >> 24)
}

/// The environment that gives a run its own Redis keys, NATS subjects and archive stream, so
/// runs on the shared Redis and NATS never see each other's data.
pub fn namespace(tag: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_KEY_PREFIX", format!("{tag}:")),
        ("SUBJECT_PREFIX", tag.to_owned()),
        ("ARCHIVE_STREAM", tag.to_uppercase()),
    ]
}

/// Where a set of services finds its stores, as the environment every service reads.
#[derive(Debug, Clone)]
pub struct Stores {
    pub redis_url: String,
    pub nats_url: String,
    /// The read model, for the services that use one (a fan-out level needs none).
    pub database_url: Option<String>,
    /// Replicas of the JetStream streams (`JETSTREAM_REPLICAS`): 1 on one server, 3 on the
    /// cluster.
    pub replicas: u8,
}

impl Stores {
    /// `REDIS_URL`, `NATS_URL`, `JETSTREAM_REPLICAS` and, with a database, `DATABASE_URL`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("REDIS_URL", self.redis_url.clone()),
            ("NATS_URL", self.nats_url.clone()),
            ("JETSTREAM_REPLICAS", self.replicas.to_string()),
        ];
        env.extend(self.database_url.clone().map(|url| ("DATABASE_URL", url)));
        env
    }
}

/// A loopback address that was free a moment ago: the kernel's pick for port 0, released for
/// a service to bind.
///
/// # Errors
/// When no port can be had.
pub fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0));
    listener
        .and_then(|l| l.local_addr())
        .context("cannot find a free port")
}

/// A service ready to take requests.
#[derive(Debug)]
pub struct Service {
    /// Base URL, without a trailing slash.
    url: String,
    /// The process this run started, while it runs.
    child: Option<Child>,
    /// How it was started (`None` for someone else's), so that a restart starts it again.
    launch: Option<Launch>,
}

#[derive(Debug)]
struct Launch {
    /// `gateway`, `broadcast`, `worker`: what the logs and errors call it.
    role: &'static str,
    binary: PathBuf,
    /// Arguments before the environment takes over (a `load-tests` subcommand, say).
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Service {
    /// A service someone else runs; never checked, restarted or stopped here.
    pub fn external(url: &str) -> Self {
        let url = url.trim_end_matches('/').to_owned();
        Self {
            url,
            child: None,
            launch: None,
        }
    }

    /// Starts the `role` service's `binary` on a free loopback port with extra environment
    /// `env`, and waits until it is ready.
    ///
    /// # Errors
    /// The binary cannot be started, exits early, or is not ready within [`READY_TIMEOUT`].
    pub async fn start(
        role: &'static str,
        binary: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        Self::start_with_args(role, binary, &[], env).await
    }

    /// [`Service::start`] with command-line `args` (e.g. the `load-tests` subcommand of a
    /// floor server, which takes the services' environment too).
    ///
    /// # Errors
    /// As [`Service::start`].
    pub async fn start_with_args(
        role: &'static str,
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        Self::start_at(role, binary, free_loopback_addr()?, args, env).await
    }

    /// [`Service::start_with_args`] on `addr`, for a program whose arguments must name it
    /// (nginx's config) rather than read `LISTEN_ADDR`.
    ///
    /// # Errors
    /// As [`Service::start`].
    pub async fn start_at(
        role: &'static str,
        binary: &Path,
        addr: SocketAddr,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let launch = Launch {
            role,
            binary: binary.to_owned(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            env,
        };
        let mut service = Self {
            url: format!("http://{addr}"),
            child: None,
            launch: Some(launch),
        };
        service.restart().await?;
        Ok(service)
    }

    /// Crashes a service this run started: SIGKILL, no graceful shutdown, then reaps it (so
    /// the port is free when this returns). Killing one already killed does nothing.
    ///
    /// # Errors
    /// The signal cannot be sent or the process cannot be waited for.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("cannot kill the service")?;
            tracing::info!(url = %self.url, "service killed");
        }
        Ok(())
    }

    /// Starts a service this run started (and killed) again on the same address and
    /// environment, and waits until `GET /ready` answers 200. A running one is left as it is.
    ///
    /// # Errors
    /// The service was not started by this run, or it cannot start (again).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let launch = self.launch.as_ref();
        let launch = launch.context("only a service this run started can be restarted")?;
        let (role, binary, url) = (launch.role, &launch.binary, &self.url);
        let mut command = Command::new(binary);
        command.args(&launch.args);
        if role == "gateway" || role == WRITE_FLOOR_ROLE {
            // Every gateway of the run (and the write floor) signs or verifies with the key
            // the harness mints its users' tokens with.
            command.env("JWT_SIGNING_KEY", crate::credentials::signing_key_pem()?);
        }
        let mut child = command
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            // The experiments' users bid far faster than people do, and their accounts sign
            // in from one host far faster than people do.
            .env("BID_RATE_PER_USER", "0")
            .env("AUTH_ATTEMPTS_PER_IP_PER_MINUTE", "0")
            // The run's environment may override the defaults above, never the address.
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LISTEN_ADDR", self.authority())
            .stdin(Stdio::null())
            // Its logs go to stderr with ours, keeping stdout for the summary.
            .stdout(std::io::stderr())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {role} binary {}", binary.display()))?;
        tracing::info!(role, binary = %binary.display(), %url, pid = child.id(), "started");
        let (api, deadline) = (ApiClient::new(url)?, Instant::now() + READY_TIMEOUT);
        while !api.is_ready().await {
            if let Some(status) = child.try_wait()? {
                bail!("{role} exited before it was ready: {status}");
            }
            if Instant::now() >= deadline {
                // `child` is dropped here, which kills it.
                bail!("{role} at {url} not ready within {READY_TIMEOUT:?}");
            }
            sleep(Duration::from_millis(100)).await;
        }
        self.child = Some(child);
        Ok(())
    }

    /// The process id of a running service this run started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port`, for WebSocket URLs and raw sockets.
    pub fn authority(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Whether this run started (and will stop) the service.
    pub fn started_by_bench(&self) -> bool {
        self.child.is_some()
    }

    /// Stops a service this run started: SIGTERM, then SIGKILL if it has not exited within
    /// [`STOP_TIMEOUT`]. An external one is left alone.
    ///
    /// # Errors
    /// The signal cannot be sent or the process cannot be waited for.
    pub async fn shutdown(mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        let pid = child
            .id()
            .and_then(|id| Pid::from_raw(i32::try_from(id).ok()?));
        // `SRCH`: it exited between `id()` and the signal.
        match pid.map(|pid| kill_process(pid, Signal::TERM)) {
            Some(Ok(()) | Err(rustix::io::Errno::SRCH)) | None => {}
            Some(Err(e)) => return Err(e).context("cannot send SIGTERM"),
        }
        let status = match timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                tracing::warn!(url = %self.url, "still running {STOP_TIMEOUT:?} after SIGTERM");
                child.kill().await.context("cannot kill the service")?;
                child.wait().await?
            }
        };
        tracing::info!(url = %self.url, %status, "service stopped");
        Ok(Some(status))
    }

    /// [`Service::shutdown`] once the figures are complete: a service that stops badly is
    /// worth a warning, not the loss of the run.
    pub async fn stop(self) {
        if let Err(e) = self.shutdown().await {
            tracing::warn!(error = %format!("{e:#}"), "service did not stop cleanly");
        }
    }
}

/// Starts each `(role, binary)` on a free loopback port with `env`, in order; a failure
/// drops (and so kills) those already started.
///
/// # Errors
/// As [`Service::start`].
pub async fn start_services<const N: usize>(
    services: [(&'static str, &Path); N],
    env: &[(&str, String)],
) -> anyhow::Result<[Service; N]> {
    let mut started = Vec::with_capacity(N);
    for (role, binary) in services {
        started.push(Service::start(role, binary, env).await?);
    }
    started
        .try_into()
        .map_err(|_| anyhow::anyhow!("not every service started"))
}

/// Stops every service, in order.
///
/// # Errors
/// The first that did not stop cleanly.
pub async fn shutdown_all(services: impl IntoIterator<Item = Service>) -> anyhow::Result<()> {
    for service in services {
        service.shutdown().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gateway_binary_that_is_missing_or_exits_at_once_is_a_clear_error() {
        for (binary, error) in [
            ("/bin/true", "exited before it was ready"),
            ("/nonexistent/api-gateway", "cannot start gateway binary"),
        ] {
            let started = Service::start("gateway", binary.as_ref(), &[]).await;
            let err = started.unwrap_err().to_string();
            assert!(err.contains(error), "{err}");
        }
    }

    #[tokio::test]
    async fn a_url_gateway_is_not_ours_to_restart_or_stop() {
        let mut gateway = Service::external("http://127.0.0.1:9/");
        gateway.kill().await.unwrap();
        let err = gateway.restart().await.unwrap_err().to_string();
        assert!(err.contains("only a service this run started"), "{err}");
        assert_eq!(
            (gateway.url(), gateway.authority()),
            ("http://127.0.0.1:9", "127.0.0.1:9")
        );
        assert!(!gateway.started_by_bench());
        assert_eq!(gateway.shutdown().await.unwrap(), None);
    }

    #[test]
    fn a_run_namespace_prefixes_keys_subjects_and_the_stream() {
        let tag = run_tag("ct");
        assert!(tag.starts_with("ct") && tag.chars().all(|c| c.is_ascii_alphanumeric()));
        let env = namespace("ct1");
        assert!(env.contains(&("ARCHIVE_STREAM", "CT1".to_owned())));
        assert!(env.contains(&("REDIS_KEY_PREFIX", "ct1:".to_owned())));
    }
}
