//! The worker's HTTP surface: `/health`, `/ready` and `/metrics` (the shared probe routes with
//! the worker's checks), and a JSON 404 for anything else.

use crate::consumer::Health;
use crate::metrics::Metrics;
use crate::store::Store;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde_json::json;
use shared::health::{Probes, Readiness};
use shared::supervisor::TaskHealth;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What every handler can reach (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub nats: async_nats::Client,
    pub metrics: Arc<Metrics>,
    /// What the consumer reports (the schema is migrated).
    pub health: Arc<Health>,
    /// Which supervised tasks are down.
    pub tasks: TaskHealth,
}

pub fn router(state: AppState) -> Router {
    shared::health::router()
        .fallback(not_found)
        .with_state(state)
}

/// Every other path: 404 with the error body every service uses.
async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "not_found", "message": "no such endpoint" })),
    )
}

impl Probes for AppState {
    /// PostgreSQL answers, the schema is migrated, NATS is connected and the consumer runs;
    /// 503 otherwise.
    async fn readiness(&self) -> Readiness {
        let postgres = self.store.ping().await.is_ok();
        let migrated = self.health.migrated.load(Ordering::Acquire);
        Readiness::new()
            .dependency("postgres", postgres)
            .condition("migrated", migrated)
            .nats(&self.nats)
            .tasks(&self.tasks)
    }

    async fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
