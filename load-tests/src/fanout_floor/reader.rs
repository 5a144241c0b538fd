//! `floor-reader`: one reader process of `fanout-floor`, the cheapest honest stand-in for a
//! client process of viewers. It connects its share of plain TCP sockets to one writer from its
//! own 127.0.0.x source address, reads them all from one thread ([`Readers`]), rebuilds each
//! socket's fixed-size frames across reads and records, per frame, the time from the writer's
//! stamp to the read that completed it.

use super::frame::Stamp;
use crate::client_sockets::ClientArgs;
use crate::handoff::publish;
use crate::latency::{Histogram, RECEIPT_BUCKET, wall_clock_us};
use clap::Args;
use mio::net::TcpStream;
use serde::{Deserialize, Serialize};
use socket2::Socket;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

/// Bytes taken from a socket per `read`: many frames, should a socket ever fall behind.
const READ_BYTES: usize = 64 * 1024;

/// Flags of the hidden `floor-reader` subcommand (set by `fanout-floor`).
#[derive(Debug, Clone, Args)]
pub struct FloorReaderArgs {
    /// The writer, the source address, the sockets, the ready and report files.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Frames expected on each socket.
    #[arg(long)]
    pub rounds: u32,
    #[arg(long)]
    pub frame_bytes: usize,
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

impl ReaderReport {
    fn new(connected: usize, failed: usize) -> Self {
        let histogram = Histogram::bucketed(RECEIPT_BUCKET);
        let (frames, out_of_order, ended_early, timed_out) = (0, 0, 0, 0);
        Self {
            connected,
            failed,
            frames,
            out_of_order,
            ended_early,
            timed_out,
            histogram,
        }
    }

    /// Counts one frame received at `now_us` on a socket that expected pass `expected`.
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
/// or the timeout), report. The sockets close after the report, so closing them does not
/// compete with the writers' last passes.
///
/// # Errors
/// When the poller cannot be set up or a file cannot be written.
pub fn run(args: &FloorReaderArgs) -> anyhow::Result<()> {
    let open = |socket: Socket| {
        socket.set_nonblocking(true)?;
        let socket = TcpStream::from_std(socket.into());
        Ok(Stream {
            socket,
            partial: Vec::new(),
            frames: 0,
            finished: false,
        })
    };
    let (mut streams, failed) = args.client.connect(open, |s| &mut s.socket)?;
    let connected = streams.sockets.len();
    let mut report = ReaderReport::new(connected, failed);
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let (mut unfinished, mut buffer) = (connected, vec![0u8; READ_BYTES]);
    while unfinished > 0 && Instant::now() < deadline {
        streams.poll(Duration::from_millis(100), |stream| {
            if !stream.finished {
                read_ready(stream, &mut buffer, args, &mut report);
                unfinished -= usize::from(stream.finished);
            }
        })?;
    }
    report.timed_out = unfinished;
    publish(&args.client.out, &serde_json::to_string(&report)?)
}

/// Reads what `stream` has, frame by frame, marking it finished once every pass arrived or
/// its stream ended.
fn read_ready(
    stream: &mut Stream,
    buffer: &mut [u8],
    args: &FloorReaderArgs,
    report: &mut ReaderReport,
) {
    loop {
        match stream.socket.read(buffer) {
            Ok(n) if n > 0 => {
                let now_us = wall_clock_us();
                let received = buffer.get(..n).unwrap_or_default();
                let expected = &mut stream.frames;
                take_frames(&mut stream.partial, received, args.frame_bytes, |frame| {
                    report.frame(frame, expected, now_us);
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
            // End of stream or a failed read, before every pass arrived.
            _ => {
                stream.finished = true;
                report.ended_early += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout_floor::frame::new_frame;

    #[test]
    fn frames_are_cut_from_reads_and_put_back_together_across_them() {
        for (reads, frames, rest) in [
            (&[&b"aaaabbbb"[..]][..], &[b"aaaa", b"bbbb"][..], &b""[..]),
            (&[b"aaaab", b"b", b"bbcc"], &[b"aaaa", b"bbbb"], b"cc"),
        ] {
            let (mut partial, mut got) = (Vec::new(), Vec::new());
            for read in reads {
                take_frames(&mut partial, read, 4, |f| got.push(f.to_vec()));
            }
            assert_eq!(got, frames.iter().map(|f| f.to_vec()).collect::<Vec<_>>());
            assert_eq!(partial, rest);
        }
    }

    #[test]
    fn a_frame_is_counted_only_in_pass_order() {
        let mut report = ReaderReport::new(1, 0);
        let (mut frame, mut expected) = (new_frame(20).unwrap(), 0);
        Stamp {
            pass: 0,
            at_us: 1_000,
        }
        .write(&mut frame);
        report.frame(&frame, &mut expected, 1_250);
        Stamp {
            pass: 2,
            at_us: 2_000,
        }
        .write(&mut frame);
        report.frame(&frame, &mut expected, 2_100);
        assert_eq!((report.frames, report.out_of_order, expected), (1, 1, 1));
        assert_eq!(report.histogram.count(), 1);
        let third_bucket = Some(Duration::from_micros(300));
        assert_eq!(
            report.histogram.quantile(1.0),
            third_bucket,
            "250 µs in the third bucket"
        );
    }
}
