//! The JSON Web Key Set the gateway publishes (`GET /.well-known/jwks.json`), and [`KeySet`],
//! the trusted keys a verifier looks a token's `kid` up in (`shared::access_token`, where
//! which published keys are safe to trust is decided for every service).
//!
//! Publishing the public keys lets every gateway and broadcast instance verify tokens locally,
//! with no shared secret and no call to the issuer per request.

use super::signing_key::SigningKey;
use jsonwebtoken::jwk::JwkSet;
pub use shared::access_token::KeySet;

/// The JWKS document publishing `keys` (the current signing key first, then any older ones
/// whose tokens may still be alive during a rotation).
pub fn document<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> JwkSet {
    JwkSet {
        keys: keys.into_iter().map(|key| key.jwk().clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::signing_key::tests::RFC8410_PEM;
    use super::*;
    use jsonwebtoken::Algorithm;
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
}
