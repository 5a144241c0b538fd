use super::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn router() -> Router<AppState> {
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
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let redis_up = state.store.ping().await.is_ok();
    let nats_up = state.nats.connection_state() == async_nats::connection::State::Connected;
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

/// Prometheus text.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
