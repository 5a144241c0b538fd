//! WebSocket fuzz: random frames (text, binary, random JSON, huge, malformed UTF-8, control
//! frames) against a real broadcast service. The server must never crash, must answer bad
//! input with an error frame or a clear close code, and its connection and subscription
//! gauges must return to zero afterwards. The seed is fixed so a failure replays exactly;
//! `WS_FUZZ_SEED` and `WS_FUZZ_FRAMES` (read by `make fuzz`) widen the search.

use crate::helpers::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Close codes a fuzzed socket may legitimately end with: invalid payload data (bad UTF-8),
/// policy violation (too many invalid messages), message too big, and protocol errors.
const ALLOWED_CLOSES: [u16; 4] = [1002, 1007, 1008, 1009];

/// Message types the protocol knows, so random JSON often gets past the type check. Not
/// `ping`: every case is followed by our own ping, and the first pong ends the case.
const TYPES: [&str; 7] = [
    "subscribe",
    "unsubscribe",
    "pong",
    "auth",
    "dance",
    "",
    "snapshot",
];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn random_string(rng: &mut fastrand::Rng, max: usize) -> String {
    let len = rng.usize(0..=max);
    (0..len)
        .map(|_| match rng.u8(0..4) {
            0 => rng.char('\u{0}'..'\u{20}'),
            1 => rng.alphanumeric(),
            2 => rng.char('\u{80}'..'\u{D7FF}'),
            _ => rng
                .choice(['.', '>', '*', ' ', '"', '\\', '-'])
                .expect("non-empty"),
        })
        .collect()
}

fn random_json(rng: &mut fastrand::Rng, depth: u32, item: &str) -> Value {
    match rng.u8(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!(rng.f64() * 1e300),
        4 => match rng.u8(0..3) {
            0 => json!(item),
            _ => json!(random_string(rng, 80)),
        },
        5 => Value::Array(
            (0..rng.usize(0..5))
                .map(|_| random_json(rng, depth - 1, item))
                .collect(),
        ),
        _ => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.usize(0..5) {
                object.insert(random_string(rng, 12), random_json(rng, depth - 1, item));
            }
            object
        }
        .into(),
    }
}

/// A protocol-shaped message: a known `type` with random fields (often an `item_id`).
fn random_message(rng: &mut fastrand::Rng, item: &str) -> Value {
    let mut message = match random_json(rng, 2, item) {
        Value::Object(object) => object,
        _ => serde_json::Map::new(),
    };
    let kind = rng.choice(TYPES).expect("non-empty");
    message.insert("type".into(), json!(kind));
    if rng.bool() {
        message.insert("item_id".into(), random_json(rng, 1, item));
    }
    Value::Object(message)
}

/// One fuzz case and whether the server must answer it with an `error` frame.
fn random_frame(rng: &mut fastrand::Rng, item: &str) -> (Message, bool) {
    match rng.u8(0..9) {
        0 => (Message::text(random_string(rng, 200)), false),
        1 => (Message::text(random_json(rng, 3, item).to_string()), false),
        2 | 3 => (Message::text(random_message(rng, item).to_string()), false),
        4 => {
            let bytes: Vec<u8> = (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect();
            (Message::binary(bytes), true)
        }
        5 => {
            // Malformed UTF-8 in a text frame: the server must close (1007), not crash.
            let mut bytes = b"{\"type\":\"ping\",\"x\":\"".to_vec();
            bytes.extend([0xC3, 0x28, 0xFF, 0xFE]);
            let frame = Frame::message(bytes, OpCode::Data(Data::Text), true);
            (Message::Frame(frame), false)
        }
        6 => (
            Message::text(format!(
                r#"{{"type":"subscribe","item_id":"{}"}}"#,
                "x".repeat(rng.usize(70_000..200_000))
            )),
            false,
        ),
        7 => {
            let payload: Vec<u8> = (0..rng.usize(0..=125)).map(|_| rng.u8(..)).collect();
            (Message::Ping(payload.into()), false)
        }
        _ => {
            let payload: Vec<u8> = (0..rng.usize(0..=125)).map(|_| rng.u8(..)).collect();
            (Message::Pong(payload.into()), false)
        }
    }
}

/// Reads frames until the pong that answers our ping; checks every frame is well-formed.
/// Returns `Err(code)` when the server closed the socket instead, and whether an error frame
/// arrived.
async fn drain_until_pong(viewer: &mut Client, case: &str) -> Result<bool, u16> {
    let mut saw_error = false;
    loop {
        match viewer.receive(FRAME_WAIT).await {
            Some(Received::Json(frame)) => {
                let kind = frame["type"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{case}: {frame}"));
                if kind == "pong" {
                    return Ok(saw_error);
                }
                if kind == "error" {
                    assert!(
                        frame["code"].as_str().is_some_and(|c| !c.is_empty()),
                        "{case}: {frame}"
                    );
                    assert!(
                        frame["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{case}: {frame}"
                    );
                    saw_error = true;
                }
            }
            Some(Received::Closed(Some((code, reason)))) => {
                assert!(
                    ALLOWED_CLOSES.contains(&code),
                    "{case}: closed {code} {reason}"
                );
                return Err(code);
            }
            Some(Received::Closed(None)) => panic!("{case}: dropped without a close frame"),
            None => panic!("{case}: no answer within {FRAME_WAIT:?}"),
        }
    }
}

#[tokio::test]
async fn random_frames_never_crash_the_server_and_the_gauges_return_to_zero() {
    let seed = env_number("WS_FUZZ_SEED", 0x5eed_2026);
    let frames = env_number("WS_FUZZ_FRAMES", 400);
    let mut rng = fastrand::Rng::with_seed(seed);
    // Content, not rate: every frame is followed by a ping whose pong the fuzz waits for, so
    // the per-connection message limit (tested in `subscriptions`) would answer the ping with
    // `rate_limited` and never a pong.
    let Stage(_, broadcast, item, ..) = &start_with(Isolation::shared(), |config| {
        config.max_messages_per_sec = 0;
    })
    .await;
    let mut viewer = broadcast.connect("/ws").await;
    let (mut closes, mut errors) = (0u32, 0u32);
    for n in 0..frames {
        let (message, must_error) = random_frame(&mut rng, item);
        let case = format!("seed {seed} frame {n}: {message:?}");
        let case: String = case.chars().take(300).collect();
        let sent = viewer.try_send(message).await
            && viewer.try_send(Message::text(r#"{"type":"ping"}"#)).await;
        let outcome = if sent {
            drain_until_pong(&mut viewer, &case).await
        } else {
            Err(0)
        };
        match outcome {
            Ok(saw_error) => {
                assert!(saw_error || !must_error, "{case}: no error frame");
                errors += u32::from(saw_error);
            }
            Err(_) => {
                // The server closed this socket for cause; it must still take new ones.
                closes += 1;
                viewer = broadcast.connect("/ws").await;
            }
        }
    }
    eprintln!("ws fuzz seed {seed}: {frames} frames, {errors} error frames, {closes} closes");
    assert!(
        errors > 0 && closes > 0,
        "the fuzz reached both error frames and closes"
    );

    // Still serving: a fresh viewer subscribes and gets its snapshot.
    let mut witness = broadcast.connect("/ws").await;
    witness.subscribe(item).await;
    assert_eq!(witness.expect_snapshot().await["item_id"], item.as_str());
    viewer.close().await;
    witness.close().await;
    broadcast.wait_for_metric(CONNECTIONS, 0.0).await;
    broadcast.wait_for_metric(SUBSCRIPTIONS, 0.0).await;
    broadcast.wait_for_metric(ROOMS, 0.0).await;
}
