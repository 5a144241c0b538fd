//! The HTTP API. Each module owns its routes and its `router()`; this one holds the shared
//! state and merges them.

/// The per-address request limit, a middleware.
mod address_limit;
/// Close now, cancel (admin, or the seller before the first bid), extend, relist.
mod admin;
/// `POST /api/v1/auth/{register,login,refresh,logout}`: accounts and sessions.
mod auth;
/// The one mapping of identity failures to API errors.
mod auth_error;
/// `POST /api/v1/items/{id}/bid`.
mod bids;
/// `POST /api/v1/items/{id}/buy`: buy it now.
mod buy_now;
/// The `ClientAddress` extractor: whom a request counts against per address.
mod client_address;
/// The CORS layer for the configured web origins.
mod cors;
/// The OpenAPI schema of every error answer's body, which the handlers' annotations name.
mod error_schema;
/// What `GET /ready` checks and `GET /metrics` shows (the routes are `shared::health`).
mod health;
/// `GET …/bids` and `…/stats` from the PostgreSQL read model.
mod history;
/// The bearer-token extractors: who is calling, an admin, a bidder.
pub mod identity;
/// `POST/GET /api/v1/items`, `GET /api/v1/items/{id}`.
mod items;
/// The JSON body extractor that turns every malformed body into a clear 4xx.
mod json_body;
/// `GET /.well-known/jwks.json`: our public keys.
mod jwks;
/// `GET /api/v1/me`: the caller's own account.
mod me;
/// `GET /api/v1/me/notifications`, `POST …/read`: the caller's private notifications.
mod notifications;
/// `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route here.
pub mod openapi;
/// The terms of one auction round, as item creation and relisting both take them.
mod round_terms;
/// `PUT /api/v1/admin/users/{id}/suspension`: an admin suspends or reinstates an account.
mod suspension;
/// Access tokens already verified, kept until they expire ([`identity`]'s cache).
pub mod verified_tokens;
/// `GET /api/v1/me/watchlist`, `PUT`/`DELETE …/{item_id}`: the items the caller watches.
mod watchlist;
/// `/app/`: the web app's embedded files and its `config.json` (not API routes).
pub mod web_app;

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::identity_provider::IdentityProvider;
use crate::live_publisher::LivePublisher;
use crate::metrics::Metrics;
use crate::price_cache::PriceCache;
use crate::rate_limit::{AuthThrottle, RateLimit, TrustedProxies};
use crate::read_model::ReadModel;
use crate::store::{Store, StoreError};
use crate::suspensions::Suspensions;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use shared::ItemId;
use shared::supervisor::TaskHealth;
use std::sync::Arc;
use verified_tokens::VerifiedTokens;

/// What every handler can reach (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub nats: async_nats::Client,
    pub live: Arc<LivePublisher>,
    pub prices: Arc<PriceCache>,
    /// Bids per user, shared by every instance.
    pub rate_limit: Arc<RateLimit>,
    /// Requests per client address, shared by every instance.
    pub ip_limit: Arc<RateLimit>,
    /// Sign-in and registration attempts per account and per address.
    pub auth_throttle: Arc<AuthThrottle>,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: Arc<TrustedProxies>,
    pub read_model: ReadModel,
    /// Token verification, the published keys and the account flows.
    pub identity: IdentityProvider,
    /// Access tokens already verified, until they expire.
    pub verified_tokens: Arc<VerifiedTokens>,
    /// The accounts suspended from bidding or selling, as this gateway last read them.
    pub suspensions: Arc<Suspensions>,
    pub metrics: Arc<Metrics>,
    /// The auctions' Redis's `maxmemory-policy` as last read, for `/ready`.
    pub redis_eviction: Arc<crate::eviction_policy::RedisEviction>,
    /// Which background tasks are down, for `/ready`.
    pub tasks: TaskHealth,
}

/// Every route, behind (from the outside in) CORS, the per-address limit and the body limit.
/// CORS is outermost so that a 429 or 503 also reaches the page that asked (with `Retry-After`
/// exposed), and a preflight is answered before it counts against anything.
pub fn router(ctx: AppState) -> Router {
    let body_limit = ctx.config.max_body_bytes;
    let routes = Router::new()
        .merge(shared::health::router())
        .merge(items::router())
        .merge(bids::router())
        .merge(buy_now::router())
        .merge(history::router())
        .merge(admin::router())
        .merge(auth::router())
        .merge(me::router())
        .merge(watchlist::router())
        .merge(notifications::router())
        .merge(suspension::router())
        .merge(jwks::router())
        .merge(openapi::router())
        .merge(web_app::router());
    let mut app =
        shared::error_body::with_fallbacks(routes).layer(DefaultBodyLimit::max(body_limit));
    if ctx.ip_limit.is_enabled() {
        app = app.layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            address_limit::limit_per_address,
        ));
    }
    if let Some(cors) = cors::layer(&ctx.config.limits.cors_origins) {
        app = app.layer(cors);
    }
    app.with_state(ctx)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable("redis"),
            // Reads and anything without a side effect: simply unavailable. Writes whose
            // outcome matters map `TimedOut` themselves (see `bids::place_bid`).
            StoreError::TimedOut => ApiError::Unavailable("redis"),
            StoreError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// Parses an item id from the path, as a 400 naming the rule when it is invalid.
fn item_id(raw: String) -> Result<ItemId, ApiError> {
    ItemId::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidItemId, format!("item id {e}")))
}
