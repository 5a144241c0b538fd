//! CORS for the web origins of `CORS_ORIGINS` ([`CorsOrigins`]) (tower-http's `CorsLayer`): a page served from one
//! of them may call the API with a bearer token, a JSON body and an `Idempotency-Key`, and read
//! `Retry-After` on a 429 or 503. With no origins configured there is no layer at all, so no
//! CORS header is ever sent and browsers keep other sites' pages out, as without CORS.
//!
//! Credentials (cookies) are not allowed: the API authenticates with bearer tokens only.

use crate::config::CorsOrigins;
use axum::http::{HeaderName, Method, header};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The layer for `origins`; `None` when there are none.
pub fn layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    if origins.list().is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.list().to_vec()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origins_means_no_layer() {
        assert!(layer(&CorsOrigins::default()).is_none());
    }
}
