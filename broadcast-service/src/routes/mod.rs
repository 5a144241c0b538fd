//! The HTTP surface. Each module owns its routes and its `router()`; this one holds the
//! shared state and merges them.

/// What `GET /ready` checks and `GET /metrics` shows (the routes are `shared::health`).
mod health;
/// `GET /`: a small page to watch an item live.
mod page;
/// The WebSocket handshake, keeping the raw socket for the service.
mod upgrade;
/// `GET /ws`, `GET /ws?item_id=`, `GET /ws/items/{id}`: the WebSocket upgrade.
mod ws;

use crate::config::Config;
use crate::connection::ConnectionContext;
use crate::limits::ConnectionLimits;
use crate::metrics::Metrics;
use crate::store::Store;
use axum::Router;
use shared::supervisor::TaskHealth;
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// What every handler can reach (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub nats: async_nats::Client,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<ConnectionLimits>,
    /// What each upgraded socket is handed: the hub, metrics, settings and shutdown signal.
    pub connection_context: Arc<ConnectionContext>,
    /// Owns every connection's task, so shutdown can wait for the close frames to go out.
    pub connections: TaskTracker,
    /// Which supervised tasks are down, for `/ready`.
    pub tasks: TaskHealth,
}

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(shared::health::router())
        .merge(page::router())
        .merge(ws::router());
    shared::error_body::with_fallbacks(routes).with_state(state)
}
