//! Ed25519 keys for this module's tests: sign any header and claims, as the gateway (or a
//! forger holding a key) would, and publish the public half as a JWK.

use super::check::VerificationKey;
use super::key_set::KeySet;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "auction-api";

pub struct TestKey {
    pub kid: String,
    pub jwk: Jwk,
    encoding: EncodingKey,
}

impl TestKey {
    pub fn generate() -> Self {
        let pair = Ed25519KeyPair::generate().expect("key");
        let pkcs8 = pair.to_pkcs8().expect("pkcs8");
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        };
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint");
        jwk.common.key_id = Some(kid.clone());
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
