//! [`IdentityProvider`]: who signs this deployment's access tokens, who is trusted to, and the
//! account flows that go with it, built once from [`AuthOptions`] at start.
//!
//! Two modes, chosen by configuration:
//!
//! * **our own issuer** (the default): an Ed25519 [`SigningKey`] from `JWT_SIGNING_KEY_FILE` or
//!   `JWT_SIGNING_KEY` (a throwaway one, with a warning, when neither is set), accounts in
//!   PostgreSQL ([`Sessions`]), and the public key published at `/.well-known/jwks.json`;
//! * **an external OIDC issuer** (`OIDC_ISSUER`): its JWKS fetched and cached
//!   ([`RemoteJwks`]); nothing is signed here, the published set is empty, and there are no
//!   local sign-ins.
//!
//! Either way tokens are verified locally by one [`TokenVerifier`].

use crate::accounts_migration::AccountsStatus;
use crate::auth::access_token::DEFAULT_LEEWAY;
use crate::auth::jwks::{self, KeySet};
use crate::auth::password_hasher::PasswordHasher;
use crate::auth::{
    AccessTokenIssuer, Accounts, RemoteJwks, RemoteJwksSettings, Sessions, SigningKey, TokenRules,
    TokenVerifier,
};
use crate::config::{AuthOptions, Config};
use anyhow::Context;
use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;
use std::time::Duration;

/// Connections the accounts pool keeps at most (sign-ins are bounded by Argon2 anyway).
const POOL_SIZE: usize = 8;

/// The identity side of the gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IdentityProvider {
    verifier: TokenVerifier,
    /// The document `/.well-known/jwks.json` serves.
    published: Arc<JwkSet>,
    local: Option<LocalAccounts>,
}

/// Our own accounts: the flows, and whether their schema is migrated yet.
#[derive(Debug, Clone)]
pub struct LocalAccounts {
    pub sessions: Sessions,
    pub status: AccountsStatus,
}

impl IdentityProvider {
    /// Reads the key or the external issuer from `config` and prepares the accounts pool
    /// (lazily: nothing connects here).
    ///
    /// # Errors
    /// When the signing key cannot be read or is not an Ed25519 PKCS#8 PEM (the message names
    /// the flag), or `DATABASE_URL` is invalid.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let options = &config.auth;
        if let Some(external) = options.external_issuer() {
            let rules = TokenRules {
                issuer: external.issuer.clone(),
                audience: external.audience.clone(),
                leeway: DEFAULT_LEEWAY,
            };
            let jwks = RemoteJwks::new(external.jwks_url.clone(), RemoteJwksSettings::default())
                .context("preparing the OIDC_JWKS_URL client")?;
            tracing::info!(issuer = %external.issuer, jwks = %external.jwks_url, "trusting an external token issuer; local sign-in is off");
            return Ok(Self {
                verifier: TokenVerifier::remote(rules, Arc::new(jwks)),
                published: Arc::new(JwkSet { keys: Vec::new() }),
                local: None,
            });
        }
        let key = Arc::new(signing_key(options)?);
        let issuer = AccessTokenIssuer::new(
            Arc::clone(&key),
            options.jwt_issuer.clone(),
            options.jwt_audience.clone(),
            options.access_token_ttl(),
        );
        let verifier = TokenVerifier::local(
            issuer.rules(DEFAULT_LEEWAY),
            KeySet::of_signing_keys([key.as_ref()]),
        );
        let timeout = Duration::from_millis(config.database_timeout_ms);
        let pool =
            shared::postgres_pool::lazy_pool(config.database.url.expose(), POOL_SIZE, timeout)
                .context("building the accounts pool")?;
        let hasher = PasswordHasher::with_cost(config.password_cost)
            .context("preparing the password hasher")?;
        let sessions = Sessions::new(
            Accounts::new(pool, timeout),
            hasher,
            issuer,
            options.refresh_token_ttl(),
        );
        Ok(Self {
            verifier,
            published: Arc::new(jwks::document([key.as_ref()])),
            local: Some(LocalAccounts {
                sessions,
                status: AccountsStatus::default(),
            }),
        })
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Our public keys (empty when an external issuer signs).
    pub fn published_keys(&self) -> &JwkSet {
        &self.published
    }

    /// Our own accounts; `None` when an external issuer keeps them.
    pub fn local(&self) -> Option<&LocalAccounts> {
        self.local.as_ref()
    }
}

/// The configured key, or a throwaway one (with a warning) when none is configured.
fn signing_key(options: &AuthOptions) -> anyhow::Result<SigningKey> {
    if let Some(path) = &options.jwt_signing_key_file {
        let pem = std::fs::read_to_string(path).with_context(|| {
            format!(
                "--jwt-signing-key-file (JWT_SIGNING_KEY_FILE): cannot read {}",
                path.display()
            )
        })?;
        return SigningKey::from_pem(&pem).with_context(|| {
            format!(
                "--jwt-signing-key-file (JWT_SIGNING_KEY_FILE): {} is not a usable key",
                path.display()
            )
        });
    }
    match &options.jwt_signing_key {
        Some(pem) => SigningKey::from_pem(pem.expose())
            .context("--jwt-signing-key (JWT_SIGNING_KEY): not a usable key"),
        None => SigningKey::from_config(None).context("generating a throwaway signing key"),
    }
}
