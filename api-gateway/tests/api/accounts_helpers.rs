//! Helpers for the accounts-over-HTTP tests: a gateway on its own fresh, migrated database,
//! typed calls to the auth routes, and keys and tokens a test controls (to configure a known
//! key, and to forge what an attacker would send).

use crate::helpers::{TestApp, shared_config, spawn_app_with, wait_until};
use api_gateway::auth::password_hasher::PasswordCost;
use api_gateway::config::Config;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const PASSWORD: &str = "correct horse battery staple";

/// A configuration on a new database of the shared PostgreSQL, with a cheap Argon2 cost (a
/// debug build takes seconds per OWASP hash; the unit tests check the OWASP parameters).
pub async fn accounts_config() -> Config {
    let url = testkit::fresh_database(testkit::SHARED_POSTGRES_ADMIN_URL)
        .await
        .expect("fresh database");
    let mut config = shared_config();
    config.database.url = url.into();
    // A starved test machine must not turn slow answers into 503s.
    config.database_timeout_ms = 5_000;
    config.password_cost = PasswordCost {
        memory_kib: 64,
        iterations: 1,
        lanes: 1,
    };
    config
}

/// A gateway whose accounts schema is migrated (`/ready` says `"accounts": "up"`).
pub async fn spawn_accounts_app() -> TestApp {
    spawn_accounts_app_with(accounts_config().await).await
}

pub async fn spawn_accounts_app_with(config: Config) -> TestApp {
    let app = spawn_app_with(config).await;
    app.wait_accounts("up").await;
    app
}

/// What a response said, headers included.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// `WWW-Authenticate`, when present.
    pub challenge: Option<String>,
    pub body: Value,
}

impl Answer {
    /// Asserts the status; returns the body.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{self:?}");
        &self.body
    }

    /// Asserts an error answer: `status` with `{"error": code}`; `why`, when not empty, says
    /// what the test expected.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, why: &str) {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(code)),
            "{why} {self:?}"
        );
    }
}

impl TestApp {
    /// Waits until `/ready` reports the accounts database as `state`, and returns the body.
    pub async fn wait_accounts(&self, state: &str) -> Value {
        wait_until(Duration::from_secs(20), "accounts state", || async {
            let body = self.get("/ready").await.body;
            (body["accounts"] == state).then_some(body)
        })
        .await
        .unwrap()
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii header").to_owned());
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            challenge,
            body,
        }
    }

    pub async fn auth_post(&self, route: &str, body: Value) -> Answer {
        self.send(
            self.http()
                .post(self.url(&format!("/api/v1/auth/{route}")))
                .json(&body),
        )
        .await
    }

    /// Registers with `{"email": login}` (or `username` when it has no `@`).
    pub async fn register(&self, login: &str, password: &str) -> Answer {
        let field = if login.contains('@') {
            "email"
        } else {
            "username"
        };
        self.auth_post(
            "register",
            json!({ field: login, "display_name": "Ada Lovelace", "password": password }),
        )
        .await
    }

    /// Registers `login` and returns the 201 body (tokens and account).
    pub async fn signed_up(&self, login: &str) -> Value {
        let answer = self.register(login, PASSWORD).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body
    }

    pub async fn login(&self, login: &str, password: &str) -> Answer {
        self.auth_post("login", json!({ "login": login, "password": password }))
            .await
    }

    pub async fn refresh(&self, refresh_token: &Value) -> Answer {
        self.auth_post("refresh", json!({ "refresh_token": refresh_token }))
            .await
    }

    pub async fn logout(&self, refresh_token: &Value) -> Answer {
        self.auth_post("logout", json!({ "refresh_token": refresh_token }))
            .await
    }

    /// `GET /api/v1/me`, with `Authorization: Bearer <token>` when given.
    pub async fn me(&self, token: Option<&str>) -> Answer {
        let mut request = self.http().get(self.url("/api/v1/me"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// The published key set's `keys`.
    pub async fn jwks(&self) -> Vec<Value> {
        let reply = self.get("/.well-known/jwks.json").await;
        reply.assert_status(200)["keys"]
            .as_array()
            .expect("keys")
            .clone()
    }
}

/// An Ed25519 key a test holds: its PKCS#8 documents and its public key.
pub struct TestKey {
    /// v1, as openssl writes it (what the PEM holds).
    pkcs8: Vec<u8>,
    /// v2, what jsonwebtoken signs with.
    signing_der: Vec<u8>,
    public: Vec<u8>,
}

impl TestKey {
    pub fn generate() -> Self {
        let pair = Ed25519KeyPair::generate().expect("key");
        Self {
            pkcs8: pair.to_pkcs8v1().expect("pkcs8 v1").as_ref().to_vec(),
            signing_der: pair.to_pkcs8().expect("pkcs8 v2").as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The `PRIVATE KEY` PEM, as `openssl genpkey -algorithm ed25519` writes it.
    pub fn pem(&self) -> String {
        let body = STANDARD.encode(&self.pkcs8);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ascii"))
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    /// The JWK `x` of the public key.
    pub fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.public)
    }

    /// `claims` signed with this key, with `kid` in the header.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&self.signing_der),
        )
        .expect("signed")
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("before 2^63")
}

/// The JSON of a JWT's part (`0` header, `1` claims).
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

/// base64url of `value`'s JSON, as a JWT part.
pub fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}
