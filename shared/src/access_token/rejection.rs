//! Why a token is refused ([`TokenRejection`]), and what verifying can fail with
//! ([`VerifyError`]). Tests assert on the rejection and logs record it; a client only learns
//! that its token is not valid.

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not three base64url parts with a JSON header and claims.
    #[error("malformed token")]
    Malformed,
    /// `alg` is `none`, symmetric, unknown, or not the algorithm of the key it names.
    #[error("algorithm not accepted")]
    Algorithm,
    /// No `kid`, or a `kid` that no trusted key has (after refreshing a remote key set).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not match the header and claims (tampered, or another key).
    #[error("bad signature")]
    Signature,
    /// `exp` is past, beyond the leeway.
    #[error("expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("not valid yet")]
    NotYetValid,
    /// `iss` is missing or not the trusted issuer.
    #[error("wrong issuer")]
    Issuer,
    /// Neither `aud` nor (without `aud`) `client_id` is our audience.
    #[error("wrong audience")]
    Audience,
    /// A required claim is missing or has the wrong shape (e.g. a `sub` outside the user id
    /// rules).
    #[error("invalid claims")]
    Claims,
}

/// What [`TokenVerifier::verify`](super::TokenVerifier::verify) fails with.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is refused; the client should get a new one (refresh, or sign in again).
    #[error("the access token is not valid")]
    InvalidToken(#[source] TokenRejection),
    /// The trusted key set could not be fetched and no cached key answers: nothing is known
    /// about the token, and the client should try again later (a 503, not a 401).
    #[error("the token issuer's key set is unavailable, try again")]
    KeysUnavailable(#[source] anyhow::Error),
}

impl From<TokenRejection> for VerifyError {
    fn from(rejection: TokenRejection) -> Self {
        Self::InvalidToken(rejection)
    }
}

impl VerifyError {
    /// The rejection, when the token itself was refused.
    pub fn rejection(&self) -> Option<TokenRejection> {
        match self {
            Self::InvalidToken(reason) => Some(*reason),
            Self::KeysUnavailable(_) => None,
        }
    }
}
