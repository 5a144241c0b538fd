//! `GET /api/v1/openapi.json`: the gateway's OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` annotations and the request types' `ToSchema`, so it cannot
//! drift from the code the way a hand-written file would. `make fuzz` (schemathesis) reads it
//! to generate requests and to check every response against it.
//!
//! The routes that live outside this crate (`shared::health`: `/health`, `/ready`,
//! `/metrics`) and the document itself are added by [`Outside`].

use super::AppState;
use super::error_schema::ErrorBody;
use crate::error::ErrorCode;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, Schema};
use utoipa::{Modify, OpenApi};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(document))
}

async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document. Every route the gateway's router serves is listed here; the `openapi` test
/// asks the real router for each path of the document and fails on one it does not serve.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Auction API gateway",
        description = "Bids, items, accounts and history. Every error is `{\"error\", \"message\"}`."
    ),
    paths(
        super::items::list_items,
        super::items::create_item,
        super::items::get_item,
        super::bids::place_bid,
        super::buy_now::buy,
        super::history::item_bids,
        super::history::user_bids,
        super::history::user_stats,
        super::admin::close_now,
        super::admin::cancel,
        super::admin::extend,
        super::admin::relist,
        super::auth::register,
        super::auth::login,
        super::auth::refresh,
        super::auth::logout,
        super::me::me,
        super::watchlist::list,
        super::watchlist::watch,
        super::watchlist::unwatch,
        super::notifications::list,
        super::notifications::mark_read,
        super::suspension::set_suspension,
        super::jwks::jwks,
    ),
    components(schemas(ErrorBody, ErrorCode, crate::read_model::ArchivedBid)),
    modifiers(&Outside)
)]
pub struct ApiDoc;

/// Adds the bearer scheme and the routes this crate does not annotate: the health routes
/// (`shared::health`, shared with the other services) and the document itself.
struct Outside;

impl Modify for Outside {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        let json = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content("application/json", Content::new(None::<RefOr<Schema>>))
                .build()
        };
        let text = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    Content::new(None::<RefOr<Schema>>),
                )
                .build()
        };
        let routes = [
            (
                "/health",
                "Liveness: the process answers",
                json("alive"),
                None,
            ),
            (
                "/ready",
                "Readiness: the gateway can take bids",
                json("ready"),
                Some(json("not ready: a dependency is down")),
            ),
            ("/metrics", "Prometheus metrics", text("the metrics"), None),
            (
                "/api/v1/openapi.json",
                "This document",
                json("the OpenAPI 3.1 document"),
                None,
            ),
        ];
        for (path, summary, ok, unavailable) in routes {
            let mut operation = OperationBuilder::new()
                .summary(Some(summary))
                .response("200", ok);
            if let Some(unavailable) = unavailable {
                operation = operation.response("503", unavailable);
            }
            doc.paths.paths.insert(
                path.into(),
                PathItem::new(HttpMethod::Get, operation.build()),
            );
        }
    }
}
