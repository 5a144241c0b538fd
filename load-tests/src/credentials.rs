//! Who the experiments' requests say they are: real access tokens, so what they measure
//! includes the gateway verifying them.
//!
//! The harness starts every gateway with one Ed25519 signing key ([`signing_key_pem`]:
//! `JWT_SIGNING_KEY` when set, so a `--gateway-url` run can use the gateway's own key, else one
//! generated per run) and [`Credentials`] signs a token per virtual user with the gateway's own
//! issuing code and that key, as the gateway signs a signed-in user's. Each user's token is
//! signed once and reused for every request, as a client reuses its token. A few accounts are
//! also registered through the API end to end ([`crate::api::ApiClient::register_bidders`]);
//! their tokens are the gateway's answers, remembered here under their user ids.

use anyhow::Context;
use api_gateway::auth::{AccessTokenIssuer, Role, SigningKey};
use api_gateway::config::Config;
use shared::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// How long a minted token lives: longer than any run (the gateway checks only `exp`).
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// The signing key the harness gives the gateways it starts (`JWT_SIGNING_KEY`).
///
/// # Errors
/// When no key is set and none can be generated (no randomness).
pub fn signing_key_pem() -> anyhow::Result<&'static str> {
    static KEY: OnceLock<String> = OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(key);
    }
    let key = match std::env::var("JWT_SIGNING_KEY") {
        Ok(pem) if !pem.trim().is_empty() => pem,
        _ => SigningKey::generate_pem().context("generating the run's signing key")?,
    };
    Ok(KEY.get_or_init(|| key))
}

/// Tokens for the run's users, one per user id.
pub struct Credentials {
    issuer: AccessTokenIssuer,
    tokens: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

impl Credentials {
    /// Tokens signed with `pem` for the gateway's default issuer and audience.
    ///
    /// # Errors
    /// When `pem` is not an Ed25519 PKCS#8 key.
    pub fn new(pem: &str) -> anyhow::Result<Self> {
        let key = SigningKey::from_pem(pem).context("the run's signing key")?;
        let defaults = Config::defaults().auth;
        Ok(Self {
            issuer: AccessTokenIssuer::new(
                Arc::new(key),
                defaults.jwt_issuer,
                defaults.jwt_audience,
                TOKEN_TTL,
            ),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The run's credentials, signed with [`signing_key_pem`].
    ///
    /// # Errors
    /// When the key is unusable.
    pub fn shared() -> anyhow::Result<Arc<Self>> {
        static SHARED: OnceLock<Arc<Credentials>> = OnceLock::new();
        if let Some(shared) = SHARED.get() {
            return Ok(Arc::clone(shared));
        }
        let credentials = Arc::new(Self::new(signing_key_pem()?)?);
        Ok(Arc::clone(SHARED.get_or_init(|| credentials)))
    }

    /// `user`'s access token (role `user`): the one registered through the API if it was,
    /// else one signed now and kept.
    ///
    /// # Errors
    /// When `user` breaks the user id rules or signing fails.
    pub fn token(&self, user: &str) -> anyhow::Result<String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = tokens.get(user) {
            return Ok(token.clone());
        }
        let id = UserId::parse(user).with_context(|| format!("user id {user:?}"))?;
        let token = self
            .issuer
            .issue(&id, &[Role::User])
            .map_err(anyhow::Error::new)
            .context("signing a token")?
            .token;
        tokens.insert(user.to_owned(), token.clone());
        Ok(token)
    }

    /// Keeps the token the gateway gave an account registered through the API.
    pub fn remember(&self, user: &str, token: String) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.insert(user.to_owned(), token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_keeps_one_token_and_a_registered_one_is_preferred() {
        let credentials = Credentials::new(&SigningKey::generate_pem().unwrap()).unwrap();
        let first = credentials.token("u1").unwrap();
        assert_eq!(credentials.token("u1").unwrap(), first);
        assert_ne!(credentials.token("u2").unwrap(), first);
        credentials.remember("u3", "from-the-api".into());
        assert_eq!(credentials.token("u3").unwrap(), "from-the-api");
        assert!(credentials.token("not valid!").is_err());
    }
}
