//! Accounts and sessions over HTTP: `POST /api/v1/auth/register`, `…/login`, `…/refresh` and
//! `…/logout`. Each handler extracts the body, calls one [`Sessions`] flow, and maps the
//! result; the rules (login, password, rotation, reuse) live in `crate::auth`.
//!
//! A successful register, login or refresh answers OAuth-style tokens ([`Tokens`]): a short
//! access token for `Authorization: Bearer`, and an opaque refresh token that is good for one
//! exchange. Until the accounts schema is migrated every route here answers 503 at once; with an
//! external issuer they answer 404 (accounts live there).
//!
//! Sign-in and registration go through the throttle (`crate::rate_limit::auth_throttle`) first:
//! a refused attempt is a 429 with `Retry-After` before any password is hashed or account read,
//! the same for every login, known or not.

use super::AppState;
use super::client_address::ClientAddress;
use super::error_schema as refused;
use super::json_body::JsonBody;
use crate::auth::error::AuthError;
use crate::auth::login::LoginError;
use crate::auth::{Account, Session, Sessions};
use crate::error::{ApiError, ErrorCode};
use crate::rate_limit::Throttled;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
}

/// The account flows, when this gateway keeps accounts and their schema is ready.
///
/// # Errors
/// 404 when an external issuer keeps the accounts; 503 until the schema is migrated.
pub(super) fn sessions(ctx: &AppState) -> Result<&Sessions, ApiError> {
    let local = ctx.identity.local().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "accounts are kept by the trusted external issuer: sign in there",
        )
    })?;
    if !local.status.is_migrated() {
        return Err(ApiError::Unavailable("the accounts database"));
    }
    Ok(&local.sessions)
}

/// A new account: an email or a username to sign in with, the name others see, a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Registration {
    email: Option<String>,
    username: Option<String>,
    display_name: String,
    password: String,
}

impl Registration {
    /// The login text, which must be of the kind its field names (an email has an `@`, a
    /// username never does), and only one of them.
    fn login(&self) -> Result<&str, ApiError> {
        match (self.email.as_deref(), self.username.as_deref()) {
            (Some(email), None) if email.contains('@') => Ok(email),
            (Some(_), None) => Err(AuthError::InvalidLogin(LoginError::MalformedEmail).into()),
            (None, Some(username)) if !username.contains('@') => Ok(username),
            (None, Some(_)) => Err(AuthError::InvalidLogin(LoginError::UsernameCharacter).into()),
            (Some(_), Some(_)) | (None, None) => Err(ApiError::new(
                ErrorCode::InvalidLogin,
                "give either an email or a username to sign in with",
            )),
        }
    }
}

/// A sign-in with an email or a username (`login`, or either field name) and the password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    #[serde(alias = "email", alias = "username")]
    login: String,
    password: String,
}

/// A refresh token presented to exchange it or to sign out.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Presented {
    refresh_token: String,
}

/// What register, login and refresh answer (the OAuth 2.0 token response's fields, and the
/// account).
#[derive(Debug, Serialize)]
pub struct Tokens {
    access_token: String,
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Good for one refresh; the answer to it carries the next one.
    refresh_token: String,
    /// Seconds an unused refresh token lives.
    refresh_expires_in: u64,
    user: Account,
}

impl Tokens {
    fn new(session: Session, refresh_ttl_secs: u64) -> Json<Self> {
        Json(Self {
            access_token: session.access_token.token,
            token_type: "Bearer",
            expires_in: session.access_token.expires_in,
            refresh_token: session.refresh_token.expose().to_owned(),
            refresh_expires_in: refresh_ttl_secs,
            user: session.account,
        })
    }
}

/// 201 with tokens for the new account; 400 naming the broken rule; 409 `login_taken`; 429
/// when the login or the address made too many attempts.
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth", request_body = Registration,
    responses((status = 201, description = "the account and its first tokens", body = serde_json::Value), refused::BadInput, refused::Conflict, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn register(
    State(ctx): State<AppState>,
    ClientAddress(client): ClientAddress,
    JsonBody(body): JsonBody<Registration>,
) -> Result<(StatusCode, Json<Tokens>), ApiError> {
    let sessions = sessions(&ctx)?;
    ctx.auth_throttle
        .before_register(body.login().ok(), &client)
        .await
        .map_err(throttled)?;
    let session = sessions
        .register(body.login()?, &body.display_name, &body.password)
        .await?;
    tracing::Span::current().record("user_id", session.account.id.as_str());
    Ok((
        StatusCode::CREATED,
        Tokens::new(session, ctx.config.auth.refresh_token_ttl_secs),
    ))
}

/// 200 with tokens; 401 `invalid_credentials` for a wrong password and an unknown login alike;
/// 429 for both alike once the login failed too often or the address tried too often.
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, description = "fresh tokens", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn login(
    State(ctx): State<AppState>,
    ClientAddress(client): ClientAddress,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<Tokens>, ApiError> {
    let sessions = sessions(&ctx)?;
    let throttle = &ctx.auth_throttle;
    throttle
        .before_sign_in(&body.login, &client)
        .await
        .map_err(throttled)?;
    let session = match sessions.sign_in(&body.login, &body.password).await {
        Ok(session) => session,
        Err(AuthError::InvalidCredentials) => {
            throttle.sign_in_failed(&body.login).await;
            return Err(AuthError::InvalidCredentials.into());
        }
        Err(other) => return Err(other.into()),
    };
    throttle.sign_in_succeeded(&body.login).await;
    tracing::Span::current().record("user_id", session.account.id.as_str());
    Ok(Tokens::new(session, ctx.config.auth.refresh_token_ttl_secs))
}

fn throttled(refused: Throttled) -> ApiError {
    ApiError::rate_limited(refused.retry_after)
}

/// 200 with a new access token and the next refresh token; 401 `refresh_token_reused` (and
/// the whole sign-in revoked) when the token was exchanged before.
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth", request_body = Presented,
    responses((status = 200, description = "rotated tokens", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn refresh(
    State(ctx): State<AppState>,
    JsonBody(body): JsonBody<Presented>,
) -> Result<Json<Tokens>, ApiError> {
    let session = sessions(&ctx)?.refresh(&body.refresh_token).await?;
    tracing::Span::current().record("user_id", session.account.id.as_str());
    Ok(Tokens::new(session, ctx.config.auth.refresh_token_ttl_secs))
}

/// 204: the sign-in the token belongs to is over (also when it already was, or never existed).
/// Access tokens already issued stay valid until they expire.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth", request_body = Presented,
    responses((status = 204, description = "the session ended"), refused::BadInput, refused::Unauthenticated, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn logout(
    State(ctx): State<AppState>,
    JsonBody(body): JsonBody<Presented>,
) -> Result<StatusCode, ApiError> {
    sessions(&ctx)?.sign_out(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
