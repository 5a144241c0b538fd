//! `viewers`: one client process of the fan-out levels. It opens `--count` WebSocket viewers on
//! one item from one source address (read as [`Readers`], through tungstenite's plain
//! non-blocking WebSocket), records when each `bid_placed` frame arrives, and once the
//! orchestrator writes the POST times (`--posts-file`), reports delivery and latency.
//!
//! It must cost what the floor's reader costs per frame (see [`crate::fanout_floor::reader`]):
//! the two share the cores with the servers they measure, so a heavier client would be read
//! as a slower server. Hence one read per frame ([`Drained`]) and a read buffer the size of a
//! frame, which tungstenite zero-fills before every read.

use crate::client_sockets::ClientArgs;
use crate::handoff::publish;
use crate::latency::{Histogram, RECEIPT_BUCKET, wall_clock_us};
use clap::Args;
use serde::{Deserialize, Serialize};
use socket2::{SockRef, Socket};
use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

#[derive(Debug, Clone, Args)]
pub struct ViewersArgs {
    /// The broadcast instance, the source address, the viewers, the ready and report files.
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(long)]
    pub item: String,
    /// JSON `{seq: post_time_us}` the orchestrator writes when the bids are done.
    #[arg(long)]
    pub posts_file: PathBuf,
}

/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the event loop looks for the orchestrator's POST times.
const POSTS_CHECK: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize, Deserialize)]
pub struct ViewerReport {
    pub connected: usize,
    pub failed: usize,
    /// Distinct accepted bids received, summed over viewers.
    pub delivered: u64,
    /// Accepted bids times connected viewers.
    pub expected: u64,
    /// Snapshots received after the first (conflations or resyncs).
    pub resyncs: u64,
    /// Every receipt's latency.
    pub histogram: Histogram,
}

/// Bytes tungstenite reads per call (it zero-fills them first): a `bid_placed` frame is about
/// 430, and a larger frame (a snapshot) makes it reserve what that frame needs.
const READ_BUFFER_BYTES: usize = 1024;

/// One viewer: its socket and what it received.
struct Viewer {
    ws: WebSocket<Drained>,
    /// `(seq, received µs)` of every `bid_placed` frame.
    receipts: Vec<(u64, u64)>,
    snapshots: u64,
    open: bool,
}

/// `seq` of a `bid_placed` frame, found without decoding the whole event.
fn bid_seq(text: &str) -> Option<u64> {
    if !text.contains("\"type\":\"bid_placed\"") {
        return None;
    }
    let rest = text.split_once("\"seq\":")?.1;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..digits)?.parse().ok()
}

/// Runs one client process to the end (blocking: it is a single-threaded event loop).
///
/// # Errors
/// When the poll set cannot be made or the files cannot be read or written.
pub fn run(args: &ViewersArgs) -> anyhow::Result<()> {
    let url = format!("ws://{}/ws?item_id={}", args.client.server, args.item);
    let open = |socket| {
        let ws = handshake(socket, &url)?;
        Ok(Viewer {
            ws,
            receipts: Vec::new(),
            snapshots: 0,
            open: true,
        })
    };
    let (mut viewers, failed) = args.client.connect(open, |v| &mut v.ws.get_mut().stream)?;
    let connected = viewers.sockets.len();

    // Frames that arrived during the handshakes are already buffered by the kernel; edge-
    // triggered polling reports them only on new data, so read every socket once first.
    viewers.sockets.iter_mut().for_each(read_ready);
    let mut last_check = Instant::now();
    let posts = loop {
        viewers.poll(POSTS_CHECK, read_ready)?;
        // Polls return as frames arrive; the file is looked at only every `POSTS_CHECK`.
        if last_check.elapsed() >= POSTS_CHECK {
            last_check = Instant::now();
            if let Some(posts) = read_posts(&args.posts_file) {
                break posts;
            }
        }
    };

    let mut histogram = Histogram::bucketed(RECEIPT_BUCKET);
    let mut delivered = 0;
    let mut resyncs = 0;
    for viewer in &viewers.sockets {
        resyncs += viewer.snapshots.saturating_sub(1);
        let mut seen = HashSet::new();
        for (seq, at) in &viewer.receipts {
            if let Some(posted) = posts.get(seq)
                && seen.insert(*seq)
            {
                delivered += 1;
                histogram.record(Duration::from_micros(at.saturating_sub(*posted)));
            }
        }
    }
    let report = ViewerReport {
        connected,
        failed,
        delivered,
        expected: posts.len() as u64 * connected as u64,
        resyncs,
        histogram,
    };
    publish(&args.client.out, &serde_json::to_string(&report)?)
}

/// Does the handshake with the socket still blocking (one at a time is fast on loopback),
/// then makes it non-blocking for the event loop.
fn handshake(socket: Socket, url: &str) -> anyhow::Result<WebSocket<Drained>> {
    socket.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let stream: std::net::TcpStream = socket.into();
    // Small buffers: the default 128 KiB per socket would make the load generator, not the
    // service, what runs out of memory and cache.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let stream = Drained {
        stream: mio::net::TcpStream::from_std(stream),
        non_blocking: false,
        drained: false,
    };
    let (mut ws, _) = tungstenite::client::client_with_config(url, stream, Some(config))
        .map_err(|e| anyhow::anyhow!("handshake: {e}"))?;
    SockRef::from(&ws.get_ref().stream).set_nonblocking(true)?;
    ws.get_mut().non_blocking = true;
    Ok(ws)
}

/// A viewer's socket, which answers `WouldBlock` without a system call once a read came back
/// short: a short read emptied the socket, and mio's edge-triggered readiness fires again on
/// the next arrival (the floor's reader stops at a short read too). Without it every frame
/// costs a second `recv` that only says `WouldBlock`.
struct Drained {
    stream: mio::net::TcpStream,
    /// Off during the blocking handshake, where a short read is just part of the answer.
    non_blocking: bool,
    drained: bool,
}

impl Read for Drained {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if std::mem::take(&mut self.drained) {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = self.stream.read(buf)?;
        self.drained = self.non_blocking && n < buf.len();
        Ok(n)
    }
}

impl Write for Drained {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// Reads every frame the socket has, stamping each `bid_placed` with its arrival time.
fn read_ready(viewer: &mut Viewer) {
    while viewer.open {
        match viewer.ws.read() {
            Ok(Message::Text(text)) => {
                if let Some(seq) = bid_seq(&text) {
                    viewer.receipts.push((seq, wall_clock_us()));
                } else if text.contains("\"type\":\"snapshot\"") {
                    viewer.snapshots += 1;
                }
            }
            // Pings are answered by tungstenite on the next read or write.
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => viewer.open = false,
        }
    }
}

/// The orchestrator's `{seq: post_time_us}`, once it is written.
fn read_posts(path: &Path) -> Option<HashMap<u64, u64>> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_read_stands_for_would_block_until_the_next_read_and_a_full_one_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut stream = Drained {
            stream: mio::net::TcpStream::from_std(ours),
            non_blocking: true,
            drained: false,
        };
        // The first read that is not `WouldBlock` (the peer's bytes take a moment to arrive).
        let read_soon = |stream: &mut Drained, buf: &mut [u8]| {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match stream.read(buf) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    other => return other.unwrap(),
                }
            }
        };
        peer.write_all(b"0123456789").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(read_soon(&mut stream, &mut buf), 4, "a full read");
        assert!(!stream.drained, "a full read may have left bytes behind");
        let mut big = [0u8; 64];
        assert_eq!(read_soon(&mut stream, &mut big), 6, "the rest, short");
        peer.write_all(b"ab").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let e = stream.read(&mut big).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::WouldBlock,
            "after a short read, without reading"
        );
        assert_eq!(read_soon(&mut stream, &mut big), 2, "then the socket again");
    }

    #[test]
    fn bid_seq_is_read_from_bid_frames_only() {
        assert_eq!(
            bid_seq(r#"{"type":"bid_placed","item_id":"x","seq":42,"amount":1}"#),
            Some(42)
        );
        assert_eq!(bid_seq(r#"{"type":"snapshot","seq":42}"#), None);
    }
}
