//! The WebSocket endpoints. Each one admits the connection (limits), upgrades it and hands
//! the socket to [`crate::connection::serve`].
//!
//! A bad item id in the URL is not an HTTP 400: browsers cannot read an upgrade failure, so
//! the socket is upgraded, gets an `invalid_item_id` error frame and closes with 1008.

use super::AppState;
use super::upgrade::Upgrade;
use crate::connection;
use crate::error::{ApiError, InputError};
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use shared::ItemId;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws", get(watch_from_query))
        .route("/ws/items/{item_id}", get(watch_from_path))
}

#[derive(Deserialize)]
struct WatchQuery {
    /// The original system's `/ws?item_id=X`; absent for a multi-item connection.
    item_id: Option<String>,
}

/// `GET /ws?item_id=X` (one item) or `GET /ws` (subscribe by message).
async fn watch_from_query(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<WatchQuery>,
    upgrade: Upgrade,
) -> Response {
    let ip = client_ip(&state, peer, &headers);
    accept(state, ip, query.item_id.map(parse_item_id), upgrade)
}

/// `GET /ws/items/X`.
async fn watch_from_path(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(item_id): Path<String>,
    upgrade: Upgrade,
) -> Response {
    let ip = client_ip(&state, peer, &headers);
    accept(state, ip, Some(parse_item_id(item_id)), upgrade)
}

fn parse_item_id(raw: String) -> Result<ItemId, ApiError> {
    ItemId::parse(raw)
        .map_err(|e| ApiError::invalid(InputError::InvalidItemId, format!("item id {e}")))
}

/// The client's address: the TCP peer, or behind a trusted load balancer the address it
/// appended to `X-Forwarded-For` (the last entry; earlier ones are client-controlled).
fn client_ip(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if state.config.trust_forwarded_for
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .next_back()
            .and_then(|last| last.trim().parse().ok())
    {
        return ip;
    }
    peer.ip()
}

fn accept(
    state: AppState,
    ip: IpAddr,
    initial: Option<Result<ItemId, ApiError>>,
    upgrade: Upgrade,
) -> Response {
    let admission = state.limits.try_acquire(ip);
    // The connection's task is tracked from the upgrade response on, so shutdown also
    // waits for sockets mid-upgrade.
    let context = Arc::clone(&state.connection_context);
    upgrade.on_upgrade(&state.connections, move |socket, read| {
        connection::serve(socket, read, context, admission, initial)
    })
}
