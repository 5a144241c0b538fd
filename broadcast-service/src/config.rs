//! The broadcast service's configuration: one clap struct, every field a flag with an env
//! fallback. The options every service shares are `shared::service_options`, flattened in;
//! what stays here is the service's own, including `LISTEN_ADDR`, `INSTANCE_ID` and
//! `REDIS_TIMEOUT_MS`, whose defaults are this service's. Durations are in milliseconds so
//! tests can shorten them without new knobs.

use clap::Parser;
use shared::access_token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_LEEWAY, TokenRules};
use shared::client_address::TrustedProxies;
use shared::service_options::{CommonOptions, RedisOptions, positive_u64};
use shared::supervisor::TaskFaults;
use std::net::SocketAddr;
use std::time::Duration;

// `Debug` shows every option; URLs print redacted (`SecretUrl`).
/// WebSocket fan-out of live auction events.
#[derive(Debug, Clone, Parser)]
#[command(name = "broadcast-service", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8081")]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub common: CommonOptions,

    // Read for snapshots only: the service never writes to Redis.
    #[command(flatten)]
    pub redis: RedisOptions,

    /// This instance's name in presence messages; must be unique among running instances.
    #[arg(long, env = "INSTANCE_ID", default_value_t = default_instance_id())]
    pub instance_id: String,

    /// Longest a snapshot read from Redis may take before it is retried (milliseconds).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,

    /// Items one connection may watch at once.
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 32)]
    pub max_subscriptions_per_connection: usize,

    /// Open WebSocket connections allowed from one client address (an IPv4 address or an IPv6
    /// /64; more are closed with 1013). High by default: carrier NAT, offices and load
    /// balancers put thousands of real viewers behind one address; `MAX_CONNECTIONS` is what
    /// protects the instance.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 5_000)]
    pub max_connections_per_ip: usize,

    /// Open WebSocket connections allowed in this instance (more are closed with 1013).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Frames waiting for one connection's socket before it counts as lagging and gets a
    /// fresh snapshot instead of the backlog. Frames are shared, so this bounds pointers,
    /// not copies.
    #[arg(long, env = "VIEWER_QUEUE", default_value_t = 128)]
    pub viewer_queue: usize,

    /// Messages one connection may send per second (a burst of twice as many is allowed);
    /// more get a `rate_limited` error frame and are dropped, and a connection that keeps
    /// going past the limit is closed with 1008. 0 turns the limit off.
    #[arg(long, env = "MAX_MESSAGES_PER_SEC", default_value_t = 20)]
    pub max_messages_per_sec: u32,

    /// How long an item found not to exist is answered `item_not_found` from memory, without
    /// a room, a NATS subscription or a Redis read (milliseconds; 0 turns it off).
    #[arg(long, env = "MISSING_ITEM_CACHE_MS", default_value_t = 2_000)]
    pub missing_item_cache_ms: u64,

    /// Largest message a client may send (bytes); larger ones close the socket with 1009.
    #[arg(long, env = "MAX_INBOUND_BYTES", default_value_t = 4096)]
    pub max_inbound_bytes: usize,

    /// How often the server pings each socket (milliseconds).
    #[arg(long, env = "PING_INTERVAL_MS", default_value_t = 20_000)]
    pub ping_interval_ms: u64,

    /// A socket that sends nothing (not even a pong) for this long is closed (milliseconds).
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,

    /// A socket that cannot take a write for this long is dropped (milliseconds).
    #[arg(long, env = "WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,

    /// How long an event waits for a missing lower `seq` (events from several gateways may
    /// arrive out of order) before it is released and viewers resync (milliseconds).
    #[arg(long, env = "REORDER_HOLD_MS", default_value_t = 50)]
    pub reorder_hold_ms: u64,

    /// Viewers of one item from which a frame's pass over them is split over every core
    /// (one share per core, written at once); below it one thread writes them all.
    #[arg(long, env = "PARALLEL_PASS_MIN_VIEWERS", default_value_t = 2_048, value_parser = positive_u64())]
    pub parallel_pass_min_viewers: u64,

    /// How often each instance publishes its viewer count per watched item (milliseconds).
    #[arg(long, env = "PRESENCE_INTERVAL_MS", default_value_t = 1_000)]
    pub presence_interval_ms: u64,

    /// Another instance's counts are forgotten after this long without a heartbeat (ms).
    #[arg(long, env = "PRESENCE_EXPIRY_MS", default_value_t = 5_000)]
    pub presence_expiry_ms: u64,

    /// Shortest time between two `viewers` frames for one item (milliseconds).
    #[arg(long, env = "VIEWERS_MIN_INTERVAL_MS", default_value_t = 1_000)]
    pub viewers_min_interval_ms: u64,

    /// Kernel send buffer of each socket (bytes; 0 keeps the OS default, which grows up to
    /// megabytes per socket). A cap keeps a slow client's backlog in this process's bounded
    /// queue, where it is conflated, rather than in kernel memory.
    #[arg(long, env = "SOCKET_SEND_BUFFER_BYTES", default_value_t = 131_072)]
    pub socket_send_buffer_bytes: u32,

    /// Proxy networks (comma-separated CIDRs or addresses, e.g. the load balancer's subnets)
    /// whose `X-Forwarded-For` entries are believed for the per-address limit; by default
    /// none, and the client is the peer address. The gateway's rule (`shared::client_address`).
    #[arg(long, env = "TRUSTED_PROXIES", value_name = "CIDRS", default_value_t)]
    pub trusted_proxies: TrustedProxies,

    // Socket sign-in: watching is public; a socket that presents an access token also gets
    // its user's private events. The defaults trust the local gateway's own tokens.
    #[command(flatten)]
    pub tokens: TokenTrust,

    /// Test hook, not a flag: lets a test stop the `reconnect_resync` task. Inert unless a test
    /// uses it.
    #[arg(skip)]
    pub task_faults: TaskFaults,
}

/// Whose access tokens a socket may sign in with: the JWKS that holds the signing keys and
/// what the tokens must claim. Point these at the external OIDC issuer (its JWKS URL, issuer
/// and audience) when the gateway trusts one instead of signing its own.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenTrust {
    /// JSON Web Key Set of the token signer (fetched on the first sign-in, cached, refetched
    /// for an unknown key id). Default: the local gateway's published keys.
    #[arg(
        long,
        env = "JWKS_URL",
        default_value = "http://127.0.0.1:8080/.well-known/jwks.json"
    )]
    pub jwks_url: String,

    /// `iss` the access tokens must carry (the gateway's `JWT_ISSUER`).
    #[arg(long, env = "JWT_ISSUER", default_value = DEFAULT_ISSUER)]
    pub jwt_issuer: String,

    /// Audience the access tokens must name (the gateway's `JWT_AUDIENCE`).
    #[arg(long, env = "JWT_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub jwt_audience: String,

    /// Clock skew tolerated on a token's `exp` and `nbf` (seconds): a socket's private events
    /// stop this long after its token's `exp`.
    #[arg(long, env = "JWT_LEEWAY_SECS", default_value_t = DEFAULT_LEEWAY.as_secs())]
    pub jwt_leeway_secs: u64,
}

impl TokenTrust {
    /// What a socket's token must say.
    pub fn rules(&self) -> TokenRules {
        TokenRules {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway: Duration::from_secs(self.jwt_leeway_secs),
        }
    }
}

fn default_instance_id() -> String {
    format!("bc-{}", uuid::Uuid::now_v7().simple())
}

impl Config {
    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Self::parse_from(["broadcast-service"])
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms.max(1))
    }

    pub fn reorder_hold(&self) -> Duration {
        Duration::from_millis(self.reorder_hold_ms)
    }

    pub fn presence_interval(&self) -> Duration {
        Duration::from_millis(self.presence_interval_ms.max(1))
    }

    pub fn presence_expiry(&self) -> Duration {
        Duration::from_millis(self.presence_expiry_ms.max(1))
    }

    pub fn viewers_min_interval(&self) -> Duration {
        Duration::from_millis(self.viewers_min_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::defaults();
        assert_eq!(config.listen_addr.port(), 8081);
        assert_eq!(config.redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(config.common.nats_url.expose(), "nats://127.0.0.1:4222");
        assert_eq!(config.common.subject_prefix, "auction");
        assert_eq!(config.max_subscriptions_per_connection, 32);
    }

    #[test]
    fn tokens_are_trusted_as_the_local_gateway_issues_them_by_default() {
        let config = Config::defaults();
        assert_eq!(
            config.tokens.jwks_url,
            "http://127.0.0.1:8080/.well-known/jwks.json"
        );
        let rules = config.tokens.rules();
        // The gateway's own defaults, from the one place both read them.
        let gateway = api_gateway::config::Config::defaults();
        assert_eq!(rules.issuer, gateway.auth.jwt_issuer);
        assert_eq!(rules.audience, gateway.auth.jwt_audience);
        assert_eq!(rules.leeway, DEFAULT_LEEWAY);
    }

    #[test]
    fn token_flags_keep_their_names() {
        let config = Config::try_parse_from([
            "broadcast-service",
            "--jwks-url=https://cognito.test/.well-known/jwks.json",
            "--jwt-issuer=https://cognito.test",
            "--jwt-audience=app-client",
            "--jwt-leeway-secs=0",
        ])
        .unwrap();
        let rules = config.tokens.rules();
        assert_eq!(
            (rules.issuer.as_str(), rules.audience.as_str()),
            ("https://cognito.test", "app-client")
        );
        assert_eq!(rules.leeway, Duration::ZERO);
    }

    #[test]
    fn a_subject_prefix_with_a_wildcard_stops_startup() {
        // The rule itself is tested in `shared::service_options`.
        assert!(Config::try_parse_from(["broadcast-service", "--subject-prefix=a.*"]).is_err());
    }

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let mut config = Config::defaults();
        config.redis.url = "redis://user:hunter2@cache:6379".into();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
