//! Throwaway dependency servers for tests that stop and restart one.
//!
//! Each server gets a free port (bind `127.0.0.1:0`, read the port, release it) and a temp dir.
//! `stop` kills only the child this guard started; `start` brings it back on the same port and
//! data dir, so a restarted NATS keeps its JetStream store, as in production.

use anyhow::{Context, bail};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Asks the OS for a free loopback port.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            bail!("server on port {port} did not start within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A child server process with a fixed command line, restartable on the same port.
struct Managed {
    program: &'static str,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Managed {
    fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let child = Command::new(self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (is it installed?)", self.program))?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL: tests simulate a crash, and a killed child never blocks the test.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway `redis-server` (no persistence).
pub struct RedisServer(Managed);

impl RedisServer {
    /// Starts one on a free port.
    ///
    /// # Errors
    /// When `redis-server` cannot be started.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.path().display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        let mut managed = Managed {
            program: "redis-server",
            args,
            port,
            child: None,
            _dir: dir,
        };
        managed.start()?;
        Ok(Self(managed))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    /// Kills the server (its data is lost: Redis runs without persistence here).
    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts it again on the same port.
    ///
    /// # Errors
    /// When it cannot be restarted.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.0.start()
    }
}

/// A throwaway `nats-server -js` whose JetStream store survives restarts.
pub struct NatsServer(Managed);

impl NatsServer {
    /// Starts one on a free port.
    ///
    /// # Errors
    /// When `nats-server` cannot be started.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let store: PathBuf = dir.path().join("jetstream");
        let args = [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            &store.display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        let mut managed = Managed {
            program: "nats-server",
            args,
            port,
            child: None,
            _dir: dir,
        };
        managed.start()?;
        Ok(Self(managed))
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }

    /// Kills the server abruptly.
    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts it again on the same port with the same JetStream store.
    ///
    /// # Errors
    /// When it cannot be restarted.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.0.start()
    }
}
