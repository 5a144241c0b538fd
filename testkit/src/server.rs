//! Throwaway dependency servers for tests that stop and restart one.
//!
//! Each server gets a free port (bind `127.0.0.1:0`, read the port, release it) and a temp dir.
//! `stop` kills only the child this guard started; `start` brings it back on the same port and
//! data dir, so a restarted NATS keeps its JetStream store, as in production.
//!
//! Redis and PostgreSQL also start with TLS ([`TlsRedisServer`], [`PostgresServer::start_tls`]),
//! presenting a certificate of a [`crate::tls::TestCa`].

use crate::tls::ServerCert;
use anyhow::{Context, bail};
use std::marker::PhantomData;
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
    /// Starts `program` listening on `port`, keeping `dir` (its data) for as long as it lives.
    fn launch(
        program: &'static str,
        args: Vec<String>,
        port: u16,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let mut managed = Self {
            program,
            args,
            port,
            child: None,
            _dir: dir,
        };
        managed.start()?;
        Ok(managed)
    }

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

/// What tells the throwaway servers apart: the program to run and its URL scheme.
pub trait Program {
    const NAME: &'static str;
    const SCHEME: &'static str;
}

/// `redis-server`.
pub enum Redis {}

impl Program for Redis {
    const NAME: &'static str = "redis-server";
    const SCHEME: &'static str = "redis";
}

/// `redis-server` listening for TLS only (`rediss://`).
pub enum RedisTls {}

impl Program for RedisTls {
    const NAME: &'static str = "redis-server";
    const SCHEME: &'static str = "rediss";
}

/// `nats-server`.
pub enum Nats {}

impl Program for Nats {
    const NAME: &'static str = "nats-server";
    const SCHEME: &'static str = "nats";
}

/// A throwaway server of program `P` on its own port and temp dir.
pub struct Server<P: Program> {
    managed: Managed,
    program: PhantomData<P>,
}

/// A throwaway `redis-server` (no persistence unless started with
/// [`RedisServer::start_durable`]).
pub type RedisServer = Server<Redis>;

/// A throwaway `redis-server` that speaks TLS only, with a test CA's certificate.
pub type TlsRedisServer = Server<RedisTls>;

/// A throwaway `nats-server -js` whose JetStream store survives restarts.
pub type NatsServer = Server<Nats>;

impl<P: Program> Server<P> {
    fn launch(args: Vec<String>, port: u16, dir: tempfile::TempDir) -> anyhow::Result<Self> {
        Ok(Self {
            managed: Managed::launch(P::NAME, args, port, dir)?,
            program: PhantomData,
        })
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", P::SCHEME, self.managed.port)
    }

    /// The port it listens on (for URLs with credentials or another host name).
    pub fn port(&self) -> u16 {
        self.managed.port
    }

    /// Its process id while it runs (for CPU and memory readings).
    pub fn pid(&self) -> Option<u32> {
        self.managed.child.as_ref().map(Child::id)
    }

    /// Kills the server abruptly. A Redis loses its data unless it was started with
    /// [`RedisServer::start_durable`]; a NATS keeps its JetStream store.
    pub fn stop(&mut self) {
        self.managed.stop();
    }

    /// Starts it again on the same port and data dir.
    ///
    /// # Errors
    /// When it cannot be restarted.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.managed.start()
    }
}

/// Owned command-line arguments.
fn arguments(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

impl Server<Redis> {
    /// Starts one on a free port.
    ///
    /// # Errors
    /// When `redis-server` cannot be started.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts one that keeps its data across [`RedisServer::stop`]/[`RedisServer::restart`]:
    /// an append-only file. Redis writes each command to the file before it sends the reply, so
    /// a write it acknowledged survives a SIGKILL of the process (the OS still holds the page);
    /// `appendfsync everysec` only bounds what a machine crash would lose, and avoids the fsync
    /// stall per write of `always` (which, on a shared disk, pushed replies past the gateway's
    /// 80 ms Redis deadline). Experiments that crash Redis and then check that nothing
    /// acknowledged was lost need this; without persistence a crash loses every item and the
    /// outbox by design.
    ///
    /// # Errors
    /// When `redis-server` cannot be started.
    pub fn start_durable() -> anyhow::Result<Self> {
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ])
    }

    /// Starts one without persistence, with `config` added to its command line, such as
    /// `["--maxmemory-policy", "allkeys-lru"]` or `["--rename-command", "CONFIG", ""]` (a
    /// managed service's Redis that refuses `CONFIG`).
    ///
    /// # Errors
    /// When `redis-server` cannot be started (or refuses the configuration).
    pub fn start_configured(config: &[&str]) -> anyhow::Result<Self> {
        let mut args = vec!["--save", "", "--appendonly", "no"];
        args.extend_from_slice(config);
        Self::start_with(&args)
    }

    fn start_with(persistence: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let (port_text, dir_text) = (port.to_string(), dir.path().display().to_string());
        let mut args = arguments(&["--port", &port_text, "--bind", "127.0.0.1"]);
        args.extend(arguments(&["--dir", &dir_text]));
        args.extend(arguments(persistence));
        Self::launch(args, port, dir)
    }
}

impl Server<RedisTls> {
    /// Starts one on a free port, presenting `cert` and asking clients for none (like
    /// ElastiCache), without persistence. `extra` adds configuration, such as ACL users:
    /// `["--user", "app", "on", ">secret", "~*", "&*", "+@all"]`.
    ///
    /// # Errors
    /// When `redis-server` cannot be started (Debian's is built with TLS).
    pub fn start(cert: &ServerCert, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let (cert_file, key_file) = cert.write_to(dir.path())?;
        let (port_text, dir_text) = (port.to_string(), dir.path().display().to_string());
        let (cert_text, key_text) = (
            cert_file.display().to_string(),
            key_file.display().to_string(),
        );
        let mut args = arguments(&[
            "--port",
            "0",
            "--tls-port",
            &port_text,
            "--bind",
            "127.0.0.1",
        ]);
        args.extend(arguments(&[
            "--tls-cert-file",
            &cert_text,
            "--tls-key-file",
            &key_text,
        ]));
        args.extend(arguments(&["--tls-auth-clients", "no", "--dir", &dir_text]));
        args.extend(arguments(&["--save", "", "--appendonly", "no"]));
        args.extend(arguments(extra));
        Self::launch(args, port, dir)
    }
}

impl Server<Nats> {
    /// Starts one on a free port.
    ///
    /// # Errors
    /// When `nats-server` cannot be started.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let store: PathBuf = dir.path().join("jetstream");
        let (port_text, store_text) = (port.to_string(), store.display().to_string());
        let args = arguments(&[
            "-a",
            "127.0.0.1",
            "-p",
            &port_text,
            "-js",
            "-sd",
            &store_text,
        ]);
        Self::launch(args, port, dir)
    }
}

/// PostgreSQL binaries: Debian keeps them under `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin(tool: &str) -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path().join("bin").join(tool))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|p| p.exists())
        .or_else(|| which(tool))
        .with_context(|| format!("PostgreSQL's {tool} not found"))
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.exists())
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// A throwaway PostgreSQL cluster (trust auth, database `auction`) whose data survives
/// `stop`/`restart`. PostgreSQL refuses to run as root, so as root it runs as `postgres`.
pub struct PostgresServer {
    port: u16,
    data: PathBuf,
    as_root: bool,
    /// `-c name=value` settings beyond the defaults (TLS).
    settings: Vec<String>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl PostgresServer {
    /// Initializes a cluster in a temp dir and starts it on a free port.
    ///
    /// # Errors
    /// When the binaries are missing or the cluster cannot start.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(None)
    }

    /// Like [`PostgresServer::start`], with `ssl=on` presenting `cert`. Plain connections are
    /// still accepted (`pg_stat_ssl` tells which a session is), so one server shows both.
    ///
    /// # Errors
    /// When the binaries are missing or the cluster cannot start.
    pub fn start_tls(cert: &ServerCert) -> anyhow::Result<Self> {
        Self::start_with(Some(cert))
    }

    fn start_with(cert: Option<&ServerCert>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let as_root = running_as_root();
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(status.success(), "chown of the temp dir failed");
        }
        let mut initdb = Self::command(as_root, &postgres_bin("initdb")?);
        let out = initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut settings = Vec::new();
        if let Some(cert) = cert {
            let (cert_file, key_file) = cert.write_to(&data)?;
            if as_root {
                let status = Command::new("chown")
                    .arg("postgres:")
                    .args([&cert_file, &key_file])
                    .status()?;
                anyhow::ensure!(status.success(), "chown of the server key failed");
            }
            // Relative paths are read from the data directory.
            settings = arguments(&[
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=server.crt",
                "-c",
                "ssl_key_file=server.key",
            ]);
        }
        let mut server = Self {
            port: free_port()?,
            data,
            as_root,
            settings,
            child: None,
            _dir: dir,
        };
        server.restart()?;
        // The port opens before PostgreSQL accepts sessions ("the database system is starting
        // up"), so createdb is retried for as long as that is the answer.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new(postgres_bin("createdb")?)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &server.port.to_string(),
                    "-U",
                    "postgres",
                    "auction",
                ])
                .output()?;
            if out.status.success() {
                break;
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            anyhow::ensure!(
                stderr.contains("starting up") && Instant::now() < deadline,
                "createdb failed: {stderr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    fn command(as_root: bool, program: &std::path::Path) -> Command {
        if as_root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/auction`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/auction", self.port)
    }

    /// The port it listens on (for URLs with another host name).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as a crash would: SIGQUIT is PostgreSQL's "immediate shutdown" (no
    /// checkpoint; the next start runs crash recovery). SIGKILL would leave backends attached
    /// to shared memory and the next start would refuse to run.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(|pid| pid.trim().to_owned()));
        if let Some(pid) = &postmaster {
            let _ = Command::new("kill").args(["-QUIT", pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts it again on the same port and data.
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let child = Self::command(self.as_root, &postgres_bin("postgres")?)
            .arg("-D")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-k",
            ])
            .arg(&self.data)
            .args(&self.settings)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self._dir.path().join("postgres.log"))
                    .context("creating the postgres log")?,
            ))
            .spawn()
            .context("starting postgres")?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(20))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}
