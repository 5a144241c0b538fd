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
use crate::error::ApiError;
use crate::hub::Hub;
use crate::limits::ConnectionLimits;
use crate::metrics::Metrics;
use crate::store::Store;
use axum::Router;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every handler and connection can reach (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub store: Store,
    pub nats: async_nats::Client,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<ConnectionLimits>,
    /// Cancelled on SIGINT/SIGTERM: every socket closes with 1001.
    pub shutdown: CancellationToken,
    /// Owns every connection's task, so shutdown can wait for the close frames to go out.
    pub connections: TaskTracker,
    /// Source of connection ids (rooms key their viewers by them).
    pub next_connection_id: Arc<AtomicU64>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(shared::health::router())
        .merge(page::router())
        .merge(ws::router())
        .fallback(|| async { ApiError::invalid("not_found", "no such endpoint") })
        .with_state(state)
}
