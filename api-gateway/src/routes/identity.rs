//! [`Identity`]: who is calling, from a verified bearer access token.
//!
//! A handler that takes an `Identity` runs only for a valid token: no `Authorization: Bearer`
//! header is a 401 `unauthorized`; a token that is malformed, forged, expired or not for us is
//! a 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750), so a
//! client knows to refresh. Verification is local (our published keys, or the trusted issuer's
//! cached JWKS): no database, so it works while PostgreSQL is down.

use super::AppState;
use crate::auth::Role;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use shared::UserId;

/// The caller, as its access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`: the bidder of a bid, the seller of an auction.
    pub user_id: UserId,
    pub roles: Vec<Role>,
}

impl Identity {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let claims = ctx.identity.verifier().verify(token).await?;
        Ok(Self {
            user_id: claims.sub,
            roles: claims.roles,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 7235).
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::Unauthorized(
            "this endpoint needs an access token: Authorization: Bearer <token>",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(authorization: Option<&str>) -> Parts {
        let mut request = Request::builder();
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.body(()).expect("a valid request").into_parts().0
    }

    #[test]
    fn the_token_follows_the_bearer_scheme_in_any_case() {
        assert_eq!(bearer_token(&parts(Some("Bearer abc"))).ok(), Some("abc"));
        assert_eq!(bearer_token(&parts(Some("bearer abc"))).ok(), Some("abc"));
    }

    #[test]
    fn no_header_or_another_scheme_is_unauthorized() {
        for header in [None, Some("Basic YWRhOnB3"), Some("Bearer")] {
            let error = bearer_token(&parts(header)).err();
            assert!(
                matches!(error, Some(ApiError::Unauthorized(_))),
                "{header:?}: {error:?}"
            );
        }
    }
}
