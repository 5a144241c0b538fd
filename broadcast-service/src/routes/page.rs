use super::AppState;
use axum::Router;
use axum::response::Html;
use axum::routing::get;

/// Plain HTML and inline JavaScript, compiled into the binary so the page needs no files.
const WATCH_PAGE: &str = include_str!("watch_page.html");

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(|| async { Html(WATCH_PAGE) }))
}
