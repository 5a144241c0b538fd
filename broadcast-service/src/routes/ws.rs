//! The WebSocket endpoints. Each one admits the connection (limits), upgrades it and hands
//! the socket to [`crate::connection::serve`].
//!
//! A bad item id in the URL is not an HTTP 400: browsers cannot read an upgrade failure, so
//! the socket is upgraded, gets an `invalid_item_id` error frame and closes with 1008.
//!
//! Any endpoint may also sign the socket in on the upgrade: `Authorization: Bearer <token>`
//! (non-browser clients) or `?access_token=<token>` (browsers cannot set headers on a
//! WebSocket). The token is checked once the socket is open; a bad one gets an error frame and
//! the socket stays open and public, like a bad `auth` message.

use super::AppState;
use super::upgrade::Upgrade;
use crate::connection::{self, Opening};
use crate::error::{ApiError, InputError};
use crate::identity::PresentedToken;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use shared::ItemId;
use shared::client_address::ClientKey;
use std::net::SocketAddr;
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
    /// A browser's way to sign the socket in on the upgrade.
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// `GET /ws?item_id=X` (one item) or `GET /ws` (subscribe by message).
async fn watch_from_query(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<WatchQuery>,
    upgrade: Upgrade,
) -> Response {
    let client = client_key(&state, peer, &headers);
    let opening = Opening {
        item: query.item_id.map(parse_item_id),
        token: presented_token(&headers, query.access_token.as_deref()),
    };
    accept(state, client, opening, upgrade)
}

/// `GET /ws/items/X`.
async fn watch_from_path(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(item_id): Path<String>,
    Query(query): Query<TokenQuery>,
    upgrade: Upgrade,
) -> Response {
    let client = client_key(&state, peer, &headers);
    let opening = Opening {
        item: Some(parse_item_id(item_id)),
        token: presented_token(&headers, query.access_token.as_deref()),
    };
    accept(state, client, opening, upgrade)
}

fn parse_item_id(raw: String) -> Result<ItemId, ApiError> {
    ItemId::parse(raw)
        .map_err(|e| ApiError::invalid(InputError::InvalidItemId, format!("item id {e}")))
}

/// The token the upgrade request signs in with: an `Authorization` header, which must then be
/// `Bearer <token>` (the scheme in any case), else a non-empty `access_token` query parameter;
/// `None` for an anonymous viewer.
fn presented_token(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<Result<PresentedToken, ApiError>> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, token)| PresentedToken::new(token));
        return Some(token.ok_or(ApiError::InvalidToken));
    }
    query.and_then(PresentedToken::new).map(Ok)
}

/// The client's address unit for the per-address limit: the TCP peer, or behind a trusted
/// proxy (`TRUSTED_PROXIES`) the client it forwarded for (`shared::client_address`).
fn client_key(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> ClientKey {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok());
    ClientKey::of(state.config.trusted_proxies.client(peer.ip(), forwarded))
}

fn accept(state: AppState, client: ClientKey, opening: Opening, upgrade: Upgrade) -> Response {
    let admission = state.limits.try_acquire(client);
    // The connection's task is tracked from the upgrade response on, so shutdown also
    // waits for sockets mid-upgrade.
    let context = Arc::clone(&state.connection_context);
    upgrade.on_upgrade(&state.connections, move |socket, read| {
        connection::serve(socket, read, context, admission, opening)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    fn token(
        result: Option<Result<PresentedToken, ApiError>>,
    ) -> Option<Result<String, &'static str>> {
        result.map(|r| r.map(|t| t.expose().to_owned()).map_err(|e| e.code()))
    }

    #[test]
    fn a_bearer_header_in_any_case_comes_before_the_query() {
        assert_eq!(
            token(presented_token(
                &headers(Some("bearer a.b.c")),
                Some("q.q.q")
            )),
            Some(Ok("a.b.c".to_owned()))
        );
        assert_eq!(
            token(presented_token(&headers(None), Some("q.q.q"))),
            Some(Ok("q.q.q".to_owned()))
        );
    }

    #[test]
    fn no_token_is_an_anonymous_viewer() {
        assert_eq!(token(presented_token(&headers(None), None)), None);
        assert_eq!(token(presented_token(&headers(None), Some(""))), None);
    }

    #[test]
    fn another_scheme_or_an_empty_bearer_is_an_invalid_token() {
        for header in ["Basic YWRhOnB3", "Bearer", "Bearer   "] {
            assert_eq!(
                token(presented_token(&headers(Some(header)), None)),
                Some(Err("invalid_token")),
                "{header}"
            );
        }
    }
}
