//! `GET /health`, `GET /ready` and `GET /metrics`, the same in every service.
//!
//! The routes, status codes and JSON shapes are defined once here; each service implements
//! [`Probes`] on its state to supply what only it knows: which dependencies and tasks its
//! readiness depends on, and its Prometheus text.
//!
//! * `/health`: 200 `{"status":"ok"}` while the process serves at all (no dependency checked).
//! * `/ready`: 200 `{"status":"ready", <check>: …}` when every check passes, otherwise 503
//!   `{"status":"not_ready", …}`; a dependency reads `"up"`/`"down"`, a condition is a
//!   boolean, and core tasks that are down are listed under `"tasks_down"` (present only then).
//!   An advisory check is shown with its word but never makes the service unready.
//! * `/metrics`: the service's OpenMetrics text.

use crate::supervisor::TaskHealth;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::future::Future;

/// Content type of `/metrics`, as `prometheus-client` renders it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a service tells the probe routes.
pub trait Probes: Clone + Send + Sync + 'static {
    /// The readiness checks, run on every `/ready`.
    fn readiness(&self) -> impl Future<Output = Readiness> + Send;

    /// The Prometheus text for `/metrics`.
    fn metrics_text(&self) -> impl Future<Output = String> + Send;
}

/// The three probe routes, for a service whose state implements [`Probes`].
pub fn router<S: Probes>() -> Router<S> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready::<S>))
        .route("/metrics", get(metrics::<S>))
}

/// The outcome of a service's readiness checks, answered as the `/ready` response.
#[derive(Debug, Clone)]
#[must_use]
pub struct Readiness {
    ready: bool,
    checks: Map<String, Value>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// Ready until a check says otherwise.
    pub fn new() -> Self {
        Self {
            ready: true,
            checks: Map::new(),
        }
    }

    /// What every service's readiness rests on: NATS connected and every supervised task
    /// running; the service adds its own dependencies.
    pub fn of_service(nats: &async_nats::Client, tasks: &TaskHealth) -> Self {
        Self::new().nats(nats).tasks(tasks)
    }

    /// A dependency, reported as `"up"` or `"down"`.
    pub fn dependency(self, name: &str, up: bool) -> Self {
        self.check(name, up, json!(if up { "up" } else { "down" }))
    }

    /// A condition, reported as a boolean (e.g. `"migrated": true`).
    pub fn condition(self, name: &str, holds: bool) -> Self {
        self.check(name, holds, json!(holds))
    }

    /// Shown as `value` but never required: a dependency only some routes need, which answer
    /// their own 503 while it is missing (the gateway's accounts database), or a fact an
    /// operator should see (the gateway's Redis eviction policy).
    pub fn advisory(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.checks.insert(name.to_owned(), value.into());
        self
    }

    /// NATS, `"up"` while the client is connected (it reconnects by itself otherwise).
    pub fn nats(self, client: &async_nats::Client) -> Self {
        self.dependency("nats", nats_connected(client))
    }

    /// NATS shown (`"up"`/`"down"`) but not required: for a service that keeps working
    /// without it (the gateway's bids go to the Redis outbox and are relayed later).
    pub fn nats_advisory(self, client: &async_nats::Client) -> Self {
        let word = if nats_connected(client) { "up" } else { "down" };
        self.advisory("nats", word)
    }

    /// The service's supervised tasks: any that is down makes it not ready, by name.
    pub fn tasks(mut self, health: &TaskHealth) -> Self {
        let down = health.down();
        if !down.is_empty() {
            self.ready = false;
            self.checks.insert("tasks_down".into(), json!(down));
        }
        self
    }

    fn check(mut self, name: &str, ok: bool, value: Value) -> Self {
        self.ready &= ok;
        self.checks.insert(name.to_owned(), value);
        self
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }
}

fn nats_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        let (status, word) = if self.ready {
            (StatusCode::OK, "ready")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
        };
        let mut body = self.checks;
        body.insert("status".into(), json!(word));
        (status, Json(Value::Object(body))).into_response()
    }
}

/// The process is alive (no dependency is checked).
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready<S: Probes>(State(state): State<S>) -> Readiness {
    state.readiness().await
}

async fn metrics<S: Probes>(State(state): State<S>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics_text().await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(readiness: Readiness) -> (StatusCode, Value) {
        let response = readiness.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Asserts that `readiness` answers `status` with exactly the JSON `expected`.
    async fn assert_answers(readiness: Readiness, status: StatusCode, expected: Value) {
        assert_eq!(body(readiness).await, (status, expected));
    }

    #[tokio::test]
    async fn every_check_passing_is_200_ready() {
        assert_answers(
            Readiness::new()
                .dependency("redis", true)
                .condition("migrated", true)
                .tasks(&TaskHealth::default()),
            StatusCode::OK,
            json!({"status": "ready", "redis": "up", "migrated": true}),
        )
        .await;
    }

    #[tokio::test]
    async fn one_dependency_down_is_503_naming_it() {
        assert_answers(
            Readiness::new()
                .dependency("redis", true)
                .dependency("nats", false),
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not_ready", "redis": "up", "nats": "down"}),
        )
        .await;
    }

    #[tokio::test]
    async fn a_task_down_is_503_listing_it() {
        let supervisor = crate::supervisor::Supervisor::default();
        supervisor.spawn_critical("closer", async {});
        supervisor.failed().await;
        assert_answers(
            Readiness::new()
                .dependency("redis", true)
                .tasks(&supervisor.health()),
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not_ready", "redis": "up", "tasks_down": ["closer"]}),
        )
        .await;
    }

    #[tokio::test]
    async fn an_advisory_check_is_shown_but_never_makes_the_service_unready() {
        assert_answers(
            Readiness::new()
                .dependency("redis", true)
                .advisory("accounts", "down"),
            StatusCode::OK,
            json!({"status": "ready", "redis": "up", "accounts": "down"}),
        )
        .await;
    }

    #[tokio::test]
    async fn a_false_condition_is_503() {
        let (status, json) = body(Readiness::new().condition("migrated", false)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json["migrated"], false);
    }
}
