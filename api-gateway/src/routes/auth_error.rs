//! How identity failures reach clients: the one `From<AuthError> for ApiError` (the shared
//! verifier's `VerifyError` goes through it).
//!
//! Each [`AuthError`] variant's doc names its status; this mapping gives each its own
//! [`ErrorCode`] with that status and keeps the variant's text, which was written for clients
//! (it never says which half of a credential was wrong). Causes stay out of the body: an
//! unavailable dependency becomes the usual fast 503, a bug the generic 500.

use crate::auth::AuthError;
use crate::auth::error::Dependency;
use crate::error::{ApiError, ErrorCode};
use shared::access_token::VerifyError;

impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> Self {
        ApiError::from(AuthError::from(error))
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if let AuthError::InvalidToken(reason) = &error {
            // For the logs only: the client learns that the token is not valid.
            tracing::info!(%reason, "access token refused");
        }
        match refusal_code(&error) {
            Some(code) => ApiError::new(code, error.to_string()),
            None => match error {
                AuthError::Unavailable(dependency, cause) => {
                    tracing::debug!(error = %format!("{cause:#}"), "identity dependency failed");
                    ApiError::Unavailable(dependency_name(dependency))
                }
                AuthError::Internal(cause) => ApiError::Internal(cause),
                // A key is checked once, at start; meeting one here is a bug.
                other => ApiError::Internal(anyhow::Error::new(other)),
            },
        }
    }
}

/// The code of a failure the client can act on; `None` for a dependency or a bug.
fn refusal_code(error: &AuthError) -> Option<ErrorCode> {
    Some(match error {
        AuthError::InvalidLogin(_) => ErrorCode::InvalidLogin,
        AuthError::InvalidDisplayName(_) => ErrorCode::InvalidDisplayName,
        AuthError::WeakPassword(_) => ErrorCode::WeakPassword,
        AuthError::InvalidCredentials => ErrorCode::InvalidCredentials,
        AuthError::InvalidToken(_) => ErrorCode::InvalidToken,
        AuthError::InvalidRefreshToken => ErrorCode::InvalidRefreshToken,
        AuthError::RefreshTokenReused => ErrorCode::RefreshTokenReused,
        AuthError::Forbidden(_) => ErrorCode::Forbidden,
        AuthError::AccountNotFound => ErrorCode::AccountNotFound,
        AuthError::LoginTaken => ErrorCode::LoginTaken,
        AuthError::Unavailable(..) | AuthError::InvalidSigningKey(_) | AuthError::Internal(_) => {
            return None;
        }
    })
}

/// What the 503 names (`"<name> is unavailable, try again"`).
pub fn dependency_name(dependency: Dependency) -> &'static str {
    match dependency {
        Dependency::Accounts => "the accounts database",
        Dependency::IssuerKeys => "the token issuer's key set",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::error::TokenRejection;
    use crate::auth::new_password::PasswordRule;

    fn mapped(error: AuthError) -> (u16, &'static str) {
        let api = ApiError::from(error);
        (api.status_code().as_u16(), api.code().as_str())
    }

    #[test]
    fn each_variant_gets_the_status_its_doc_names() {
        let cases = [
            (
                AuthError::WeakPassword(PasswordRule::TooShort),
                400,
                "weak_password",
            ),
            (AuthError::InvalidCredentials, 401, "invalid_credentials"),
            (
                AuthError::InvalidToken(TokenRejection::Expired),
                401,
                "invalid_token",
            ),
            (AuthError::InvalidRefreshToken, 401, "invalid_refresh_token"),
            (AuthError::RefreshTokenReused, 401, "refresh_token_reused"),
            (
                AuthError::Forbidden(crate::auth::error::Activity::Bid),
                403,
                "forbidden",
            ),
            (AuthError::AccountNotFound, 404, "account_not_found"),
            (AuthError::LoginTaken, 409, "login_taken"),
            (
                AuthError::Unavailable(Dependency::Accounts, anyhow::anyhow!("refused")),
                503,
                "unavailable",
            ),
            (AuthError::Internal(anyhow::anyhow!("bug")), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let variant = format!("{error:?}");
            assert_eq!(mapped(error), (status, code), "{variant}");
        }
    }

    #[test]
    fn a_refused_token_never_tells_the_client_why() {
        let api = ApiError::from(AuthError::InvalidToken(TokenRejection::Signature));
        assert!(!api.to_string().contains("signature"), "{api}");
    }
}
