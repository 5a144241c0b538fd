//! [`VerifiedTokens`]: access tokens this gateway already verified, kept until they expire, so a
//! client that sends the same token with every bid pays for one Ed25519 verification, not one
//! per request.
//!
//! A bidder keeps one access token for its whole lifetime (minutes) and bids with it many times;
//! verifying the signature each time costs more than the rest of a pre-filtered bid. The cache is
//! keyed by the token's signature segment and holds the whole token: a hit requires the very same
//! text, so a token with altered claims but a copied signature is a miss and goes through the full
//! check (where its signature fails). An entry is used only before its `exp` (the verifier's clock
//! leeway is left to the full check), so caching never extends a token's life. It is bounded:
//! when full it is emptied and refills with the tokens in use, which costs one verification per
//! active client, never memory.
//!
//! What it does not know: a key a remote issuer withdrew keeps its cached tokens valid until they
//! expire, as any verifier holding them would. Access tokens are short-lived for that reason.

use super::identity::Identity;
use dashmap::DashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Tokens kept at most (about 1 KiB each): far more than the clients one gateway serves.
pub const DEFAULT_CAPACITY: usize = 100_000;

struct Entry {
    token: Box<str>,
    identity: Identity,
    /// The token's `exp`, seconds since the epoch.
    expires_at: i64,
}

/// The cache of verified tokens (shared by every request of one gateway).
pub struct VerifiedTokens {
    entries: DashMap<Box<str>, Entry>,
    capacity: usize,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl VerifiedTokens {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The identity of `token` if it was verified and has not expired by `now` (seconds).
    pub fn get(&self, token: &str, now: i64) -> Option<Identity> {
        let entry = self.entries.get(signature(token)?)?;
        (*entry.token == *token && now < entry.expires_at).then(|| entry.identity.clone())
    }

    /// [`Self::get`] at the present time.
    pub fn get_now(&self, token: &str) -> Option<Identity> {
        self.get(token, now_secs())
    }

    /// Remembers a token that passed every check, until `expires_at` (its `exp`).
    pub fn insert(&self, token: &str, identity: &Identity, expires_at: i64) {
        let Some(key) = signature(token) else {
            return;
        };
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
        self.entries.insert(
            key.into(),
            Entry {
                token: token.into(),
                identity: identity.clone(),
                expires_at,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The third segment of a JWT, `None` when there is none.
fn signature(token: &str) -> Option<&str> {
    token
        .rsplit_once('.')
        .map(|(_, sig)| sig)
        .filter(|s| !s.is_empty())
}

/// Seconds since the epoch (0 if the clock is before 1970, which expires every entry).
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use shared::UserId;

    fn ada() -> Identity {
        Identity {
            user_id: UserId::parse("ada").unwrap(),
            roles: vec![Role::User],
        }
    }

    #[test]
    fn a_verified_token_is_found_until_it_expires() {
        let cache = VerifiedTokens::default();
        cache.insert("h.c.sig", &ada(), 100);
        assert_eq!(cache.get("h.c.sig", 99), Some(ada()));
        assert_eq!(cache.get("h.c.sig", 100), None, "expired at exp");
    }

    #[test]
    fn the_same_signature_with_other_claims_is_a_miss() {
        let cache = VerifiedTokens::default();
        cache.insert("h.c.sig", &ada(), 100);
        assert_eq!(cache.get("h.tampered.sig", 1), None);
        assert_eq!(cache.get("unsigned", 1), None);
    }

    #[test]
    fn a_full_cache_empties_and_keeps_its_bound() {
        let cache = VerifiedTokens::with_capacity(2);
        for n in 0..5 {
            cache.insert(&format!("h.c.s{n}"), &ada(), 100);
            assert!(cache.len() <= 2);
        }
        assert_eq!(cache.get("h.c.s4", 1), Some(ada()));
    }
}
