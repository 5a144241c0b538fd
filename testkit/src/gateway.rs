//! A real gateway in-process, for the gateway's own tests and for every suite that needs real
//! events: the configuration they start it with, and typed requests for what they do through
//! it (create an item, bid, act as admin, read an item's state), each carrying a real access
//! token for its caller.
//!
//! Tokens are real: every test gateway signs with one throwaway Ed25519 key per test process
//! ([`test_signing_key`]), and [`TokenMinter`] signs tokens for any user id and role with the
//! gateway's own issuing code and that key, so the gateway verifies them exactly as it verifies
//! the tokens of its sign-in routes. Items are created by [`SELLER`], admin actions come from
//! [`ADMIN`], and a bid from `user` carries `user`'s token.

use crate::isolation::{self, Isolation};
use crate::reply::Reply;
use crate::service::{LOOPBACK_ANY_PORT, Service};
use crate::unique_id;
use api_gateway::Application;
use api_gateway::auth::{AccessTokenIssuer, Role, SigningKey};
use api_gateway::config::Config;
use api_gateway::identity_provider::IdentityProvider;
use serde_json::{Value, json};
use shared::UserId;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Mutex, OnceLock};

/// The account every suite's items are created by (it cannot bid on them).
pub const SELLER: &str = "test-seller";
/// The account with the `admin` role every suite's admin actions come from.
pub const ADMIN: &str = "test-admin";

/// The signing key (PKCS#8 PEM) every test gateway of this process signs with.
pub fn test_signing_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::generate_pem().expect("the OS gives randomness for a test signing key")
    })
}

/// Signs access tokens the way a gateway with `config` does (its key, issuer, audience and
/// lifetime), for any user and roles; each token is signed once and reused, as a client
/// reuses its token.
pub struct TokenMinter {
    issuer: AccessTokenIssuer,
    minted: Mutex<HashMap<(String, bool), String>>,
}

impl TokenMinter {
    /// The minter of a gateway started with `config`; `None` when an external issuer signs
    /// its tokens (then the test holds that issuer's key itself).
    ///
    /// # Panics
    /// When the key in `config` is not usable.
    pub fn for_config(config: &Config) -> Option<Self> {
        let identity =
            IdentityProvider::from_config(config).expect("the test gateway's identity builds");
        Some(Self {
            issuer: identity.issuer()?.clone(),
            minted: Mutex::new(HashMap::new()),
        })
    }

    /// A `user` token for `user` (`admin` adds the admin role).
    ///
    /// # Panics
    /// When `user` breaks the user id rules: a token can only name a valid account.
    pub fn token(&self, user: &str, admin: bool) -> String {
        let key = (user.to_owned(), admin);
        let mut minted = self.minted.lock().unwrap_or_else(|e| e.into_inner());
        minted
            .entry(key)
            .or_insert_with(|| {
                let id = UserId::parse(user).expect("a token names a valid user id");
                let roles: &[Role] = if admin {
                    &[Role::User, Role::Admin]
                } else {
                    &[Role::User]
                };
                self.issuer.issue(&id, roles).expect("signed").token
            })
            .clone()
    }
}

/// A gateway configuration on `isolation`'s servers, prefixes and stream, signing with
/// [`test_signing_key`], and without limits a test machine would trip.
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
    config.auth.jwt_signing_key = Some(test_signing_key().to_owned().into());
    config
}

/// A running gateway and the configuration it runs with. It derefs to its [`Service`] for
/// the plain HTTP calls, probes and metrics. Dropping it stops it and deletes its archive
/// stream, so no test leaves one behind, even when it fails. (Of gateways sharing one
/// configuration, the first dropped deletes the stream; a relay still running recreates it.)
pub struct Gateway {
    service: Service,
    pub config: Config,
    tokens: Option<TokenMinter>,
}

/// Starts a gateway through `Application::build` and `run`, as `main` does.
pub async fn spawn_gateway(config: Config) -> Gateway {
    let service = Service::start(
        Application::build(config.clone()),
        Application::port,
        Application::run,
    )
    .await;
    let tokens = TokenMinter::for_config(&config);
    Gateway {
        service,
        config,
        tokens,
    }
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

    /// An access token for `user` (role `user`).
    ///
    /// # Panics
    /// When this gateway signs no tokens (an external issuer does).
    pub fn token(&self, user: &str) -> String {
        self.minter().token(user, false)
    }

    /// An access token for [`ADMIN`], with the `admin` role.
    ///
    /// # Panics
    /// When this gateway signs no tokens (an external issuer does).
    pub fn admin_token(&self) -> String {
        self.minter().token(ADMIN, true)
    }

    fn minter(&self) -> &TokenMinter {
        self.tokens
            .as_ref()
            .expect("this gateway trusts an external issuer: mint with that issuer's key")
    }

    /// `POST path` with `body` as `user` (`None`: anonymously).
    pub async fn post_as(&self, user: Option<&str>, path: &str, body: Value) -> Reply {
        let mut request = self.http().post(self.url(path)).json(&body);
        if let Some(user) = user {
            request = request.bearer_auth(self.token(user));
        }
        self.send(request).await
    }

    /// `GET path` as `user` (`None`: anonymously).
    pub async fn get_as(&self, user: Option<&str>, path: &str) -> Reply {
        let mut request = self.http().get(self.url(path));
        if let Some(user) = user {
            request = request.bearer_auth(self.token(user));
        }
        self.send(request).await
    }

    /// `GET path` as [`ADMIN`].
    pub async fn get_as_admin(&self, path: &str) -> Reply {
        let request = self
            .http()
            .get(self.url(path))
            .bearer_auth(self.admin_token());
        self.send(request).await
    }

    /// Creates an active auction of a "Test camera" starting at 10.00 with the default
    /// increment (1.00) and ending in an hour, with the fields of `extra` over those, sold by
    /// [`SELLER`]; returns its id (fresh, unless `extra` names one).
    pub async fn create_item(&self, extra: Value) -> String {
        self.create_item_as(SELLER, extra).await
    }

    /// [`Gateway::create_item`] with `seller` as the seller.
    pub async fn create_item_as(&self, seller: &str, extra: Value) -> String {
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
        // `extra` may name the id (a test that needs its slot or shard).
        let id = body["id"].as_str().map_or(id, str::to_owned);
        self.post_as(Some(seller), "/api/v1/items", body)
            .await
            .assert_status(201);
        id
    }

    /// Creates an active auction starting at 1.00 with a 0.01 increment, for tests that bid
    /// many rising amounts.
    pub async fn create_penny_item(&self) -> String {
        self.create_item(json!({"starting_price": 1, "min_increment": 0.01}))
            .await
    }

    /// A bid by `user`: its token says who bids, the body only the amount.
    pub async fn bid(&self, item: &str, user: &str, amount: Value) -> Reply {
        self.post_as(
            Some(user),
            &format!("/api/v1/items/{item}/bid"),
            json!({ "amount": amount }),
        )
        .await
    }

    /// A bid with an `Idempotency-Key`.
    pub async fn bid_with_key(&self, item: &str, user: &str, amount: Value, key: &str) -> Reply {
        let request = self
            .http()
            .post(self.url(&format!("/api/v1/items/{item}/bid")))
            .bearer_auth(self.token(user))
            .header("Idempotency-Key", key)
            .json(&json!({ "amount": amount }));
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

    /// An admin action (`close`, `cancel`, `extend`, `relist`) by [`ADMIN`].
    pub async fn admin(&self, item: &str, action: &str, body: Value) -> Reply {
        let request = self
            .http()
            .post(self.url(&format!("/api/v1/items/{item}/{action}")))
            .bearer_auth(self.admin_token())
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
