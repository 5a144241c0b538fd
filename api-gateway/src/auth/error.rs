//! [`AuthError`], the one error type of the identity module, with the causes it carries.
//!
//! Variants are named for what a client (or the HTTP layer) can act on, and each doc names the
//! status it becomes. Texts that reach a client say what to do, never which half of a
//! credential was wrong: a wrong password and an unknown login are the same variant.

use super::display_name::DisplayNameError;
use super::login::LoginError;
use super::new_password::PasswordRule;
use shared::access_token::VerifyError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 400: the login is neither an email nor a username by our rules.
    #[error("invalid login: {0}")]
    InvalidLogin(#[from] LoginError),
    /// 400: the display name breaks a rule.
    #[error("invalid display name: {0}")]
    InvalidDisplayName(#[from] DisplayNameError),
    /// 400: the new password breaks a rule; the text says which.
    #[error("password {0}")]
    WeakPassword(#[from] PasswordRule),
    /// 401: the login or the password is wrong. One variant for both, answered after the same
    /// Argon2 work, so neither the text nor the timing tells whether the account exists.
    #[error("the login or password is wrong")]
    InvalidCredentials,
    /// 401: the access token is missing, forged, expired or not for us; the reason is for the
    /// logs only.
    #[error("the access token is not valid")]
    InvalidToken(#[source] TokenRejection),
    /// 401: the refresh token is unknown, expired, or its session was signed out.
    #[error("the refresh token is not valid; sign in again")]
    InvalidRefreshToken,
    /// 401: a refresh token that was already exchanged came back, so a copy exists somewhere;
    /// its whole family (every session descended from that sign-in) is now revoked.
    #[error(
        "the refresh token was already used; every session of that sign-in is revoked, sign in again"
    )]
    RefreshTokenReused,
    /// 403: the account may not do this (suspended, or not an admin).
    #[error("this account may not {0}")]
    Forbidden(Activity),
    /// 404: no account has this id or login (admin actions only; sign-in never says so).
    #[error("no such account")]
    AccountNotFound,
    /// 409: another account already has this email or username.
    #[error("this login is already taken")]
    LoginTaken,
    /// 503: PostgreSQL or the trusted issuer's JWKS is unreachable or too slow; retry.
    #[error("{0} is unavailable, try again")]
    Unavailable(Dependency, #[source] anyhow::Error),
    /// Startup only: the configured signing key is not an Ed25519 PKCS#8 PEM.
    #[error("the signing key is not an Ed25519 private key in PKCS#8 PEM: {0}")]
    InvalidSigningKey(&'static str),
    /// 500: a bug or an unexpected answer (a corrupt stored hash, a failing RNG); logged, never
    /// shown.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// What an account is refused ([`AuthError::Forbidden`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Bid,
    Sell,
    Administer,
}

impl std::fmt::Display for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bid => "bid",
            Self::Sell => "sell",
            Self::Administer => "administer",
        })
    }
}

/// Which dependency was unavailable ([`AuthError::Unavailable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The accounts schema in PostgreSQL.
    Accounts,
    /// A trusted OIDC issuer's JWKS endpoint.
    IssuerKeys,
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Accounts => "the accounts database",
            Self::IssuerKeys => "the token issuer's key set",
        })
    }
}

/// Why an access token was refused ([`AuthError::InvalidToken`]): the shared verifier's
/// reasons, for the logs and tests; the client only learns that the token is not valid.
pub use shared::access_token::TokenRejection;

impl From<VerifyError> for AuthError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::InvalidToken(reason) => Self::InvalidToken(reason),
            VerifyError::KeysUnavailable(cause) => Self::Unavailable(Dependency::IssuerKeys, cause),
        }
    }
}
