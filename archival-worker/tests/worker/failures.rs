//! Crashes and outages: redelivery after a crash between insert and ack, PostgreSQL down.

use crate::helpers::*;
use archival_worker::consumer::{self, ConsumerSettings};
use archival_worker::store::Store;
use futures::StreamExt;
use shared::subjects::Subjects;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_inserting_but_before_acking_leaves_each_event_once() {
    let setup = setup().await;
    let (gateway, item) = gateway_and_item(&setup).await;
    let accepted = accepted_bids(&gateway, &item, 0..40, 4).await;

    // The "crashing" worker: fetch, insert in one transaction, then die before acking.
    let store = Store::new(setup.database(), 2, Duration::from_secs(5)).unwrap();
    store.migrate().await.unwrap();
    let js = async_nats::jetstream::new(
        async_nats::connect(setup.gateway.common.nats_url.expose())
            .await
            .unwrap(),
    );
    let settings = ConsumerSettings {
        stream: setup.worker.archive.stream.clone(),
        duplicate_window: Duration::from_secs(setup.worker.archive.duplicate_window_secs),
        replicas: usize::from(setup.worker.archive.replicas),
        subjects: Subjects::new(setup.worker.common.subject_prefix.clone()),
        consumer_name: setup.worker.consumer_name.clone(),
        batch_size: 100,
        batch_wait: Duration::from_millis(200),
        ack_wait: Duration::from_secs(2),
    };
    let pull = consumer::consumer(&js, &settings).await.unwrap();
    // Pull until the relay has delivered all 40 (each pull waits up to 500 ms for messages).
    let mut fetched = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fetched.len() < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 40 relayed",
            fetched.len()
        );
        let mut batch = pull
            .batch()
            .max_messages(100)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        while let Some(Ok(message)) = batch.next().await {
            fetched.push(message);
        }
    }
    let written = store
        .write_batch(&archival_worker::decode::decode_batch(&fetched))
        .await
        .unwrap();
    assert_eq!(written.bids, 40);
    drop(fetched); // crash: no ack

    // A real worker on the same consumer gets the redeliveries and absorbs them.
    let worker = spawn_worker(&setup.worker).await;
    worker
        .wait_metric(Duration::from_secs(30), "archive_duplicates_total", 40.0)
        .await;
    assert_archived_exactly_once(setup.database(), &accepted).await;
    let db = pg(setup.database()).await;
    assert_eq!(bids_placed(&db).await, 40, "stats not double-counted");
    let count: i64 = db
        .query_one(
            "select bid_count from auctions where item_id = $1",
            &[&item],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 40);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_during_a_stream_of_bids_loses_nothing() {
    let mut postgres = PostgresServer::start().unwrap();
    let setup = setup_with(testkit::SHARED_NATS_URL, &postgres.url());
    let (gateway, worker, item) = start(&setup).await;
    let mut accepted = Vec::new();
    for n in 0..30u64 {
        accepted.push(accepted_bid(&gateway, &item, "alice", 100 + n).await);
    }
    assert_archived_exactly_once(setup.database(), &accepted).await;

    postgres.stop();
    for n in 30..130u64 {
        accepted.push(accepted_bid(&gateway, &item, "bob", 100 + n).await);
    }
    let ready = worker.get("/ready").await;
    assert_eq!(ready.assert_status(503)["postgres"], "down");

    postgres.restart().unwrap();
    assert_archived_exactly_once(setup.database(), &accepted).await;
    worker.wait_ready(Duration::from_secs(10)).await;
    worker.stop().await;
}
