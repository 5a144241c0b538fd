//! The archive path end to end: bids through the gateway land in PostgreSQL once each, and the
//! read model adds up.

use crate::helpers::*;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_through_the_gateway_are_archived_once_with_matching_seq_and_stats() {
    let setup = setup().await;
    let gateway = spawn_gateway(&setup).await;
    let worker = spawn_worker(&setup.worker).await;
    let items = [create_item(&gateway).await, create_item(&gateway).await];

    // alice and bob alternate on two items; carol bids once.
    let mut accepted = Vec::new();
    let mut per_user: HashMap<&str, i64> = HashMap::new();
    for n in 0..20u64 {
        let user = if n % 2 == 0 { "alice" } else { "bob" };
        for item in &items {
            accepted.push(accepted_bid(&gateway, item, user, 100 + n * 10).await);
            *per_user.entry(user).or_default() += 1;
        }
    }
    accepted.push(accepted_bid(&gateway, &items[0], "carol", 10_000).await);
    assert_archived_exactly_once(setup.worker.database.url.expose(), &accepted).await;

    let db = pg(setup.worker.database.url.expose()).await;
    for item in &items {
        let seqs: Vec<i64> = db
            .query(
                "select seq from bids where item_id = $1 order by seq",
                &[item],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let expected = if item == &items[0] { 21 } else { 20 };
        assert_eq!(
            seqs,
            (1..=expected).collect::<Vec<i64>>(),
            "seq 1..n without gaps"
        );
        let row = db
            .query_one(
                "select bid_count, last_seq, current_cents from auctions where item_id = $1",
                &[item],
            )
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            (expected, expected)
        );
    }
    let current: i64 = db
        .query_one(
            "select current_cents from auctions where item_id = $1",
            &[&items[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, 10_000);

    for (user, placed) in per_user {
        let row = db
            .query_one(
                "select bids_placed from user_stats where user_id = $1",
                &[&user],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), placed, "{user}'s bids_placed");
        let row = db
            .query_one(
                "select count(*), sum(highest_cents)::bigint from user_items where user_id = $1",
                &[&user],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 2, "{user} bid on two items");
        // Each user's highest bid on each item: alice bid n = 18 last (280), bob n = 19 (290).
        let highest = if user == "alice" { 280 } else { 290 };
        assert_eq!(
            row.get::<_, i64>(1),
            2 * highest,
            "{user}'s total committed"
        );
    }
    // The gateway's history endpoints page through the archive, newest first.
    let mut seqs = Vec::new();
    let mut path = format!("/api/v1/items/{}/bids?limit=5", items[0]);
    loop {
        let (status, page) = get(&gateway.base, &path).await;
        assert_eq!(status, 200, "{page}");
        seqs.extend(
            page["bids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["seq"].as_i64().unwrap()),
        );
        match page["next_before_seq"].as_i64() {
            Some(before) => {
                path = format!(
                    "/api/v1/items/{}/bids?limit=5&before_seq={before}",
                    items[0]
                )
            }
            None => break,
        }
    }
    assert_eq!(
        seqs,
        (1..=21).rev().collect::<Vec<i64>>(),
        "every bid once, newest first"
    );
    let (_, first) = get(
        &gateway.base,
        &format!("/api/v1/items/{}/bids?limit=1", items[0]),
    )
    .await;
    assert_eq!(first["bids"][0]["user_id"], "carol");
    assert_eq!(first["bids"][0]["amount"].to_string(), "100");

    let mut alice = Vec::new();
    let mut path = "/api/v1/users/alice/bids?limit=7".to_owned();
    loop {
        let (status, page) = get(&gateway.base, &path).await;
        assert_eq!(status, 200, "{page}");
        alice.extend(
            page["bids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["event_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/users/alice/bids?limit=7&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(alice.len(), 20, "alice's 20 bids, each once");
    alice.sort();
    alice.dedup();
    assert_eq!(alice.len(), 20);

    let (status, stats) = get(&gateway.base, "/api/v1/users/alice/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["bids_placed"], 20);
    assert_eq!(stats["items_bid_on"], 2);
    assert_eq!(stats["total_committed_cents"], 560);
    assert_eq!(stats["total_committed"].to_string(), "5.6");
    let (_, nobody) = get(&gateway.base, "/api/v1/users/nobody/stats").await;
    assert_eq!(
        (
            nobody["bids_placed"].as_i64(),
            nobody["items_bid_on"].as_i64()
        ),
        (Some(0), Some(0))
    );
    let (status, bad) = get(&gateway.base, "/api/v1/users/bad.user/stats").await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_user_id"))
    );
    let (status, bad) = get(
        &gateway.base,
        &format!("/api/v1/items/{}/bids?limit=0", items[0]),
    )
    .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_limit"))
    );

    let (status, ready) = get(&worker.base, "/ready").await;
    assert_eq!(status, 200, "{ready}");
    let (_, _) = get(&worker.base, "/health").await;
    let metrics = reqwest::get(format!("{}/metrics", worker.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("archive_events_stored_total 41"),
        "{metrics}"
    );
    worker.stop().await;
    delete_stream(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_consumer_store_every_bid_once() {
    let setup = setup().await;
    let gateway = spawn_gateway(&setup).await;
    let mut small_batches = setup.worker.clone();
    small_batches.batch_size = 7;
    let first = spawn_worker(&small_batches).await;
    let second = spawn_worker(&small_batches).await;
    let item = create_item(&gateway).await;
    let mut accepted = Vec::new();
    for n in 0..300u64 {
        accepted.push(accepted_bid(&gateway, &item, &format!("u{}", n % 7), 100 + n).await);
    }
    assert_archived_exactly_once(setup.worker.database.url.expose(), &accepted).await;
    let db = pg(setup.worker.database.url.expose()).await;
    let row = db
        .query_one(
            "select bid_count, last_seq, current_cents from auctions where item_id = $1",
            &[&item],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (300, 300, 399)
    );
    let placed: i64 = db
        .query_one("select sum(bids_placed)::bigint from user_stats", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(placed, 300, "stats count every bid once");
    drop((first, second));
    delete_stream(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_dead_letters_and_later_events_still_flow() {
    let setup = setup().await;
    let gateway = spawn_gateway(&setup).await;
    let worker = spawn_worker(&setup.worker).await;
    let item = create_item(&gateway).await;
    let first = accepted_bid(&gateway, &item, "alice", 150).await;
    assert_archived_exactly_once(
        setup.worker.database.url.expose(),
        std::slice::from_ref(&first),
    )
    .await;

    let js = async_nats::jetstream::new(
        async_nats::connect(setup.gateway.common.nats_url.expose())
            .await
            .unwrap(),
    );
    let subject = format!("{}.archive.{item}", setup.gateway.common.subject_prefix);
    js.publish(subject.clone(), "not json at all".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let negative = serde_json::json!({
        "type": "bid_placed", "event_id": uuid::Uuid::now_v7(), "item_id": item, "seq": 99,
        "timestamp": "2026-01-01T00:00:00Z", "bid_id": "x", "user_id": "mallory",
        "amount_cents": -5, "previous_bid_cents": 0, "end_time": "2026-01-01T00:00:00Z",
        "extended": false,
    });
    js.publish(subject, serde_json::to_vec(&negative).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let second = accepted_bid(&gateway, &item, "bob", 200).await;
    assert_archived_exactly_once(setup.worker.database.url.expose(), &[first, second]).await;
    let db = pg(setup.worker.database.url.expose()).await;
    let reasons: Vec<String> = db
        .query(
            "select reason from dead_letters order by stream_sequence",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("undecodable"), "{reasons:?}");
    assert!(
        reasons[1].contains("amount must be positive"),
        "{reasons:?}"
    );
    worker.stop().await;
    delete_stream(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auction_closed_event_records_the_result_once_and_credits_the_winner() {
    let setup = setup().await;
    let gateway = spawn_gateway(&setup).await;
    let worker = spawn_worker(&setup.worker).await;
    let item = create_item(&gateway).await;
    let first = accepted_bid(&gateway, &item, "alice", 500).await;
    let second = accepted_bid(&gateway, &item, "bob", 700).await;
    assert_archived_exactly_once(setup.worker.database.url.expose(), &[first, second]).await;

    // The closer (issue 6) publishes this through the outbox; here it goes straight to the
    // stream, twice, as a redelivery would.
    let closed = shared::Event::AuctionClosed(shared::AuctionClosed {
        event_id: shared::EventId::new(),
        item_id: shared::ItemId::parse(&item).unwrap(),
        seq: 3,
        timestamp: shared::Timestamp::now(),
        winner_id: Some(shared::UserId::parse("bob").unwrap()),
        final_price_cents: Some(700),
        reserve_met: true,
        round: 1,
        cancelled: false,
        reason: None,
    });
    let js = async_nats::jetstream::new(
        async_nats::connect(setup.gateway.common.nats_url.expose())
            .await
            .unwrap(),
    );
    let subject = format!("{}.archive.{item}", setup.gateway.common.subject_prefix);
    for _ in 0..2 {
        js.publish(subject.clone(), closed.to_json().unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let db = pg(setup.worker.database.url.expose()).await;
    let row = wait_until(
        std::time::Duration::from_secs(20),
        "auction closed in the projection",
        || async {
            let row = db
                .query_one(
                    "select status, winner_id, final_price_cents, reserve_met, last_seq, bid_count
                 from auctions where item_id = $1",
                    &[&item],
                )
                .await
                .ok()?;
            (row.get::<_, String>(0) == "closed").then_some(row)
        },
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("bob"));
    assert_eq!(row.get::<_, Option<i64>>(2), Some(700));
    assert_eq!(row.get::<_, Option<bool>>(3), Some(true));
    assert_eq!((row.get::<_, i64>(4), row.get::<_, i64>(5)), (3, 2));
    // Both copies consumed before the stats are read: the second was absorbed.
    wait_until(
        std::time::Duration::from_secs(20),
        "the duplicate close consumed",
        || async {
            let text = reqwest::get(format!("{}/metrics", worker.base))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.contains("archive_duplicates_total 1").then_some(())
        },
    )
    .await
    .unwrap();
    let results: i64 = db
        .query_one(
            "select count(*) from auction_results where item_id = $1",
            &[&item],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(results, 1, "one result per close event");
    let (status, stats) = get(&gateway.base, "/api/v1/users/bob/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (
            stats["items_won"].as_i64(),
            stats["total_won_cents"].as_i64()
        ),
        (Some(1), Some(700))
    );
    worker.stop().await;
    delete_stream(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relisted_item_keeps_the_old_rounds_history_and_projects_the_new_round() {
    let setup = setup().await;
    let gateway = spawn_gateway(&setup).await;
    let worker = spawn_worker(&setup.worker).await;
    let item = create_item(&gateway).await;
    let mut accepted = vec![
        accepted_bid(&gateway, &item, "alice", 500).await,
        accepted_bid(&gateway, &item, "bob", 600).await,
    ];
    assert_eq!(
        admin(&gateway, &item, "close", serde_json::json!({}))
            .await
            .0,
        200
    );
    let end = shared::Timestamp::from_micros(shared::Timestamp::now().micros() + 600_000_000);
    let (status, body) = admin(
        &gateway,
        &item,
        "relist",
        serde_json::json!({"starting_price": 1, "min_increment": 0.01, "end_time": end}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    accepted.push(accepted_bid(&gateway, &item, "carol", 150).await);
    assert_archived_exactly_once(setup.worker.database.url.expose(), &accepted).await;

    let (status, history) = get(&gateway.base, &format!("/api/v1/items/{item}/bids")).await;
    assert_eq!(status, 200, "{history}");
    let rows: Vec<(i64, i64, String)> = history["bids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["seq"].as_i64().unwrap(),
                b["round"].as_i64().unwrap(),
                b["user_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (5, 2, "carol".into()),
            (2, 1, "bob".into()),
            (1, 1, "alice".into())
        ],
        "both rounds stay readable"
    );

    let db = pg(setup.worker.database.url.expose()).await;
    let row = wait_until(std::time::Duration::from_secs(20), "new round projected", || async {
        let row = db
            .query_one(
                "select round, status, bid_count, current_cents, last_seq from auctions where item_id = $1",
                &[&item],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(4) == 5).then_some(row)
    })
    .await
    .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(row.get::<_, String>(1), "active");
    assert_eq!((row.get::<_, i64>(2), row.get::<_, i64>(3)), (1, 150));

    let (status, body) = admin(
        &gateway,
        &item,
        "cancel",
        serde_json::json!({"reason": "withdrawn"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let row = wait_until(
        std::time::Duration::from_secs(20),
        "cancellation projected",
        || async {
            let row = db
                .query_one(
                    "select status, cancel_reason, winner_id from auctions where item_id = $1",
                    &[&item],
                )
                .await
                .ok()?;
            (row.get::<_, String>(0) == "cancelled").then_some(row)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("withdrawn")
    );
    assert_eq!(row.get::<_, Option<String>>(2), None);
    worker.stop().await;
    delete_stream(&setup).await;
}
