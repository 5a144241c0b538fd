//! The archive path end to end: bids through the gateway land in PostgreSQL once each, and the
//! read model adds up.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::Row;

/// How long the read model may take to show an event.
const PROJECTED: Duration = Duration::from_secs(20);

/// The item's row of `columns` in the `auctions` projection.
async fn auction(db: &tokio_postgres::Client, columns: &str, item: &str) -> Row {
    let query = format!("select {columns} from auctions where item_id = $1");
    db.query_one(&query, &[&item]).await.expect("auction row")
}

/// Waits until the item's row of `columns` in `auctions` satisfies `done`; returns it.
async fn wait_for_auction(
    db: &tokio_postgres::Client,
    columns: &str,
    item: &str,
    done: impl Fn(&Row) -> bool,
) -> Row {
    let query = format!("select {columns} from auctions where item_id = $1");
    wait_until(PROJECTED, &format!("{item} projected"), || async {
        let row = db.query_one(&query, &[&item]).await.ok()?;
        done(&row).then_some(row)
    })
    .await
    .unwrap()
}

/// Every page of a history endpoint from `path`, read as `caller` (`None`: anonymously), each
/// page's `bids` in order; `next` turns a page into the path of the one after it, if any.
async fn all_pages(
    gateway: &Gateway,
    caller: Option<&str>,
    path: String,
    next: impl Fn(&Value) -> Option<String>,
) -> Vec<Value> {
    let mut bids = Vec::new();
    let mut path = Some(path);
    while let Some(current) = path {
        let reply = gateway.get_as(caller, &current).await;
        let page = reply.assert_status(200);
        bids.extend(page["bids"].as_array().unwrap().iter().cloned());
        path = next(page);
    }
    bids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_through_the_gateway_are_archived_once_with_matching_seq_and_stats() {
    let setup = setup().await;
    let (gateway, worker, first_item) = start(&setup).await;
    let items = [first_item, gateway.create_penny_item().await];

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
    assert_archived_exactly_once(setup.database(), &accepted).await;

    let db = pg(setup.database()).await;
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
        let row = auction(&db, "bid_count, last_seq", item).await;
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            (expected, expected)
        );
    }
    let current = auction(&db, "current_cents", &items[0]).await;
    assert_eq!(current.get::<_, i64>(0), 10_000);

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
    let item_bids = format!("/api/v1/items/{}/bids", items[0]);
    let by_seq = all_pages(&gateway, None, format!("{item_bids}?limit=5"), |page| {
        let before = page["next_before_seq"].as_i64()?;
        Some(format!("{item_bids}?limit=5&before_seq={before}"))
    })
    .await;
    let seqs: Vec<i64> = by_seq.iter().map(|b| b["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=21).rev().collect::<Vec<i64>>(),
        "every bid once, newest first"
    );
    // Public history masks every bidder behind one pseudonym per bidder on this item.
    assert!(by_seq.iter().all(|b| b["user_id"].is_null()), "{by_seq:?}");
    let pseudonyms: std::collections::HashSet<&str> = by_seq
        .iter()
        .map(|b| b["bidder"].as_str().unwrap())
        .collect();
    assert_eq!(pseudonyms.len(), 3, "alice, bob and carol: {pseudonyms:?}");
    assert!(
        !pseudonyms
            .iter()
            .any(|p| ["alice", "bob", "carol"].iter().any(|u| p.contains(u)))
    );
    let first = gateway.get(&format!("{item_bids}?limit=1")).await.body;
    assert_eq!(first["bids"][0]["amount"].to_string(), "100");
    let carol_pseudonym = first["bids"][0]["bidder"].clone();
    // carol sees her own row in full and the others masked; an admin sees everyone.
    let as_carol = all_pages(&gateway, Some("carol"), item_bids.clone(), |_| None).await;
    for bid in &as_carol {
        if bid["bidder"] == carol_pseudonym {
            assert_eq!(bid["user_id"], "carol", "{bid}");
        } else {
            assert!(bid["user_id"].is_null(), "{bid}");
        }
    }
    let admin_view = gateway.get_as_admin(&format!("{item_bids}?limit=1")).await;
    let admin_row = &admin_view.assert_status(200)["bids"][0];
    assert_eq!(
        (&admin_row["user_id"], &admin_row["bidder"]),
        (&json!("carol"), &carol_pseudonym)
    );

    let alice_bids = "/api/v1/users/alice/bids?limit=7";
    let alice = all_pages(&gateway, Some("alice"), alice_bids.to_owned(), |page| {
        let cursor = page["next_cursor"].as_str()?;
        Some(format!("{alice_bids}&before={cursor}"))
    })
    .await;
    let mut alice: Vec<&str> = alice
        .iter()
        .map(|b| b["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(alice.len(), 20, "alice's 20 bids, each once");
    alice.sort_unstable();
    alice.dedup();
    assert_eq!(alice.len(), 20);

    // A bidder's own history is theirs (and admins'): anonymous 401, someone else 403.
    gateway
        .get(alice_bids)
        .await
        .assert_error(401, "unauthorized");
    gateway
        .get_as(Some("bob"), alice_bids)
        .await
        .assert_error(403, "forbidden");
    gateway
        .get_as(Some("bob"), "/api/v1/users/alice/stats")
        .await
        .assert_error(403, "forbidden");
    let stats = gateway
        .get_as(Some("alice"), "/api/v1/users/alice/stats")
        .await;
    let stats = stats.assert_status(200);
    assert_eq!(stats["bids_placed"], 20);
    assert_eq!(stats["items_bid_on"], 2);
    assert_eq!(stats["total_committed_cents"], 560);
    assert_eq!(stats["total_committed"].to_string(), "5.6");
    let nobody = gateway
        .get_as(Some("nobody"), "/api/v1/users/nobody/stats")
        .await
        .body;
    assert_eq!(
        (
            nobody["bids_placed"].as_i64(),
            nobody["items_bid_on"].as_i64()
        ),
        (Some(0), Some(0))
    );
    let bad_user = gateway
        .get_as(Some("alice"), "/api/v1/users/bad.user/stats")
        .await;
    bad_user.assert_error(400, "invalid_user_id");
    let no_limit = gateway.get(&format!("{item_bids}?limit=0")).await;
    no_limit.assert_error(400, "invalid_limit");

    worker.get("/ready").await.assert_status(200);
    worker.get("/health").await;
    let metrics = worker.metrics_text().await;
    assert!(
        metrics.contains("archive_events_stored_total 41"),
        "{metrics}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_consumer_store_every_bid_once() {
    let setup = setup().await;
    let gateway = spawn_gateway(&setup).await;
    let mut small_batches = setup.worker.clone();
    small_batches.batch_size = 7;
    let first = spawn_worker(&small_batches).await;
    let second = spawn_worker(&small_batches).await;
    let item = gateway.create_penny_item().await;
    let accepted = accepted_bids(&gateway, &item, 0..300, 7).await;
    assert_archived_exactly_once(setup.database(), &accepted).await;
    let db = pg(setup.database()).await;
    let row = auction(&db, "bid_count, last_seq, current_cents", &item).await;
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (300, 300, 399)
    );
    assert_eq!(bids_placed(&db).await, 300, "stats count every bid once");
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_dead_letters_and_later_events_still_flow() {
    let setup = setup().await;
    let (gateway, worker, item) = start(&setup).await;
    let first = accepted_bid(&gateway, &item, "alice", 150).await;
    assert_archived_exactly_once(setup.database(), std::slice::from_ref(&first)).await;

    publish_to_archive(&setup, &item, b"not json at all".to_vec()).await;
    let negative = json!({
        "type": "bid_placed", "event_id": uuid::Uuid::now_v7(), "item_id": item, "seq": 99,
        "timestamp": "2026-01-01T00:00:00Z", "bid_id": "x", "user_id": "mallory",
        "amount_cents": -5, "previous_bid_cents": 0, "end_time": "2026-01-01T00:00:00Z",
        "extended": false,
    });
    publish_to_archive(&setup, &item, serde_json::to_vec(&negative).unwrap()).await;

    let second = accepted_bid(&gateway, &item, "bob", 200).await;
    assert_archived_exactly_once(setup.database(), &[first, second]).await;
    let db = pg(setup.database()).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auction_closed_event_records_the_result_once_and_credits_the_winner() {
    let setup = setup().await;
    let (gateway, worker, item) = start(&setup).await;
    let first = accepted_bid(&gateway, &item, "alice", 500).await;
    let second = accepted_bid(&gateway, &item, "bob", 700).await;
    assert_archived_exactly_once(setup.database(), &[first, second]).await;

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
        seller_id: None,
        buy_now: false,
    });
    for _ in 0..2 {
        publish_to_archive(&setup, &item, closed.to_json().unwrap()).await;
    }
    let db = pg(setup.database()).await;
    let columns = "status, winner_id, final_price_cents, reserve_met, last_seq, bid_count";
    let row = wait_for_auction(&db, columns, &item, |row| {
        row.get::<_, String>(0) == "closed"
    })
    .await;
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("bob"));
    assert_eq!(row.get::<_, Option<i64>>(2), Some(700));
    assert_eq!(row.get::<_, Option<bool>>(3), Some(true));
    assert_eq!((row.get::<_, i64>(4), row.get::<_, i64>(5)), (3, 2));
    // Both copies consumed before the stats are read: the second was absorbed.
    worker
        .wait_metric(PROJECTED, "archive_duplicates_total", 1.0)
        .await;
    let results: i64 = db
        .query_one(
            "select count(*) from auction_results where item_id = $1",
            &[&item],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(results, 1, "one result per close event");
    let stats = gateway.get_as(Some("bob"), "/api/v1/users/bob/stats").await;
    let stats = stats.assert_status(200);
    assert_eq!(
        (
            stats["items_won"].as_i64(),
            stats["total_won_cents"].as_i64()
        ),
        (Some(1), Some(700))
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relisted_item_keeps_the_old_rounds_history_and_projects_the_new_round() {
    let setup = setup().await;
    let (gateway, worker, item) = start(&setup).await;
    let mut accepted = vec![
        accepted_bid(&gateway, &item, "alice", 500).await,
        accepted_bid(&gateway, &item, "bob", 600).await,
    ];
    let close = gateway.admin(&item, "close", json!({})).await;
    close.assert_status(200);
    let round_two = json!({"starting_price": 1, "min_increment": 0.01, "end_time": in_secs(600)});
    let relist = gateway.admin(&item, "relist", round_two).await;
    relist.assert_status(200);
    accepted.push(accepted_bid(&gateway, &item, "carol", 150).await);
    assert_archived_exactly_once(setup.database(), &accepted).await;

    let history = gateway
        .get_as_admin(&format!("/api/v1/items/{item}/bids"))
        .await;
    let rows: Vec<(i64, i64, String)> = history.assert_status(200)["bids"]
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

    let db = pg(setup.database()).await;
    let columns = "round, status, bid_count, current_cents, last_seq";
    let row = wait_for_auction(&db, columns, &item, |row| row.get::<_, i64>(4) == 5).await;
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(row.get::<_, String>(1), "active");
    assert_eq!((row.get::<_, i64>(2), row.get::<_, i64>(3)), (1, 150));

    let cancel = gateway
        .admin(&item, "cancel", json!({"reason": "withdrawn"}))
        .await;
    cancel.assert_status(200);
    let columns = "status, cancel_reason, winner_id";
    let row = wait_for_auction(&db, columns, &item, |row| {
        row.get::<_, String>(0) == "cancelled"
    })
    .await;
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("withdrawn")
    );
    assert_eq!(row.get::<_, Option<String>>(2), None);
    worker.stop().await;
}
