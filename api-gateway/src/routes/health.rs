use super::ApiContext;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// The process is alive (no dependency is checked).
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Redis answers and NATS is connected; 503 otherwise.
async fn ready(State(ctx): State<ApiContext>) -> impl IntoResponse {
    let redis_up = ctx.store.ping().await.is_ok();
    let nats_up = ctx.nats.connection_state() == async_nats::connection::State::Connected;
    let status = if redis_up && nats_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |up: bool| if up { "up" } else { "down" };
    (
        status,
        Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
            "redis": word(redis_up),
            "nats": word(nats_up),
        })),
    )
}

/// Prometheus text; the outbox lag is read from Redis at scrape time.
async fn metrics(State(ctx): State<ApiContext>) -> impl IntoResponse {
    if let Ok(lag) = ctx.store.outbox_lag().await {
        ctx.metrics
            .outbox_lag
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.metrics.render(),
    )
}
