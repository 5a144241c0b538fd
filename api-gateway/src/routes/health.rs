use super::AppState;
use shared::health::{Probes, Readiness};

impl Probes for AppState {
    /// Redis answers, NATS is connected and every background task runs; 503 otherwise.
    async fn readiness(&self) -> Readiness {
        let redis_up = self.store.ping().await.is_ok();
        Readiness::of_service(&self.nats, &self.tasks).dependency("redis", redis_up)
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
