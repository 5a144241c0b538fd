//! `GET /api/v1/items`: cursor pages over the per-shard listing sets, which every script that
//! changes an item keeps in step, and the backfill from the legacy `items:index` set.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Every page of `query` (without `cursor`), following `next_cursor` to the end; the ids in
/// the order they came.
async fn walk(app: &TestApp, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let path = match &cursor {
            None => format!("/api/v1/items?{query}"),
            Some(c) => format!("/api/v1/items?{query}&cursor={c}"),
        };
        let page = app.get(&path).await;
        let body = page.assert_status(200);
        let items = body["items"].as_array().expect("items");
        assert_eq!(body["count"], items.len(), "{}", page.text);
        ids.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("the listing never ended");
}

/// The ids of the first page of `query`.
async fn page_ids(app: &TestApp, query: &str) -> Vec<String> {
    let page = app.get(&format!("/api/v1/items?{query}")).await;
    page.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn paging_through_many_items_returns_each_exactly_once_in_order() {
    let app = spawn_app().await;
    // 30 items over five end times, six sharing each: the cursor must page through ties.
    let ends: Vec<String> = (0..5).map(|n| in_secs(600 + 60 * n)).collect();
    let mut created = Vec::new();
    for n in 0..30 {
        let end = &ends[n % 5];
        created.push((n % 5, app.create_item(json!({"end_time": end})).await));
    }
    let mut expected = created.clone();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    assert_eq!(
        walk(&app, "limit=4").await,
        expected,
        "ending_soon, by end then id"
    );
    assert_eq!(
        walk(&app, "limit=7&sort=ending_soon&status=active").await,
        expected
    );

    // Newest: most recently listed first (each creation is later than the one before).
    let newest: Vec<String> = created.iter().rev().map(|(_, id)| id.clone()).collect();
    assert_eq!(walk(&app, "sort=newest&limit=4").await, newest);
    assert_eq!(walk(&app, "sort=newest&limit=100").await, newest);

    // The last page says so.
    let whole = app.get("/api/v1/items?limit=100").await;
    assert_eq!(whole.assert_status(200)["next_cursor"], Value::Null);
    assert_eq!(whole.body["count"], 30);
    assert!(
        whole.body.get("total").is_none(),
        "no total: it needed every item"
    );
}

#[tokio::test]
async fn a_cursor_survives_its_item_leaving_the_listing() {
    let app = spawn_app().await;
    let end = in_secs(900);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(app.create_item(json!({"end_time": end})).await);
    }
    ids.sort();
    let first = app.get("/api/v1/items?limit=3").await;
    let cursor = first.assert_status(200)["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    // The page's last item closes before the next page is read.
    app.admin(&ids[2], "close", json!({}))
        .await
        .assert_status(200);
    let rest = app
        .get(&format!("/api/v1/items?limit=10&cursor={cursor}"))
        .await;
    let rest: Vec<&str> = rest.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rest,
        ids[3..].iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn closed_and_cancelled_items_leave_the_active_listing_and_a_relist_brings_one_back() {
    let app = spawn_app().await;
    let closed = app.create_item(json!({})).await;
    let cancelled = app.create_item(json!({})).await;
    let running = app.create_item(json!({})).await;
    app.accepted_bid(&closed, "alice", json!(20)).await;
    app.admin(&closed, "close", json!({}))
        .await
        .assert_status(200);
    app.admin(&cancelled, "cancel", json!({"reason": "counterfeit"}))
        .await
        .assert_status(200);

    assert_eq!(page_ids(&app, "status=active").await, vec![running.clone()]);
    assert_eq!(page_ids(&app, "status=closed").await, vec![closed.clone()]);
    assert_eq!(
        page_ids(&app, "status=cancelled").await,
        vec![cancelled.clone()]
    );
    let closed_view = app.get("/api/v1/items?status=closed").await;
    assert_eq!(closed_view.body["items"][0]["status"], "closed");
    assert_eq!(closed_view.body["items"][0]["winner_id"], "alice");

    let round_two = json!({"starting_price": 5, "end_time": in_secs(7200)});
    app.admin(&closed, "relist", round_two)
        .await
        .assert_status(200);
    assert_eq!(
        page_ids(&app, "status=active").await,
        vec![running.clone(), closed.clone()],
        "the relisted round ends later"
    );
    assert!(page_ids(&app, "status=closed").await.is_empty());
    assert_eq!(
        page_ids(&app, "status=active&sort=newest").await,
        vec![closed, running],
        "a relist is the newest listing"
    );
}

#[tokio::test]
async fn an_auction_the_closer_ends_moves_to_the_closed_listing() {
    let app = spawn_app().await;
    let item = app.create_item(json!({"end_time": in_secs(1)})).await;
    assert_moves(&app, &item, "active", "closed").await;
}

/// Asserts that `item` is listed as `from` alone and not as `to`, then waits (up to 10 s)
/// until it is listed as `to`, alone, and no longer as `from`.
async fn assert_moves(app: &TestApp, item: &str, from: &str, to: &str) {
    let (from, to) = (format!("status={from}"), format!("status={to}"));
    assert_eq!(page_ids(app, &from).await, vec![item.to_owned()]);
    assert!(page_ids(app, &to).await.is_empty());
    let listed = wait_until(
        Duration::from_secs(10),
        &format!("listed as {to}"),
        || async {
            let ids = page_ids(app, &to).await;
            (!ids.is_empty()).then_some(ids)
        },
    )
    .await
    .unwrap();
    assert_eq!(listed, vec![item.to_owned()]);
    assert!(page_ids(app, &from).await.is_empty());
}

#[tokio::test]
async fn an_anti_sniping_extension_and_an_admin_extension_reorder_the_ending_listing() {
    assert_extensions_reorder_the_ending_listing(&spawn_app().await).await;
}

/// A bid in the anti-sniping window, then an admin's extension, each reorder the listing
/// (shared with the optimistic strategy's tests).
pub async fn assert_extensions_reorder_the_ending_listing(app: &TestApp) {
    let sniped = app
        .create_item(json!({
            "end_time": in_secs(30), "extension_window_secs": 60, "extension_secs": 600,
        }))
        .await;
    let later = app.create_item(json!({"end_time": in_secs(120)})).await;
    assert_eq!(page_ids(app, "").await, vec![sniped.clone(), later.clone()]);

    let bid = app.accepted_bid(&sniped, "alice", json!(10)).await;
    assert_eq!(bid.body["extended"], true, "{}", bid.body);
    assert_eq!(
        page_ids(app, "").await,
        vec![later.clone(), sniped.clone()],
        "the bid moved its end to now + 600 s"
    );

    app.admin(&later, "extend", json!({"end_time": in_secs(3600)}))
        .await
        .assert_status(200);
    assert_eq!(page_ids(app, "").await, vec![sniped, later]);
}

#[tokio::test]
async fn a_scheduled_item_lists_as_scheduled_until_it_starts_then_as_active() {
    let app = spawn_app().await;
    let item = app.create_scheduled_item(1, 600).await;
    assert_moves(&app, &item, "scheduled", "active").await;
}

#[tokio::test]
async fn q_keeps_the_items_whose_name_contains_it_ignoring_case() {
    let app = spawn_app().await;
    let camera = app.create_item(json!({"name": "Vintage Camera"})).await;
    let bag = app
        .create_item(json!({"name": "camera bag", "end_time": in_secs(7200)}))
        .await;
    app.create_item(json!({"name": "Lens"})).await;
    let over = app.create_item(json!({"name": "Old CAMERA"})).await;
    app.admin(&over, "close", json!({}))
        .await
        .assert_status(200);

    assert_eq!(
        walk(&app, "q=CAMERA&limit=1").await,
        vec![camera.clone(), bag]
    );
    assert_eq!(page_ids(&app, "q=vintage%20cam").await, vec![camera]);
    assert!(page_ids(&app, "q=tripod").await.is_empty());
    assert_eq!(page_ids(&app, "q=camera&status=closed").await, vec![over]);
}

#[tokio::test]
async fn a_name_search_examines_a_bounded_number_of_items_per_request() {
    let app = spawn_app().await;
    let end = in_secs(900);
    for _ in 0..1_005 {
        let body = json!({"name": "Lens", "end_time": end});
        app.create_item(body).await;
    }
    let needle = app
        .create_item(json!({"name": "Tripod", "end_time": in_secs(1800)}))
        .await;
    // The first request stops after examining its budget, with nothing found yet and a cursor.
    let first = app.get("/api/v1/items?q=tripod").await;
    assert_eq!(first.assert_status(200)["count"], 0);
    assert!(first.body["next_cursor"].is_string(), "{}", first.text);
    assert_eq!(walk(&app, "q=tripod").await, vec![needle]);
}

#[tokio::test]
async fn bad_listing_parameters_are_400_and_name_the_problem() {
    let app = spawn_app().await;
    app.create_item(json!({})).await;
    app.create_item(json!({})).await;
    let first = app.get("/api/v1/items?limit=1").await;
    let cursor = first.assert_status(200)["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_owned();

    for (query, status, code) in [
        ("cursor=garbage".to_owned(), 400, "invalid_cursor"),
        ("cursor=ea12_bad.id".to_owned(), 400, "invalid_cursor"),
        (
            format!("cursor={cursor}&status=closed"),
            400,
            "invalid_cursor",
        ),
        (
            format!("cursor={cursor}&sort=newest"),
            400,
            "invalid_cursor",
        ),
        ("limit=0".to_owned(), 400, "invalid_limit"),
        ("limit=101".to_owned(), 400, "invalid_limit"),
        ("limit=ten".to_owned(), 400, "invalid_query"),
        ("sort=cheapest".to_owned(), 400, "invalid_query"),
        ("status=bogus".to_owned(), 400, "invalid_status"),
        (format!("q={}", "a".repeat(101)), 400, "invalid_query"),
        ("q=a%00b".to_owned(), 400, "invalid_query"),
    ] {
        let reply = app.get(&format!("/api/v1/items?{query}")).await;
        reply.assert_error(status, code);
    }
    let next = app
        .get(&format!("/api/v1/items?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(next.assert_status(200)["count"], 1);
}

#[tokio::test]
async fn the_backfill_lists_the_items_of_a_legacy_items_index_and_then_drops_it() {
    let config = shared_config();
    let keys = shared::redis_keys::Keyspace::new(config.redis.key_prefix.clone());
    let mut redis = redis::Client::open(config.redis.url.expose())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    // Items as gateways before the listing sets wrote them: a hash and the legacy set only.
    let now = shared::Timestamp::now().micros();
    let legacy = [
        ("old-running", "active", now - 1_000_000, now + 600_000_000),
        ("old-soon", "active", now - 1_000_000, now + 300_000_000),
        (
            "old-scheduled",
            "active",
            now + 600_000_000,
            now + 900_000_000,
        ),
        ("old-closed", "closed", now - 9_000_000, now - 1_000_000),
    ];
    for (id, status, start, end) in legacy {
        let item = keys.item(&shared::ItemId::parse(id).unwrap()).item;
        redis::cmd("HSET")
            .arg(&item)
            .arg(&[
                ("name", "Legacy"),
                ("status", status),
                ("starting_cents", "100"),
                ("min_increment_cents", "100"),
                ("current_cents", "0"),
                ("highest_bidder", ""),
                ("bid_count", "0"),
                ("seq", "0"),
            ])
            .arg(&[("start_us", start), ("end_us", end), ("created_us", start)])
            .query_async::<()>(&mut redis)
            .await
            .expect("hset");
    }
    let ids = [
        "old-running",
        "old-soon",
        "old-scheduled",
        "old-closed",
        "gone-item",
        "bad.id",
    ];
    redis::cmd("SADD")
        .arg(keys.legacy_items_index())
        .arg(&ids)
        .query_async::<()>(&mut redis)
        .await
        .expect("sadd");

    let app = spawn_app_with(config).await;
    wait_until(
        Duration::from_secs(10),
        "the legacy set emptied",
        || async {
            let left: i64 = redis::cmd("EXISTS")
                .arg(keys.legacy_items_index())
                .query_async(&mut app.redis().await)
                .await
                .expect("exists");
            (left == 0).then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(
        page_ids(&app, "status=active").await,
        ["old-soon", "old-running"]
    );
    assert_eq!(page_ids(&app, "status=scheduled").await, ["old-scheduled"]);
    assert_eq!(page_ids(&app, "status=closed").await, ["old-closed"]);

    // Items created now are listed by their script, with nothing written to the legacy set.
    let fresh = app.create_item(json!({"end_time": in_secs(100)})).await;
    assert_eq!(
        page_ids(&app, "status=active").await,
        [fresh.as_str(), "old-soon", "old-running"]
    );
    let legacy_left: i64 = redis::cmd("EXISTS")
        .arg(keys.legacy_items_index())
        .query_async(&mut redis)
        .await
        .expect("exists");
    assert_eq!(legacy_left, 0);
}

#[tokio::test]
async fn a_listing_on_a_redis_without_its_script_loads_it_and_answers() {
    // A Redis of its own: its script cache is flushed below.
    let redis = RedisServer::start().unwrap();
    let app = spawn_app_with(test_config(&redis.url(), testkit::SHARED_NATS_URL)).await;
    let first = app.create_item(json!({})).await;
    let second = app.create_item(json!({"end_time": in_secs(7200)})).await;
    let expected = vec![first, second];
    assert_eq!(walk(&app, "limit=1").await, expected, "a fresh server");
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut app.redis().await)
        .await
        .expect("script flush");
    assert_eq!(walk(&app, "limit=1").await, expected, "after SCRIPT FLUSH");
}
