//! `floor-writer`: one writer process of `fanout-floor`, a broadcast instance with everything
//! but the kernel's work taken away. It accepts its share of plain TCP connections, then once
//! per interval stamps the frame and writes it to every socket in one tight loop of
//! non-blocking writes, timing each pass. Single-threaded on purpose: one pass is one thread
//! doing nothing but `send`, the least CPU per socket any server spends on one small event.

use super::frame::{Stamp, new_frame};
use crate::handoff::{publish, read_number, wait_for_number};
use crate::host::raise_fd_limit;
use crate::latency::wall_clock_us;
use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Pending connections the listener queues (the kernel caps it at `net.core.somaxconn`); a
/// reader connects its share in one go and a full queue would stall it on SYN retries.
const BACKLOG: i32 = 4096;

/// Flags of the hidden `floor-writer` subcommand (set by `fanout-floor`).
#[derive(Debug, Clone, Args)]
pub struct FloorWriterArgs {
    /// Connections to accept before the passes.
    #[arg(long)]
    pub count: usize,
    /// Written with the port this writer listens on (on 127.0.0.1).
    #[arg(long)]
    pub port_file: PathBuf,
    /// Written by the orchestrator once every reader is connected: the wall-clock time (µs
    /// since the epoch) of the first pass, the same for every writer.
    #[arg(long)]
    pub start_file: PathBuf,
    /// Written by the orchestrator once every reader has reported; the sockets stay open
    /// until then, so closing them does not compete with readers still at work.
    #[arg(long)]
    pub done_file: PathBuf,
    #[arg(long)]
    pub rounds: u32,
    #[arg(long)]
    pub interval_ms: u64,
    #[arg(long)]
    pub frame_bytes: usize,
    /// Where this process writes its [`WriterReport`].
    #[arg(long)]
    pub out: PathBuf,
    /// Give up when the start or done file has not appeared within this long.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// What one writer did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriterReport {
    pub accepted: usize,
    /// Writes that would have blocked or took only part of the frame; each drops its socket,
    /// whose reader then sees its stream end early. A 300-byte frame every few hundred
    /// milliseconds never fills a socket buffer, so this should stay 0.
    pub would_block: u64,
    /// Writes that failed otherwise (the reader went away); each drops its socket too.
    pub write_errors: u64,
    pub passes: Vec<Pass>,
}

/// One pass: the frame written once to every open socket.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pass {
    /// Sockets written to.
    pub sockets: usize,
    /// From the stamp until the last write returned.
    pub micros: u64,
    /// How long after its tick the pass began; not in the latency, which starts at the stamp.
    pub late_us: u64,
}

impl Pass {
    /// The pass's cost per socket (0 for an empty pass).
    pub fn micros_per_socket(&self) -> f64 {
        match self.sockets {
            0 => 0.0,
            n => self.micros as f64 / n as f64,
        }
    }
}

/// Runs one writer to the end: listen, accept, the passes, the report, then wait for the
/// orchestrator's word before closing the sockets.
///
/// # Errors
/// When the listener cannot be set up, an accept fails, the start or done file does not appear
/// in time, or a file cannot be written.
pub fn run(args: &FloorWriterArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let mut frame = new_frame(args.frame_bytes)?;
    let listener = listen().context("listening on 127.0.0.1")?;
    publish(&args.port_file, &listener.local_addr()?.port().to_string())?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let (mut sockets, start_us) = accept_until_start(&listener, args, deadline)?;
    drop(listener);
    tracing::info!(accepted = sockets.len(), start_us, "floor writer ready");

    let mut report = WriterReport {
        accepted: sockets.len(),
        ..WriterReport::default()
    };
    for pass in 0..args.rounds {
        let tick = start_us
            .saturating_add(u64::from(pass).saturating_mul(args.interval_ms.saturating_mul(1000)));
        // The wall clock, not `Instant`: every writer process aims at the same tick.
        if let Some(wait) = tick.checked_sub(wall_clock_us()) {
            std::thread::sleep(Duration::from_micros(wait));
        }
        let (at_us, began) = (wall_clock_us(), Instant::now());
        Stamp { pass, at_us }.write(&mut frame);
        let open = sockets.len();
        sockets.retain_mut(|socket| match socket.write(&frame) {
            Ok(n) if n == frame.len() => true,
            Err(e) if e.kind() != ErrorKind::WouldBlock => {
                report.write_errors += 1;
                false
            }
            _ => {
                report.would_block += 1;
                false
            }
        });
        let micros = began.elapsed().as_micros() as u64;
        let late_us = at_us.saturating_sub(tick);
        report.passes.push(Pass {
            sockets: open,
            micros,
            late_us,
        });
    }
    publish(&args.out, &serde_json::to_string(&report)?)?;
    wait_for_number(&args.done_file, deadline)?;
    Ok(())
}

fn listen() -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Accepts connections until the start file appears, and returns them with the start time.
/// The orchestrator writes that file only once every reader is connected, so every connection
/// is queued by then; reading the file before each drain of the queue means a start time seen
/// is a drain that took every connection.
fn accept_until_start(
    listener: &TcpListener,
    args: &FloorWriterArgs,
    deadline: Instant,
) -> anyhow::Result<(Vec<TcpStream>, u64)> {
    let mut sockets = Vec::with_capacity(args.count);
    loop {
        let start = read_number(&args.start_file);
        loop {
            match listener.accept() {
                Ok((socket, _)) => {
                    socket.set_nodelay(true)?;
                    socket.set_nonblocking(true)?;
                    sockets.push(socket);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => return Err(e).context("accepting a reader's connection"),
            }
        }
        if let Some(start) = start {
            return Ok((sockets, start));
        }
        if Instant::now() > deadline {
            let (file, accepted) = (args.start_file.display(), sockets.len());
            bail!(
                "no start time in {file} ({accepted} of {} connections accepted)",
                args.count
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_per_socket_divides_the_pass_and_survives_an_empty_one() {
        let pass = Pass {
            sockets: 10_000,
            micros: 48_000,
            late_us: 0,
        };
        assert_eq!(pass.micros_per_socket(), 4.8);
        assert_eq!(Pass { sockets: 0, ..pass }.micros_per_socket(), 0.0);
    }
}
