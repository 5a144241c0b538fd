//! The checks every access token must pass against one trusted key, and what is refused:
//!
//! * `alg: none`, symmetric algorithms, and any algorithm other than the one of the key the
//!   `kid` names: the key decides the algorithm, never the token (no algorithm confusion).
//! * a signature that does not match (tampered claims, another key),
//! * `exp` past or `nbf` ahead by more than a small leeway for clock skew,
//! * a missing or different `iss`; an audience that is not ours,
//! * a `sub` outside the user id rules (it becomes NATS subject tokens and Redis key parts).

use super::claims::AccessClaims;
use super::rejection::TokenRejection;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::str::FromStr;
use std::time::Duration;

/// What a trusted issuer's tokens must say: its `iss`, our audience, and the leeway on times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
}

/// A public key trusted for one algorithm (from a JWK).
#[derive(Clone)]
pub struct VerificationKey {
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
}

impl VerificationKey {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The parts of a token's header that choose the key, read before any key is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
}

/// Reads the header of `token` without trusting it.
///
/// # Errors
/// [`TokenRejection::Malformed`] when it is not a JWT, [`TokenRejection::Algorithm`] when
/// `alg` is `none` or unknown.
pub fn read_header(token: &str) -> Result<TokenHeader, TokenRejection> {
    #[derive(Deserialize)]
    struct Raw {
        alg: String,
        kid: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejection::Malformed);
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenRejection::Malformed)?;
    let raw: Raw = serde_json::from_slice(&json).map_err(|_| TokenRejection::Malformed)?;
    let algorithm = Algorithm::from_str(&raw.alg).map_err(|_| TokenRejection::Algorithm)?;
    Ok(TokenHeader {
        algorithm,
        kid: raw.kid,
    })
}

/// Verifies `token` with `key` under `rules` and returns its claims.
///
/// # Errors
/// The [`TokenRejection`] saying why it is refused.
pub fn check(
    token: &str,
    key: &VerificationKey,
    rules: &TokenRules,
) -> Result<AccessClaims, TokenRejection> {
    let header = read_header(token)?;
    if header.algorithm != key.algorithm {
        return Err(TokenRejection::Algorithm);
    }
    let mut validation = Validation::new(key.algorithm);
    validation.leeway = rules.leeway.as_secs();
    validation.validate_nbf = true;
    validation.set_issuer(&[&rules.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    // Checked below, to accept Cognito's `client_id` in place of a missing `aud`.
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation)
        .map_err(|e| rejection(e.kind()))?
        .claims;
    if !claims.is_for(&rules.audience) {
        return Err(TokenRejection::Audience);
    }
    // RFC 7519 §4.1.4: not accepted *on or after* `exp`. jsonwebtoken accepts through the
    // whole second of `exp`; a broadcast socket's sign-in ends at `exp` exactly, so a token
    // must not verify again in that last second.
    let leeway = i64::try_from(rules.leeway.as_secs()).unwrap_or(i64::MAX);
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
    if claims.exp.saturating_add(leeway) <= now {
        return Err(TokenRejection::Expired);
    }
    Ok(claims)
}

fn rejection(kind: &ErrorKind) -> TokenRejection {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenRejection::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => TokenRejection::Algorithm,
        ErrorKind::ExpiredSignature => TokenRejection::Expired,
        ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
        ErrorKind::InvalidIssuer => TokenRejection::Issuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenRejection::Issuer,
        ErrorKind::InvalidAudience => TokenRejection::Audience,
        // Claims are decoded into `AccessClaims` only after the signature verified, so a JSON
        // error here is a signed token with claims of the wrong shape.
        ErrorKind::Json(_)
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject => TokenRejection::Claims,
        _ => TokenRejection::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::super::role::Role;
    use super::super::test_keys::{AUDIENCE, ISSUER, TestKey, b64, claims, now_secs, rules};
    use super::*;
    use jsonwebtoken::Header;
    use serde_json::json;

    fn checked(key: &TestKey, claims: &serde_json::Value) -> Result<AccessClaims, TokenRejection> {
        check(&key.sign(claims), &key.verification_key(), &rules())
    }

    /// [`checked`] without any leeway on `exp` and `nbf`.
    fn checked_strictly(
        key: &TestKey,
        claims: &serde_json::Value,
    ) -> Result<AccessClaims, TokenRejection> {
        let strict = TokenRules {
            leeway: Duration::ZERO,
            ..rules()
        };
        check(&key.sign(claims), &key.verification_key(), &strict)
    }

    #[test]
    fn a_valid_token_yields_its_claims() {
        let key = TestKey::generate();
        let verified = checked(&key, &claims(300)).expect("valid");
        assert_eq!(verified.sub.as_str(), "u-ada");
        assert_eq!(verified.iss, ISSUER);
        assert_eq!(verified.roles, vec![Role::User]);
        assert!(verified.has_role(Role::User));
    }

    #[test]
    fn alg_none_is_rejected() {
        let key = TestKey::generate();
        let header = json!({"alg": "none", "typ": "JWT", "kid": key.kid});
        let unsigned = format!("{}.{}.", b64(&header), b64(&claims(300)));
        assert_eq!(
            check(&unsigned, &key.verification_key(), &rules()),
            Err(TokenRejection::Algorithm)
        );
        assert_eq!(read_header(&unsigned), Err(TokenRejection::Algorithm));
    }

    #[test]
    fn hs256_signed_with_the_public_key_as_secret_is_rejected() {
        // The classic algorithm confusion: a forger uses the published key as an HMAC secret.
        let key = TestKey::generate();
        let public_x = match &key.jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) => okp.x.clone(),
            other => panic!("unexpected key {other:?}"),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let secret = jsonwebtoken::EncodingKey::from_secret(public_x.as_bytes()).expect("secret");
        let forged = jsonwebtoken::encode(&header, &claims(300), &secret).expect("sign");
        assert_eq!(
            check(&forged, &key.verification_key(), &rules()),
            Err(TokenRejection::Algorithm)
        );
    }

    #[test]
    fn a_token_signed_by_another_key_is_rejected() {
        let ours = TestKey::generate();
        let theirs = TestKey::generate();
        // The forger even claims our kid.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ours.kid.clone());
        let forged = theirs.sign_with(&header, &claims(300));
        assert_eq!(
            check(&forged, &ours.verification_key(), &rules()),
            Err(TokenRejection::Signature)
        );
    }

    #[test]
    fn tampered_claims_are_rejected() {
        let key = TestKey::generate();
        let token = key.token(300);
        let parts: Vec<&str> = token.split('.').collect();
        let mut tampered_claims = claims(300);
        tampered_claims["roles"] = json!(["user", "admin"]);
        let tampered = format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]);
        assert_eq!(
            check(&tampered, &key.verification_key(), &rules()),
            Err(TokenRejection::Signature)
        );
    }

    #[test]
    fn a_token_expired_beyond_the_leeway_is_rejected() {
        let key = TestKey::generate();
        let mut expired = claims(0);
        expired["exp"] = json!(now_secs() - 60);
        assert_eq!(checked(&key, &expired), Err(TokenRejection::Expired));
    }

    #[test]
    fn a_token_expired_within_the_leeway_is_accepted() {
        let key = TestKey::generate();
        let mut expired = claims(0);
        expired["exp"] = json!(now_secs() - 5);
        assert!(checked(&key, &expired).is_ok());
    }

    #[test]
    fn without_leeway_a_token_is_refused_as_soon_as_it_expired() {
        let key = TestKey::generate();
        let mut expired = claims(0);
        expired["exp"] = json!(now_secs() - 1);
        assert_eq!(
            checked_strictly(&key, &expired),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn a_token_is_refused_from_the_second_of_its_exp_on() {
        let key = TestKey::generate();
        let mut ending = claims(0);
        ending["exp"] = json!(now_secs());
        assert_eq!(
            checked_strictly(&key, &ending),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn a_token_not_valid_yet_is_rejected() {
        let key = TestKey::generate();
        let mut early = claims(300);
        early["nbf"] = json!(now_secs() + 120);
        assert_eq!(checked(&key, &early), Err(TokenRejection::NotYetValid));
    }

    #[test]
    fn a_token_of_another_issuer_is_rejected() {
        let key = TestKey::generate();
        let mut other = claims(300);
        other["iss"] = json!("https://evil.test");
        assert_eq!(checked(&key, &other), Err(TokenRejection::Issuer));
        other.as_object_mut().expect("object").remove("iss");
        assert_eq!(checked(&key, &other), Err(TokenRejection::Issuer));
    }

    #[test]
    fn a_token_for_another_audience_is_rejected() {
        let key = TestKey::generate();
        let mut other = claims(300);
        other["aud"] = json!(["billing", "reports"]);
        assert_eq!(checked(&key, &other), Err(TokenRejection::Audience));
        other.as_object_mut().expect("object").remove("aud");
        assert_eq!(
            checked(&key, &other),
            Err(TokenRejection::Audience),
            "no audience at all is not ours either"
        );
    }

    #[test]
    fn an_audience_list_containing_ours_is_accepted() {
        let key = TestKey::generate();
        let mut listed = claims(300);
        listed["aud"] = json!(["billing", AUDIENCE]);
        assert!(checked(&key, &listed).is_ok());
    }

    #[test]
    fn a_cognito_style_token_with_client_id_and_groups_is_accepted() {
        let key = TestKey::generate();
        let now = now_secs();
        let cognito = json!({
            "iss": ISSUER, "client_id": AUDIENCE, "token_use": "access",
            "sub": "3f1c2d9e-8a7b-4c6d-9e0f-1a2b3c4d5e6f", "cognito:groups": ["admin", "staff"],
            "exp": now + 60, "iat": now,
        });
        let verified = checked(&key, &cognito).expect("valid");
        assert_eq!(verified.roles, vec![Role::Admin]);
        assert_eq!(
            verified.sub.as_str(),
            "3f1c2d9e-8a7b-4c6d-9e0f-1a2b3c4d5e6f"
        );
    }

    #[test]
    fn a_subject_outside_the_user_id_rules_is_rejected() {
        let key = TestKey::generate();
        let mut odd = claims(300);
        odd["sub"] = json!("auth0|ada.lovelace");
        assert_eq!(checked(&key, &odd), Err(TokenRejection::Claims));
    }

    #[test]
    fn a_token_without_exp_is_rejected() {
        let key = TestKey::generate();
        let mut endless = claims(300);
        endless.as_object_mut().expect("object").remove("exp");
        assert_eq!(checked(&key, &endless), Err(TokenRejection::Claims));
    }

    #[test]
    fn text_that_is_not_a_jwt_is_malformed() {
        let key = TestKey::generate();
        for bad in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig"] {
            assert_eq!(
                check(bad, &key.verification_key(), &rules()),
                Err(TokenRejection::Malformed),
                "{bad:?}"
            );
        }
    }
}
