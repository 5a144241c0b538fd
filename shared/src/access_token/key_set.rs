//! [`KeySet`]: the trusted keys a verifier looks a token's `kid` up in, read from a JSON Web
//! Key Set.
//!
//! A key set read from an issuer keeps only keys that can verify signatures safely: a `kid`,
//! an asymmetric key type, `use` absent or `sig`, and an algorithm that matches the key type
//! (stated by `alg`, or the usual one for the type when `alg` is absent). Symmetric (`oct`)
//! keys are never trusted: a published HMAC key would let anyone sign.

use super::check::VerificationKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

/// The public JWK of an Ed25519 signing key (`use: sig`, `alg: EdDSA`), as its signer
/// publishes it. Its `kid` is the key's RFC 7638 thumbprint, so every holder of one key names
/// it alike.
///
/// # Errors
/// When the thumbprint cannot be computed.
pub fn ed25519_jwk(public_key: &[u8]) -> jsonwebtoken::errors::Result<Jwk> {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public_key),
        }),
    };
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256)?);
    Ok(jwk)
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
        Self::from_jwk_iter(set.keys.iter())
    }

    /// The public halves of signing keys (the gateway's own, which verifies its tokens with no
    /// HTTP), each given by its public JWK.
    pub fn of_signing_keys<'a, K>(keys: impl IntoIterator<Item = &'a K>) -> Self
    where
        K: AsRef<Jwk> + ?Sized + 'a,
    {
        Self::from_jwk_iter(keys.into_iter().map(AsRef::as_ref))
    }

    fn from_jwk_iter<'a>(jwks: impl Iterator<Item = &'a Jwk>) -> Self {
        let keys = jwks
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
    use super::super::test_keys::{TestKey, document};
    use super::*;
    use serde_json::json;

    fn set(keys: serde_json::Value) -> KeySet {
        KeySet::from_jwks(&serde_json::from_value(json!({ "keys": keys })).expect("jwks"))
    }

    const X: &str = "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE";

    #[test]
    fn a_published_ed25519_key_is_trusted_for_eddsa_by_its_kid() {
        let key = TestKey::generate();
        let keys = KeySet::from_jwks(&document(&[&key]));
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys.get(&key.kid).map(|k| k.algorithm()),
            Some(Algorithm::EdDSA)
        );
        let ours = KeySet::of_signing_keys([&key]);
        assert!(ours.get(&key.kid).is_some());
    }

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
