use super::AppState;
use shared::health::{Probes, Readiness};

impl Probes for AppState {
    /// Redis answers and NATS is connected; 503 otherwise.
    async fn readiness(&self) -> Readiness {
        let redis_up = self.store.ping().await.is_ok();
        Readiness::new()
            .dependency("redis", redis_up)
            .nats(&self.nats)
    }

    /// Prometheus text.
    async fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
