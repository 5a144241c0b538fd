//! `GET /.well-known/jwks.json`: the public keys that verify this gateway's access tokens, so
//! every gateway and broadcast instance (or any other service) verifies locally. Empty `keys`
//! when the deployment trusts an external issuer instead.

use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

/// How long a verifier may cache the set (seconds). A key rotation must publish the new key
/// this long before signing with it, so no cache misses a key a live token names.
const MAX_AGE_SECS: u32 = 300;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "the public keys of this gateway's access tokens", body = serde_json::Value))
)]
async fn jwks(State(ctx): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={MAX_AGE_SECS}"),
        )],
        Json(ctx.identity.published_keys().clone()),
    )
}
