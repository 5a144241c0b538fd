//! The web app for bidders, sellers and viewers (`web/app/` in the repository), served at
//! `/app/` from files embedded in the binary, so every gateway image carries the app that
//! matches its API and a newcomer needs no build step or file server.
//!
//! The app is plain ES modules and CSS. It calls the API on this same origin (so no CORS) and
//! the broadcast service's WebSocket named in `/app/config.json` (`WEB_APP_WS_URL`). `GET /`
//! redirects to it. These are not API routes: they stay out of the OpenAPI document (and so
//! out of the fuzzing), like `/health`'s siblings would if they were not probes.

use super::AppState;
use crate::config::WebSocketUrl;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;

/// Where the app lives.
pub const APP_PATH: &str = "/app/";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(to_app))
        .route("/app", get(to_app))
        .route("/app/", get(index))
        .route("/app/config.json", get(config))
        .route("/app/{*path}", get(asset))
}

/// One embedded file of the app.
pub struct Asset {
    /// Its path under `/app/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Embeds `web/app/<path>` (rebuilt whenever the file changes).
macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/app/", $path)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of `web/app/`. A test compares this list with the directory, so a new file that
/// is not listed here fails the build's tests rather than a browser.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("styles.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/session.js", JS),
    asset!("js/live.js", JS),
    asset!("js/money.js", JS),
    asset!("js/time.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/router.js", JS),
    asset!("js/toasts.js", JS),
    asset!("js/notifications.js", JS),
    asset!("js/bid_attempt.js", JS),
    asset!("js/pricing.js", JS),
    asset!("js/views/list.js", JS),
    asset!("js/views/item.js", JS),
    asset!("js/views/account.js", JS),
    asset!("js/views/sell.js", JS),
    asset!("js/views/mine.js", JS),
];

async fn to_app() -> Redirect {
    Redirect::temporary(APP_PATH)
}

async fn index(State(ctx): State<AppState>) -> Response {
    serve(&ctx, "index.html")
}

async fn asset(State(ctx): State<AppState>, Path(path): Path<String>) -> Response {
    serve(&ctx, &path)
}

/// `/app/config.json`: what the app cannot know by itself.
async fn config(State(ctx): State<AppState>) -> Response {
    let options = &ctx.config.web_app;
    let body = json!({
        "ws_url": options.web_app_ws_url.as_str(),
        "currency": options.web_app_currency.as_str(),
    });
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        axum::Json(body),
    )
        .into_response()
}

fn serve(ctx: &AppState, path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return shared::error_body::response(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such file in the web app",
        );
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        // No hashed file names, so the browser revalidates; the files are small.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    let mut response = (headers, asset.body).into_response();
    if asset.content_type == HTML {
        let policy = content_security_policy(&ctx.config.web_app.web_app_ws_url);
        if let Ok(value) = HeaderValue::from_str(&policy) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    response
}

/// Only this origin's scripts, styles and API, plus the configured WebSocket: an injected
/// script or a framing page gets nowhere.
fn content_security_policy(ws: &WebSocketUrl) -> String {
    let socket = ws.origin().map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'self'; connect-src 'self'{socket}; img-src 'self' data:; \
         object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_websocket_origin_or_only_self_for_a_path() {
        let absolute: WebSocketUrl = "ws://127.0.0.1:8081/ws".parse().unwrap();
        assert!(
            content_security_policy(&absolute).contains("connect-src 'self' ws://127.0.0.1:8081;")
        );
        let path: WebSocketUrl = "/ws".parse().unwrap();
        assert_eq!(path.origin(), None);
    }
}
