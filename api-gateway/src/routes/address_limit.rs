//! The per-address request limit (`IP_RATE_PER_SEC`), as a middleware around every route but
//! the probes: a load balancer's health checks and Prometheus's scrapes come from one address
//! and must never be refused for it.

use super::AppState;
use super::client_address::ClientAddress;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Paths never limited per address.
const PROBES: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Passes the request on, or answers 429 with `Retry-After` when its address is over the limit.
pub async fn limit_per_address(
    State(ctx): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if PROBES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let ClientAddress(client) = ClientAddress::of(&parts, &ctx);
    if let Err(wait) = ctx.ip_limit.check(&client) {
        return ApiError::rate_limited(wait).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
