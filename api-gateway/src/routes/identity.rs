//! Who is calling, from a verified bearer access token: [`Identity`] (a token is required),
//! `Option<Identity>` (public routes that show more to a signed-in caller), [`Admin`] (the
//! token must carry the `admin` role) and [`Bidder`] (a token, or in `--auth-mode open` none).
//!
//! A handler that takes an `Identity` runs only for a valid token: no `Authorization: Bearer`
//! header is a 401 `unauthorized`; a token that is malformed, forged, expired or not for us is
//! a 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750), so a
//! client knows to refresh. Verification is local (our published keys, or the trusted issuer's
//! cached JWKS): no database, so it works while PostgreSQL is down. A token verified once is
//! remembered until its `exp` ([`super::verified_tokens`]), so a bidder's token costs one
//! signature check, not one per bid.
//!
//! These extractors read only the request's head, so they run before the body is read: an
//! anonymous write is a 401 whatever its body holds.

use super::AppState;
use crate::auth::Role;
use crate::config::AuthMode;
use crate::error::{ApiError, ErrorCode};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
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

    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }

    /// Whether the caller may see what belongs to `user`: it is theirs, or they are an admin.
    pub fn may_see(&self, user: &UserId) -> bool {
        self.user_id == *user || self.is_admin()
    }
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?.ok_or(ApiError::Unauthorized(
            "this endpoint needs an access token: Authorization: Bearer <token>",
        ))?;
        verify(token, ctx).await
    }
}

/// No `Authorization` header is `None`; a header that is not a valid bearer token is refused as
/// for [`Identity`] (a client that sent a token wants to know it is bad).
impl OptionalFromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        match bearer_token(parts)? {
            Some(token) => verify(token, ctx).await.map(Some),
            None => Ok(None),
        }
    }
}

/// A caller with the `admin` role: 401 without a token, 403 `forbidden` for any other account.
#[derive(Debug, Clone)]
pub struct Admin(pub Identity);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        let caller =
            <Identity as FromRequestParts<AppState>>::from_request_parts(parts, ctx).await?;
        if caller.is_admin() {
            Ok(Self(caller))
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                "this action needs an admin account",
            ))
        }
    }
}

/// Who may be placing a bid: the token's account, or, only in `--auth-mode open`, nobody yet
/// (the body's `user_id` decides, see `routes::bids`). In the default `token` mode a bid
/// without a token is a 401 here, before its body is read.
#[derive(Debug, Clone)]
pub struct Bidder(pub Option<Identity>);

impl FromRequestParts<AppState> for Bidder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        match (bearer_token(parts)?, ctx.config.auth.auth_mode) {
            (Some(token), _) => verify(token, ctx).await.map(|caller| Self(Some(caller))),
            (None, AuthMode::Open) => Ok(Self(None)),
            (None, AuthMode::Token) => Err(ApiError::Unauthorized(
                "bidding needs an access token: Authorization: Bearer <token> (sign in at \
                 POST /api/v1/auth/login)",
            )),
        }
    }
}

/// The caller of `token`: from the cache of verified tokens, or verified now (and remembered
/// until its `exp`).
async fn verify(token: &str, ctx: &AppState) -> Result<Identity, ApiError> {
    if let Some(caller) = ctx.verified_tokens.get_now(token) {
        return Ok(caller);
    }
    let claims = ctx.identity.verifier().verify(token).await?;
    let caller = Identity {
        user_id: claims.sub,
        roles: claims.roles,
    };
    ctx.verified_tokens.insert(token, &caller, claims.exp);
    Ok(caller)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 7235);
/// `None` without the header.
///
/// # Errors
/// 401 `unauthorized` when the header is there but is not a bearer token.
fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .map(Some)
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must be Bearer <access token>",
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
        assert_eq!(
            bearer_token(&parts(Some("Bearer abc"))).ok(),
            Some(Some("abc"))
        );
        assert_eq!(
            bearer_token(&parts(Some("bearer abc"))).ok(),
            Some(Some("abc"))
        );
    }

    #[test]
    fn no_header_is_no_token_and_another_scheme_is_unauthorized() {
        assert!(matches!(bearer_token(&parts(None)), Ok(None)));
        for header in ["Basic YWRhOnB3", "Bearer", "Bearer  "] {
            let error = bearer_token(&parts(Some(header))).err();
            assert!(
                matches!(error, Some(ApiError::Unauthorized(_))),
                "{header:?}: {error:?}"
            );
        }
    }

    #[test]
    fn a_caller_may_see_their_own_and_an_admin_everyone_s() {
        let ada = UserId::parse("ada").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let user = Identity {
            user_id: ada.clone(),
            roles: vec![Role::User],
        };
        assert!(user.may_see(&ada) && !user.may_see(&bob));
        let admin = Identity {
            roles: vec![Role::User, Role::Admin],
            ..user
        };
        assert!(admin.may_see(&bob));
    }
}
