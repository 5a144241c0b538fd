//! Who a socket's client is, when it says: its access token checked by the shared
//! [`TokenVerifier`] against the signer's JWKS (the gateway's `/.well-known/jwks.json` unless
//! configured otherwise), and until when that holds.
//!
//! Watching never needs this. The key set is fetched on the first sign-in, not at start, so a
//! broadcast instance starts, and serves public viewers, while the gateway is down; it is then
//! cached, refetched when stale or for an unknown `kid` (a rotated key), and an outage of the
//! signer only refuses sign-ins whose key is not cached yet, with `unavailable` rather than
//! `invalid_token`, since nothing is known about such a token.

use crate::config::TokenTrust;
use crate::error::ApiError;
use anyhow::Context;
use shared::access_token::{RemoteJwks, RemoteJwksSettings, TokenVerifier, VerifyError};
use shared::{Timestamp, UserId};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How the signer's key set is fetched and cached. Shorter than the gateway's settings for an
/// external issuer: a sign-in waits for the fetch (so it gets a short deadline), and a failed
/// fetch is retried after seconds, not half a minute, because the signer is usually our own
/// gateway restarting. Fetches for invented `kid`s stay bounded by the interval.
const JWKS: RemoteJwksSettings = RemoteJwksSettings {
    max_age: Duration::from_secs(15 * 60),
    min_refetch_interval: Duration::from_secs(5),
    timeout: Duration::from_secs(2),
};

/// An access token as a client presented it (upgrade header, query, or `auth` message).
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedToken(String);

impl PresentedToken {
    /// The token text; empty or blank text is no token.
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty()).then(|| Self(text.to_owned()))
    }

    /// The token, for verifying it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedToken(***)")
    }
}

/// Verifies the tokens sockets present. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SocketIdentity {
    verifier: TokenVerifier,
}

/// A socket's verified sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The token's `sub`: whose private events the socket gets.
    pub user: UserId,
    /// The token's `exp`, as the client is told.
    pub expires_at: Timestamp,
    /// When this instance stops the socket's private events: `exp` plus the leeway, on the
    /// monotonic clock.
    pub until: Instant,
}

impl SocketIdentity {
    /// Trusts the tokens `trust` describes; nothing is fetched yet.
    ///
    /// # Errors
    /// When the HTTP client for the key set cannot be built.
    pub fn new(trust: &TokenTrust) -> anyhow::Result<Self> {
        let jwks = RemoteJwks::new(trust.jwks_url.clone(), JWKS)
            .context("preparing the JWKS_URL client")?;
        Ok(Self {
            verifier: TokenVerifier::remote(trust.rules(), Arc::new(jwks)),
        })
    }

    /// Checks `token`.
    ///
    /// # Errors
    /// [`ApiError::InvalidToken`] when it is refused (the reason is logged at debug level
    /// only); [`ApiError::KeysUnavailable`] when the key set cannot be fetched.
    pub async fn verify(&self, token: &PresentedToken) -> Result<SignedIn, ApiError> {
        let claims = self
            .verifier
            .verify(token.expose())
            .await
            .map_err(|error| match error {
                VerifyError::InvalidToken(reason) => {
                    tracing::debug!(%reason, "socket token refused");
                    ApiError::InvalidToken
                }
                VerifyError::KeysUnavailable(cause) => {
                    tracing::warn!(error = %format!("{cause:#}"), "token key set unavailable");
                    ApiError::KeysUnavailable
                }
            })?;
        let leeway = self.verifier.rules().leeway;
        Ok(SignedIn {
            expires_at: Timestamp::from_micros(claims.exp.saturating_mul(1_000_000)),
            until: deadline(claims.exp, leeway),
            user: claims.sub,
        })
    }
}

/// The monotonic instant at which `exp` (seconds since the epoch) plus `leeway` arrives.
fn deadline(exp: i64, leeway: Duration) -> Instant {
    let now = Instant::now();
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let end = Duration::from_secs(u64::try_from(exp).unwrap_or(0)).saturating_add(leeway);
    // A token that verified is not past `end` by more than the clock moved meanwhile.
    now + end.saturating_sub(since_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_secs() -> i64 {
        i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
    }

    #[test]
    fn the_deadline_is_exp_plus_the_leeway_from_now() {
        let until = deadline(epoch_secs() + 60, Duration::from_secs(15));
        let left = until - Instant::now();
        assert!(
            left > Duration::from_secs(73) && left <= Duration::from_secs(75),
            "{left:?}"
        );
    }

    #[test]
    fn a_presented_token_is_trimmed_never_blank_and_hidden_from_debug() {
        assert_eq!(PresentedToken::new("  ").map(|t| t.0), None);
        let token = PresentedToken::new(" eyJ.x.y ").unwrap();
        assert_eq!(token.expose(), "eyJ.x.y");
        assert!(!format!("{token:?}").contains("eyJ"));
    }

    #[test]
    fn a_past_exp_is_a_deadline_of_now() {
        let until = deadline(epoch_secs() - 60, Duration::ZERO);
        assert!(until <= Instant::now());
    }
}
