//! Client sockets as the fan-out viewers and the floor's readers hold them: tens of thousands
//! from one chosen 127.0.0.x source address (a source address has ~28,000 ephemeral ports),
//! all read from one thread on one `epoll` set (mio).
//!
//! Such a client shares two cores with what it measures, so whatever it spends per frame is
//! added to every latency it reports: one wake-up per batch of ready sockets and no task per
//! socket keep that small (a tokio task and stream per viewer cost about 8 µs per frame, as
//! much as the server).

use crate::handoff::publish;
use anyhow::Context;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// How long one connection may take (loopback answers in microseconds unless the server's
/// accept queue is full).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The flags of every client process of a level (set by its orchestrator).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The server, e.g. 127.0.0.1:8081.
    #[arg(long)]
    pub server: SocketAddr,
    /// Source address of every connection, e.g. 127.0.0.11.
    #[arg(long)]
    pub source: IpAddr,
    #[arg(long)]
    pub count: usize,
    /// Written (with the number connected) once every connection is made.
    #[arg(long)]
    pub ready_file: PathBuf,
    /// Where this process writes its report.
    #[arg(long)]
    pub out: PathBuf,
}

impl ClientArgs {
    /// Raises the open-file limit, opens `count` sockets from `source` to `server` (blocking,
    /// one at a time), each made a `T` by `open`, and publishes how many connected.
    ///
    /// # Errors
    /// As [`Readers::open`], or when the ready file cannot be written.
    pub fn connect<T>(
        &self,
        mut open: impl FnMut(Socket) -> anyhow::Result<T>,
        stream: impl Fn(&mut T) -> &mut TcpStream,
    ) -> anyhow::Result<(Readers<T>, usize)> {
        crate::host::raise_fd_limit();
        let connect = || open(connect(self.source, self.server, CONNECT_TIMEOUT)?);
        let (readers, failed) = Readers::open(self.count, connect, stream)?;
        let connected = readers.sockets.len();
        publish(&self.ready_file, &connected.to_string())?;
        tracing::info!(connected, failed, "client sockets connected");
        Ok((readers, failed))
    }
}

/// Connects to `server` from `source` (blocking, at most `timeout`). The socket closes with a
/// reset: a graceful close from this side would leave each source port in TIME_WAIT, and the
/// next level's `bind` to the same address then searched through them (a 50,000-socket level
/// took 19 s to connect instead of 1).
///
/// # Errors
/// When the socket cannot be made, bound or connected.
pub fn connect(source: IpAddr, server: SocketAddr, timeout: Duration) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&server.into(), timeout)?;
    socket.set_linger(Some(Duration::ZERO))?;
    Ok(socket)
}

/// Many sockets (each inside a `T` that keeps its state) on one poll set, by index.
pub struct Readers<T> {
    poll: Poll,
    events: Events,
    pub sockets: Vec<T>,
}

impl<T> Readers<T> {
    /// Opens `count` sockets with `open` one at a time and registers each (`stream` finds its
    /// TCP stream); a socket that cannot be opened is counted, not fatal. Returns the set and
    /// how many failed.
    ///
    /// # Errors
    /// When the poll set cannot be made or a socket cannot be registered.
    pub fn open(
        count: usize,
        mut open: impl FnMut() -> anyhow::Result<T>,
        stream: impl Fn(&mut T) -> &mut TcpStream,
    ) -> anyhow::Result<(Self, usize)> {
        let poll = Poll::new().context("creating the poll set")?;
        let (mut sockets, mut failed) = (Vec::with_capacity(count), 0);
        for _ in 0..count {
            let Ok(mut socket) = open().inspect_err(|e| tracing::debug!("not connected: {e:#}"))
            else {
                failed += 1;
                continue;
            };
            let token = Token(sockets.len());
            poll.registry()
                .register(stream(&mut socket), token, Interest::READABLE)?;
            sockets.push(socket);
        }
        let events = Events::with_capacity(1024);
        Ok((
            Self {
                poll,
                events,
                sockets,
            },
            failed,
        ))
    }

    /// Waits up to `timeout` and calls `ready` for each socket that has something to read.
    /// Readiness is edge-triggered: `ready` must read until the socket would block.
    ///
    /// # Errors
    /// When polling fails (other than by a signal).
    pub fn poll(&mut self, timeout: Duration, mut ready: impl FnMut(&mut T)) -> anyhow::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() != ErrorKind::Interrupted => {
                return Err(e).context("polling the sockets");
            }
            _ => {}
        }
        for event in &self.events {
            if let Some(socket) = self.sockets.get_mut(event.token().0) {
                ready(socket);
            }
        }
        Ok(())
    }
}
