//! Fan-out at scale: many viewers of one item, joining before and during a stream of bids.

use crate::helpers::*;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

const EARLY_VIEWERS: usize = 400;
const LATE_VIEWERS: usize = 100;
const BIDS: u64 = 200;

/// The only fields this test reads (decoding whole frames 100 000 times is slow in debug).
#[derive(Deserialize)]
struct Seen {
    r#type: String,
    seq: Option<u64>,
}

/// What one viewer saw: the `seq` of its snapshot, the lowest `seq` any viewer had already
/// been sent when it started joining, and the events after the snapshot.
struct Watched {
    snapshot: u64,
    floor: u64,
    events: Vec<u64>,
}

async fn watch(url: String, delivered: Arc<AtomicU64>, joined: Arc<AtomicUsize>) -> Watched {
    let floor = delivered.load(Ordering::SeqCst);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("websocket handshake");
    let mut snapshot = None;
    let mut events = Vec::new();
    while events.last() != Some(&BIDS) {
        let message =
            tokio::time::timeout(Duration::from_secs(20), futures::StreamExt::next(&mut ws))
                .await
                .expect("frames keep coming")
                .expect("socket open")
                .expect("frame");
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
            continue;
        };
        let seen: Seen = serde_json::from_str(&text).expect("json frame");
        match (seen.r#type.as_str(), seen.seq) {
            ("snapshot", Some(seq)) => {
                assert!(snapshot.is_none(), "a single snapshot per viewer here");
                snapshot = Some(seq);
                joined.fetch_add(1, Ordering::SeqCst);
                if seq == BIDS {
                    break;
                }
            }
            ("bid_placed", Some(seq)) => {
                delivered.fetch_max(seq, Ordering::SeqCst);
                events.push(seq);
            }
            _ => {}
        }
    }
    let _ = futures::SinkExt::close(&mut ws).await;
    Watched {
        snapshot: snapshot.expect("a snapshot came first"),
        floor,
        events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_viewers_get_every_event_once_in_order_and_no_snapshot_lags_behind() {
    // Room for the whole stream: this test is about order and exactly-once delivery to
    // viewers that keep up; a starved test machine must not turn it into a conflation test.
    // A pass split over the cores from 64 viewers on, so the split pass (2,048 by default)
    // is what delivers in order here.
    let queue = |config: &mut BroadcastConfig| {
        config.viewer_queue = 256;
        config.parallel_pass_min_viewers = 64;
    };
    let Stage(gateway, broadcast, item, ..) = &start_with(Isolation::shared(), queue).await;
    let url = broadcast.ws_url(&format!("/ws?item_id={item}"));
    let delivered = Arc::new(AtomicU64::new(0));
    let joined = Arc::new(AtomicUsize::new(0));

    let mut viewers = Vec::new();
    for _ in 0..EARLY_VIEWERS {
        viewers.push(tokio::spawn(watch(
            url.clone(),
            Arc::clone(&delivered),
            Arc::clone(&joined),
        )));
    }
    wait_until(
        Duration::from_secs(20),
        "early viewers' snapshots",
        || async { (joined.load(Ordering::SeqCst) == EARLY_VIEWERS).then_some(()) },
    )
    .await
    .unwrap();

    // Late viewers join while the bids stream, racing their snapshots against events.
    let late_every = usize::try_from(BIDS).unwrap() / LATE_VIEWERS;
    for n in 1..=BIDS {
        assert_eq!(bid(gateway, item, n + 1).await, n);
        if usize::try_from(n).unwrap() % late_every == 0 {
            viewers.push(tokio::spawn(watch(
                url.clone(),
                Arc::clone(&delivered),
                Arc::clone(&joined),
            )));
        }
    }

    let mut early = 0;
    for viewer in viewers {
        let watched = viewer.await.expect("viewer task");
        assert!(
            watched.snapshot >= watched.floor,
            "snapshot at seq {} although seq {} had already been delivered",
            watched.snapshot,
            watched.floor
        );
        let expected: Vec<u64> = (watched.snapshot + 1..=BIDS).collect();
        assert_eq!(
            watched.events, expected,
            "after a snapshot at seq {}, every later event once and in order",
            watched.snapshot
        );
        early += usize::from(watched.snapshot == 0);
    }
    assert!(
        early >= EARLY_VIEWERS,
        "{early} viewers saw all {BIDS} events"
    );
    assert!(
        broadcast
            .metric("broadcast_messages_out_total{kind=\"event\"}")
            .await
            >= (EARLY_VIEWERS as f64) * (BIDS as f64)
    );
    assert_eq!(broadcast.metric(CONFLATIONS).await, 0.0);
    broadcast.wait_for_metric(CONNECTIONS, 0.0).await;
    broadcast.wait_for_metric(ROOMS, 0.0).await;
}
