//! Sign-in support: access tokens minted with the gateway's own issuing code and the key a test
//! gateway signs with (so the broadcast service verifies them against that gateway's real
//! `/.well-known/jwks.json`), and private events published on a user's subject.

use crate::helpers::*;
use api_gateway::auth::{AccessTokenIssuer, Role, SigningKey};
use api_gateway::config::Config as GatewayConfig;
use serde_json::Value;
use shared::UserId;
use shared::subjects::Subjects;
use std::sync::Arc;
use std::time::Duration;

/// The key test gateways sign with: RFC 8410 §10.3's example Ed25519 key (published in the
/// RFC, so fit for tests only).
pub const SIGNING_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
";

/// How long the tokens of these tests live unless a test says otherwise.
const TOKEN_TTL: Duration = Duration::from_secs(600);

/// A gateway configuration (as [`gateway_config`]) signing with [`SIGNING_KEY_PEM`].
pub fn signing_gateway_config(isolation: &Isolation) -> GatewayConfig {
    let mut config = gateway_config(isolation);
    config.auth.jwt_signing_key = Some(SIGNING_KEY_PEM.to_owned().into());
    config
}

/// Points a broadcast instance at `signer`'s published keys and its issuer and audience, with
/// no leeway, so a token's sign-in ends right at its `exp`.
pub fn trusting(config: &mut BroadcastConfig, signer: &GatewayConfig, jwks_url: String) {
    config.tokens.jwks_url = jwks_url;
    config.tokens.jwt_issuer = signer.auth.jwt_issuer.clone();
    config.tokens.jwt_audience = signer.auth.jwt_audience.clone();
    config.tokens.jwt_leeway_secs = 0;
}

/// Mints tokens as the gateway configured by [`signing_gateway_config`] would.
pub struct Tokens {
    key: Arc<SigningKey>,
    issuer: String,
    audience: String,
}

impl Tokens {
    pub fn of(signer: &GatewayConfig) -> Self {
        Self {
            key: Arc::new(SigningKey::from_pem(SIGNING_KEY_PEM).expect("the test key")),
            issuer: signer.auth.jwt_issuer.clone(),
            audience: signer.auth.jwt_audience.clone(),
        }
    }

    /// A valid token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.living(user, TOKEN_TTL)
    }

    /// A valid token for `user` that expires `ttl` from now (whole seconds, as `exp` is).
    pub fn living(&self, user: &str, ttl: Duration) -> String {
        self.mint(user, &self.issuer, &self.audience, ttl)
    }

    /// A token signed with the right key for another audience.
    pub fn for_audience(&self, user: &str, audience: &str) -> String {
        self.mint(user, &self.issuer, audience, TOKEN_TTL)
    }

    /// A token signed with the right key by another issuer's name.
    pub fn by_issuer(&self, user: &str, issuer: &str) -> String {
        self.mint(user, issuer, &self.audience, TOKEN_TTL)
    }

    /// A token for `user` signed by a key nobody published.
    pub fn forged_with_another_key(&self, user: &str) -> String {
        let key = Arc::new(SigningKey::generate().expect("a key"));
        AccessTokenIssuer::new(key, &self.issuer, &self.audience, TOKEN_TTL)
            .issue(&UserId::parse(user).expect("user id"), &[Role::User])
            .expect("issue")
            .token
    }

    fn mint(&self, user: &str, issuer: &str, audience: &str, ttl: Duration) -> String {
        AccessTokenIssuer::new(Arc::clone(&self.key), issuer, audience, ttl)
            .issue(&UserId::parse(user).expect("user id"), &[Role::User])
            .expect("issue")
            .token
    }
}

/// Publishes `event` on `user`'s private subject under `isolation`'s prefix, as the producer
/// of private events (the archival worker) does, and waits until NATS has it.
pub async fn publish_private(isolation: &Isolation, user: &str, event: &Value) {
    publish_private_raw(isolation, user, event.to_string().into_bytes()).await;
}

/// Publishes any bytes on `user`'s private subject.
pub async fn publish_private_raw(isolation: &Isolation, user: &str, payload: Vec<u8>) {
    let nats = async_nats::connect(&isolation.nats_url)
        .await
        .expect("NATS");
    let subject =
        Subjects::new(isolation.subject_prefix.clone()).user(&UserId::parse(user).expect("id"));
    nats.publish(subject, payload.into())
        .await
        .expect("published");
    nats.flush().await.expect("flushed");
}

impl Client {
    /// Sends `{"type":"auth","token"}`.
    pub async fn authenticate(&mut self, token: &str) {
        self.send_json(serde_json::json!({"type": "auth", "token": token}))
            .await;
    }

    /// The next `authenticated` frame (skipping others); asserts it names `user`.
    pub async fn expect_authenticated(&mut self, user: &str) -> Value {
        let frame = self.next_of_type("authenticated").await;
        assert_eq!(frame["user_id"], user, "{frame}");
        assert!(frame["expires_at"].is_string(), "{frame}");
        frame
    }

    /// The next `error` frame (skipping others); asserts its code.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let frame = self.next_of_type("error").await;
        assert_eq!(frame["code"], code, "{frame}");
        frame
    }

    /// Asserts that nothing of type `kind` was written to this socket before now: a ping's
    /// pong is written after anything already queued, so every frame before it is read.
    pub async fn assert_nothing_of_type_before_a_pong(&mut self, kind: &str) {
        self.ping().await;
        loop {
            let frame = self.next_json().await;
            assert_ne!(frame["type"], kind, "{frame}");
            if frame["type"] == "pong" {
                return;
            }
        }
    }
}
