//! JSON Web Key Sets: the document the gateway publishes (`GET /.well-known/jwks.json`) and
//! [`KeySet`], the trusted keys a verifier looks a token's `kid` up in.
//!
//! Publishing the public keys lets every gateway and broadcast instance verify tokens locally,
//! with no shared secret and no call to the issuer per request. A key set read from an issuer
//! keeps only keys that can verify signatures safely: a `kid`, an asymmetric key type, `use`
//! absent or `sig`, and an algorithm that matches the key type (stated by `alg`, or the usual
//! one for the type when `alg` is absent). Symmetric (`oct`) keys are never trusted: a
//! published HMAC key would let anyone sign.

use super::access_token::VerificationKey;
use super::signing_key::SigningKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

/// The JWKS document publishing `keys` (the current signing key first, then any older ones
/// whose tokens may still be alive during a rotation).
pub fn document<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> JwkSet {
    JwkSet {
        keys: keys.into_iter().map(|key| key.jwk().clone()).collect(),
    }
}

/// Trusted verification keys by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerificationKey>>,
}

impl KeySet {
    /// The usable keys of `set`; unusable ones are skipped (and logged), not fatal, so one odd
    /// key in an issuer's set does not lock everybody out.
    pub fn from_jwks(set: &JwkSet) -> Self {
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| match usable(jwk) {
                Some(entry) => Some(entry),
                None => {
                    tracing::debug!(kid = ?jwk.common.key_id, "skipping a JWK that cannot verify tokens");
                    None
                }
            })
            .collect();
        Self { keys }
    }

    /// The public halves of our own signing keys.
    pub fn of_signing_keys<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Self {
        Self::from_jwks(&document(keys))
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<VerificationKey>> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn usable(jwk: &Jwk) -> Option<(String, Arc<VerificationKey>)> {
    let kid = jwk.common.key_id.clone()?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|use_| *use_ != PublicKeyUse::Signature)
    {
        return None;
    }
    let natural = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => return None,
    };
    let algorithm = match jwk.common.key_algorithm {
        None => natural,
        Some(stated) => {
            let stated = Algorithm::from_str(&stated.to_string()).ok()?;
            // RSA keys may state any RSA algorithm; other types have exactly one each.
            (stated.family() == natural.family()
                && (natural.family() == jsonwebtoken::AlgorithmFamily::Rsa || stated == natural))
                .then_some(stated)?
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, Arc::new(VerificationKey { algorithm, key })))
}

#[cfg(test)]
mod tests {
    use super::super::signing_key::tests::RFC8410_PEM;
    use super::*;
    use serde_json::json;

    #[test]
    fn the_document_lists_each_public_key_with_its_kid() {
        let current = SigningKey::from_pem(RFC8410_PEM).expect("key");
        let previous = SigningKey::generate().expect("key");
        let document = serde_json::to_value(document([&current, &previous])).expect("json");
        let keys = document["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys[0],
            json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                "kid": current.kid(), "x": "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE",
            })
        );
        assert_eq!(keys[1]["kid"], previous.kid());
        assert!(
            !document.to_string().contains("\"d\""),
            "no private part is published"
        );
    }

    #[test]
    fn our_document_read_back_trusts_our_keys() {
        let key = SigningKey::from_pem(RFC8410_PEM).expect("key");
        let set = KeySet::of_signing_keys([&key]);
        assert_eq!(set.len(), 1);
        assert_eq!(
            set.get(key.kid()).map(|k| k.algorithm()),
            Some(Algorithm::EdDSA)
        );
    }

    fn set(keys: serde_json::Value) -> KeySet {
        KeySet::from_jwks(&serde_json::from_value(json!({ "keys": keys })).expect("jwks"))
    }

    const X: &str = "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE";

    #[test]
    fn symmetric_keys_are_never_trusted() {
        let keys = set(json!([{"kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0"}]));
        assert!(keys.is_empty());
    }

    #[test]
    fn keys_without_kid_or_for_encryption_are_skipped() {
        let keys = set(json!([
            {"kty": "OKP", "crv": "Ed25519", "x": X},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "ok"},
        ]));
        assert_eq!(keys.len(), 1);
        assert!(keys.get("ok").is_some());
    }

    #[test]
    fn a_stated_algorithm_must_match_the_key_type() {
        let keys = set(json!([
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "liar", "alg": "RS256"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "hmac", "alg": "HS256"},
        ]));
        assert!(keys.is_empty());
    }

    #[test]
    fn an_rsa_key_without_alg_is_trusted_for_rs256() {
        // A Cognito-style entry (n shortened to a valid-looking modulus; only the shape matters).
        let keys = set(
            json!([{"kty": "RSA", "kid": "rsa1", "use": "sig", "e": "AQAB",
            "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}]),
        );
        assert_eq!(
            keys.get("rsa1").map(|k| k.algorithm()),
            Some(Algorithm::RS256)
        );
    }
}
