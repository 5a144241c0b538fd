//! Signing a socket in: by the upgrade's `Authorization` header, its `?access_token=`, or an
//! `auth` message; refused tokens; a user's private events reaching that user's sockets only,
//! on every instance; expiry and renewal; and the token signer being down. Tokens are the
//! gateway's own, verified against a real gateway's `/.well-known/jwks.json`.

use crate::helpers::*;
use crate::tokens::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use shared::Timestamp;
use std::net::SocketAddr;
use std::time::Duration;

fn jwks_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/.well-known/jwks.json")
}

/// A signing gateway on a port chosen up front, so the broadcast instance can be told where
/// its JWKS is before either starts; and the tokens that gateway would issue.
async fn signed_stage() -> (Stage, Tokens) {
    let isolation = Isolation::shared();
    let port = testkit::server::free_port().expect("a free port");
    let mut gateway = signing_gateway_config(&isolation);
    gateway.listen_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut broadcast = broadcast_config(&isolation);
    trusting(&mut broadcast, &gateway, jwks_url(port));
    let tokens = Tokens::of(&gateway);
    (Stage::new(isolation, gateway, broadcast).await, tokens)
}

/// Another broadcast instance trusting the stage's gateway.
async fn another_instance(stage: &Stage) -> Broadcast {
    let Stage(gateway, _, _, isolation) = stage;
    let mut config = broadcast_config(isolation);
    trusting(
        &mut config,
        &gateway.config,
        gateway.url("/.well-known/jwks.json"),
    );
    spawn_broadcast(config).await
}

fn outbid(n: u64) -> Value {
    json!({"type": "outbid", "item_id": "lot-1", "n": n})
}

#[tokio::test]
async fn a_socket_signs_in_by_header_by_query_or_by_message_and_keeps_watching() {
    let (stage, tokens) = &signed_stage().await;
    let Stage(gateway, broadcast, item, ..) = stage;

    let mut by_header = broadcast
        .connect_authorized(
            &format!("/ws?item_id={item}"),
            &format!("Bearer {}", tokens.token("alice")),
        )
        .await;
    let mut by_query = broadcast
        .connect(&format!(
            "/ws/items/{item}?access_token={}",
            tokens.token("bob")
        ))
        .await;
    let mut by_message = broadcast.connect(&format!("/ws?item_id={item}")).await;
    by_message.authenticate(&tokens.token("carol")).await;

    // A sign-in on the upgrade is answered before the first snapshot.
    for (viewer, user) in [(&mut by_header, "alice"), (&mut by_query, "bob")] {
        let first = viewer.next_json().await;
        assert_eq!(
            (&first["type"], &first["user_id"]),
            (&json!("authenticated"), &json!(user)),
            "{first}"
        );
        let expires_at =
            Timestamp::parse_rfc3339(first["expires_at"].as_str().unwrap()).expect("RFC 3339");
        let left = expires_at.micros() - Timestamp::now().micros();
        assert!(
            (590_000_000..=600_000_000).contains(&left),
            "the token's exp, 10 minutes out: {left} µs"
        );
        assert_eq!(viewer.expect_snapshot().await["seq"], 0);
    }
    by_message.expect_authenticated("carol").await;

    bid(gateway, item, 2).await;
    for viewer in [&mut by_header, &mut by_query, &mut by_message] {
        assert_eq!(viewer.next_bid().await["seq"], 1);
    }
    let three_signed_in = [
        ("broadcast_authenticated", 3.0),
        ("broadcast_auth_total{outcome=\"authenticated\"}", 3.0),
    ];
    broadcast.assert_metrics(&three_signed_in).await;
}

#[tokio::test]
async fn refused_tokens_get_an_error_frame_and_the_socket_keeps_watching_without_private_events() {
    let (stage, tokens) = &signed_stage().await;
    let Stage(gateway, broadcast, item, isolation) = stage;
    let good = tokens.token("alice");
    let parts: Vec<&str> = good.split('.').collect();
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let mut none_header = decode(parts[0]);
    none_header["alg"] = json!("none");
    let mut mallory = decode(parts[1]);
    mallory["sub"] = json!("mallory");
    let refused = [
        (
            "alg none, our kid",
            format!("{}.{}.", encode(&none_header), parts[1]),
        ),
        (
            "signed by another key",
            tokens.forged_with_another_key("alice"),
        ),
        (
            "claims changed after signing",
            format!("{}.{}.{}", parts[0], encode(&mallory), parts[2]),
        ),
        (
            "another audience",
            tokens.for_audience("alice", "someone-else"),
        ),
        (
            "another issuer",
            tokens.by_issuer("alice", "https://evil.test"),
        ),
        ("not a JWT", "hello".to_owned()),
    ];

    // A real alice, to prove the private events did go out.
    let mut alice = broadcast.connect("/ws").await;
    alice.authenticate(&good).await;
    alice.expect_authenticated("alice").await;

    let mut viewer = broadcast
        .connect_authorized(&format!("/ws?item_id={item}"), "Basic YWxpY2U6cHc=")
        .await;
    let error = viewer.expect_error("invalid_token").await;
    assert!(error.get("item_id").is_none(), "{error}");
    assert_eq!(viewer.expect_snapshot().await["seq"], 0);
    for (what, token) in &refused {
        viewer.authenticate(token).await;
        let error = viewer.next_of_type("error").await;
        assert_eq!(error["code"], "invalid_token", "{what}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            !message.contains("signature") && !message.contains("audience"),
            "{message}"
        );
    }

    bid(gateway, item, 2).await;
    assert_eq!(
        viewer.next_bid().await["seq"],
        1,
        "the public stream goes on"
    );
    publish_private(isolation, "alice", &outbid(1)).await;
    publish_private(isolation, "mallory", &outbid(2)).await;
    assert_eq!(alice.next_of_type("outbid").await, outbid(1));
    viewer.assert_nothing_of_type_before_a_pong("outbid").await;
    let refusals = broadcast
        .metric("broadcast_auth_total{outcome=\"invalid_token\"}")
        .await;
    assert_eq!(refusals, (refused.len() + 1) as f64);
    assert_eq!(broadcast.metric("broadcast_authenticated").await, 1.0);
}

#[tokio::test]
async fn a_private_event_reaches_every_socket_of_its_user_on_every_instance_and_nobody_else() {
    let (stage, tokens) = &signed_stage().await;
    let Stage(_, first, item, isolation) = stage;
    let second = another_instance(stage).await;

    let mut alice_here = first.connect(&format!("/ws?item_id={item}")).await;
    alice_here.authenticate(&tokens.token("alice")).await;
    let mut alice_there = second
        .connect(&format!("/ws?access_token={}", tokens.token("alice")))
        .await;
    let mut alice_again = first.connect("/ws").await;
    alice_again.authenticate(&tokens.token("alice")).await;
    let mut bob = first
        .connect_authorized("/ws", &format!("Bearer {}", tokens.token("bob")))
        .await;
    let mut anonymous_here = first.connect(&format!("/ws?item_id={item}")).await;
    let mut anonymous_there = second.connect("/ws").await;
    for alice in [&mut alice_here, &mut alice_there, &mut alice_again] {
        alice.expect_authenticated("alice").await;
    }
    bob.expect_authenticated("bob").await;
    // One subscription per signed-in user per instance, however many sockets it has.
    assert_eq!(first.metric("broadcast_user_feeds").await, 2.0);
    assert_eq!(second.metric("broadcast_user_feeds").await, 1.0);

    publish_private_raw(isolation, "alice", b"[\"not an object\"]".to_vec()).await;
    publish_private(isolation, "alice", &outbid(1)).await;
    for alice in [&mut alice_here, &mut alice_there, &mut alice_again] {
        assert_eq!(
            alice.next_of_type("outbid").await,
            outbid(1),
            "as published"
        );
    }
    // Each instance wrote alice's copies before any frame asked for afterwards.
    for other in [&mut bob, &mut anonymous_here] {
        other.assert_nothing_of_type_before_a_pong("outbid").await;
    }
    anonymous_there
        .assert_nothing_of_type_before_a_pong("outbid")
        .await;
    assert_eq!(first.metric("broadcast_private_invalid_total").await, 1.0);

    publish_private(isolation, "bob", &outbid(2)).await;
    assert_eq!(bob.next_of_type("outbid").await, outbid(2));
    alice_again
        .assert_nothing_of_type_before_a_pong("outbid")
        .await;

    // The last socket of a user to leave closes its feed.
    bob.close().await;
    first.wait_for_metric("broadcast_user_feeds", 1.0).await;
    alice_there.close().await;
    second.wait_for_metric("broadcast_user_feeds", 0.0).await;
    second.stop().await;
}

#[tokio::test]
async fn an_expired_sign_in_stops_private_events_not_the_public_stream_and_a_new_token_renews_it() {
    let (stage, tokens) = &signed_stage().await;
    let Stage(gateway, broadcast, item, isolation) = stage;
    let short = tokens.living("alice", Duration::from_secs(3));
    let mut alice = broadcast.connect(&format!("/ws?item_id={item}")).await;
    alice.authenticate(&short).await;
    let signed_in = alice.expect_authenticated("alice").await;
    let expires_at =
        Timestamp::parse_rfc3339(signed_in["expires_at"].as_str().unwrap()).expect("RFC 3339");
    // Another socket of alice's with a long token: proof that later private events went out.
    let mut witness = broadcast.connect("/ws").await;
    witness.authenticate(&tokens.token("alice")).await;
    witness.expect_authenticated("alice").await;

    publish_private(isolation, "alice", &outbid(1)).await;
    assert_eq!(alice.next_of_type("outbid").await, outbid(1));
    assert_eq!(witness.next_of_type("outbid").await, outbid(1));

    assert_eq!(
        alice.next_of_type("auth_expired").await,
        json!({"type": "auth_expired"})
    );
    assert!(
        Timestamp::now().micros() >= expires_at.micros(),
        "not before the token's exp"
    );
    publish_private(isolation, "alice", &outbid(2)).await;
    assert_eq!(witness.next_of_type("outbid").await, outbid(2));
    alice.assert_nothing_of_type_before_a_pong("outbid").await;
    bid(gateway, item, 2).await;
    assert_eq!(alice.next_bid().await["seq"], 1, "still watching");

    // The expired token is refused now; a fresh one signs in again.
    alice.authenticate(&short).await;
    alice.expect_error("invalid_token").await;
    alice.authenticate(&tokens.token("alice")).await;
    alice.expect_authenticated("alice").await;
    publish_private(isolation, "alice", &outbid(3)).await;
    assert_eq!(alice.next_of_type("outbid").await, outbid(3));
    assert_eq!(
        broadcast
            .metric("broadcast_auth_total{outcome=\"expired\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn with_the_token_signer_down_sign_in_is_unavailable_watching_goes_on_and_it_recovers() {
    let isolation = Isolation::shared();
    // The signer's port, with nothing listening on it yet.
    let signer_port = testkit::server::free_port().expect("a free port");
    let events = signing_gateway_config(&isolation);
    let mut config = broadcast_config(&isolation);
    trusting(&mut config, &events, jwks_url(signer_port));
    // The test retries `auth` every 20 ms (50 a second) until the signer is back, faster than
    // a client may send messages; the rate limit has its own test.
    config.max_messages_per_sec = 0;
    let tokens = Tokens::of(&events);
    let stage = &Stage::new(isolation, events, config).await;
    let Stage(gateway, broadcast, item, isolation) = stage;

    let token = tokens.token("alice");
    let mut viewer = broadcast
        .connect(&format!("/ws?item_id={item}&access_token={token}"))
        .await;
    let error = viewer.expect_error("unavailable").await;
    assert!(
        error["message"].as_str().unwrap().contains("key set"),
        "{error}"
    );
    assert_eq!(viewer.expect_snapshot().await["seq"], 0);
    bid(gateway, item, 2).await;
    assert_eq!(viewer.next_bid().await["seq"], 1, "watching is unaffected");
    broadcast.get("/ready").await.assert_status(200);

    // The signer comes back on its port: sign-in works again, with no restart.
    let mut signer = signing_gateway_config(isolation);
    signer.listen_addr = SocketAddr::from(([127, 0, 0, 1], signer_port));
    let _signer = spawn_gateway(signer).await;
    let viewer = tokio::sync::Mutex::new(viewer);
    wait_until(
        Duration::from_secs(15),
        "a sign-in once the signer is back",
        || async {
            let mut viewer = viewer.lock().await;
            viewer.authenticate(&token).await;
            loop {
                let frame = viewer.next_json().await;
                match frame["type"].as_str() {
                    Some("authenticated") => return Some(frame),
                    Some("error") => {
                        assert_eq!(frame["code"], "unavailable", "{frame}");
                        return None;
                    }
                    _ => {}
                }
            }
        },
    )
    .await
    .unwrap();
    publish_private(isolation, "alice", &outbid(1)).await;
    assert_eq!(viewer.lock().await.next_of_type("outbid").await, outbid(1));
}
