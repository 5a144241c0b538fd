//! One bad event never stops the archive: an event PostgreSQL refuses is isolated from its
//! batch and dead-lettered with the refusal, the rest of the batch is stored once, and the
//! consumer goes on. A failure that is not the data's (a broken schema) dead-letters nothing:
//! it is retried, and `/ready` says the archive is stuck until it resumes.

use crate::helpers::*;
use shared::{AuctionClosed, Event, EventId, ItemId, Timestamp};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// An `auction_closed` event whose cancel reason holds a NUL, which PostgreSQL's text type
/// refuses (SQLSTATE 22021): what an admin cancel with reason `"bad\u0000reason"` produced
/// before the gateway validated reasons.
fn closed_with_a_nul_in_its_reason() -> Event {
    Event::AuctionClosed(AuctionClosed {
        event_id: EventId::new(),
        item_id: ItemId::parse(testkit::unique_id("poisoned")).unwrap(),
        seq: 1,
        timestamp: Timestamp::now(),
        winner_id: None,
        final_price_cents: None,
        reserve_met: false,
        round: 1,
        cancelled: true,
        reason: Some("bad\u{0}reason".into()),
        seller_id: None,
        buy_now: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_postgres_refuses_is_dead_lettered_and_the_rest_of_its_batch_is_stored_once() {
    let setup = setup().await;
    let (gateway, item) = gateway_and_item(&setup).await;

    // Arrange one batch: ten good bids, the poison, ten more, all in the stream before the
    // worker starts, so its first batch holds all 21.
    let mut accepted = accepted_bids(&gateway, &item, 0..10, 3).await;
    wait_stream_holds(&setup, 10).await;
    let poison = closed_with_a_nul_in_its_reason();
    publish_to_archive(&setup, poison.item_id().as_str(), poison.to_json().unwrap()).await;
    accepted.extend(accepted_bids(&gateway, &item, 10..20, 3).await);
    wait_stream_holds(&setup, 21).await;
    let mut one_batch = setup.worker.clone();
    one_batch.batch_wait_ms = 500;
    let worker = spawn_worker(&one_batch).await;

    assert_archived_exactly_once(setup.database(), &accepted).await;
    worker
        .wait_metric(WAIT, "archive_dead_letters_total", 1.0)
        .await;
    let db = pg(setup.database()).await;
    let rows = db
        .query(
            "select event_id, subject, reason, payload from dead_letters",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the poison is dead-lettered");
    let row = &rows[0];
    assert_eq!(
        row.get::<_, Option<uuid::Uuid>>(0),
        Some(poison.event_id().as_uuid())
    );
    assert!(
        row.get::<_, String>(1).ends_with(poison.item_id().as_str()),
        "{}",
        row.get::<_, String>(1)
    );
    let reason: String = row.get(2);
    assert!(reason.contains("0x00"), "the refusal is kept: {reason}");
    assert_eq!(row.get::<_, Vec<u8>>(3), poison.to_json().unwrap());
    assert_eq!(bids_placed(&db).await, 20, "each good bid counted once");
    let splits = worker.metric("archive_batch_splits_total").await;
    assert!(
        splits >= 1.0,
        "the poison was isolated from a batch: {splits}"
    );

    // The consumer goes on: later bids are stored, and the worker is ready.
    for n in 20..25u64 {
        accepted.push(accepted_bid(&gateway, &item, "later", 100 + n).await);
    }
    assert_archived_exactly_once(setup.database(), &accepted).await;
    let ready = worker.get("/ready").await;
    assert_eq!(ready.assert_status(200)["archiving"], true);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_schema_dead_letters_nothing_makes_ready_fail_and_the_archive_resumes() {
    let setup = setup().await;
    let (gateway, worker, item) = start(&setup).await;
    let mut accepted = vec![accepted_bid(&gateway, &item, "alice", 100).await];
    assert_archived_exactly_once(setup.database(), &accepted).await;

    // Sabotage: every insert of a bid now fails (SQLSTATE 42703), whatever the bid.
    let db = pg(setup.database()).await;
    db.batch_execute("alter table bids rename column extended to extended_gone")
        .await
        .unwrap();
    for n in 1..6u64 {
        accepted.push(accepted_bid(&gateway, &item, "bob", 100 + n).await);
    }
    let stuck = wait_until(WAIT, "ready to say the archive is stuck", || async {
        let reply = worker.get("/ready").await;
        (reply.status == 503).then_some(reply.body)
    })
    .await
    .unwrap();
    assert_eq!(stuck["archiving"], false, "{stuck}");
    assert_eq!(stuck["postgres"], "up", "{stuck}");

    db.batch_execute("alter table bids rename column extended_gone to extended")
        .await
        .unwrap();
    assert_archived_exactly_once(setup.database(), &accepted).await;
    worker.wait_ready(WAIT).await;
    let dead: i64 = db
        .query_one("select count(*) from dead_letters", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dead, 0, "a failure of ours is not the events' fault");
    worker.stop().await;
}
