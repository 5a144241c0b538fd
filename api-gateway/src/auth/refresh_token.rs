//! Refresh tokens: opaque random strings that buy a new access token, rotated on every use.
//!
//! A token is 256 random bits, base64url (43 characters); the client gets it once and the
//! database keeps only its SHA-256 ([`TokenHash`]), so a leaked table signs nobody in. (A
//! slow hash is not needed: there is nothing to guess in 256 random bits.)
//!
//! Each use marks the token used and issues its successor in the same family. What a
//! presented token's stored state means is decided here, in [`judge`], so the rule reads in one
//! place and is tested without a database; `accounts.rs` runs the statements it calls for in
//! one transaction, with the row locked.

use super::error::AuthError;
use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Its length as base64url without padding.
const TOKEN_CHARS: usize = 43;

/// A refresh token as the client holds it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new random token.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when the OS has no randomness to give.
    pub fn generate() -> Result<Self, AuthError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).context("no OS randomness for a refresh token")?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A token a client presented. Text of the wrong shape cannot be one of ours, so it is
    /// refused without a database lookup.
    ///
    /// # Errors
    /// [`AuthError::InvalidRefreshToken`] when it is not 43 base64url characters.
    pub fn from_client(text: &str) -> Result<Self, AuthError> {
        let well_formed = text.len() == TOKEN_CHARS
            && URL_SAFE_NO_PAD
                .decode(text)
                .is_ok_and(|bytes| bytes.len() == TOKEN_BYTES);
        if well_formed {
            Ok(Self(text.to_owned()))
        } else {
            Err(AuthError::InvalidRefreshToken)
        }
    }

    /// The text to hand to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks the token up by.
    pub fn hash(&self) -> TokenHash {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.as_bytes());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        TokenHash(hash)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

/// SHA-256 of a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The stored state of the row a presented token's hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredState {
    /// Already exchanged for a successor.
    pub used: bool,
    /// Its family was signed out or revoked.
    pub revoked: bool,
    /// Past its `expires_at` (by the database's clock, the one all instances share).
    pub expired: bool,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Mark it used and issue its successor.
    Rotate,
    /// It was used before: somebody else holds a copy. Revoke the whole family.
    Reused,
    /// Unknown, expired, or already revoked: refuse, change nothing.
    Invalid,
}

/// The rotation rule for a token whose hash was found (an unknown one is simply invalid).
/// Reuse wins over expiry: an old stolen token replayed after it expired still reveals the
/// theft, and its family must still die. A revoked family stays revoked and needs nothing more.
pub fn judge(stored: StoredState) -> Verdict {
    if stored.revoked {
        Verdict::Invalid
    } else if stored.used {
        Verdict::Reused
    } else if stored.expired {
        Verdict::Invalid
    } else {
        Verdict::Rotate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: StoredState = StoredState {
        used: false,
        revoked: false,
        expired: false,
    };

    #[test]
    fn generated_tokens_are_43_url_safe_characters_and_differ() {
        let a = RefreshToken::generate().expect("token");
        let b = RefreshToken::generate().expect("token");
        assert_eq!(a.expose().len(), 43);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn a_generated_token_comes_back_from_the_client_as_itself() {
        let token = RefreshToken::generate().expect("token");
        let presented = RefreshToken::from_client(token.expose()).expect("well formed");
        assert_eq!(presented.hash(), token.hash());
    }

    #[test]
    fn text_of_the_wrong_shape_is_refused_without_a_lookup() {
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &"+".repeat(43),
        ] {
            assert!(
                matches!(
                    RefreshToken::from_client(bad),
                    Err(AuthError::InvalidRefreshToken)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_stored_hash_is_sha256_of_the_token_text() {
        let token = RefreshToken::from_client(&"A".repeat(43)).expect("well formed");
        let expected =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, "A".repeat(43).as_bytes());
        assert_eq!(token.hash().as_bytes(), expected.as_ref());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let token = RefreshToken::generate().expect("token");
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn a_live_token_rotates() {
        assert_eq!(judge(LIVE), Verdict::Rotate);
    }

    #[test]
    fn a_used_token_is_reuse_even_after_it_expired() {
        assert_eq!(judge(StoredState { used: true, ..LIVE }), Verdict::Reused);
        assert_eq!(
            judge(StoredState {
                used: true,
                expired: true,
                ..LIVE
            }),
            Verdict::Reused
        );
    }

    #[test]
    fn an_expired_token_is_invalid() {
        assert_eq!(
            judge(StoredState {
                expired: true,
                ..LIVE
            }),
            Verdict::Invalid
        );
    }

    #[test]
    fn a_token_of_a_revoked_family_is_invalid_and_changes_nothing() {
        assert_eq!(
            judge(StoredState {
                revoked: true,
                used: true,
                ..LIVE
            }),
            Verdict::Invalid
        );
    }
}
