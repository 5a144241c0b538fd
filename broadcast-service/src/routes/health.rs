use super::AppState;
use shared::health::{Probes, Readiness};

impl Probes for AppState {
    /// Redis answers, NATS is connected and the reconnect resync runs; 503 otherwise.
    async fn readiness(&self) -> Readiness {
        let redis_up = self.store.ping().await.is_ok();
        Readiness::of_service(&self.nats, &self.tasks).dependency("redis", redis_up)
    }

    /// Prometheus text.
    async fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
