//! Ed25519 keys for this module's tests: sign any header and claims, as the gateway (or a
//! forger holding a key) would, and publish the public half as a JWK.

use super::DEFAULT_LEEWAY;
use super::check::{TokenRules, VerificationKey};
use super::key_set::{KeySet, ed25519_jwk};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "auction-api";

/// What the tests' tokens must say: [`ISSUER`], [`AUDIENCE`], the default leeway.
pub fn rules() -> TokenRules {
    TokenRules {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway: DEFAULT_LEEWAY,
    }
}

pub struct TestKey {
    pub kid: String,
    pub jwk: Jwk,
    encoding: EncodingKey,
}

impl TestKey {
    pub fn generate() -> Self {
        let pair = Ed25519KeyPair::generate().expect("key");
        let pkcs8 = pair.to_pkcs8().expect("pkcs8");
        let jwk = ed25519_jwk(pair.public_key().as_ref()).expect("public JWK");
        let kid = jwk.common.key_id.clone().expect("a kid");
        Self {
            kid,
            jwk,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        }
    }

    /// `claims` signed with this key, the header naming it.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        self.sign_with(&header, claims)
    }

    /// `claims` signed with this key under any `header`.
    pub fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("sign")
    }

    /// The key as a verifier trusts it (read back from its JWK).
    pub fn verification_key(&self) -> VerificationKey {
        KeySet::of_signing_keys([self])
            .get(&self.kid)
            .expect("usable")
            .as_ref()
            .clone()
    }

    /// A valid token for `u-ada`, living `ttl_secs` more seconds.
    pub fn token(&self, ttl_secs: u64) -> String {
        self.sign(&claims(ttl_secs))
    }
}

impl AsRef<Jwk> for TestKey {
    fn as_ref(&self) -> &Jwk {
        &self.jwk
    }
}

/// The JWKS document publishing `keys`.
pub fn document(keys: &[&TestKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|key| key.jwk.clone()).collect(),
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Valid claims of `u-ada` for [`ISSUER`] and [`AUDIENCE`], expiring in `ttl_secs`.
pub fn claims(ttl_secs: u64) -> Value {
    let now = now_secs();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u-ada", "roles": ["user"], "exp": now + ttl_secs, "iat": now})
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}
