//! [`SigningKey`]: the gateway's Ed25519 key for access tokens, and its public JWK.
//!
//! The key comes from a PKCS#8 PEM in configuration (`openssl genpkey -algorithm ed25519`), so
//! every gateway instance signs with the same key and every service verifies with the same
//! published JWK. With none configured, a gateway makes a throwaway key and warns: enough for
//! one instance, tests and `make run`, but its tokens die with the process and another
//! instance cannot verify them.
//!
//! The `kid` is the key's RFC 7638 thumbprint, so it is the same on every instance and across
//! restarts, and a rotated key gets a new one by itself.

use super::error::AuthError;
use anyhow::Context;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use shared::access_token::key_set::ed25519_jwk;
use std::fmt;

/// An Ed25519 private key with its public JWK. `Debug` shows only the `kid`.
pub struct SigningKey {
    encoding: EncodingKey,
    jwk: Jwk,
    kid: String,
    /// SHA-256 of the private key document: the root of [`SigningKey::derive_secret`].
    seed: [u8; 32],
}

impl SigningKey {
    /// The key in `pem` (a `PRIVATE KEY` block, PKCS#8 v1 as openssl writes it, or v2).
    ///
    /// # Errors
    /// [`AuthError::InvalidSigningKey`] when there is no such block or it is not Ed25519.
    pub fn from_pem(pem: &str) -> Result<Self, AuthError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| AuthError::InvalidSigningKey("no PRIVATE KEY block"))?;
        Self::from_pkcs8(der.secret_pkcs8_der())
    }

    /// A new random key as the PKCS#8 PEM `JWT_SIGNING_KEY` takes (what `openssl genpkey
    /// -algorithm ed25519` writes), for tests and load runs that start gateways with a key they
    /// also mint tokens with.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when the OS has no randomness to give.
    pub fn generate_pem() -> Result<String, AuthError> {
        let pair = Ed25519KeyPair::generate().context("generating an Ed25519 key")?;
        let pkcs8 = pair.to_pkcs8v1().context("encoding the generated key")?;
        let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).context("base64 is ASCII")?);
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(pem)
    }

    /// A new random key, for a gateway without a configured one.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when the OS has no randomness to give.
    pub fn generate() -> Result<Self, AuthError> {
        let pair = Ed25519KeyPair::generate().context("generating an Ed25519 key")?;
        let pkcs8 = pair.to_pkcs8().context("encoding the generated key")?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// The configured key, or a throwaway one with a warning when none is configured.
    ///
    /// # Errors
    /// As [`SigningKey::from_pem`] and [`SigningKey::generate`].
    pub fn from_config(pem: Option<&str>) -> Result<Self, AuthError> {
        match pem {
            Some(pem) => Self::from_pem(pem),
            None => {
                let key = Self::generate()?;
                tracing::warn!(
                    kid = %key.kid,
                    "no signing key configured: generated a throwaway one; its tokens end with \
                     this process and no other instance can verify them"
                );
                Ok(key)
            }
        }
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, AuthError> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|e| AuthError::InvalidSigningKey(e.description_()))?;
        // jsonwebtoken parses the DER again for every signature; hand it the v2 document
        // aws-lc writes, whichever version the PEM held.
        let pkcs8 = pair.to_pkcs8().context("re-encoding the signing key")?;
        let jwk =
            ed25519_jwk(pair.public_key().as_ref()).context("computing the key's thumbprint")?;
        let kid = jwk.common.key_id.clone().context("the JWK's kid")?;
        let mut seed = [0; 32];
        seed.copy_from_slice(digest::digest(&digest::SHA256, pkcs8.as_ref()).as_ref());
        Ok(Self {
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk,
            kid,
            seed,
        })
    }

    /// A 256-bit secret for `purpose`, derived from the private key (HMAC-SHA-256 of the
    /// purpose under a hash of the key): the same on every instance holding the key, unrelated
    /// across purposes, and revealing nothing about the key. Bidder pseudonyms use it, so they
    /// agree across a deployment without another secret to distribute.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.seed);
        let mut secret = [0; 32];
        secret.copy_from_slice(hmac::sign(&key, purpose.as_bytes()).as_ref());
        secret
    }

    /// The key id tokens carry in their header: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Always EdDSA (Ed25519).
    pub fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }

    /// The public key as a JWK (`kty` OKP, `crv` Ed25519, `alg` EdDSA, `use` sig, `kid`).
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub(super) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// A key set of our own keys reads their public JWKs (`KeySet::of_signing_keys`).
impl AsRef<Jwk> for SigningKey {
    fn as_ref(&self) -> &Jwk {
        &self.jwk
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm, PublicKeyUse};

    /// RFC 8410 §10.3's example private key (PKCS#8 v1); its public key is in §10.1.
    pub const RFC8410_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
";
    const RFC8410_PUBLIC_X: &str = "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE";

    fn x(jwk: &Jwk) -> &str {
        match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(okp) => &okp.x,
            other => panic!("not an OKP key: {other:?}"),
        }
    }

    #[test]
    fn a_pem_key_publishes_its_public_half() {
        let key = SigningKey::from_pem(RFC8410_PEM).expect("valid key");
        assert_eq!(x(key.jwk()), RFC8410_PUBLIC_X);
        assert_eq!(key.jwk().common.key_algorithm, Some(KeyAlgorithm::EdDSA));
        assert_eq!(
            key.jwk().common.public_key_use,
            Some(PublicKeyUse::Signature)
        );
        assert_eq!(key.jwk().common.key_id.as_deref(), Some(key.kid()));
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint_and_stable() {
        let first = SigningKey::from_pem(RFC8410_PEM).expect("valid key");
        let second = SigningKey::from_pem(RFC8410_PEM).expect("valid key");
        assert_eq!(first.kid(), second.kid());
        // SHA-256 of {"crv":"Ed25519","kty":"OKP","x":"<x>"}, base64url.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{RFC8410_PUBLIC_X}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        assert_eq!(first.kid(), URL_SAFE_NO_PAD.encode(digest.as_ref()));
    }

    #[test]
    fn a_generated_pem_reads_back_as_the_same_key() {
        let pem = SigningKey::generate_pem().expect("pem");
        let first = SigningKey::from_pem(&pem).expect("valid key");
        let second = SigningKey::from_pem(&pem).expect("valid key");
        assert_eq!(first.kid(), second.kid());
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    }

    #[test]
    fn derived_secrets_follow_the_key_and_the_purpose() {
        let key = SigningKey::from_pem(RFC8410_PEM).expect("valid key");
        let again = SigningKey::from_pem(RFC8410_PEM).expect("valid key");
        let other = SigningKey::generate().expect("key");
        assert_eq!(key.derive_secret("a"), again.derive_secret("a"));
        assert_ne!(key.derive_secret("a"), key.derive_secret("b"));
        assert_ne!(key.derive_secret("a"), other.derive_secret("a"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = SigningKey::generate().expect("key");
        let b = SigningKey::generate().expect("key");
        assert_ne!(a.kid(), b.kid());
    }

    /// `pem` is refused as a signing key, with the error that says so.
    fn refused(pem: &str) -> bool {
        matches!(
            SigningKey::from_pem(pem),
            Err(AuthError::InvalidSigningKey(_))
        )
    }

    #[test]
    fn text_without_a_private_key_block_is_refused() {
        assert!(refused("not a key"));
    }

    #[test]
    fn a_public_key_pem_is_refused() {
        let public = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PUBLIC KEY-----
";
        assert!(refused(public));
    }

    #[test]
    fn a_non_ed25519_private_key_is_refused() {
        // A P-256 PKCS#8 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256).
        let p256 = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggzs55ahUSj+mHE6O
UbIxt2hWBd4T/ab3IPSn8HTgNgmhRANCAASofhdDJW8h3SOEUEC1NBrHXxWiL4As
yEEqZ8JFG0Cr2AwlKpnutkxdmQsDImEKTox734Xtd/O8wboCRr1v8rF1
-----END PRIVATE KEY-----
";
        assert!(refused(p256));
    }

    #[test]
    fn debug_output_shows_only_the_kid() {
        let key = SigningKey::from_pem(RFC8410_PEM).expect("valid key");
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()));
        assert!(!debug.contains("MC4CAQ"));
    }
}
