//! Issue 16's auction rules through the real gateway: proxy bidding, increment tables, buy it
//! now; a property test against the sequential model (`rules_model.rs`); buy it now racing 64
//! bidders; and no maximum in any public answer.

use crate::helpers::*;
use crate::rules_model::Model;
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::reply::Reply;

/// A bid of `amount` cents with an optional maximum by `user`.
async fn proxy_bid(app: &Gateway, item: &str, user: &str, amount: i64, max: Option<i64>) -> Reply {
    let mut body = json!({ "amount": decimal(amount as u64) });
    if let Some(max) = max {
        body["max_amount"] = decimal(max as u64);
    }
    app.post_as(Some(user), &format!("/api/v1/items/{item}/bid"), body)
        .await
}

async fn buy(app: &Gateway, item: &str, user: &str) -> Reply {
    app.post_as(Some(user), &format!("/api/v1/items/{item}/buy"), json!({}))
        .await
}

/// Asserts a purchase went through: `buyer` won at `cents`.
fn assert_bought(reply: &Reply, buyer: &str, cents: i64) {
    let body = reply.assert_status(200);
    assert_eq!(
        (
            body["winner_id"].as_str(),
            body["final_price_cents"].as_i64()
        ),
        (Some(buyer), Some(cents))
    );
}

/// Every `bid_placed` the item's outbox and archive hold, as JSON, in `seq` order.
async fn bid_events(app: &TestApp, item: &str) -> Vec<Value> {
    let mut events: Vec<Value> = archived_events(&app.config)
        .await
        .into_iter()
        .filter(|e| e["item_id"] == item && e["type"] == "bid_placed")
        .collect();
    events.sort_by_key(|e| e["seq"].as_u64());
    events
}

#[tokio::test]
async fn a_maximum_bids_only_as_much_as_needed_and_answers_a_lower_bid_automatically() {
    let app = spawn_app().await;
    let item = app.create_item(json!({"min_increment": 0.5})).await;
    let mut live = app.subscribe_live(&item).await;

    let first = proxy_bid(&app, &item, "ann", 1_000, Some(2_000)).await;
    let body = first.assert_outcome("accepted");
    assert_eq!(
        (
            body["current_bid_cents"].as_i64(),
            body["is_highest"].as_bool()
        ),
        (Some(1_000), Some(true)),
        "only as much as needed: {body}"
    );
    assert_eq!(body["max_amount_cents"], 2_000, "echoed to its bidder");

    let lower = proxy_bid(&app, &item, "bob", 1_500, None).await;
    let body = lower.assert_outcome("outbid_by_proxy");
    assert_eq!(body["success"], true);
    assert_eq!(body["is_highest"], false);
    assert_eq!(
        body["current_bid_cents"], 1_550,
        "bob's bid plus one increment"
    );
    assert_eq!(body["seq"], 3, "bob's bid and the automatic answer");
    assert!(body.get("max_amount").is_none());

    // Two maxima meet: the lower plus one increment.
    let higher = proxy_bid(&app, &item, "cy", 1_600, Some(3_000)).await;
    assert_eq!(
        higher.assert_outcome("accepted")["current_bid_cents"],
        2_050
    );

    let state = app.item(&item).await;
    assert_eq!(state["highest_bidder_id"], "cy");
    assert_eq!(state["next_minimum_bid_cents"], 2_100);
    assert_eq!(
        (state["seq"].as_u64(), state["bid_count"].as_u64()),
        (Some(4), Some(4))
    );

    // Live: every bid, each with the leader after it as its user, the answer flagged
    // automatic and the bid it answers flagged answered.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let message = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("live event")
            .expect("subscription");
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        seen.push((
            event["user_id"].as_str().unwrap().to_owned(),
            event["amount_cents"].as_i64().unwrap(),
            event["automatic"].as_bool().unwrap(),
            event["answered"].as_bool().unwrap(),
        ));
    }
    let expected = [
        ("ann", 1_000, false, false),
        ("bob", 1_500, false, true),
        ("ann", 1_550, true, false),
        ("cy", 2_050, false, false),
    ];
    assert_eq!(
        seen,
        expected
            .map(|(u, a, auto, answered)| (u.to_owned(), a, auto, answered))
            .to_vec()
    );
    let archived = app.wait_archived(4).await;
    assert!(archived.iter().any(|e| e["automatic"] == true));
}

#[tokio::test]
async fn a_tie_goes_to_the_earlier_maximum_and_the_leader_raises_its_own_without_an_event() {
    let app = spawn_app().await;
    let item = app.create_item(json!({"reserve_price": 50})).await;
    proxy_bid(&app, &item, "ann", 1_000, Some(2_000))
        .await
        .assert_outcome("accepted");
    let tie = proxy_bid(&app, &item, "bob", 1_100, Some(2_000)).await;
    let body = tie.assert_outcome("outbid_by_proxy");
    assert_eq!(
        body["current_bid_cents"], 2_000,
        "capped at the equal maximum"
    );
    assert_eq!(app.item(&item).await["highest_bidder_id"], "ann");

    // ann raises her maximum below the reserve: no price change, no event.
    let seq = app.item(&item).await["seq"].as_u64().unwrap();
    let raised = proxy_bid(&app, &item, "ann", 2_100, Some(4_000)).await;
    let body = raised.assert_outcome("max_raised");
    assert_eq!(
        (body["current_bid_cents"].as_i64(), body["seq"].as_u64()),
        (Some(2_000), Some(seq))
    );
    assert!(body.get("event_id").is_none());
    proxy_bid(&app, &item, "ann", 2_100, Some(3_000))
        .await
        .assert_outcome("max_not_raised");
    // A maximum past the reserve lifts the price to it: one automatic bid.
    let lifted = proxy_bid(&app, &item, "ann", 2_100, Some(9_000)).await;
    let body = lifted.assert_outcome("max_raised");
    assert_eq!(body["current_bid_cents"], 5_000);
    assert_eq!(body["seq"].as_u64(), Some(seq + 1));
    let view = app.item(&item).await;
    assert_eq!(view["reserve_met"], true);
    assert_eq!(app.events_for(&item).await as u64, seq + 1);
}

#[tokio::test]
async fn a_tiered_table_sets_the_next_minimum_and_the_default_table_is_configurable() {
    let mut config = shared_config();
    config.default_increments = shared::IncrementTable::parse_decimal("0:0.25,20:2").unwrap();
    let app = spawn_app_with(config).await;
    let item = app.create_item(json!({})).await;
    let view = app.item(&item).await;
    assert_eq!(
        view["increments"],
        json!([{"from": 0, "increment": 0.25}, {"from": 20, "increment": 2}])
    );
    app.accepted_bid(&item, "ann", json!(19)).await;
    assert_eq!(app.item(&item).await["next_minimum_bid_cents"], 1_925);
    app.bid(&item, "bob", json!(19.24))
        .await
        .assert_outcome("bid_too_low");
    app.accepted_bid(&item, "bob", json!(20)).await;
    assert_eq!(app.item(&item).await["next_minimum_bid_cents"], 2_200);
    app.bid(&item, "ann", json!(21.99))
        .await
        .assert_outcome("bid_too_low");

    let tiered = app
        .create_item(
            json!({"increments": [{"from": 0, "increment": 1}, {"from": 100, "increment": 5}]}),
        )
        .await;
    assert_eq!(app.item(&tiered).await["increments"][1]["increment"], 5);
    for bad in [
        json!({"increments": [{"from": 1, "increment": 1}]}),
        json!({"increments": [{"from": 0, "increment": 1}, {"from": 0, "increment": 2}]}),
        json!({"increments": []}),
        json!({"increments": [{"from": 0, "increment": 1}], "min_increment": 1}),
    ] {
        let mut body = json!({"name": "x", "starting_price": 1, "end_time": in_secs(60)});
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        app.post_as(Some(SELLER), "/api/v1/items", body)
            .await
            .assert_error(400, "invalid_increments");
    }
}

#[tokio::test]
async fn buy_it_now_closes_at_once_until_the_first_bid() {
    let app = spawn_app().await;
    let item = app
        .create_item(json!({"buy_now_price": 80, "reserve_price": 50}))
        .await;
    assert_eq!(app.item(&item).await["buy_now_price_cents"], 8_000);
    buy(&app, &item, SELLER)
        .await
        .assert_error(403, "seller_cannot_bid");
    assert_bought(&buy(&app, &item, "ann").await, "ann", 8_000);
    // A retry of the same purchase answers it again; anyone else finds it closed.
    assert_eq!(
        buy(&app, &item, "ann").await.assert_status(200)["replayed"],
        true
    );
    buy(&app, &item, "bob")
        .await
        .assert_error(409, "auction_closed");
    app.bid(&item, "bob", json!(90))
        .await
        .assert_error(409, "auction_closed");
    let view = app.item(&item).await;
    assert_eq!(
        (view["status"].as_str(), view["winner_id"].as_str()),
        (Some("closed"), Some("ann"))
    );
    assert!(view.get("buy_now_price").is_none());
    // The closer-closed flow: confirmed, so the closing set lets it go.
    let closing = app.item_keys(&item).closing;
    wait_until(Duration::from_secs(5), "close confirmed", || async {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(&closing)
            .arg(&item)
            .query_async(&mut app.redis().await)
            .await
            .unwrap();
        score.is_none().then_some(())
    })
    .await
    .unwrap();

    let bid_first = app.create_item(json!({"buy_now_price": 80})).await;
    app.accepted_bid(&bid_first, "bob", json!(10)).await;
    assert!(app.item(&bid_first).await.get("buy_now_price").is_none());
    buy(&app, &bid_first, "ann")
        .await
        .assert_error(409, "buy_now_unavailable");
    let none = app.create_item(json!({})).await;
    buy(&app, &none, "ann")
        .await
        .assert_error(409, "buy_now_unavailable");
    app.post_as(
        Some(SELLER),
        "/api/v1/items",
        json!({"name": "x", "starting_price": 10, "buy_now_price": 5, "end_time": in_secs(60)}),
    )
    .await
    .assert_error(400, "invalid_buy_now_price");
}

#[tokio::test]
async fn relisting_forgets_the_old_rounds_maximum() {
    let app = spawn_app().await;
    let item = app.create_item(json!({"end_time": in_secs(3600)})).await;
    proxy_bid(&app, &item, "ann", 1_000, Some(9_000))
        .await
        .assert_outcome("accepted");
    app.admin(&item, "close", json!({}))
        .await
        .assert_status(200);
    assert!(!app.item_hash(&item).await.contains_key("leader_max_cents"));
    app.admin(
        &item,
        "relist",
        json!({"starting_price": 10, "end_time": in_secs(3600)}),
    )
    .await
    .assert_status(200);
    // bob is not answered by ann's maximum of the old round.
    let body = app.bid(&item, "bob", json!(10)).await;
    assert_eq!(body.assert_outcome("accepted")["is_highest"], true);
}

/// The next `count` live events of a subscription.
async fn next_events(live: &mut async_nats::Subscriber, count: usize) -> Vec<Value> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("live event")
            .expect("subscription");
        events.push(serde_json::from_slice(&message.payload).unwrap());
    }
    events
}

/// An event's `end_time` in µs.
fn end_us(event: &Value) -> i64 {
    serde_json::from_value::<shared::Timestamp>(event["end_time"].clone())
        .expect("an end time")
        .micros()
}

/// Anti-sniping treats an automatic bid as a manual one: a call whose only event is
/// automatic (a raised maximum lifting the price to the reserve) moves the end, and a bid a
/// standing maximum answers moves it once, for both events.
#[tokio::test]
async fn an_automatic_bid_inside_the_anti_sniping_window_extends_the_end_like_a_manual_one() {
    let app = spawn_app().await;
    // Every bid falls inside the hour-long window and moves the end to ten minutes after it.
    let item = app
        .create_item(
            json!({"reserve_price": 50, "min_increment": 1, "end_time": in_secs(60),
                            "extension_window_secs": 3600, "extension_secs": 600}),
        )
        .await;
    let mut live = app.subscribe_live(&item).await;
    proxy_bid(&app, &item, "ann", 1_000, Some(2_000))
        .await
        .assert_outcome("accepted");
    let [manual] = <[Value; 1]>::try_from(next_events(&mut live, 1).await).unwrap();
    assert_eq!(
        (&manual["automatic"], &manual["extended"]),
        (&json!(false), &json!(true))
    );

    // ann's new maximum reaches the reserve: one automatic bid, which extends.
    proxy_bid(&app, &item, "ann", 2_100, Some(6_000))
        .await
        .assert_outcome("max_raised");
    let [lift] = <[Value; 1]>::try_from(next_events(&mut live, 1).await).unwrap();
    assert_eq!(
        (&lift["automatic"], &lift["amount_cents"], &lift["extended"]),
        (&json!(true), &json!(5_000), &json!(true)),
        "{lift}"
    );
    assert!(end_us(&lift) > end_us(&manual), "{lift}");

    // bob's bid, answered by ann's maximum: the call moves the end once, both events show it.
    proxy_bid(&app, &item, "bob", 5_100, None)
        .await
        .assert_outcome("outbid_by_proxy");
    let [bid, answer] = <[Value; 2]>::try_from(next_events(&mut live, 2).await).unwrap();
    assert_eq!(
        (&bid["extended"], &answer["automatic"]),
        (&json!(true), &json!(true))
    );
    assert!(end_us(&bid) > end_us(&lift));
    assert_eq!(end_us(&answer), end_us(&bid));
    let view = app.item(&item).await;
    assert_eq!(end_us(&view), end_us(&answer), "{view}");
}

/// A relist takes the round terms an item's creation takes, checked by the same rules, and
/// without an increment it gets the configured default table, not a fixed one.
#[tokio::test]
async fn a_relist_takes_the_terms_of_a_new_item_and_defaults_to_the_configured_table() {
    let mut config = shared_config();
    config.default_increments = shared::IncrementTable::parse_decimal("0:0.25,20:2").unwrap();
    let app = spawn_app_with(config).await;
    let item = app
        .create_item(json!({"min_increment": 0.5, "buy_now_price": 80}))
        .await;
    app.admin(&item, "close", json!({}))
        .await
        .assert_status(200);
    let round = |extra: Value| {
        let mut body = json!({"starting_price": 10, "end_time": in_secs(3600)});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };

    // Round two: its own table and buy it now, both in force.
    let tiered = json!([{"from": 0, "increment": 1}, {"from": 100, "increment": 5}]);
    let terms = round(json!({"increments": tiered, "buy_now_price": 150}));
    app.admin(&item, "relist", terms).await.assert_status(200);
    let view = app.item(&item).await;
    assert_eq!(view["increments"], tiered);
    assert_eq!(view["buy_now_price_cents"], 15_000);
    assert_bought(&buy(&app, &item, "ann").await, "ann", 15_000);

    // Round three names no increment: the configured table, and no buy it now.
    let terms = json!({"starting_price": 19, "end_time": in_secs(3600)});
    app.admin(&item, "relist", terms).await.assert_status(200);
    let view = app.item(&item).await;
    assert_eq!(
        view["increments"],
        json!([{"from": 0, "increment": 0.25}, {"from": 20, "increment": 2}])
    );
    assert!(view.get("buy_now_price").is_none(), "{view}");
    app.accepted_bid(&item, "bob", json!(19)).await;
    assert_eq!(app.item(&item).await["next_minimum_bid_cents"], 1_925);
    app.bid(&item, "cy", json!(19.24))
        .await
        .assert_outcome("bid_too_low");

    // The creation's rules, with the creation's codes; a refused relist changes nothing.
    app.admin(&item, "close", json!({}))
        .await
        .assert_status(200);
    let refused = [
        (
            json!({"increments": [{"from": 1, "increment": 1}]}),
            "invalid_increments",
        ),
        (
            json!({"increments": tiered, "min_increment": 1}),
            "invalid_increments",
        ),
        (json!({"buy_now_price": 5}), "invalid_buy_now_price"),
        (
            json!({"reserve_price": 50, "buy_now_price": 20}),
            "invalid_buy_now_price",
        ),
        (
            json!({"extension_window_secs": 100_000}),
            "invalid_extension",
        ),
        (
            json!({"end_time": in_secs(400 * 86_400)}),
            "invalid_end_time",
        ),
        (json!({"name": "not a round term"}), "invalid_input"),
    ];
    for (extra, code) in refused {
        let body = round(extra);
        app.admin(&item, "relist", body)
            .await
            .assert_error(400, code);
    }
    let view = app.item(&item).await;
    assert_eq!(
        (view["status"].as_str(), view["round"].as_u64()),
        (Some("closed"), Some(3))
    );
}

#[tokio::test]
async fn the_optimistic_strategy_refuses_proxy_bids_and_changes_nothing() {
    let mut config = shared_config();
    config.redis_strategy = api_gateway::config::RedisStrategy::Optimistic;
    let optimistic = spawn_app_with(config.clone()).await;
    let item = optimistic.create_item(json!({})).await;
    proxy_bid(&optimistic, &item, "ann", 1_000, Some(2_000))
        .await
        .assert_error(422, "proxy_bidding_unsupported");
    optimistic.assert_no_bid_on(&item).await;
    // A standing maximum set through a script gateway is refused too.
    config.redis_strategy = api_gateway::config::RedisStrategy::Lua;
    let lua = spawn_app_with(config).await;
    proxy_bid(&lua, &item, "ann", 1_000, Some(2_000))
        .await
        .assert_outcome("accepted");
    optimistic
        .bid(&item, "bob", json!(11))
        .await
        .assert_error(422, "proxy_bidding_unsupported");
    assert_eq!(lua.item(&item).await["seq"], 1);
}

/// One request of a random sequence.
#[derive(Debug, Clone)]
enum Op {
    Bid {
        user: usize,
        amount: i64,
        max: Option<i64>,
    },
    Buy {
        user: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..6usize, 1_000..4_500i64, proptest::option::of(0..3_000i64)).prop_map(
            |(user, amount, extra)| Op::Bid { user, amount, max: extra.map(|e| amount + e) }
        ),
        1 => (0..6usize).prop_map(|user| Op::Buy { user }),
    ]
}

/// One answer, as the replay needs it.
#[derive(Debug)]
struct Answer {
    user: String,
    op: Op,
    code: String,
    /// The item's `seq` after the call.
    seq: u64,
    /// Events this call appended.
    events: u64,
    price: i64,
}

async fn send(app: &Gateway, item: &str, op: Op) -> Answer {
    let (user, reply) = match &op {
        Op::Bid { user, amount, max } => {
            let name = format!("p{user}");
            let reply = proxy_bid(app, item, &name, *amount, *max).await;
            (name, reply)
        }
        Op::Buy { user } => {
            let name = format!("p{user}");
            let reply = buy(app, item, &name).await;
            (name, reply)
        }
    };
    let b = &reply.body;
    let code = match (&op, reply.status) {
        // The buyer's second purchase answers the first again: it changed nothing.
        (Op::Buy { .. }, 200) if b["replayed"] == true => "bought_again".to_owned(),
        (Op::Buy { .. }, 200) => "bought".to_owned(),
        (_, 200) => b["code"].as_str().unwrap_or_default().to_owned(),
        _ => b["error"].as_str().unwrap_or("?").to_owned(),
    };
    let events = match code.as_str() {
        "accepted" | "bought" => 1,
        "outbid_by_proxy" => 2,
        "max_raised" => u64::from(b.get("event_id").is_some()),
        _ => 0,
    };
    Answer {
        user,
        code,
        seq: b["seq"].as_u64().unwrap_or(0),
        events,
        price: b["current_bid_cents"]
            .as_i64()
            .or(b["final_price_cents"].as_i64())
            .unwrap_or(0),
        op,
    }
}

/// One case: the ops sent at once; the answers replayed through the model in the order Redis
/// applied them (`seq`; a call without an event right after the one whose `seq` it saw).
async fn run_case(
    app: &TestApp,
    ops: Vec<Op>,
    reserve: i64,
    buy_now: i64,
) -> Result<(), TestCaseError> {
    let table = vec![(0, 50), (2_000, 100), (3_500, 250)];
    let mut extra = json!({"increments": [
        {"from": 0, "increment": 0.5}, {"from": 20, "increment": 1}, {"from": 35, "increment": 2.5}
    ]});
    if reserve > 0 {
        extra["reserve_price"] = decimal(reserve as u64);
    }
    if buy_now > 0 {
        extra["buy_now_price"] = decimal(buy_now as u64);
    }
    let item = app.create_item(extra).await;
    let answers = futures::future::join_all(ops.into_iter().map(|op| send(app, &item, op))).await;

    let mut changed: Vec<&Answer> = answers
        .iter()
        .filter(|a| {
            matches!(
                a.code.as_str(),
                "accepted" | "outbid_by_proxy" | "max_raised" | "bought"
            )
        })
        .collect();
    let raise = |a: &Answer| match a.op {
        Op::Bid { max, .. } => max.unwrap_or(0),
        Op::Buy { .. } => 0,
    };
    changed.sort_by_key(|a| (a.seq, u64::from(a.events == 0), raise(a)));
    // `seq` has no gaps: the events of the calls tile 1..=n.
    let mut next = 1;
    for a in changed.iter().filter(|a| a.events > 0) {
        prop_assert_eq!(
            a.seq + 1 - a.events,
            next,
            "calls' events tile seq: {:?}",
            a
        );
        next = a.seq + 1;
    }
    let mut model = Model::new(1_000, table, reserve, buy_now);
    for a in &changed {
        let outcome = match a.op {
            Op::Bid { amount, max, .. } => model.bid(&a.user, amount, max).0,
            Op::Buy { .. } => model.buy(&a.user),
        };
        prop_assert_eq!(outcome.code(), a.code.as_str(), "{:?}", a);
        prop_assert_eq!(model.price, a.price, "price after {:?}", a);
    }
    // The rejections are consistent with the final state: nothing bought after a bid, no
    // bid accepted after a buy.
    for a in answers
        .iter()
        .filter(|a| !changed.iter().any(|c| std::ptr::eq(*c, *a)))
    {
        let allowed: &[&str] = match a.op {
            Op::Bid { .. } => &["bid_too_low", "max_not_raised", "auction_closed"],
            Op::Buy { .. } => &["buy_now_unavailable", "auction_closed", "bought_again"],
        };
        prop_assert!(allowed.contains(&a.code.as_str()), "{:?}", a);
        if a.code == "auction_closed" || a.code == "bought_again" {
            prop_assert!(model.closed, "closed only after a buy: {:?}", a);
        }
        if a.code == "bought_again" {
            prop_assert_eq!(
                model.leader.as_deref(),
                Some(a.user.as_str()),
                "only the buyer"
            );
        }
    }
    let view = app.item(&item).await;
    prop_assert_eq!(view["current_bid_cents"].as_i64(), Some(model.price));
    prop_assert_eq!(view["highest_bidder_id"].as_str(), model.leader.as_deref());
    prop_assert_eq!(view["bid_count"].as_u64(), Some(model.bids));
    prop_assert_eq!(view["seq"].as_u64(), Some(next - 1));
    // Every seq is one event in the outbox or the archive (the relay moves them), no more.
    prop_assert_eq!(app.events_for(&item).await as u64, next - 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_concurrent_bids_end_as_the_model_says_with_no_seq_gap() {
    let app = spawn_app().await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    });
    let cases = (
        proptest::collection::vec(op(), 2..14),
        prop_oneof![Just(0i64), Just(3_000i64)],
        prop_oneof![Just(0i64), Just(4_000i64)],
    );
    let result = tokio::task::block_in_place(|| {
        runner.run(&cases, |(ops, reserve, buy_now)| {
            handle.block_on(run_case(&app, ops, reserve, buy_now))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_it_now_racing_64_bidders_has_one_outcome_in_redis_the_events_and_postgres() {
    let (app, _worker, database) = spawn_app_and_worker().await;
    let item = app.create_item(json!({"buy_now_price": 500})).await;

    let bids = (0..64).map(|i| {
        let (app, item) = (&app, item.clone());
        async move { proxy_bid(app, &item, &format!("racer{i}"), 1_000 + i, None).await }
    });
    let (bought, answers) =
        tokio::join!(buy(&app, &item, "buyer"), futures::future::join_all(bids));
    let accepted = answers
        .iter()
        .filter(|r| r.status == 200 && r.body["code"] == "accepted")
        .count();
    let view = app.item(&item).await;
    if bought.status == 200 {
        assert_eq!(accepted, 0, "no bid after the purchase");
        assert!(answers.iter().all(|r| r.body["error"] == "auction_closed"));
        assert_eq!(view["winner_id"], "buyer");
        assert_eq!(view["seq"], 1);
    } else {
        bought.assert_error(409, "buy_now_unavailable");
        assert!(accepted >= 1);
        assert_eq!(view["status"], "active");
        assert_eq!(view["bid_count"].as_u64(), Some(accepted as u64));
    }
    // The events (outbox → JetStream) agree: one close by buy it now, or only bids.
    let expected = if bought.status == 200 { 1 } else { accepted };
    let events = app.wait_archived(expected).await;
    let closes: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "auction_closed")
        .collect();
    if bought.status == 200 {
        assert_eq!(
            (closes.len(), closes[0]["buy_now"].as_bool()),
            (1, Some(true))
        );
        assert_eq!(closes[0]["winner_id"], "buyer");
    } else {
        assert!(closes.is_empty());
    }
    // PostgreSQL: the same outcome in the auction projection and its result.
    let (db, connection) = tokio_postgres::connect(&database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = wait_until(Duration::from_secs(15), "the archive agrees", || async {
        let row = db
            .query_opt(
                "select a.bid_count, a.winner_id, r.buy_now, r.final_price_cents
                 from auctions a left join auction_results r using (item_id)
                 where a.item_id = $1",
                &[&item],
            )
            .await
            .ok()??;
        let bid_count: Option<i64> = row.get(0);
        let done = if bought.status == 200 {
            row.get::<_, Option<bool>>(2) == Some(true)
        } else {
            bid_count.unwrap_or(0) == accepted as i64
        };
        done.then_some(row)
    })
    .await
    .unwrap();
    if bought.status == 200 {
        assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("buyer"));
        assert_eq!(row.get::<_, Option<i64>>(3), Some(50_000));
    } else {
        assert_eq!(
            row.get::<_, Option<bool>>(2),
            None,
            "no result while it runs"
        );
    }
}

/// Whether `value` shows `cents` anywhere, as cents or as the decimal amount.
fn shows(value: &Value, cents: i64) -> bool {
    reveals_amount(value, cents as f64 / 100.0) || value.to_string().contains(&cents.to_string())
}

#[tokio::test]
async fn no_public_answer_shows_a_maximum() {
    let (app, _worker, _database) = spawn_app_and_worker().await;
    // Distinctive maxima, never reached: 876.54 and 765.43.
    let (ann_max, bob_max) = (87_654, 76_543);
    let item = app.create_item(json!({})).await;
    let mut live = app.subscribe_live(&item).await;
    proxy_bid(&app, &item, "ann", 1_000, Some(ann_max))
        .await
        .assert_outcome("accepted");
    proxy_bid(&app, &item, "bob", 1_200, None)
        .await
        .assert_outcome("outbid_by_proxy");
    proxy_bid(&app, &item, "ann", 1_400, Some(ann_max + 1_111))
        .await
        .assert_outcome("max_raised");
    let other = app.create_item(json!({})).await;
    proxy_bid(&app, &other, "bob", 1_000, Some(bob_max))
        .await
        .assert_outcome("accepted");
    app.wait_archived(4).await;

    let mut public = vec![
        app.item(&item).await,
        app.item(&other).await,
        app.get("/api/v1/items").await.body,
        app.get_as(Some("cy"), "/api/v1/users/ann/bids").await.body,
    ];
    let history = wait_until(Duration::from_secs(15), "history archived", || async {
        let reply = app.get(&format!("/api/v1/items/{item}/bids")).await;
        (reply.status == 200 && reply.body["bids"].as_array().is_some_and(|b| b.len() == 3))
            .then_some(reply.body)
    })
    .await
    .unwrap();
    // The automatic flag is public, in the history as in the live event: newest first, ann's
    // automatic answer, bob's bid, ann's first bid.
    let flags = |page: &Value| -> Vec<Option<bool>> {
        page["bids"]
            .as_array()
            .map(|rows| rows.iter().map(|r| r["automatic"].as_bool()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        flags(&history),
        [Some(true), Some(false), Some(false)],
        "{history}"
    );
    let own = app.get_as(Some("ann"), "/api/v1/users/ann/bids").await;
    assert_eq!(flags(own.assert_status(200)), [Some(true), Some(false)]);
    public.push(history);
    public.push(app.get(&format!("/api/v1/items/{other}/bids")).await.body);
    for event in bid_events(&app, &item).await {
        public.push(event);
    }
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), live.next()).await
    {
        public.push(serde_json::from_slice(&message.payload).unwrap());
    }
    assert!(public.len() >= 9, "{public:?}");
    for answer in &public {
        for max in [ann_max, ann_max + 1_111, bob_max] {
            assert!(!shows(answer, max), "{max} leaked in {answer}");
        }
        assert!(!answer.to_string().contains("max_amount"), "{answer}");
    }
    // bob, the other bidder, learns only the price from his own answer.
    let answer = proxy_bid(&app, &item, "bob", 1_600, None).await;
    answer.assert_outcome("outbid_by_proxy");
    assert!(!shows(&answer.body, ann_max + 1_111), "{}", answer.text);
}
