//! The worker's HTTP surface: `/health`, `/ready` and `/metrics` (the shared probe routes with
//! the worker's checks), and the shared JSON 404 and 405 for anything else.

use crate::consumer::Health;
use crate::metrics::Metrics;
use crate::store::Store;
use axum::Router;
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
    shared::error_body::with_fallbacks(shared::health::router()).with_state(state)
}

impl Probes for AppState {
    /// PostgreSQL answers, the schema is migrated, NATS is connected, the consumer runs and
    /// its last batch was stored (`archiving`: a batch handed back for redelivery means the
    /// archive is stuck, whatever the pings say); 503 otherwise.
    async fn readiness(&self) -> Readiness {
        let postgres = self.store.ping().await.is_ok();
        let migrated = self.health.migrated.load(Ordering::Acquire);
        let archiving = self.health.archiving.load(Ordering::Acquire);
        Readiness::of_service(&self.nats, &self.tasks)
            .dependency("postgres", postgres)
            .condition("migrated", migrated)
            .condition("archiving", archiving)
    }

    async fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
