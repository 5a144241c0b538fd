//! `floor-reader`: one reader process of `fanout-floor`, the cheapest honest stand-in for a
//! client process of viewers. It connects its share of plain TCP sockets to one writer from its
//! own 127.0.0.x source address, then reads them all from one thread on one `epoll` set (mio),
//! rebuilding each socket's fixed-size frames across reads and recording, per frame, the time
//! from the writer's stamp to the read that completed it.

use super::frame::Stamp;
use crate::client_sockets::{self, Readers};
use crate::fanout::viewers::BUCKET;
use crate::handoff::publish;
use crate::host::raise_fd_limit;
use crate::latency::{Histogram, wall_clock_us};
use clap::Args;
use mio::net::TcpStream;
use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long one connection may take (loopback answers in microseconds unless the writer's
/// accept queue is full).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes taken from a socket per `read`: many frames, should a socket ever fall behind.
const READ_BYTES: usize = 64 * 1024;

/// Flags of the hidden `floor-reader` subcommand (set by `fanout-floor`).
#[derive(Debug, Clone, Args)]
pub struct FloorReaderArgs {
    /// The writer, e.g. 127.0.0.1:40000.
    #[arg(long)]
    pub server: SocketAddr,
    /// Source address of every connection, e.g. 127.0.0.111 (a source address has ~28,000
    /// ephemeral ports).
    #[arg(long)]
    pub source: IpAddr,
    #[arg(long)]
    pub count: usize,
    /// Frames expected on each socket.
    #[arg(long)]
    pub rounds: u32,
    #[arg(long)]
    pub frame_bytes: usize,
    /// Written (with the number connected) once every connection is made.
    #[arg(long)]
    pub ready_file: PathBuf,
    /// Where this process writes its [`ReaderReport`].
    #[arg(long)]
    pub out: PathBuf,
    /// Stop reading after this long even if frames are still missing.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// What one reader received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReaderReport {
    pub connected: usize,
    /// Connections that could not be made.
    pub failed: usize,
    /// Whole frames received in pass order, summed over sockets.
    pub frames: u64,
    /// Frames whose pass number was not the next one on their socket (a frame lost or torn
    /// on a byte stream; never expected).
    pub out_of_order: u64,
    /// Sockets whose stream ended (or failed) before every pass arrived.
    pub ended_early: usize,
    /// Sockets still missing frames when the reader gave up.
    pub timed_out: usize,
    /// From each frame's stamp to the read that completed it.
    pub histogram: Histogram,
}

/// One socket's progress through its stream of frames.
struct Stream {
    socket: TcpStream,
    /// The beginning of a frame whose end has not arrived yet (empty almost always).
    partial: Vec<u8>,
    /// Frames received; the next frame's pass number should equal it.
    frames: u32,
    /// All frames received, or the stream ended: nothing more to read.
    finished: bool,
}

/// What the frames received so far add up to.
struct Tally {
    frames: u64,
    out_of_order: u64,
    ended_early: usize,
    histogram: Histogram,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            frames: 0,
            out_of_order: 0,
            ended_early: 0,
            histogram: Histogram::bucketed(BUCKET),
        }
    }
}

impl Tally {
    /// Counts one frame received at `now_us` on `stream` (which expected pass `expected`).
    fn frame(&mut self, frame: &[u8], expected: &mut u32, now_us: u64) {
        match Stamp::read(frame) {
            Some(stamp) if stamp.pass == *expected => {
                *expected += 1;
                self.frames += 1;
                let latency = Duration::from_micros(now_us.saturating_sub(stamp.at_us));
                self.histogram.record(latency);
            }
            _ => self.out_of_order += 1,
        }
    }
}

/// Runs one reader to the end: connect, read until every socket has every frame (or ended,
/// or the timeout), report.
///
/// # Errors
/// When the poller cannot be set up or a file cannot be written.
pub fn run(args: &FloorReaderArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let open = || {
        let socket = connect(args.source, args.server)?;
        Ok(Stream {
            socket,
            partial: Vec::new(),
            frames: 0,
            finished: false,
        })
    };
    let (mut streams, failed) = Readers::open(args.count, open, |s| &mut s.socket)?;
    let connected = streams.sockets.len();
    publish(&args.ready_file, &connected.to_string())?;
    tracing::info!(connected, failed, "floor reader connected");

    let mut tally = Tally::default();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let (mut unfinished, mut buffer) = (connected, vec![0u8; READ_BYTES]);
    while unfinished > 0 && Instant::now() < deadline {
        streams.poll(Duration::from_millis(100), |stream| {
            if !stream.finished {
                read_ready(stream, &mut buffer, args, &mut tally);
                unfinished -= usize::from(stream.finished);
            }
        })?;
    }

    let report = ReaderReport {
        connected,
        failed,
        frames: tally.frames,
        out_of_order: tally.out_of_order,
        ended_early: tally.ended_early,
        timed_out: unfinished,
        histogram: tally.histogram,
    };
    publish(&args.out, &serde_json::to_string(&report)?)?;
    // The sockets close as this returns, after the report: closing 12,500 of them is work
    // the writer's last passes should not have competed with.
    Ok(())
}

/// Reads what `stream` has, frame by frame, marking it finished once every pass arrived or
/// its stream ended.
fn read_ready(stream: &mut Stream, buffer: &mut [u8], args: &FloorReaderArgs, tally: &mut Tally) {
    loop {
        match stream.socket.read(buffer) {
            Ok(0) => {
                stream.finished = true;
                tally.ended_early += 1;
                return;
            }
            Ok(n) => {
                let now_us = wall_clock_us();
                let received = buffer.get(..n).unwrap_or_default();
                let expected = &mut stream.frames;
                take_frames(&mut stream.partial, received, args.frame_bytes, |frame| {
                    tally.frame(frame, expected, now_us);
                });
                if stream.frames >= args.rounds {
                    stream.finished = true;
                    return;
                }
                // A short read drained the socket: with epoll, mio's edge-triggered readiness
                // fires again on the next arrival (tokio relies on the same), which saves the
                // read that would only say `WouldBlock`, once per socket per event.
                if n < buffer.len() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                stream.finished = true;
                tally.ended_early += 1;
                return;
            }
        }
    }
}

/// Splits `data`, the next bytes of one socket's stream, into whole frames of `len` bytes and
/// calls `on_frame` for each. `partial` carries a frame's beginning from one read to the next.
fn take_frames(partial: &mut Vec<u8>, data: &[u8], len: usize, mut on_frame: impl FnMut(&[u8])) {
    let mut data = data;
    if !partial.is_empty() {
        let (head, rest) = data.split_at(len.saturating_sub(partial.len()).min(data.len()));
        partial.extend_from_slice(head);
        data = rest;
        if partial.len() < len {
            return;
        }
        on_frame(partial);
        partial.clear();
    }
    let mut frames = data.chunks_exact(len.max(1));
    for frame in &mut frames {
        on_frame(frame);
    }
    partial.extend_from_slice(frames.remainder());
}

/// A blocking connection from `source` to `server`, then made non-blocking for the poller.
fn connect(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = client_sockets::connect(source, server, CONNECT_TIMEOUT)?;
    socket.set_nonblocking(true)?;
    Ok(TcpStream::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames `reads` make up, and what is left over, with 4-byte frames.
    fn frames_of(reads: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut partial = Vec::new();
        let mut frames = Vec::new();
        for read in reads {
            take_frames(&mut partial, read, 4, |f| frames.push(f.to_vec()));
        }
        (frames, partial)
    }

    #[test]
    fn whole_frames_in_one_read_come_out_one_by_one() {
        let (frames, rest) = frames_of(&[b"aaaabbbb"]);
        assert_eq!(frames, vec![b"aaaa".to_vec(), b"bbbb".to_vec()]);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_frame_split_across_reads_is_put_back_together() {
        let (frames, rest) = frames_of(&[b"aaaab", b"b", b"bbcc"]);
        assert_eq!(frames, vec![b"aaaa".to_vec(), b"bbbb".to_vec()]);
        assert_eq!(rest, b"cc".to_vec());
    }

    #[test]
    fn a_frame_is_counted_only_in_pass_order() {
        let mut tally = Tally::default();
        let mut frame = crate::fanout_floor::frame::Frame::new(20).unwrap();
        let mut expected = 0;
        let first = frame
            .stamp(Stamp {
                pass: 0,
                at_us: 1_000,
            })
            .to_vec();
        tally.frame(&first, &mut expected, 1_250);
        let skipped = frame
            .stamp(Stamp {
                pass: 2,
                at_us: 2_000,
            })
            .to_vec();
        tally.frame(&skipped, &mut expected, 2_100);
        assert_eq!((tally.frames, tally.out_of_order, expected), (1, 1, 1));
        let third_bucket = Some(Duration::from_micros(300));
        assert_eq!(tally.histogram.count(), 1);
        assert_eq!(
            tally.histogram.quantile(1.0),
            third_bucket,
            "250 µs in the third bucket"
        );
    }
}
