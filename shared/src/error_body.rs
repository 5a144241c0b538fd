//! The error body every service answers, `{"error": code, "message": text}`, written here
//! once, and the two answers every service gives a request that no route takes: 404
//! `not_found` for an unknown path, and 405 `method_not_allowed` for a known path asked with
//! a method it does not serve (axum's own answers have an empty body, which clients that
//! always parse the error body cannot read).

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `status` with the body `{"error": code, "message": message}`.
pub fn response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message })),
    )
        .into_response()
}

/// `router` with the JSON 404 and 405. Call it after every route is added: the 405 applies to
/// the routes registered before it. axum still sets the `Allow` header on the 405.
pub fn with_fallbacks<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> Response {
    response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed(method: Method) -> Response {
    response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this endpoint does not answer {method}; the Allow header lists what it does"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt;

    async fn answer(method: Method, path: &str) -> (StatusCode, Option<String>, Value) {
        let router: Router = with_fallbacks(Router::new().route("/health", get(|| async {})));
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let allow = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, allow, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn an_unknown_path_is_a_json_404() {
        let (status, _, body) = answer(Method::GET, "/nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"error": "not_found", "message": "no such endpoint"})
        );
    }

    #[tokio::test]
    async fn a_wrong_method_on_a_known_path_is_a_json_405_with_allow() {
        let (status, allow, body) = answer(Method::POST, "/health").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "method_not_allowed");
        assert!(body["message"].as_str().unwrap().contains("POST"), "{body}");
        assert!(allow.unwrap_or_default().contains("GET"));
    }
}
