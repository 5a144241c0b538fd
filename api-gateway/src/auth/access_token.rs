//! Access tokens: issuing them. The gateway signs short-lived JWTs ([`AccessTokenIssuer`])
//! with its Ed25519 key; what they claim ([`AccessClaims`]) and the checks every token must
//! pass ([`check`]) live in `shared::access_token`, where the broadcast service verifies the
//! same tokens with the same code.

use super::error::AuthError;
use super::role::Role;
use super::signing_key::SigningKey;
use anyhow::Context;
use jsonwebtoken::Header;
use shared::UserId;
pub use shared::access_token::check::{check, read_header};
pub use shared::access_token::{
    AccessClaims, Audience, DEFAULT_LEEWAY, TokenHeader, TokenRules, VerificationKey,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    use super::super::error::TokenRejection;
    use super::super::jwks::KeySet;
    use super::super::signing_key::tests::RFC8410_PEM;
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    const ISSUER: &str = "https://auction.test";
    const AUDIENCE: &str = "auction-api";

    fn ada() -> UserId {
        UserId::parse("u-ada").expect("valid id")
    }

    fn issuer() -> AccessTokenIssuer {
        let key = SigningKey::from_pem(RFC8410_PEM).expect("key");
        AccessTokenIssuer::new(Arc::new(key), ISSUER, AUDIENCE, Duration::from_secs(300))
    }

    fn key_of(issuer: &AccessTokenIssuer) -> VerificationKey {
        let keys = KeySet::of_signing_keys([issuer.signing_key().as_ref()]);
        keys.get(issuer.signing_key().kid())
            .expect("published")
            .as_ref()
            .clone()
    }

    fn now() -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock")
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let issuer = issuer();
        let issued = issuer
            .issue(&ada(), &[Role::User, Role::Admin])
            .expect("issue");
        let claims = check(
            &issued.token,
            &key_of(&issuer),
            &issuer.rules(DEFAULT_LEEWAY),
        )
        .expect("valid");
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
    fn an_issued_token_with_tampered_claims_is_rejected() {
        let issuer = issuer();
        let issued = issuer.issue(&ada(), &[Role::User]).expect("issue");
        let parts: Vec<&str> = issued.token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64"))
                .expect("json");
        claims["roles"] = json!(["user", "admin"]);
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(
            check(&tampered, &key_of(&issuer), &issuer.rules(DEFAULT_LEEWAY)),
            Err(TokenRejection::Signature)
        );
    }

    #[test]
    fn a_token_issued_past_its_lifetime_and_the_leeway_is_rejected() {
        let issuer = issuer();
        let issued = issuer
            .issue_at(&ada(), &[Role::User], now() - Duration::from_secs(300 + 60))
            .expect("issue");
        assert_eq!(
            check(
                &issued.token,
                &key_of(&issuer),
                &issuer.rules(DEFAULT_LEEWAY)
            ),
            Err(TokenRejection::Expired)
        );
    }
}
