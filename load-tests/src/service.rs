//! The services under test as child processes: one type starts any of the platform's binaries
//! (gateway, broadcast service and archival worker share `LISTEN_ADDR` and `GET /ready`), or
//! stands for a gateway someone else runs.
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

/// How long a started service gets to answer `GET /ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a started service gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gateway under test comes from (bench-write takes either).
#[derive(Debug, Clone)]
pub enum GatewaySource {
    /// A gateway someone else runs, e.g. `http://127.0.0.1:8080`.
    Url(String),
    /// A gateway binary to start for the run and stop afterwards.
    Binary(PathBuf),
}

/// A random tag for one run's keys, subjects and stream: letters and digits only, so it is a
/// valid NATS token and (upper-cased) stream name.
pub fn run_tag(prefix: &str) -> String {
    format!("{prefix}{:010x}", fastrand::u64(..) >> 24)
}

/// The environment that gives a run its own Redis keys, NATS subjects and archive stream, so
/// runs on the shared Redis and NATS never see each other's data.
pub fn namespace(tag: &str) -> Vec<(&'static str, String)> {
    let (keys, stream) = (format!("{tag}:"), tag.to_uppercase());
    vec![
        ("REDIS_KEY_PREFIX", keys),
        ("SUBJECT_PREFIX", tag.to_owned()),
        ("ARCHIVE_STREAM", stream),
    ]
}

/// A service ready to take requests.
#[derive(Debug)]
pub struct Service {
    url: String,
    /// The process this run started, while it runs.
    child: Option<Child>,
    /// How it was started, so that [`Service::restart`] starts the same thing again.
    launch: Option<Launch>,
}

#[derive(Debug, Clone)]
struct Launch {
    /// `gateway`, `broadcast`, `worker`: what the logs and errors call it.
    role: &'static str,
    binary: PathBuf,
    env: Vec<(String, String)>,
    addr: SocketAddr,
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

    /// The gateway at a URL, or started from its binary with `env`.
    ///
    /// # Errors
    /// As [`Service::start`].
    pub async fn gateway(source: &GatewaySource, env: &[(&str, String)]) -> anyhow::Result<Self> {
        match source {
            GatewaySource::Url(url) => Ok(Self::external(url)),
            GatewaySource::Binary(path) => Self::start("gateway", path, env).await,
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
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let addr = free_loopback_port().context("cannot find a free port")?;
        let launch = Launch {
            role,
            binary: binary.to_owned(),
            env,
            addr,
        };
        let child = Some(launch.spawn_ready().await?);
        Ok(Self {
            url: format!("http://{addr}"),
            child,
            launch: Some(launch),
        })
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

    /// Starts a killed service again on the same address and environment and waits until it
    /// is ready. A running one is left as it is.
    ///
    /// # Errors
    /// The service was not started by this run, or it cannot start again.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_none() {
            let launch = self.launch.as_ref();
            let launch = launch.context("only a service this run started can be restarted")?;
            self.child = Some(launch.spawn_ready().await?);
        }
        Ok(())
    }

    /// The process id of a running service this run started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Base URL, without a trailing slash.
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

impl Launch {
    /// Starts the process and waits until `GET /ready` answers 200.
    async fn spawn_ready(&self) -> anyhow::Result<Child> {
        let (role, binary) = (self.role, &self.binary);
        let mut child = Command::new(binary)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            // The experiments' users bid far faster than people do.
            .env("BID_RATE_PER_USER", "0")
            // The run's environment may override the defaults above, never the address.
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LISTEN_ADDR", self.addr.to_string())
            .stdin(Stdio::null())
            // Its logs go to stderr with ours, keeping stdout for the summary.
            .stdout(std::io::stderr())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {role} binary {}", binary.display()))?;
        let url = format!("http://{}", self.addr);
        tracing::info!(role, binary = %binary.display(), %url, pid = child.id(), "started");
        let (api, deadline) = (ApiClient::new(&url)?, Instant::now() + READY_TIMEOUT);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("{role} exited before it was ready: {status}");
            }
            if api.is_ready().await {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                // `child` is dropped here, which kills it.
                bail!("{role} at {url} not ready within {READY_TIMEOUT:?}");
            }
            sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A loopback address whose port was free a moment ago: bind port 0, read the port the
/// kernel picked, release it for the service to bind.
fn free_loopback_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_on_loopback_and_not_zero() {
        let addr = free_loopback_port().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
    }

    async fn start_error(binary: &str) -> String {
        let source = GatewaySource::Binary(binary.into());
        Service::gateway(&source, &[])
            .await
            .unwrap_err()
            .to_string()
    }

    #[tokio::test]
    async fn a_gateway_binary_that_exits_at_once_is_reported_not_ready() {
        let err = start_error("/bin/true").await;
        assert!(err.contains("exited before it was ready"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_gateway_binary_is_a_clear_error() {
        let err = start_error("/nonexistent/api-gateway").await;
        assert!(err.contains("cannot start gateway binary"), "{err}");
    }

    #[tokio::test]
    async fn a_url_gateway_cannot_be_restarted() {
        let mut gateway = Service::external("http://127.0.0.1:9");
        gateway.kill().await.unwrap();
        let err = gateway.restart().await.unwrap_err().to_string();
        assert!(err.contains("only a service this run started"), "{err}");
    }

    #[tokio::test]
    async fn a_url_gateway_is_not_ours_to_stop() {
        let source = GatewaySource::Url("http://127.0.0.1:9/".into());
        let gateway = Service::gateway(&source, &[]).await.unwrap();
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
