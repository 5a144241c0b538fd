//! The gateway under test: one already running (a URL), or one this process
//! starts from a binary and stops again.
//!
//! A started gateway listens on a free loopback port, inherits this process's
//! environment (so `REDIS_URL`/`NATS_URL` pass through), logs to this process's
//! stderr and is owned by a
//! [`Gateway`] value: [`Gateway::shutdown`] sends it SIGTERM and waits, and the
//! child is also killed on drop, so an early error never leaves it running.
//! [`Gateway::kill`] and [`Gateway::restart`] crash it (SIGKILL) and start it again on the
//! same address with the same environment, as a supervisor would, so clients and the other
//! services find it again (the `resilience` experiment).

use crate::api::ApiClient;
use anyhow::{Context, bail};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// How long a started gateway gets to answer `GET /ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(100);
/// How long a started gateway gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gateway comes from.
#[derive(Debug, Clone)]
pub enum GatewaySource {
    /// A gateway someone else runs, e.g. `http://127.0.0.1:8080`.
    Url(String),
    /// A gateway binary to start for the run and stop afterwards.
    Binary(PathBuf),
}

/// A gateway ready to take requests.
#[derive(Debug)]
pub struct Gateway {
    url: String,
    /// The process this run started, if it started one.
    child: Option<Child>,
    /// How it was started, kept so that [`Gateway::restart`] starts the same thing again.
    launch: Option<Launch>,
}

/// A started service's command: binary, extra environment and the address it listens on.
#[derive(Debug, Clone)]
struct Launch {
    binary: PathBuf,
    env: Vec<(String, String)>,
    addr: SocketAddr,
}

impl Gateway {
    /// Uses the gateway at a URL, or starts the binary and waits until it is ready.
    ///
    /// # Errors
    ///
    /// The binary cannot be started, exits early, or is not ready within
    /// [`READY_TIMEOUT`]; a URL gateway is not checked here (the first request
    /// will tell).
    pub async fn start(source: &GatewaySource) -> anyhow::Result<Self> {
        match source {
            GatewaySource::Url(url) => Ok(Self {
                url: url.trim_end_matches('/').to_owned(),
                child: None,
                launch: None,
            }),
            GatewaySource::Binary(path) => Self::spawn(path).await,
        }
    }

    async fn spawn(binary: &Path) -> anyhow::Result<Self> {
        Self::spawn_with_env(binary, &[]).await
    }

    /// Starts any of the platform's service binaries (they share `LISTEN_ADDR` and `/ready`)
    /// with extra environment, and waits until it is ready.
    ///
    /// # Errors
    ///
    /// As [`Gateway::start`].
    pub async fn spawn_with_env(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let addr = free_loopback_port().context("cannot find a free port for the gateway")?;
        Self::spawn_on(binary, addr, env).await
    }

    /// As [`Gateway::spawn_with_env`], on a given address.
    ///
    /// # Errors
    ///
    /// As [`Gateway::start`], or the address is taken.
    pub async fn spawn_on(
        binary: &Path,
        addr: SocketAddr,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let launch = Launch {
            binary: binary.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            addr,
        };
        let child = launch.spawn_ready().await?;
        Ok(Self {
            url: launch.url(),
            child: Some(child),
            launch: Some(launch),
        })
    }

    /// Crashes a service this run started: SIGKILL, no graceful shutdown, then reaps it.
    /// Killing one already killed does nothing.
    ///
    /// # Errors
    ///
    /// The signal cannot be sent or the process cannot be waited for.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL and waits, so the port is released when it returns.
            child.kill().await.context("cannot kill the service")?;
            tracing::info!(url = %self.url, "service killed");
        }
        Ok(())
    }

    /// Starts a killed service again on the same address with the same environment and waits
    /// until it is ready. A running one is left as it is.
    ///
    /// # Errors
    ///
    /// The service was not started by this run, or it cannot start again (see
    /// [`Gateway::start`]).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let launch = self
            .launch
            .as_ref()
            .context("only a service this run started can be restarted")?;
        self.child = Some(launch.spawn_ready().await?);
        Ok(())
    }

    /// The process id of a service this run started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Base URL, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this run started (and will stop) the gateway.
    pub fn started_by_bench(&self) -> bool {
        self.child.is_some()
    }

    /// Stops a gateway this run started: SIGTERM, then SIGKILL if it has not
    /// exited within [`STOP_TIMEOUT`]. A URL gateway is left alone.
    ///
    /// # Errors
    ///
    /// The signal cannot be sent or the process cannot be waited for.
    pub async fn shutdown(mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(pid) = child.id() {
            let pid = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
                .context("gateway pid out of range")?;
            match rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
                Ok(()) => {}
                // Already gone (exited between `id()` and the signal).
                Err(rustix::io::Errno::SRCH) => {}
                Err(e) => return Err(e).context("cannot send SIGTERM to the gateway"),
            }
        }
        let status = match timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => status.context("cannot wait for the gateway to exit")?,
            Err(_) => {
                tracing::warn!("gateway still running {STOP_TIMEOUT:?} after SIGTERM, killing it");
                child.kill().await.context("cannot kill the gateway")?;
                child
                    .wait()
                    .await
                    .context("cannot wait for the gateway to exit")?
            }
        };
        tracing::info!(%status, "gateway stopped");
        Ok(Some(status))
    }
}

impl Launch {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the process and waits until `GET /ready` answers 200.
    async fn spawn_ready(&self) -> anyhow::Result<Child> {
        let binary = &self.binary;
        let mut child = Command::new(binary)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            // The bench measures the write path; its users bid far faster than people do.
            .env("BID_RATE_PER_USER", "0")
            // The caller's environment may override the defaults above, never the address.
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LISTEN_ADDR", self.addr.to_string())
            .stdin(Stdio::null())
            // Its logs go to stderr with ours, keeping stdout for the summary.
            .stdout(std::io::stderr())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start gateway binary {}", binary.display()))?;
        let url = self.url();
        tracing::info!(binary = %binary.display(), %url, pid = child.id(), "started gateway");

        let api = ApiClient::new(&url)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child
                .try_wait()
                .context("cannot poll the gateway process")?
            {
                bail!("gateway exited before it was ready: {status}");
            }
            if api.is_ready().await {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                // `child` is dropped here, which kills it.
                bail!("gateway at {url} not ready within {READY_TIMEOUT:?}");
            }
            sleep(READY_POLL).await;
        }
    }
}

/// A loopback address whose port was free a moment ago: bind port 0, read the
/// port the kernel picked, release it for the gateway to bind.
fn free_loopback_port() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.local_addr()
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

    #[tokio::test]
    async fn a_gateway_binary_that_exits_at_once_is_reported_not_ready() {
        let err = Gateway::start(&GatewaySource::Binary("/bin/true".into()))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("exited before it was ready"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn a_missing_gateway_binary_is_a_clear_error() {
        let err = Gateway::start(&GatewaySource::Binary("/nonexistent/api-gateway".into()))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot start gateway binary"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn a_url_gateway_cannot_be_restarted() {
        let mut gateway = Gateway::start(&GatewaySource::Url("http://127.0.0.1:9".into()))
            .await
            .unwrap();
        gateway.kill().await.unwrap();
        let err = gateway.restart().await.unwrap_err();
        assert!(
            err.to_string().contains("only a service this run started"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn a_url_gateway_is_not_ours_to_stop() {
        let gateway = Gateway::start(&GatewaySource::Url("http://127.0.0.1:9/".into()))
            .await
            .unwrap();
        assert_eq!(gateway.url(), "http://127.0.0.1:9");
        assert!(!gateway.started_by_bench());
        assert_eq!(gateway.shutdown().await.unwrap(), None);
    }
}
