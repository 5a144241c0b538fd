//! Slow viewers: one that stops reading must not delay the others, must not make the server
//! buffer without bound, and must get a fresh snapshot instead of its backlog.

use crate::helpers::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const BIDS: u64 = 800;
const FAST_VIEWERS: usize = 5;
const QUEUE: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_stops_reading_delays_no_one_and_later_gets_a_snapshot_instead_of_its_backlog()
 {
    let stalling = |config: &mut BroadcastConfig| {
        config.viewer_queue = QUEUE;
        // Slow, not dead: the stalled socket must stay open for the whole test.
        config.write_timeout_ms = 60_000;
        // Small kernel buffers on both ends, so the stall reaches the server after a few
        // dozen frames instead of after megabytes.
        config.socket_send_buffer_bytes = 4096;
    };
    let Stage(gateway, broadcast, item, ..) = &start_with(Isolation::shared(), stalling).await;
    let path = format!("/ws/items/{item}");

    let mut slow = broadcast.connect_with_small_buffer(&path).await;
    assert_eq!(slow.expect_snapshot().await["seq"], 0);

    let ready = Arc::new(AtomicUsize::new(0));
    let mut fast = Vec::new();
    for _ in 0..FAST_VIEWERS {
        let mut viewer = broadcast.connect(&path).await;
        let ready = Arc::clone(&ready);
        fast.push(tokio::spawn(async move {
            assert_eq!(viewer.expect_snapshot().await["seq"], 0);
            ready.fetch_add(1, Ordering::SeqCst);
            let mut seen = Vec::new();
            while seen.last().map(|(seq, _)| *seq) != Some(BIDS) {
                let event = viewer.next_bid().await;
                seen.push((event["seq"].as_u64().expect("seq"), Instant::now()));
            }
            seen
        }));
    }
    wait_until(FRAME_WAIT, "fast viewers' snapshots", || async {
        (ready.load(Ordering::SeqCst) == FAST_VIEWERS).then_some(())
    })
    .await
    .unwrap();

    // From here on `slow` reads nothing.
    place_bids(gateway, item, 1..=BIDS).await;
    let last_accepted = Instant::now();

    for viewer in fast {
        let seen = viewer.await.expect("fast viewer");
        let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            seqs,
            (1..=BIDS).collect::<Vec<_>>(),
            "every event, in order"
        );
        let (_, last_arrival) = seen.last().copied().expect("events");
        assert!(
            last_arrival.saturating_duration_since(last_accepted) < Duration::from_secs(2),
            "the last event reached a fast viewer {:?} after it was accepted",
            last_arrival.saturating_duration_since(last_accepted)
        );
    }

    // The server holds at most a queue of shared frames for the stalled viewer.
    let queued = broadcast.metric("broadcast_queued_bytes").await;
    assert!(
        queued <= (QUEUE * 1024) as f64,
        "{queued} bytes queued for a stalled viewer"
    );

    // Reading again: what the kernel buffered, then a fresh snapshot instead of the rest.
    let mut last = 0;
    let mut events = 0u64;
    let mut snapshots = Vec::new();
    while last != BIDS {
        let frame = slow.next_json().await;
        let seq = frame["seq"].as_u64();
        match (frame["type"].as_str(), seq) {
            (Some("snapshot"), Some(seq)) => {
                assert!(seq >= last, "snapshot at {seq} after event {last}");
                snapshots.push(seq);
                last = seq;
            }
            (Some("bid_placed"), Some(seq)) => {
                assert_eq!(seq, last + 1, "events after a snapshot continue from it");
                events += 1;
                last = seq;
            }
            _ => {}
        }
    }
    assert!(
        !snapshots.is_empty(),
        "the stalled viewer got a fresh snapshot"
    );
    assert!(
        events < BIDS,
        "the stalled viewer skipped its backlog ({events} of {BIDS} events)"
    );
    assert!(broadcast.metric(CONFLATIONS).await >= 1.0);
}
