//! Access tokens: short-lived JWTs whose claims ([`AccessClaims`]) say who the caller is.
//!
//! The gateway issues them ([`AccessTokenIssuer`]) signed with its Ed25519 key; any service
//! checks them ([`check`]) against a trusted key ([`VerificationKey`]) and the
//! [`TokenRules`] of the issuer it trusts. What is refused, and why:
//!
//! * `alg: none`, symmetric algorithms, and any algorithm other than the one of the key the
//!   `kid` names: the key decides the algorithm, never the token (no algorithm confusion).
//! * a signature that does not match (tampered claims, another key),
//! * `exp` past or `nbf` ahead by more than a small leeway for clock skew,
//! * a missing or different `iss`; an audience that is not ours,
//! * a `sub` outside the user id rules (it becomes NATS subject tokens and Redis key parts).

use super::error::{AuthError, TokenRejection};
use super::role::{Role, deserialize_known_roles};
use super::signing_key::SigningKey;
use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use shared::UserId;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(15);

/// The claims of an access token. Ours carry all of them; an external issuer's may lack
/// `roles` (then none) and `aud` (then `client_id` must name us, as in Cognito access tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Defaulted only so that a missing `iss` is reported as a wrong issuer; it is required
    /// (and must match) by the checks.
    #[serde(default)]
    pub iss: String,
    #[serde(default, skip_serializing_if = "Audience::is_empty")]
    pub aud: Audience,
    /// The user id: the bidder of a bid, the seller of an auction.
    pub sub: UserId,
    /// Known roles only (see [`deserialize_known_roles`]); Cognito's `cognito:groups` is read
    /// as roles too, so a Cognito group named `admin` makes admins.
    #[serde(
        default,
        alias = "cognito:groups",
        deserialize_with = "deserialize_known_roles"
    )]
    pub roles: Vec<Role>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl AccessClaims {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the token is meant for `audience`: listed in `aud`, or, when there is no `aud`,
    /// named by `client_id` (Cognito puts the app client there in access tokens).
    fn is_for(&self, audience: &str) -> bool {
        if self.aud.is_empty() {
            self.client_id.as_deref() == Some(audience)
        } else {
            self.aud.0.iter().any(|aud| aud == audience)
        }
    }
}

/// The `aud` claim: one string or a list (RFC 7519 allows both); written as one string when
/// there is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    pub fn one(audience: impl Into<String>) -> Self {
        Self(vec![audience.into()])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => Self(vec![one]),
            OneOrMany::Many(many) => Self(many),
        })
    }
}

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

/// An access token as handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedAccessToken {
    pub token: String,
    /// Seconds until it expires (the OAuth `expires_in`).
    pub expires_in: u64,
}

/// Signs access tokens for this gateway's issuer and audience.
#[derive(Debug, Clone)]
pub struct AccessTokenIssuer {
    key: Arc<SigningKey>,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl AccessTokenIssuer {
    /// Tokens from `key`, with `iss` = `issuer`, `aud` = `audience`, living `ttl`.
    pub fn new(
        key: Arc<SigningKey>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            key,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl,
        }
    }

    /// A token for `user` with `roles`, valid from now for the configured lifetime.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when signing fails (a bug: the key was checked at start).
    pub fn issue(&self, user: &UserId, roles: &[Role]) -> Result<IssuedAccessToken, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?;
        self.issue_at(user, roles, now)
    }

    /// As [`issue`](Self::issue), as if the time were `now` (since the epoch).
    fn issue_at(
        &self,
        user: &UserId,
        roles: &[Role],
        now: Duration,
    ) -> Result<IssuedAccessToken, AuthError> {
        let iat = i64::try_from(now.as_secs()).context("the clock is past 2^63 s")?;
        let ttl = i64::try_from(self.ttl.as_secs()).context("token lifetime too long")?;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: Audience::one(self.audience.clone()),
            sub: user.clone(),
            roles: roles.to_vec(),
            exp: iat.saturating_add(ttl),
            iat: Some(iat),
            client_id: None,
        };
        let mut header = Header::new(self.key.algorithm());
        header.kid = Some(self.key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, self.key.encoding_key())
            .context("signing an access token")?;
        Ok(IssuedAccessToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// The rules that accept this issuer's tokens.
    pub fn rules(&self, leeway: Duration) -> TokenRules {
        TokenRules {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway,
        }
    }

    pub fn signing_key(&self) -> &Arc<SigningKey> {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::super::jwks::KeySet;
    use super::super::signing_key::tests::RFC8410_PEM;
    use super::*;
    use serde_json::{Value, json};

    const ISSUER: &str = "https://auction.test";
    const AUDIENCE: &str = "auction-api";

    fn ada() -> UserId {
        UserId::parse("u-ada").expect("valid id")
    }

    fn issuer_with(key: SigningKey) -> AccessTokenIssuer {
        AccessTokenIssuer::new(Arc::new(key), ISSUER, AUDIENCE, Duration::from_secs(300))
    }

    fn issuer() -> AccessTokenIssuer {
        issuer_with(SigningKey::from_pem(RFC8410_PEM).expect("key"))
    }

    fn key_of(issuer: &AccessTokenIssuer) -> VerificationKey {
        let keys = KeySet::of_signing_keys([issuer.signing_key().as_ref()]);
        keys.get(issuer.signing_key().kid())
            .expect("published")
            .as_ref()
            .clone()
    }

    fn rules() -> TokenRules {
        TokenRules {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            leeway: DEFAULT_LEEWAY,
        }
    }

    fn now() -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock")
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
    }

    /// Signs arbitrary claims with the test key, as a forger holding it (or we) would.
    fn signed(issuer: &AccessTokenIssuer, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(issuer.signing_key().kid().to_owned());
        jsonwebtoken::encode(&header, claims, issuer.signing_key().encoding_key()).expect("sign")
    }

    fn valid_claims() -> Value {
        let now = now().as_secs();
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u-ada", "roles": ["user"], "exp": now + 300, "iat": now})
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let issuer = issuer();
        let issued = issuer
            .issue(&ada(), &[Role::User, Role::Admin])
            .expect("issue");
        let claims = check(&issued.token, &key_of(&issuer), &rules()).expect("valid");
        assert_eq!(claims.sub, ada());
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, Audience::one(AUDIENCE));
        assert_eq!(claims.roles, vec![Role::User, Role::Admin]);
        assert_eq!(claims.exp - claims.iat.expect("iat"), 300);
        assert_eq!(issued.expires_in, 300);
    }

    #[test]
    fn the_header_names_the_key_and_eddsa() {
        let issuer = issuer();
        let issued = issuer.issue(&ada(), &[Role::User]).expect("issue");
        let header = read_header(&issued.token).expect("header");
        assert_eq!(header.algorithm, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(issuer.signing_key().kid()));
    }

    #[test]
    fn alg_none_is_rejected() {
        let issuer = issuer();
        let header = json!({"alg": "none", "typ": "JWT", "kid": issuer.signing_key().kid()});
        let unsigned = format!("{}.{}.", b64(&header), b64(&valid_claims()));
        assert_eq!(
            check(&unsigned, &key_of(&issuer), &rules()),
            Err(TokenRejection::Algorithm)
        );
        assert_eq!(read_header(&unsigned), Err(TokenRejection::Algorithm));
    }

    #[test]
    fn hs256_signed_with_the_public_key_as_secret_is_rejected() {
        // The classic algorithm confusion: a forger uses the published key as an HMAC secret.
        let issuer = issuer();
        let public_x = match &issuer.signing_key().jwk().algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) => okp.x.clone(),
            other => panic!("unexpected key {other:?}"),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(issuer.signing_key().kid().to_owned());
        let secret = jsonwebtoken::EncodingKey::from_secret(public_x.as_bytes()).expect("secret");
        let forged = jsonwebtoken::encode(&header, &valid_claims(), &secret).expect("sign");
        assert_eq!(
            check(&forged, &key_of(&issuer), &rules()),
            Err(TokenRejection::Algorithm)
        );
    }

    #[test]
    fn a_token_signed_by_another_key_is_rejected() {
        let ours = issuer();
        let theirs = issuer_with(SigningKey::generate().expect("key"));
        // The forger even claims our kid.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ours.signing_key().kid().to_owned());
        let forged = jsonwebtoken::encode(
            &header,
            &valid_claims(),
            theirs.signing_key().encoding_key(),
        )
        .expect("sign");
        assert_eq!(
            check(&forged, &key_of(&ours), &rules()),
            Err(TokenRejection::Signature)
        );
    }

    #[test]
    fn tampered_claims_are_rejected() {
        let issuer = issuer();
        let issued = issuer.issue(&ada(), &[Role::User]).expect("issue");
        let parts: Vec<&str> = issued.token.split('.').collect();
        let mut claims = valid_claims();
        claims["roles"] = json!(["user", "admin"]);
        let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
        assert_eq!(
            check(&tampered, &key_of(&issuer), &rules()),
            Err(TokenRejection::Signature)
        );
    }

    #[test]
    fn a_token_expired_beyond_the_leeway_is_rejected() {
        let issuer = issuer();
        let issued = issuer
            .issue_at(&ada(), &[Role::User], now() - Duration::from_secs(300 + 60))
            .expect("issue");
        assert_eq!(
            check(&issued.token, &key_of(&issuer), &rules()),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn a_token_expired_within_the_leeway_is_accepted() {
        let issuer = issuer();
        let issued = issuer
            .issue_at(&ada(), &[Role::User], now() - Duration::from_secs(300 + 5))
            .expect("issue");
        assert!(check(&issued.token, &key_of(&issuer), &rules()).is_ok());
    }

    #[test]
    fn a_token_not_valid_yet_is_rejected() {
        let issuer = issuer();
        let mut claims = valid_claims();
        claims["nbf"] = json!(now().as_secs() + 120);
        let token = signed(&issuer, &claims);
        assert_eq!(
            check(&token, &key_of(&issuer), &rules()),
            Err(TokenRejection::NotYetValid)
        );
    }

    #[test]
    fn a_token_of_another_issuer_is_rejected() {
        let issuer = issuer();
        let mut claims = valid_claims();
        claims["iss"] = json!("https://evil.test");
        assert_eq!(
            check(&signed(&issuer, &claims), &key_of(&issuer), &rules()),
            Err(TokenRejection::Issuer)
        );
        claims.as_object_mut().expect("object").remove("iss");
        assert_eq!(
            check(&signed(&issuer, &claims), &key_of(&issuer), &rules()),
            Err(TokenRejection::Issuer)
        );
    }

    #[test]
    fn a_token_for_another_audience_is_rejected() {
        let issuer = issuer();
        let mut claims = valid_claims();
        claims["aud"] = json!(["billing", "reports"]);
        assert_eq!(
            check(&signed(&issuer, &claims), &key_of(&issuer), &rules()),
            Err(TokenRejection::Audience)
        );
        claims.as_object_mut().expect("object").remove("aud");
        assert_eq!(
            check(&signed(&issuer, &claims), &key_of(&issuer), &rules()),
            Err(TokenRejection::Audience),
            "no audience at all is not ours either"
        );
    }

    #[test]
    fn an_audience_list_containing_ours_is_accepted() {
        let issuer = issuer();
        let mut claims = valid_claims();
        claims["aud"] = json!(["billing", AUDIENCE]);
        assert!(check(&signed(&issuer, &claims), &key_of(&issuer), &rules()).is_ok());
    }

    #[test]
    fn a_cognito_style_token_with_client_id_and_groups_is_accepted() {
        let issuer = issuer();
        let now = now().as_secs();
        let claims = json!({
            "iss": ISSUER, "client_id": AUDIENCE, "token_use": "access",
            "sub": "3f1c2d9e-8a7b-4c6d-9e0f-1a2b3c4d5e6f", "cognito:groups": ["admin", "staff"],
            "exp": now + 60, "iat": now,
        });
        let verified = check(&signed(&issuer, &claims), &key_of(&issuer), &rules()).expect("valid");
        assert_eq!(verified.roles, vec![Role::Admin]);
        assert_eq!(
            verified.sub.as_str(),
            "3f1c2d9e-8a7b-4c6d-9e0f-1a2b3c4d5e6f"
        );
    }

    #[test]
    fn a_subject_outside_the_user_id_rules_is_rejected() {
        let issuer = issuer();
        let mut claims = valid_claims();
        claims["sub"] = json!("auth0|ada.lovelace");
        assert_eq!(
            check(&signed(&issuer, &claims), &key_of(&issuer), &rules()),
            Err(TokenRejection::Claims)
        );
    }

    #[test]
    fn a_token_without_exp_is_rejected() {
        let issuer = issuer();
        let mut claims = valid_claims();
        claims.as_object_mut().expect("object").remove("exp");
        assert_eq!(
            check(&signed(&issuer, &claims), &key_of(&issuer), &rules()),
            Err(TokenRejection::Claims)
        );
    }

    #[test]
    fn text_that_is_not_a_jwt_is_malformed() {
        let issuer = issuer();
        for bad in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig"] {
            assert_eq!(
                check(bad, &key_of(&issuer), &rules()),
                Err(TokenRejection::Malformed),
                "{bad:?}"
            );
        }
    }
}
