//! Bad input gets a clear 4xx with `{"error","message"}` and changes nothing.

use crate::helpers::*;
use serde_json::json;
use testkit::reply::Reply;

/// `body` as sent, by the account `a` (whose token every case carries, so each is judged on
/// its body alone).
async fn send_raw(app: &TestApp, path: &str, body: String, headers: &[(&str, &str)]) -> Reply {
    let mut request = app
        .http()
        .post(app.url(path))
        .bearer_auth(app.token("a"))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request).await
}

/// Well-formed JSON bids that break a rule of the body: each is a 400 `invalid_input`.
const INVALID_BIDS: [(&str, &str); 12] = [
    ("not an object", "[1,2]"),
    ("amount as bool", r#"{"user_id":"a","amount":true}"#),
    ("user as number", r#"{"user_id":5,"amount":20}"#),
    ("missing amount", r#"{"user_id":"a"}"#),
    ("three decimals", r#"{"user_id":"a","amount":20.005}"#),
    ("negative", r#"{"user_id":"a","amount":-20}"#),
    ("zero", r#"{"user_id":"a","amount":0}"#),
    ("huge", r#"{"user_id":"a","amount":1000000000000.01}"#),
    ("exponent", r#"{"user_id":"a","amount":2e3}"#),
    ("nan string", r#"{"user_id":"a","amount":"NaN"}"#),
    ("user with dot", r#"{"user_id":"a.b","amount":20}"#),
    (
        "unknown field",
        r#"{"user_id":"a","amount":20,"admin":true}"#,
    ),
];

#[tokio::test]
async fn every_malformed_bid_gets_a_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    let path = format!("/api/v1/items/{item}/bid");
    let mut cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "malformed json",
            r#"{"user_id": "a", "#.into(),
            400,
            "invalid_json",
        ),
        ("empty body", String::new(), 400, "invalid_json"),
        (
            "user too long",
            format!(r#"{{"user_id":"{}","amount":20}}"#, "u".repeat(65)),
            400,
            "invalid_input",
        ),
        (
            "oversized",
            format!(
                r#"{{"user_id":"a","amount":20,"pad":"{}"}}"#,
                "x".repeat(20_000)
            ),
            413,
            "payload_too_large",
        ),
    ];
    cases.extend(INVALID_BIDS.map(|(name, body)| (name, body.to_owned(), 400, "invalid_input")));
    for (name, body, status, code) in cases {
        let reply = send_raw(&app, &path, body, &[]).await;
        let json = &reply.body;
        assert_eq!(
            (reply.status, json["error"].as_str()),
            (status, Some(code)),
            "{name}: {json}"
        );
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {json}"
        );
    }

    let valid = r#"{"user_id":"a","amount":20}"#;
    send_raw(&app, "/api/v1/items/bad*id/bid", valid.into(), &[])
        .await
        .assert_error(400, "invalid_item_id");
    let spaced_key = [("idempotency-key", "has space")];
    send_raw(&app, &path, valid.into(), &spaced_key)
        .await
        .assert_error(400, "invalid_idempotency_key");

    app.assert_no_bid_on(&item).await;
}

#[tokio::test]
async fn every_malformed_item_gets_a_4xx_and_creates_nothing() {
    let app = spawn_app().await;
    let id = unique_id("bad");
    let cases = vec![
        (
            "missing name",
            json!({"id": id, "starting_price": 1, "end_time": in_secs(60)}),
            "invalid_input",
        ),
        (
            "blank name",
            json!({"id": id, "name": "  ", "starting_price": 1, "end_time": in_secs(60)}),
            "invalid_name",
        ),
        (
            "bad id",
            json!({"id": "a b", "name": "x", "starting_price": 1, "end_time": in_secs(60)}),
            "invalid_input",
        ),
        (
            "price with 3 decimals",
            json!({"id": id, "name": "x", "starting_price": 1.001, "end_time": in_secs(60)}),
            "invalid_input",
        ),
        (
            "zero increment",
            json!({"id": id, "name": "x", "starting_price": 1, "min_increment": 0, "end_time": in_secs(60)}),
            "invalid_input",
        ),
        (
            "end in the past",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(-60)}),
            "invalid_end_time",
        ),
        (
            "end before start",
            json!({"id": id, "name": "x", "starting_price": 1, "start_time": in_secs(120), "end_time": in_secs(60)}),
            "invalid_end_time",
        ),
        (
            "end not a time",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": "tomorrow"}),
            "invalid_input",
        ),
        (
            "too long",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(400 * 86_400)}),
            "invalid_end_time",
        ),
        (
            "huge window",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(60), "extension_window_secs": 100_000}),
            "invalid_extension",
        ),
        (
            "unknown field",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(60), "color": "red"}),
            "invalid_input",
        ),
    ];
    for (name, body, code) in cases {
        let reply = app.post_as(Some(SELLER), "/api/v1/items", body).await;
        let json = &reply.body;
        assert_eq!(reply.status, 400, "{name}: {json}");
        assert_eq!(json["error"], code, "{name}: {json}");
    }
    let created = app.get(&format!("/api/v1/items/{id}")).await;
    assert_eq!(created.status, 404, "no item was created");
    assert_eq!(app.get("/api/v1/items").await.body["count"], 0);
}

#[tokio::test]
async fn an_unknown_route_is_404_with_the_error_body() {
    let app = spawn_app().await;
    for reply in [
        app.get("/api/v1/nothing-here").await,
        app.get("/api/v2/items").await,
        app.post("/api/v1/items/x/bid/extra", json!({})).await,
    ] {
        let json = reply.assert_error(404, "not_found");
        assert_eq!(json["message"], "no such endpoint", "{json}");
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405_with_the_error_body() {
    let app = spawn_app().await;
    for reply in [
        app.post("/health", json!({})).await,
        app.post("/api/v1/items/x", json!({})).await,
        app.get("/api/v1/items/x/bid").await,
    ] {
        let json = reply.assert_error(405, "method_not_allowed");
        assert!(json["message"].is_string(), "{json}");
    }
}

#[tokio::test]
async fn control_characters_and_oversized_text_get_a_400_naming_the_field_and_create_nothing() {
    let app = spawn_app().await;
    let id = unique_id("text");
    let item = |fields: serde_json::Value| {
        let mut body = json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(60)});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        body
    };
    // (field, what is wrong with it, its text): each refused as invalid_<field>.
    let cases = [
        ("name", "nul", "bad\u{0}name".to_owned()),
        ("name", "escape", "\u{1b}[2Jclock".to_owned()),
        ("name", "newline", "two\nlines".to_owned()),
        ("name", "override", "abc\u{202E}fed".to_owned()),
        ("name", "long", "n".repeat(201)),
        ("description", "nul", "fine\u{0}".to_owned()),
        ("description", "long", "d".repeat(5_001)),
    ];
    for (field, case, text) in cases {
        let body = item(json!({ field: text }));
        let reply = app.post_as(Some(SELLER), "/api/v1/items", body).await;
        let json = reply.assert_error(400, &format!("invalid_{field}"));
        let message = json["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{case} {field}: {json}");
    }
    assert_eq!(app.get(&format!("/api/v1/items/{id}")).await.status, 404);

    // A description keeps its lines; a name loses the white space around it.
    let ok = item(json!({"name": " clock \n", "description": "line one\r\n\tline two"}));
    let created = app.post_as(Some(SELLER), "/api/v1/items", ok).await;
    let created = created.assert_status(201);
    assert_eq!(created["name"], "clock");
    assert_eq!(created["description"], "line one\n\tline two");
}

#[tokio::test]
async fn a_cancel_reason_with_a_nul_is_a_400_and_the_auction_runs_on() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    for reason in ["bad\u{0}reason", "line\nbreak", &"r".repeat(501)] {
        let refused = app
            .admin(&item, "cancel", json!({ "reason": reason }))
            .await;
        let json = refused.assert_error(400, "invalid_reason");
        assert!(
            json["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("reason"),
            "{json}"
        );
    }
    let state = app.item(&item).await;
    assert_eq!(
        (state["status"].as_str(), state["seq"].as_u64()),
        (Some("active"), Some(0))
    );
    assert_eq!(app.events_for(&item).await, 0, "no event was written");
}

/// A slow client (slowloris) must not hold a socket: half a request header is disconnected
/// after `HEADER_READ_TIMEOUT_MS`, and the gateway goes on answering.
#[tokio::test]
async fn a_client_that_sends_half_a_header_is_disconnected_after_the_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = shared_config();
    config.common.http.header_read_timeout_ms = 300;
    let app = spawn_app_with(config).await;
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", app.port()))
        .await
        .expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("half a header");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        slow.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the slow client was disconnected");
    assert_eq!(app.get("/health").await.status, 200);
}

/// A client that sends a bid's headers and only part of its body (slow-body slowloris) is
/// answered 408 `request_timeout` and disconnected once `REQUEST_BODY_TIMEOUT_MS` has passed,
/// and the bid is not stored, not even when the rest of the body arrives afterwards.
#[tokio::test]
async fn a_bid_whose_body_does_not_arrive_in_time_is_a_408_and_stores_nothing() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = shared_config();
    config.common.http.request_body_timeout_ms = 400;
    let app = spawn_app_with(config).await;
    let item = app.create_item(json!({})).await;
    let body = r#"{"user_id":"a","amount":20}"#;
    let head = format!(
        "POST /api/v1/items/{item}/bid HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: slow-body\r\nContent-Length: {}\r\n\r\n",
        app.token("a"),
        body.len()
    );
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", app.port()))
        .await
        .expect("connect");
    slow.write_all(head.as_bytes()).await.expect("headers");
    slow.write_all(&body.as_bytes()[..10])
        .await
        .expect("part of the body");
    let sent = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer))
        .await
        .expect("answered and closed within the deadline (and some slack)")
        .expect("read");
    let waited = sent.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or_default()).expect("JSON");
    assert_eq!(json["error"], "request_timeout", "{text}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{text}"
    );
    assert!(
        waited >= Duration::from_millis(350),
        "not before the deadline: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "soon after it: {waited:?}");
    // The rest, too late, on the closed connection: ignored whatever the socket says.
    let _ = slow.write_all(&body.as_bytes()[10..]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.assert_no_bid_on(&item).await;

    // A body sent whole is served as always, with the same key (no answer was stored for it).
    app.bid_with_key(&item, "a", json!(20), "slow-body")
        .await
        .assert_outcome("accepted");
}
