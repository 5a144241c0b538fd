//! No lost update: many concurrent bidders on one item.

use crate::helpers::*;
use std::collections::BTreeMap;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_concurrent_bids_keep_the_highest_and_count_every_accepted_bid() {
    let retries = two_thousand_concurrent_bids(shared_config()).await;
    assert_eq!(retries, Some(0.0), "the Lua script never retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_optimistic_strategy_keeps_the_same_guarantees_under_contention_and_counts_its_retries()
{
    let mut config = shared_config();
    config.redis_strategy = api_gateway::config::RedisStrategy::Optimistic;
    let retries = two_thousand_concurrent_bids(config).await;
    // 200 writers on one item over 64 connections: some `EXEC`s must find the item changed
    // between their `WATCH` and their `EXEC`, and each such attempt is counted.
    assert!(
        retries.is_some_and(|r| r > 0.0),
        "gateway_optimistic_retries_total should rise under contention, got {retries:?}"
    );
}

/// Runs the bids, checks every guarantee, and returns the gateway's
/// `gateway_optimistic_retries_total` afterwards, if it reports it.
async fn two_thousand_concurrent_bids(config: api_gateway::config::Config) -> Option<f64> {
    let app = Arc::new(spawn_app_with(config).await);
    let item = app.create_penny_item().await;

    // 200 tasks × 10 bids with distinct amounts (1.00 .. 20.99 in a scrambled order), so the
    // highest valid bid is unique and known in advance.
    let tasks = 200u64;
    let per_task = 10u64;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let app = Arc::clone(&app);
        let item = item.clone();
        handles.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..per_task {
                let n = t * per_task + i;
                let cents = 100 + (n * 7919) % (tasks * per_task);
                let reply = app.bid(&item, &format!("u{t}"), decimal(cents)).await;
                let body = reply.assert_status(200);
                if body["code"] == "accepted" {
                    accepted.push((
                        body["seq"].as_u64().unwrap(),
                        cents as i64,
                        body["event_id"].as_str().unwrap().to_owned(),
                    ));
                } else {
                    assert_eq!(body["code"], "bid_too_low", "{body}");
                    assert!(body["current_bid_cents"].as_i64().unwrap() >= cents as i64);
                }
            }
            accepted
        }));
    }
    let mut by_seq = BTreeMap::new();
    for handle in handles {
        for (seq, cents, event_id) in handle.await.unwrap() {
            assert!(
                by_seq.insert(seq, (cents, event_id)).is_none(),
                "seq {seq} given twice"
            );
        }
    }

    let highest = 100 + tasks * per_task - 1;
    let state = app.item(&item).await;
    assert_eq!(
        state["current_bid_cents"], highest,
        "final price is the highest valid bid"
    );
    assert_eq!(
        state["seq"],
        by_seq.len() as u64,
        "seq counts exactly the accepted bids"
    );
    assert_eq!(state["bid_count"], by_seq.len() as u64);
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=by_seq.len() as u64).collect::<Vec<_>>()
    );
    let amounts: Vec<i64> = by_seq.values().map(|(c, _)| *c).collect();
    assert!(
        amounts.windows(2).all(|w| w[0] < w[1]),
        "no accepted bid below a previous one"
    );

    // Every accepted bid reaches JetStream exactly once.
    let expected: Vec<String> = by_seq.values().map(|(_, id)| id.clone()).collect();
    assert_archived_exactly_once(&app.config, &expected).await;
    app.reported_metric("gateway_optimistic_retries_total")
        .await
}
