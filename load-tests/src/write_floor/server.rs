//! `write-floor-server`: the least a server must do to take a bid here, run under the same
//! load as the gateway so the gateway's rate reads as a fraction of it (`bench-write-floor`).
//!
//! It is the gateway's HTTP stack (`shared::http_server`'s accept loop, axum routes), the
//! gateway's token check (the same `TokenVerifier` against the run's key and the same cache of
//! verified tokens: bids carry tokens in production, so the floor verifies them too), a JSON parse of the body (`Cents` from the
//! literal's digits, as the gateway parses it) and one `EVALSHA` of a compare-and-set script
//! on the same Redis through the same `RedisHandle`. Nothing else: no idempotency, no outbox,
//! no live publish, no relay, no rate limiter, no metrics, no price pre-filter. Its answers
//! have the gateway's shape (`success`, `code`, `seq`, `current_bid_cents`), so the harness's
//! bidders and its no-lost-update check read both alike.

use anyhow::Context;
use api_gateway::auth::SigningKey;
use api_gateway::config::SigningKeyPem;
use api_gateway::routes::identity::Identity;
use api_gateway::routes::verified_tokens::{VerifiedTokens, now_secs};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use shared::Cents;
use shared::access_token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_LEEWAY};
use shared::access_token::{KeySet, TokenRules, TokenVerifier};
use shared::error_body::response;
use shared::http_server::serve_connections;
use shared::redis_connection::RedisHandle;
use shared::service_options::HttpServerOptions;
use shared::service_options::RedisOptions;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The compare-and-set every bid runs (see the script's header).
static PLACE_BID: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("place_bid_floor.lua")));

/// The gateway's default deadline for a Redis call.
const REDIS_DEADLINE: Duration = Duration::from_millis(500);

/// Flags of `load-tests write-floor-server` (the harness sets them through the environment,
/// as it does the gateway's).
#[derive(Debug, Clone, clap::Args)]
pub struct WriteFloorServerArgs {
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8090")]
    pub listen_addr: SocketAddr,
    #[command(flatten)]
    pub redis: RedisOptions,
    #[command(flatten)]
    pub http: HttpServerOptions,
    /// The run's Ed25519 signing key (PKCS#8 PEM), whose public half verifies the bids'
    /// tokens, as the gateway's `JWT_SIGNING_KEY` does.
    #[arg(long, env = "JWT_SIGNING_KEY", hide_env_values = true)]
    pub jwt_signing_key: SigningKeyPem,
}

#[derive(Clone)]
struct Floor {
    redis: RedisHandle,
    verifier: Arc<TokenVerifier>,
    /// The gateway's cache of verified tokens: a bidder sends one token with every bid, and
    /// the gateway verifies it once, so the floor does too.
    verified: Arc<VerifiedTokens>,
    key_prefix: Arc<str>,
}

impl Floor {
    fn item_key(&self, id: &str) -> String {
        format!("{}floor:item:{id}", self.key_prefix)
    }
}

/// Serves the floor until SIGINT/SIGTERM.
///
/// # Errors
/// A bad key or Redis URL, or the address cannot be bound.
pub async fn run(args: &WriteFloorServerArgs) -> anyhow::Result<()> {
    let key = SigningKey::from_pem(args.jwt_signing_key.expose())
        .map_err(anyhow::Error::new)
        .context("JWT_SIGNING_KEY")?;
    let rules = TokenRules {
        issuer: DEFAULT_ISSUER.to_owned(),
        audience: DEFAULT_AUDIENCE.to_owned(),
        leeway: DEFAULT_LEEWAY,
    };
    let floor = Floor {
        redis: RedisHandle::connect_lazily(&args.redis, REDIS_DEADLINE).context("REDIS_URL")?,
        verifier: Arc::new(TokenVerifier::local(rules, KeySet::of_signing_keys([&key]))),
        verified: Arc::new(VerifiedTokens::default()),
        key_prefix: args.redis.key_prefix.as_str().into(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen_addr)
        .await
        .with_context(|| format!("binding {}", args.listen_addr))?;
    let shutdown = CancellationToken::new();
    let signal = tokio::spawn(shared::shutdown::cancel_on_signal(shutdown.clone()));
    tracing::info!(addr = %args.listen_addr, "write floor listening");
    serve_connections(
        listener,
        router(floor),
        shutdown,
        Duration::from_secs(2),
        &args.http,
    )
    .await;
    signal.abort();
    Ok(())
}

fn router(floor: Floor) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(|| async { "" }))
        .route("/api/v1/items", post(create_item))
        .route("/api/v1/items/{id}", get(item))
        .route("/api/v1/items/{id}/bid", post(bid))
        .with_state(floor)
}

async fn ready(State(floor): State<Floor>) -> StatusCode {
    match floor.redis.ping().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A refusal (status, code, message), answered with the gateway's error body.
struct Refused(StatusCode, &'static str, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        response(self.0, self.1, &self.2)
    }
}

/// The bearer's user id, verified as the gateway verifies it.
async fn bearer(floor: &Floor, headers: &HeaderMap) -> Result<String, Refused> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Refused(StatusCode::UNAUTHORIZED, "unauthorized", "no token".into()))?;
    if let Some(known) = floor.verified.get(token, now_secs()) {
        return Ok(known.user_id.as_str().to_owned());
    }
    let claims = floor
        .verifier
        .verify(token)
        .await
        .map_err(|e| Refused(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()))?;
    let identity = Identity {
        user_id: claims.sub,
        roles: claims.roles,
    };
    floor.verified.insert(token, &identity, claims.exp);
    Ok(identity.user_id.as_str().to_owned())
}

/// The body as JSON, or the gateway's 400.
fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Refused> {
    serde_json::from_slice(body)
        .map_err(|e| Refused(StatusCode::BAD_REQUEST, "invalid_input", e.to_string()))
}

/// Redis unreachable or late: the gateway's 503.
fn unavailable(e: impl std::fmt::Display) -> Refused {
    Refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        e.to_string(),
    )
}

fn not_found() -> Refused {
    Refused(
        StatusCode::NOT_FOUND,
        "item_not_found",
        "no such item".into(),
    )
}

#[derive(Deserialize)]
struct NewItem {
    id: String,
    starting_price: Cents,
    min_increment: Cents,
}

async fn create_item(
    State(floor): State<Floor>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    bearer(&floor, &headers).await?;
    let item: NewItem = parse(&body)?;
    let mut set = redis::cmd("HSET");
    set.arg(floor.item_key(&item.id));
    set.arg((
        "starting",
        item.starting_price.get(),
        "increment",
        item.min_increment.get(),
    ));
    set.arg(("current", 0, "seq", 0));
    floor.redis.query::<i64>(&set).await.map_err(unavailable)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": item.id }))).into_response())
}

async fn item(State(floor): State<Floor>, Path(id): Path<String>) -> Result<Response, Refused> {
    let mut read = redis::cmd("HMGET");
    read.arg(floor.item_key(&id)).arg("seq").arg("current");
    let reply = floor.redis.query::<(Option<u64>, Option<i64>)>(&read).await;
    let (seq, current) = reply.map_err(unavailable)?;
    let seq = seq.ok_or_else(not_found)?;
    let current_bid_cents = current.unwrap_or(0);
    let state =
        json!({ "id": id, "seq": seq, "bid_count": seq, "current_bid_cents": current_bid_cents });
    Ok(Json(state).into_response())
}

#[derive(Deserialize)]
struct BidBody {
    user_id: String,
    amount: Cents,
}

async fn bid(
    State(floor): State<Floor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let bidder = bearer(&floor, &headers).await?;
    let bid: BidBody = parse(&body)?;
    if bid.user_id != bidder {
        return Err(Refused(
            StatusCode::FORBIDDEN,
            "user_id_mismatch",
            "not your token".into(),
        ));
    }
    let key = floor.item_key(&id);
    let mut invocation = PLACE_BID.key(&key);
    invocation.arg(bid.amount.get()).arg(&bid.user_id);
    let reply = floor.redis.invoke::<(i64, u64, i64)>(&invocation).await;
    let (outcome, seq, current) = reply.map_err(unavailable)?;
    let code = match outcome {
        1 => "accepted",
        0 => "bid_too_low",
        _ => return Err(not_found()),
    };
    Ok(Json(json!({
        "success": outcome == 1,
        "code": code,
        "seq": seq,
        "current_bid_cents": current,
        "your_bid_cents": bid.amount.get(),
        "is_highest": outcome == 1,
    }))
    .into_response())
}
