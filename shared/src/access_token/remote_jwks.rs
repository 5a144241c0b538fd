//! [`RemoteJwks`]: a trusted issuer's key set (the gateway's `/.well-known/jwks.json`, or an
//! OIDC issuer's such as Cognito), fetched over HTTP and cached.
//!
//! Verifying must not call the issuer per request, and must survive its key rotation without a
//! restart. So the set is cached for `max_age`; a token whose `kid` is not in the cache makes
//! one refetch (the issuer may have rotated), but at most once per `min_refetch_interval`, so
//! a flood of tokens with invented `kid`s cannot turn into a flood of requests to the issuer.
//! Concurrent misses share one fetch. When a refetch fails, keys already cached keep working
//! (an issuer outage does not sign everybody out); only unknown keys are refused.

use super::check::VerificationKey;
use super::key_set::KeySet;
use super::rejection::{TokenRejection, VerifyError};
use anyhow::Context;
use jsonwebtoken::jwk::JwkSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// How a remote key set is cached and fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteJwksSettings {
    /// A cached set older than this is refetched on next use.
    pub max_age: Duration,
    /// Fetches for unknown `kid`s are at least this far apart.
    pub min_refetch_interval: Duration,
    /// Deadline of one fetch.
    pub timeout: Duration,
}

impl Default for RemoteJwksSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(15 * 60),
            min_refetch_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// One issuer's JWKS behind a cache. Share it (`Arc`) between requests.
#[derive(Debug)]
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    settings: RemoteJwksSettings,
    /// The last good set and when it was fetched. A std lock: held only to copy the `Arc`,
    /// never across an `.await`.
    cache: RwLock<Cached>,
    /// Serializes fetches, so concurrent misses wait for one fetch instead of each making one.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct Cached {
    keys: Arc<KeySet>,
    /// When the last fetch was attempted (success or not), for the refetch interval.
    attempted_at: Option<Instant>,
    /// When the cached keys were fetched, for `max_age`.
    fetched_at: Option<Instant>,
}

impl RemoteJwks {
    /// A cache of the JWKS at `url` (Cognito: `<issuer>/.well-known/jwks.json`); nothing is
    /// fetched until the first token arrives.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(url: impl Into<String>, settings: RemoteJwksSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .context("building the JWKS HTTP client")?;
        Ok(Self {
            url: url.into(),
            http,
            settings,
            cache: RwLock::new(Cached {
                keys: Arc::new(KeySet::default()),
                attempted_at: None,
                fetched_at: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The key named `kid`, fetching the set when the cache is stale or lacks it.
    ///
    /// # Errors
    /// [`VerifyError::InvalidToken`] ([`TokenRejection::UnknownKey`]) when the issuer has no
    /// such key; [`VerifyError::KeysUnavailable`] when the set could not be fetched and no
    /// cached key answers.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerificationKey>, VerifyError> {
        let cached = self.cached();
        let fresh = cached
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.settings.max_age);
        if let Some(key) = cached.keys.get(kid)
            && fresh
        {
            return Ok(Arc::clone(key));
        }
        let may_refetch = cached
            .attempted_at
            .is_none_or(|at| at.elapsed() >= self.settings.min_refetch_interval);
        if may_refetch {
            match self.refresh(cached.attempted_at).await {
                Ok(keys) => {
                    return keys
                        .get(kid)
                        .cloned()
                        .ok_or(VerifyError::InvalidToken(TokenRejection::UnknownKey));
                }
                Err(error) => {
                    return match cached.keys.get(kid) {
                        Some(key) => {
                            tracing::warn!(url = %self.url, error = %format!("{error:#}"), "JWKS refetch failed; using the cached key");
                            Ok(Arc::clone(key))
                        }
                        None => Err(error),
                    };
                }
            }
        }
        // Fetched too recently to try again: answer from the cache.
        match cached.keys.get(kid) {
            Some(key) => Ok(Arc::clone(key)),
            None if cached.fetched_at != cached.attempted_at => Err(VerifyError::KeysUnavailable(
                anyhow::anyhow!("the last JWKS fetch from {} failed", self.url),
            )),
            None => Err(VerifyError::InvalidToken(TokenRejection::UnknownKey)),
        }
    }

    fn cached(&self) -> Cached {
        // A poisoned lock only means a panic elsewhere while copying an `Arc`: the data is
        // still whole.
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches the set unless another caller did since `seen` (the attempt the caller saw).
    async fn refresh(&self, seen: Option<Instant>) -> Result<Arc<KeySet>, VerifyError> {
        let _one_fetch = self.fetching.lock().await;
        let cached = self.cached();
        if cached.attempted_at != seen {
            // Somebody fetched while we waited: use their result.
            return if cached.fetched_at == cached.attempted_at {
                Ok(cached.keys)
            } else {
                Err(VerifyError::KeysUnavailable(anyhow::anyhow!(
                    "the concurrent JWKS fetch from {} failed",
                    self.url
                )))
            };
        }
        let started = Instant::now();
        let fetched = self.fetch().await;
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.attempted_at = Some(started);
        match fetched {
            Ok(set) => {
                let keys = Arc::new(KeySet::from_jwks(&set));
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the issuer's JWKS");
                cache.keys = Arc::clone(&keys);
                cache.fetched_at = Some(started);
                Ok(keys)
            }
            Err(error) => Err(VerifyError::KeysUnavailable(error)),
        }
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        self.http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("fetching the JWKS at {}", self.url))?
            .json::<JwkSet>()
            .await
            .with_context(|| format!("reading the JWKS at {}", self.url))
    }
}
