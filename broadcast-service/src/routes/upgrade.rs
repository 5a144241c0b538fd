//! The WebSocket handshake (RFC 6455 §4.2), done here rather than by axum's `WebSocketUpgrade`
//! because the service needs the raw `TcpStream` afterwards: rooms write each event straight
//! to every viewer's socket with a non-blocking `try_write`, which a `WebSocket` wrapped in
//! layers of adapters does not offer. The accept loop in `shared::http_server` serves each
//! connection with hyper's HTTP/1 directly, so the upgraded connection can be unwrapped back
//! into the `TcpStream` it was accepted as.

use crate::error::{ApiError, InputError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio::net::TcpStream;

/// A valid WebSocket upgrade request, ready to be answered with 101.
pub struct Upgrade {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let key = handshake_key(&parts.headers)?;
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
            ApiError::invalid(
                InputError::UpgradeRequired,
                "this connection cannot be upgraded to a WebSocket",
            )
        })?;
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let accept = HeaderValue::from_str(&accept)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("accept key: {e}")))?;
        Ok(Self { accept, on_upgrade })
    }
}

impl Upgrade {
    /// Answers 101 and, once hyper hands the connection over, runs `serve` with the socket
    /// and whatever the client already sent after its handshake. Those bytes are copied out:
    /// hyper's leftover buffer is a view of its whole read buffer, which would otherwise stay
    /// allocated for the life of the connection.
    pub fn on_upgrade<F, Fut>(self, tracker: &tokio_util::task::TaskTracker, serve: F) -> Response
    where
        F: FnOnce(TcpStream, Vec<u8>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tracker.spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade did not complete");
                    return;
                }
            };
            match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => {
                    // Moved out and dropped here, before `serve` runs: a field left in
                    // `parts` would live until the end of this arm, that is, as long as the
                    // connection (hyper's whole read buffer, 8 KiB, per idle viewer).
                    let (io, read_buf) = (parts.io, parts.read_buf);
                    let early = read_buf.to_vec();
                    drop(read_buf);
                    serve(io.into_inner(), early).await;
                }
                Err(_) => tracing::error!("upgraded connection is not a TCP stream"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, self.accept),
            ],
        )
            .into_response()
    }
}

/// The client's `Sec-WebSocket-Key`, once the headers show a WebSocket version 13 upgrade.
fn handshake_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|part| part.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(ApiError::invalid(
            InputError::UpgradeRequired,
            "this endpoint speaks WebSocket: send Connection: Upgrade and Upgrade: websocket",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version != "13")
    {
        return Err(ApiError::invalid(
            InputError::UnsupportedVersion,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|key| key.to_str().ok())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| ApiError::invalid(InputError::MissingKey, "Sec-WebSocket-Key is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn a_browser_upgrade_yields_its_key() {
        let headers = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(handshake_key(&headers).unwrap(), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn a_plain_get_or_an_old_version_is_refused_with_a_code() {
        let plain = headers(&[("accept", "text/html")]);
        assert_eq!(
            handshake_key(&plain).unwrap_err().code(),
            "websocket_upgrade_required"
        );
        let old = headers(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "x"),
        ]);
        assert_eq!(
            handshake_key(&old).unwrap_err().code(),
            "unsupported_websocket_version"
        );
    }
}
