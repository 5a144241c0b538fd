use super::AppState;
use crate::accounts_migration::AccountsState;
use shared::health::{Probes, Readiness};

impl Probes for AppState {
    /// "Can take bids": Redis answers and every background task runs; 503 otherwise.
    ///
    /// NATS is shown (`"nats": "up"` or `"down"`) but never makes the gateway unready: an
    /// accepted bid is written to the Redis outbox and relayed once NATS is back, so a load
    /// balancer that pulled every gateway whenever NATS blinked would refuse bids the gateway
    /// can take. Live events are what is late meanwhile (`outbox_lag` shows by how much).
    ///
    /// The accounts database is shown (`"accounts": "up"`, `"down"` or `"not_migrated"`) but
    /// never makes the gateway unready: bids, item reads and token checks do not use it, and a
    /// load balancer that took every gateway out whenever PostgreSQL blinked would stop the
    /// bidding the contract keeps going without it. The auth routes answer their own fast 503
    /// meanwhile. With an external issuer there are no local accounts and nothing is shown.
    ///
    /// Redis's `maxmemory-policy` is shown once read (`"redis_maxmemory_policy"`, and
    /// `"redis_evicts": true` for any policy but `noeviction`) and never makes the gateway
    /// unready either: it is a setting to fix, warned about at start (`eviction_policy`), not
    /// an outage, and pulling every gateway for it would stop bids that still work.
    async fn readiness(&self) -> Readiness {
        let redis_up = self.store.ping().await.is_ok();
        let mut readiness = Readiness::new()
            .tasks(&self.tasks)
            .dependency("redis", redis_up)
            .nats_advisory(&self.nats);
        for (name, value) in self.redis_eviction.ready_fields() {
            readiness = readiness.advisory(name, value);
        }
        let Some(local) = self.identity.local() else {
            return readiness;
        };
        let accounts = match local.status.get() {
            AccountsState::Migrated => match local.sessions.accounts().ping().await {
                Ok(()) => "up",
                Err(_) => "down",
            },
            other => other.as_str(),
        };
        readiness.advisory("accounts", accounts)
    }

    /// Prometheus text; the outbox lag (from Redis) and the sizes of the in-memory maps are
    /// read at scrape time.
    async fn metrics_text(&self) -> String {
        if let Ok(lag) = self.store.outbox_lag().await {
            self.metrics
                .outbox_lag
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        let size = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics
            .live_tracked_items
            .set(size(self.live.tracked_items()));
        self.metrics.prefilter_items.set(size(self.prices.len()));
        self.metrics.render()
    }
}
