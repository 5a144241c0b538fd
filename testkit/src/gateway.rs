//! A real gateway in-process, for the gateway's own tests and for every suite that needs real
//! events: the configuration they start it with, and typed requests for what they do through
//! it (create an item, bid, act as admin, read an item's state).

use crate::isolation::{self, Isolation};
use crate::reply::Reply;
use crate::service::{LOOPBACK_ANY_PORT, Service};
use crate::unique_id;
use api_gateway::Application;
use api_gateway::config::Config;
use serde_json::{Value, json};
use std::ops::Deref;

/// The admin endpoints' bearer token in every suite.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A gateway configuration on `isolation`'s servers, prefixes and stream, with the admin
/// endpoints on ([`ADMIN_TOKEN`]) and no limits a test machine would trip.
pub fn gateway_config(isolation: &Isolation) -> Config {
    let mut config = Config::defaults();
    config.listen_addr = LOOPBACK_ANY_PORT;
    let (common, redis, archive) = (&mut config.common, &mut config.redis, &mut config.archive);
    isolation.isolate(common, Some(redis), Some(archive));
    // A starved test machine must not turn slow answers into 503s; the outage tests set the
    // production deadline back explicitly.
    config.redis_timeout_ms = 2_000;
    // Tests bid fast from one user on purpose; the rate-limit test turns it back on.
    config.bid_rate_per_user = 0;
    config.admin_token = ADMIN_TOKEN.to_owned();
    config
}

/// A running gateway and the configuration it runs with. It derefs to its [`Service`] for
/// the plain HTTP calls, probes and metrics. Dropping it stops it and deletes its archive
/// stream, so no test leaves one behind, even when it fails. (Of gateways sharing one
/// configuration, the first dropped deletes the stream; a relay still running recreates it.)
pub struct Gateway {
    service: Service,
    pub config: Config,
}

/// Starts a gateway through `Application::build` and `run`, as `main` does.
pub async fn spawn_gateway(config: Config) -> Gateway {
    let service = Service::start(
        Application::build(config.clone()),
        Application::port,
        Application::run,
    )
    .await;
    Gateway { service, config }
}

impl Deref for Gateway {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

/// What an accepted bid answered.
#[derive(Debug)]
pub struct Accepted {
    pub seq: u64,
    pub event_id: String,
    pub body: Value,
}

impl Gateway {
    /// See [`Service::stop`].
    pub async fn stop(mut self) {
        self.service.stop_in_place().await;
    }

    /// See [`Service::exited`].
    pub async fn exited(mut self, within: std::time::Duration) -> anyhow::Result<()> {
        self.service.exited_in_place(within).await
    }

    /// Creates an active auction of a "Test camera" starting at 10.00 with the default
    /// increment (1.00) and ending in an hour, with the fields of `extra` over those; returns
    /// its fresh id.
    pub async fn create_item(&self, extra: Value) -> String {
        let id = unique_id("item");
        let mut body = json!({
            "id": id,
            "name": "Test camera",
            "starting_price": 10,
            "end_time": in_secs(3600),
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.post("/api/v1/items", body).await.assert_status(201);
        id
    }

    /// Creates an active auction starting at 1.00 with a 0.01 increment, for tests that bid
    /// many rising amounts.
    pub async fn create_penny_item(&self) -> String {
        self.create_item(json!({"starting_price": 1, "min_increment": 0.01}))
            .await
    }

    pub async fn bid(&self, item: &str, user: &str, amount: Value) -> Reply {
        self.post(
            &format!("/api/v1/items/{item}/bid"),
            json!({ "user_id": user, "amount": amount }),
        )
        .await
    }

    /// A bid with an `Idempotency-Key`.
    pub async fn bid_with_key(&self, item: &str, user: &str, amount: Value, key: &str) -> Reply {
        let request = self
            .http()
            .post(self.url(&format!("/api/v1/items/{item}/bid")))
            .header("Idempotency-Key", key)
            .json(&json!({ "user_id": user, "amount": amount }));
        self.send(request).await
    }

    /// A bid that must be accepted.
    pub async fn accepted_bid(&self, item: &str, user: &str, amount: Value) -> Accepted {
        let reply = self.bid(item, user, amount).await;
        reply.assert_outcome("accepted");
        Accepted {
            seq: reply.body["seq"]
                .as_u64()
                .expect("an accepted bid has a seq"),
            event_id: reply.body["event_id"]
                .as_str()
                .expect("an accepted bid has an event id")
                .to_owned(),
            body: reply.body,
        }
    }

    /// An admin action (`close`, `cancel`, `extend`, `relist`) with the admin token.
    pub async fn admin(&self, item: &str, action: &str, body: Value) -> Reply {
        let request = self
            .http()
            .post(self.url(&format!("/api/v1/items/{item}/{action}")))
            .bearer_auth(&self.config.admin_token)
            .json(&body);
        self.send(request).await
    }

    /// An item's current state, which must exist.
    pub async fn item(&self, item: &str) -> Value {
        let reply = self.get(&format!("/api/v1/items/{item}")).await;
        reply.assert_status(200);
        reply.body
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        isolation::delete_stream_now(
            self.config.common.nats_url.expose().to_owned(),
            self.config.archive.stream.clone(),
        );
    }
}

/// A time `secs` from now, RFC 3339, as the API takes `start_time` and `end_time`.
pub fn in_secs(secs: i64) -> String {
    shared::Timestamp::from_micros(shared::Timestamp::now().micros() + secs * 1_000_000)
        .to_rfc3339()
}

/// Money text for a JSON body, from cents (`1234` → `"12.34"`).
pub fn decimal(cents: u64) -> Value {
    Value::String(format!("{}.{:02}", cents / 100, cents % 100))
}
