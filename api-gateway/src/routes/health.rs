use super::AppState;
use axum::Router;
use shared::health::{Probes, Readiness};

/// `/health`, `/ready` and `/metrics`, as every service answers them.
pub fn router() -> Router<AppState> {
    shared::health::router()
}

impl Probes for AppState {
    /// Redis answers, NATS is connected and every background task runs; 503 otherwise.
    async fn readiness(&self) -> Readiness {
        let redis_up = self.store.ping().await.is_ok();
        let nats_up = self.nats.connection_state() == async_nats::connection::State::Connected;
        Readiness::new()
            .dependency("redis", redis_up)
            .dependency("nats", nats_up)
            .tasks(&self.tasks)
    }

    /// Prometheus text; the outbox lag is read from Redis at scrape time.
    async fn metrics_text(&self) -> String {
        if let Ok(lag) = self.store.outbox_lag().await {
            self.metrics
                .outbox_lag
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        self.metrics.render()
    }
}
