use super::AppState;
use axum::Router;
use shared::health::{Probes, Readiness};

/// `/health`, `/ready` and `/metrics`, as every service answers them.
pub fn router() -> Router<AppState> {
    shared::health::router()
}

impl Probes for AppState {
    /// Redis answers and NATS is connected; 503 otherwise.
    async fn readiness(&self) -> Readiness {
        let redis_up = self.store.ping().await.is_ok();
        let nats_up = self.nats.connection_state() == async_nats::connection::State::Connected;
        Readiness::new()
            .dependency("redis", redis_up)
            .dependency("nats", nats_up)
    }

    /// Prometheus text.
    async fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
