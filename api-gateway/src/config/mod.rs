//! The gateway's configuration: one clap struct, every field a flag with an env fallback.
//! The options every service shares are `shared::service_options`, flattened in; what stays
//! here is the gateway's own, including the options whose default is the gateway's
//! (`LISTEN_ADDR`, `INSTANCE_ID`, and the two deadlines), [`AuthOptions`]: who signs the
//! access tokens (this gateway, with its key) or who is trusted to (an external OIDC issuer),
//! and whether bids trust the body's `user_id` ([`AuthMode`]), and [`LimitOptions`]: the limits
//! shared across instances, the sign-in throttle, which proxies are believed about client
//! addresses, and the web origins allowed by CORS.
//!
//! [`Cli`] is what `main` parses: the same options, plus the one-off subcommands
//! ([`Command::PromoteAdmin`]) an operator runs instead of the server.

mod cors_origins;
mod web_app;

pub use cors_origins::CorsOrigins;
pub use web_app::{Currency, WebSocketUrl};

use crate::auth::password_hasher::PasswordCost;
use crate::auth::sessions::DEFAULT_REFRESH_TTL;
use crate::rate_limit::TrustedProxies;
use clap::{Parser, ValueEnum};
use shared::redact::SecretUrl;
use shared::service_options::{
    ArchiveOptions, CommonOptions, DatabaseOptions, RedisOptions, positive_u64,
};
use shared::supervisor::TaskFaults;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Stateless HTTP API of the auction platform.
#[derive(Clone, Parser)]
#[command(name = "api-gateway", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub common: CommonOptions,

    #[command(flatten)]
    pub redis: RedisOptions,

    // The read model for the history endpoints (archival-worker writes it), and the accounts
    // schema (the gateway's own, migrated at start), each through its own pool.
    #[command(flatten)]
    pub database: DatabaseOptions,

    // The stream the outbox relay publishes to.
    #[command(flatten)]
    pub archive: ArchiveOptions,

    // Accounts, access and refresh tokens.
    #[command(flatten)]
    pub auth: AuthOptions,

    // Per-address and sign-in limits, trusted proxies, CORS (the per-user bid limit is below).
    #[command(flatten)]
    pub limits: LimitOptions,

    // What the web app served at `/app/` is told in its `config.json`.
    #[command(flatten)]
    pub web_app: WebAppOptions,

    /// Longest a history or accounts query may take before it fails with 503 (milliseconds).
    #[arg(long, env = "DATABASE_TIMEOUT_MS", default_value_t = 500)]
    pub database_timeout_ms: u64,

    /// Longest a Redis call may take before the request fails with 503 (milliseconds).
    /// Keeps an unreachable Redis a fast error, never a hang.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 80)]
    pub redis_timeout_ms: u64,

    /// Name of this instance's outbox consumer; must be unique among running instances.
    #[arg(long, env = "INSTANCE_ID", default_value_t = default_instance_id())]
    pub instance_id: String,

    /// Outbox entries published per relay batch.
    #[arg(long, env = "RELAY_BATCH", default_value_t = 512)]
    pub relay_batch: usize,

    /// Outbox entries another instance left unacknowledged this long are reclaimed (ms).
    #[arg(long, env = "RELAY_RECLAIM_IDLE_MS", default_value_t = 30_000)]
    pub relay_reclaim_idle_ms: u64,

    /// How often each relay shard looks for entries to reclaim (ms).
    #[arg(long, env = "RELAY_RECLAIM_INTERVAL_MS", default_value_t = 5_000)]
    pub relay_reclaim_interval_ms: u64,

    /// How long the idempotency record (`Idempotency-Key`) of an accepted bid is kept
    /// (seconds).
    #[arg(long, env = "IDEMPOTENCY_TTL_SECS", default_value_t = 86_400)]
    pub idempotency_ttl_secs: u64,

    /// How long the idempotency record of any other answer (too low, not started, closed…)
    /// is kept (seconds): long enough for a client's retry; such a bid changed nothing, so a
    /// later retry is simply decided again.
    #[arg(long, env = "IDEMPOTENCY_REJECTION_TTL_SECS", default_value_t = 60)]
    pub idempotency_rejection_ttl_secs: u64,

    /// Largest accepted request body (bytes).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Answer bids at or below the locally known price without a Redis call. Disable to
    /// measure the Redis-bound write path.
    #[arg(long, env = "PRICE_PREFILTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub price_prefilter: bool,

    /// How long the pre-filter trusts a price it learned (milliseconds). Another instance's
    /// close or relist reaches it as a live event within milliseconds; this bounds how long it
    /// may answer `bid_too_low` from an old round when that event is lost.
    #[arg(long, env = "PRICE_PREFILTER_TTL_MS", default_value_t = 1_000)]
    pub price_prefilter_ttl_ms: u64,

    /// The increment table of an item created without `min_increment` or `increments`:
    /// `from:increment` pairs in decimal units, comma-separated, ascending from 0 (the
    /// increment in force is the last row at or below the current price). The default is the
    /// flat 1.00 of the design; an eBay-like schedule is
    /// `0:0.05,1:0.25,5:0.50,25:1,100:2.50,250:5,500:10,1000:25,2500:50,5000:100`.
    #[arg(long, env = "DEFAULT_INCREMENTS", default_value = "0:1.00", value_parser = parse_increments)]
    pub default_increments: shared::IncrementTable,

    /// Bids per second one user may place, across all instances (0 disables the limit).
    #[arg(long, env = "BID_RATE_PER_USER", default_value_t = 10)]
    pub bid_rate_per_user: u32,

    /// Bids one user may place at once before the per-second rate applies.
    #[arg(long, env = "BID_BURST_PER_USER", default_value_t = 20)]
    pub bid_burst_per_user: u32,

    /// How often the closer looks for auctions past their end time (milliseconds).
    #[arg(long, env = "CLOSER_INTERVAL_MS", default_value_t = 100)]
    pub closer_interval_ms: u64,

    /// Most close scripts the closer has in flight at once. They share the Redis connection
    /// with bids, so a wave of ending auctions queues at most this many ahead of a bid.
    #[arg(long, env = "CLOSER_CONCURRENCY", default_value_t = 64, value_parser = positive_u64())]
    pub closer_concurrency: u64,

    /// Longest a live event waits in this instance for a lower `seq` of its item whose bid is
    /// still being answered (milliseconds). Past it the event goes out anyway (viewers' own
    /// reordering and snapshots cover the gap); tests raise it so a loaded machine cannot
    /// reorder the live stream they assert on.
    #[arg(long, env = "LIVE_REORDER_HOLD_MS", default_value_t = 20)]
    pub live_reorder_hold_ms: u64,

    /// How a bid is applied in Redis: one Lua script (`lua`), or `WATCH`/`MULTI`/`EXEC` with
    /// retry (`optimistic`, for comparison; same guarantees, slower under contention).
    #[arg(long, env = "REDIS_STRATEGY", value_enum, default_value = "lua")]
    pub redis_strategy: RedisStrategy,

    /// Answer a write (bid, creation, close) only after one Redis replica acknowledged it
    /// (`WAIT 1 <DURABLE_ACCEPT_TIMEOUT_MS>` on the node that ran it), so an accepted bid
    /// survives a failover. Needs a replica behind every master; a write no replica
    /// acknowledged in time answers 503 `outcome_unknown` (retry with the same
    /// `Idempotency-Key`). Off by default: it costs a replication round trip per write.
    #[arg(long, env = "DURABLE_ACCEPT", default_value_t = false, action = clap::ArgAction::Set)]
    pub durable_accept: bool,

    /// Longest a write waits for its replica's acknowledgement with `--durable-accept`
    /// (milliseconds); keep it well under `REDIS_TIMEOUT_MS`.
    #[arg(long, env = "DURABLE_ACCEPT_TIMEOUT_MS", default_value_t = 100)]
    pub durable_accept_timeout_ms: u64,

    /// Run the outbox relay in this instance (disable only to test a crashed relay).
    #[arg(long, env = "RELAY_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay_enabled: bool,

    /// Test hook, not a flag: lets a test stop a named background task (see
    /// `Application::run` for the names). Inert unless a test uses it.
    #[arg(skip)]
    pub task_faults: TaskFaults,

    /// Test hook, not a flag: Argon2id's cost. OWASP's parameters unless a test lowers them
    /// (a debug build takes seconds per OWASP hash); production has no way to.
    #[arg(skip)]
    pub password_cost: PasswordCost,
}

/// The command line of the `api-gateway` binary: the server's options, and the subcommands an
/// operator runs instead of the server.
#[derive(Debug, Clone, Parser)]
#[command(name = "api-gateway", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One-off operator tasks; without one, the binary serves.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Grant the `admin` role to an account registered the ordinary way (by its email,
    /// username or user id) and exit; idempotent. The account signs in again to get a token
    /// with the role. Uses DATABASE_URL (and migrates the accounts schema if needed).
    PromoteAdmin {
        /// The account's email, username or user id.
        account: String,
    },
}

/// Who signs access tokens, or who is trusted to, and how long tokens live.
///
/// By default the gateway is its own issuer: it signs with an Ed25519 key (from
/// `JWT_SIGNING_KEY_FILE` or `JWT_SIGNING_KEY`; with neither, a throwaway key and a warning) and
/// publishes the public half at `/.well-known/jwks.json`. With `OIDC_ISSUER` it signs nothing
/// and trusts that issuer's tokens instead (Cognito, say): accounts then live there, and the
/// gateway's own register/login/refresh/logout routes answer 404.
#[derive(Clone, clap::Args)]
pub struct AuthOptions {
    /// Ed25519 private key (PKCS#8 PEM file, `openssl genpkey -algorithm ed25519`) that signs
    /// access tokens; every instance of a deployment needs the same key.
    #[arg(
        long,
        env = "JWT_SIGNING_KEY_FILE",
        value_name = "PATH",
        conflicts_with = "jwt_signing_key"
    )]
    pub jwt_signing_key_file: Option<PathBuf>,

    /// The same key as PEM text, e.g. injected from a secrets manager (never logged).
    #[arg(
        long,
        env = "JWT_SIGNING_KEY",
        value_name = "PEM",
        hide_env_values = true
    )]
    pub jwt_signing_key: Option<SigningKeyPem>,

    /// `iss` of the access tokens this gateway signs (and requires of them).
    #[arg(long, env = "JWT_ISSUER", default_value = shared::access_token::DEFAULT_ISSUER)]
    pub jwt_issuer: String,

    /// `aud` of the access tokens this gateway signs (and requires of them).
    #[arg(long, env = "JWT_AUDIENCE", default_value = shared::access_token::DEFAULT_AUDIENCE)]
    pub jwt_audience: String,

    /// Lifetime of an access token (seconds). Short: tokens are checked without a database,
    /// so a sign-out or a suspension reaches a token only when it expires.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 900, value_parser = positive_u64())]
    pub access_token_ttl_secs: u64,

    /// Lifetime of an unused refresh token (seconds); each refresh starts a new one.
    #[arg(long, env = "REFRESH_TOKEN_TTL_SECS", value_parser = positive_u64(),
          default_value_t = DEFAULT_REFRESH_TTL.as_secs())]
    pub refresh_token_ttl_secs: u64,

    /// Who a bid's bidder is: `token` (the default) takes it from the access token's `sub`
    /// (no token is 401, a differing body `user_id` 403); `open` also takes bids without a
    /// token and trusts their body `user_id`, as the original Go system did: only for its
    /// clients and for comparisons, never in production (the gateway warns at start). Every
    /// other write (items, cancellations, admin actions, suspensions) needs a token in both
    /// modes, and admin actions an admin's.
    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "token")]
    pub auth_mode: AuthMode,

    /// How often each gateway re-reads which accounts are suspended (milliseconds). An admin's
    /// suspension reaches every gateway within this (plus one query), and usually at once
    /// through a NATS notification; bids never query PostgreSQL.
    #[arg(long, env = "SUSPENSION_POLL_MS", default_value_t = 2_000, value_parser = positive_u64())]
    pub suspension_poll_ms: u64,

    /// Trust this external OIDC issuer's access tokens (its `iss`) instead of signing our own.
    #[arg(long, env = "OIDC_ISSUER", requires = "oidc_audience",
          conflicts_with_all = ["jwt_signing_key_file", "jwt_signing_key"])]
    pub oidc_issuer: Option<String>,

    /// The external issuer's JWKS URL (default: `<OIDC_ISSUER>/.well-known/jwks.json`, where
    /// Cognito publishes it).
    #[arg(long, env = "OIDC_JWKS_URL", requires = "oidc_issuer")]
    pub oidc_jwks_url: Option<String>,

    /// The audience the external issuer's tokens must name (`aud`, or Cognito's `client_id`:
    /// the app client id).
    #[arg(long, env = "OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
}

/// Whether bids without an access token are taken ([`AuthOptions::auth_mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// The bidder is the token's `sub`; a bid needs a token.
    Token,
    /// A bid without a token is taken as its body's `user_id` says (the original system's
    /// trust model, for its clients and comparisons only).
    Open,
}

/// The limits every instance shares through Redis (see `crate::rate_limit`), and who requests
/// come from.
#[derive(Clone, Debug, clap::Args)]
pub struct LimitOptions {
    /// Redis the rate limits and the sign-in throttle count in (default: `REDIS_URL`; with
    /// `REDIS_KEY_PREFIX` and `REDIS_CA_FILE` either way). Its outage never fails a bid: each
    /// instance then limits on its own counts.
    #[arg(
        long,
        env = "RATE_LIMIT_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub rate_limit_redis_url: Option<SecretUrl>,

    /// How often each instance syncs its rate-limit counts with Redis (milliseconds): about how
    /// long a client over a limit on one instance may still be admitted by another.
    #[arg(long, env = "RATE_LIMIT_SYNC_MS", default_value_t = 50, value_parser = positive_u64())]
    pub rate_limit_sync_ms: u64,

    /// Requests per second one client address (an IPv4 address or an IPv6 /64) may make,
    /// across all instances; 0 (the default) disables it. Many people can share an address
    /// (carrier NAT, offices, a load test on one host), so set it only to stop floods:
    /// 1,000 with `IP_BURST` 2,000 is a reasonable start behind `TRUSTED_PROXIES`.
    #[arg(long, env = "IP_RATE_PER_SEC", default_value_t = 0)]
    pub ip_rate_per_sec: u32,

    /// Requests one client address may make at once before `IP_RATE_PER_SEC` applies (at least
    /// the rate).
    #[arg(long, env = "IP_BURST", default_value_t = 0)]
    pub ip_burst: u32,

    /// Proxy networks (comma-separated CIDRs or addresses, e.g. the load balancer's subnets)
    /// whose `X-Forwarded-For` entries are believed; by default none, and the client is the
    /// peer address.
    #[arg(long, env = "TRUSTED_PROXIES", value_name = "CIDRS", default_value_t)]
    pub trusted_proxies: TrustedProxies,

    /// Failed sign-ins of one login within `LOGIN_FAILURE_WINDOW_SECS` before further attempts
    /// are refused (429) until the window ends; registrations of one login likewise. 0
    /// disables it.
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    pub login_failures_per_account: u32,

    /// The window of `LOGIN_FAILURES_PER_ACCOUNT`, from the first failure (seconds).
    #[arg(long, env = "LOGIN_FAILURE_WINDOW_SECS", default_value_t = 900, value_parser = positive_u64())]
    pub login_failure_window_secs: u64,

    /// Sign-in and registration attempts per client address per minute (0 disables it).
    /// Generous by default, so a thousand people behind one address can sign in at once.
    #[arg(long, env = "AUTH_ATTEMPTS_PER_IP_PER_MINUTE", default_value_t = 1_200)]
    pub auth_attempts_per_ip_per_minute: u32,

    /// Web origins allowed to call the API from a browser (comma-separated, e.g.
    /// `https://auction.example`); none by default, and then no CORS headers are sent.
    #[arg(long, env = "CORS_ORIGINS", value_name = "ORIGINS", default_value = "")]
    pub cors_origins: CorsOrigins,
}

impl LimitOptions {
    pub fn sync_interval(&self) -> Duration {
        Duration::from_millis(self.rate_limit_sync_ms)
    }

    pub fn login_failure_window(&self) -> Duration {
        Duration::from_secs(self.login_failure_window_secs)
    }
}

/// What the web app (`/app/`) is told in `/app/config.json`: where the live prices come from
/// and which currency amounts are in. The app is served from this gateway, so it calls the API
/// on its own origin and needs no CORS.
#[derive(Clone, Debug, clap::Args)]
pub struct WebAppOptions {
    /// The broadcast service's WebSocket the web app connects to: `ws://` or `wss://` URL, or a
    /// path such as `/ws` for the app's own origin (behind a load balancer that routes `/ws*`
    /// to the broadcast service).
    #[arg(
        long,
        env = "WEB_APP_WS_URL",
        value_name = "URL",
        default_value = "ws://127.0.0.1:8081/ws"
    )]
    pub web_app_ws_url: WebSocketUrl,

    /// The ISO 4217 currency the web app shows amounts in (amounts are the API's decimal units).
    #[arg(
        long,
        env = "WEB_APP_CURRENCY",
        value_name = "CODE",
        default_value = "USD"
    )]
    pub web_app_currency: Currency,
}

/// The PEM text of `JWT_SIGNING_KEY`: a secret, so its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyPem(String);

impl SigningKeyPem {
    /// The PEM, for parsing the key. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SigningKeyPem {
    fn from(pem: String) -> Self {
        Self(pem)
    }
}

impl fmt::Debug for SigningKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKeyPem(***)")
    }
}

/// The external issuer a deployment trusts instead of signing its own tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIssuer {
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
}

impl AuthOptions {
    /// The external issuer, when `OIDC_ISSUER` is set (clap makes `OIDC_AUDIENCE` come with it).
    pub fn external_issuer(&self) -> Option<ExternalIssuer> {
        let issuer = self.oidc_issuer.clone()?;
        let jwks_url = self
            .oidc_jwks_url
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')));
        Some(ExternalIssuer {
            jwks_url,
            audience: self.oidc_audience.clone().unwrap_or_default(),
            issuer,
        })
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    pub fn suspension_poll(&self) -> Duration {
        Duration::from_millis(self.suspension_poll_ms)
    }
}

impl fmt::Debug for AuthOptions {
    /// The key shows only where it comes from, never its text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthOptions")
            .field("jwt_signing_key_file", &self.jwt_signing_key_file)
            .field("jwt_signing_key", &self.jwt_signing_key)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("auth_mode", &self.auth_mode)
            .field("suspension_poll_ms", &self.suspension_poll_ms)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_jwks_url", &self.oidc_jwks_url)
            .field("oidc_audience", &self.oidc_audience)
            .finish()
    }
}

/// How bids are applied in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RedisStrategy {
    Lua,
    Optimistic,
}

fn parse_increments(text: &str) -> Result<shared::IncrementTable, String> {
    shared::IncrementTable::parse_decimal(text).map_err(|e| format!("the increment table {e}"))
}

fn default_instance_id() -> String {
    format!("gw-{}", uuid::Uuid::now_v7().simple())
}

impl Config {
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// How long `Idempotency-Key` answers are kept.
    pub fn idempotency_ttl(&self) -> crate::store::IdempotencyTtl {
        crate::store::IdempotencyTtl {
            accepted_secs: self.idempotency_ttl_secs,
            rejected_secs: self.idempotency_rejection_ttl_secs,
        }
    }

    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Self::parse_from(["api-gateway"])
    }
}

impl fmt::Debug for Config {
    /// URLs print redacted (`SecretUrl`), the signing key never.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("common", &self.common)
            .field("redis", &self.redis)
            .field("database", &self.database)
            .field("archive", &self.archive)
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .field("web_app", &self.web_app)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("instance_id", &self.instance_id)
            .field("relay_enabled", &self.relay_enabled)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let mut config = Config::defaults();
        config.redis.url = "redis://user:hunter2@cache:6379".into();
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"));
        assert!(text.contains("redis://***@cache:6379"));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::defaults();
        assert_eq!(config.listen_addr.port(), 8080);
        assert_eq!(config.redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(config.common.nats_url.expose(), "nats://127.0.0.1:4222");
        assert_eq!(config.archive.stream, "AUCTION_ARCHIVE");
        assert_eq!(config.auth.access_token_ttl_secs, 900);
        assert_eq!(
            config.auth.refresh_token_ttl_secs,
            DEFAULT_REFRESH_TTL.as_secs()
        );
        assert_eq!(config.auth.external_issuer(), None);
        assert_eq!(config.auth.auth_mode, AuthMode::Token);
        assert_eq!(config.auth.suspension_poll(), Duration::from_secs(2));
    }

    #[test]
    fn open_mode_is_a_flag_and_an_unknown_mode_is_refused_naming_it() {
        let config = parse(&["--auth-mode=open"]).expect("valid flags");
        assert_eq!(config.auth.auth_mode, AuthMode::Open);
        let error = parse(&["--auth-mode=trusting"]).expect_err("refused");
        assert!(error.to_string().contains("--auth-mode"), "{error}");
    }

    #[test]
    fn promote_admin_is_a_subcommand_beside_the_server_options() {
        let cli = Cli::try_parse_from([
            "api-gateway",
            "--database-url=postgres://db/auction",
            "promote-admin",
            "ops@example.com",
        ])
        .expect("valid command line");
        assert_eq!(cli.config.database.url.expose(), "postgres://db/auction");
        assert!(matches!(
            cli.command,
            Some(Command::PromoteAdmin { account }) if account == "ops@example.com"
        ));
        let serve = Cli::try_parse_from(["api-gateway"]).expect("no subcommand serves");
        assert!(serve.command.is_none());
    }

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("api-gateway").chain(args.iter().copied()))
    }

    #[test]
    fn auth_flags_keep_their_names() {
        let config = parse(&[
            "--jwt-signing-key-file=/run/secrets/jwt.pem",
            "--jwt-issuer=https://auction.example",
            "--jwt-audience=bidders",
            "--access-token-ttl-secs=60",
            "--refresh-token-ttl-secs=3600",
        ])
        .expect("valid flags");
        let auth = &config.auth;
        assert_eq!(
            auth.jwt_signing_key_file.as_deref(),
            Some(std::path::Path::new("/run/secrets/jwt.pem"))
        );
        assert_eq!(auth.jwt_issuer, "https://auction.example");
        assert_eq!(auth.jwt_audience, "bidders");
        assert_eq!(auth.access_token_ttl(), Duration::from_secs(60));
        assert_eq!(auth.refresh_token_ttl(), Duration::from_secs(3600));
    }

    #[test]
    fn limits_default_to_shared_bids_no_address_limit_and_no_cors() {
        let limits = Config::defaults().limits;
        assert_eq!(limits.rate_limit_redis_url, None);
        assert_eq!(limits.sync_interval(), Duration::from_millis(50));
        assert_eq!(limits.ip_rate_per_sec, 0);
        assert_eq!(limits.trusted_proxies, TrustedProxies::default());
        assert_eq!(limits.login_failures_per_account, 10);
        assert_eq!(limits.login_failure_window(), Duration::from_secs(900));
        assert_eq!(limits.auth_attempts_per_ip_per_minute, 1_200);
        assert_eq!(limits.cors_origins, CorsOrigins::default());
    }

    #[test]
    fn limit_flags_keep_their_names() {
        let config = parse(&[
            "--rate-limit-redis-url=redis://:pw@limits:6379",
            "--rate-limit-sync-ms=100",
            "--ip-rate-per-sec=1000",
            "--ip-burst=2000",
            "--trusted-proxies=10.0.0.0/8,192.168.1.1",
            "--login-failures-per-account=5",
            "--login-failure-window-secs=60",
            "--auth-attempts-per-ip-per-minute=30",
            "--cors-origins=https://auction.example,http://localhost:3000",
        ])
        .expect("valid flags");
        let limits = &config.limits;
        assert_eq!(limits.sync_interval(), Duration::from_millis(100));
        assert_eq!((limits.ip_rate_per_sec, limits.ip_burst), (1000, 2000));
        assert_eq!(
            limits.trusted_proxies.to_string(),
            "10.0.0.0/8,192.168.1.1/32"
        );
        assert_eq!(limits.login_failures_per_account, 5);
        assert_eq!(limits.login_failure_window(), Duration::from_secs(60));
        assert_eq!(limits.auth_attempts_per_ip_per_minute, 30);
        assert_eq!(
            format!("{:?}", limits.cors_origins),
            r#"["https://auction.example", "http://localhost:3000"]"#
        );
        assert!(
            !format!("{config:?}").contains(":pw@"),
            "the URL is redacted"
        );
    }

    #[test]
    fn a_bad_proxy_network_or_origin_is_refused_naming_the_flag() {
        let error = parse(&["--trusted-proxies=10.0.0.0/8,proxy.internal"]).expect_err("refused");
        assert!(error.to_string().contains("--trusted-proxies"), "{error}");
        let error = parse(&["--cors-origins=https://auction.example/app"]).expect_err("refused");
        assert!(error.to_string().contains("--cors-origins"), "{error}");
    }

    #[test]
    fn the_signing_key_text_never_shows_in_debug_output() {
        let config = parse(&["--jwt-signing-key=-----BEGIN PRIVATE KEY-----\nMC4CAQ..."])
            .expect("valid flags");
        let text = format!("{config:?}");
        assert!(!text.contains("MC4CAQ"), "{text}");
        assert!(!text.contains("BEGIN PRIVATE KEY"), "{text}");
    }

    #[test]
    fn the_signing_key_value_is_hidden_from_help() {
        use clap::CommandFactory as _;
        let command = Config::command();
        let key = command
            .get_arguments()
            .find(|arg| arg.get_id() == "jwt_signing_key")
            .expect("the key's flag");
        assert!(key.is_hide_env_values_set());
    }

    #[test]
    fn a_key_file_and_key_text_together_are_refused_naming_both() {
        let error =
            parse(&["--jwt-signing-key-file=k.pem", "--jwt-signing-key=pem"]).expect_err("refused");
        let text = error.to_string();
        assert!(text.contains("--jwt-signing-key-file"), "{text}");
        assert!(text.contains("--jwt-signing-key"), "{text}");
    }

    #[test]
    fn an_access_token_lifetime_of_zero_is_refused_naming_the_flag() {
        let error = parse(&["--access-token-ttl-secs=0"]).expect_err("refused");
        assert!(
            error.to_string().contains("--access-token-ttl-secs"),
            "{error}"
        );
    }

    #[test]
    fn an_external_issuer_needs_its_audience_and_defaults_its_jwks_url() {
        let error = parse(&["--oidc-issuer=https://cognito.example/pool"])
            .expect_err("refused without an audience");
        assert!(error.to_string().contains("--oidc-audience"), "{error}");

        let config = parse(&[
            "--oidc-issuer=https://cognito.example/pool/",
            "--oidc-audience=client-1",
        ])
        .expect("valid flags");
        assert_eq!(
            config.auth.external_issuer(),
            Some(ExternalIssuer {
                issuer: "https://cognito.example/pool/".into(),
                jwks_url: "https://cognito.example/pool/.well-known/jwks.json".into(),
                audience: "client-1".into(),
            })
        );
    }

    #[test]
    fn an_external_issuer_and_our_own_key_together_are_refused() {
        let error = parse(&[
            "--oidc-issuer=https://cognito.example/pool",
            "--oidc-audience=client-1",
            "--jwt-signing-key-file=k.pem",
        ])
        .expect_err("refused");
        assert!(error.to_string().contains("--oidc-issuer"), "{error}");
    }
}
