//! `/health`, `/ready` and `/metrics`: the worker serves nothing else over HTTP.

use crate::consumer::Health;
use crate::metrics::Metrics;
use crate::store::Store;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Clone)]
pub struct HttpContext {
    pub store: Store,
    pub nats: async_nats::Client,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

pub fn router(ctx: HttpContext) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ctx)
}

/// PostgreSQL answers, the schema is migrated and NATS is connected; 503 otherwise.
async fn ready(State(ctx): State<HttpContext>) -> impl IntoResponse {
    let postgres = ctx.store.ping().await.is_ok();
    let migrated = ctx.health.migrated.load(Ordering::Acquire);
    let nats = ctx.nats.connection_state() == async_nats::connection::State::Connected;
    let ok = postgres && migrated && nats;
    let word = |up: bool| if up { "up" } else { "down" };
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": if ok { "ready" } else { "not_ready" },
            "postgres": word(postgres),
            "migrated": migrated,
            "nats": word(nats),
        })),
    )
}

async fn metrics(State(ctx): State<HttpContext>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.metrics.render(),
    )
}
