//! The command-line options the services share, declared once and `#[command(flatten)]`ed
//! into each service's `Config`, so a flag, its env name, its default and its `--help` text
//! cannot drift between services.
//!
//! * [`CommonOptions`]: what every service has (NATS, the subject prefix, the log format, the
//!   HTTP server's limits, [`HttpServerOptions`]).
//! * [`RedisOptions`]: the gateway and the broadcast service (Redis, its key prefix, its CA).
//! * [`DatabaseOptions`]: the gateway and the worker (the PostgreSQL read model).
//! * [`ArchiveOptions`]: the gateway and the worker (the JetStream archive stream).
//!
//! Options whose default or meaning differs per service stay in that service's `Config`:
//! `LISTEN_ADDR` (8080, 8081, 8082), `INSTANCE_ID` (its prefix names the service),
//! `REDIS_TIMEOUT_MS` (a request deadline in the gateway, a snapshot retry in the broadcast
//! service) and `DATABASE_TIMEOUT_MS` (a history query in the gateway, a batch step in the
//! worker).
//!
//! A field whose flag is not its own name (`url` is `--redis-url` or `--database-url`) takes
//! its env name as its clap `id`: ids must be unique across everything flattened into one
//! command, and a bare `env` then reuses that name, as `--help` does for the value
//! (`--redis-url <REDIS_URL>`), so each name is written once beside its flag.

use crate::redact::SecretUrl;
use crate::subjects;
use crate::telemetry::LogFormat;
use crate::tls::{self, CaFile};
use clap::builder::{RangedI64ValueParser, RangedU64ValueParser};
use std::time::Duration;

/// The contract's default URLs: every dependency on this machine, standard ports.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/auction";

/// Options every service has.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonOptions {
    /// NATS server (with JetStream): live events, presence and the archive stream; several
    /// servers of one cluster comma-separated (`nats://n1:4222,nats://n2:4222,…`).
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL)]
    pub nats_url: SecretUrl,

    /// First token(s) of every NATS subject (`<prefix>.live.<item>`,
    /// `<prefix>.archive.<item>`); every service of one deployment must use the same.
    #[arg(long, env = "SUBJECT_PREFIX", default_value = subjects::DEFAULT_PREFIX, value_parser = parse_subject_prefix)]
    pub subject_prefix: String,

    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    // Header-read and body timeouts and connection cap of the HTTP server.
    #[command(flatten)]
    pub http: HttpServerOptions,
}

/// How the HTTP server (`crate::http_server`) treats slow and numerous clients; the same flags
/// in every service.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpServerOptions {
    /// Time a client has to send a request's headers from when its connection is accepted
    /// (and, between requests on a kept-alive connection, from the previous response);
    /// slower clients are disconnected (milliseconds).
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = positive_u64())]
    pub header_read_timeout_ms: u64,

    /// Time a client has to send a request's whole body, from when its headers were read; a
    /// body still incomplete then is answered 408 `request_timeout` and the connection closed,
    /// before the handler acts on anything. Requests without a body (WebSocket upgrades
    /// included) and responses are not limited (milliseconds).
    #[arg(long, env = "REQUEST_BODY_TIMEOUT_MS", default_value_t = 10_000, value_parser = positive_u64())]
    pub request_body_timeout_ms: u64,

    /// HTTP connections served at once; past it new connections wait in the kernel's accept
    /// backlog until one ends (upgraded WebSockets do not count).
    #[arg(long, env = "MAX_HTTP_CONNECTIONS", default_value_t = 10_000, value_parser = positive_u32())]
    pub max_http_connections: u32,
}

impl HttpServerOptions {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn request_body_timeout(&self) -> Duration {
        Duration::from_millis(self.request_body_timeout_ms)
    }
}

/// Redis, for the services that read or write the auctions' current state.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisOptions {
    /// Redis holding the auctions' current state and the outbox: `redis://` or, with TLS,
    /// `rediss://` (the server's certificate and host name are verified; ElastiCache's AUTH
    /// goes in the URL: `rediss://:<token>@host:6379` or `rediss://<user>:<password>@…`).
    /// Several comma-separated node URLs select Redis Cluster (see `--redis-cluster`).
    #[arg(id = "REDIS_URL", long = "redis-url", env, default_value = DEFAULT_REDIS_URL)]
    pub url: SecretUrl,

    /// Prefix of every Redis key (before the hash tag), to share one Redis between
    /// deployments; the gateway and the broadcast service must use the same.
    #[arg(id = "REDIS_KEY_PREFIX", long = "redis-key-prefix", env, default_value_t = String::new())]
    pub key_prefix: String,

    /// PEM file of the CA(s) that sign Redis's certificate, for a private CA; without it a
    /// `rediss://` server is verified against the system roots. Needs a `rediss://` URL.
    #[arg(id = "REDIS_CA_FILE", long = "redis-ca-file", env, value_parser = tls::parse_ca_file)]
    pub ca_file: Option<CaFile>,

    /// Treat `REDIS_URL` as a Redis Cluster even when it names one node: the cluster's seed,
    /// such as ElastiCache's configuration endpoint (the client discovers every node from it).
    /// A comma-separated list of nodes selects cluster mode without it.
    #[arg(id = "REDIS_CLUSTER", long = "redis-cluster", env, default_value_t = false, action = clap::ArgAction::Set)]
    pub cluster: bool,
}

/// PostgreSQL: the read model (archival-worker owns and migrates its schema) and, in the
/// gateway, the accounts schema (the gateway owns and migrates it).
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseOptions {
    /// PostgreSQL holding the archive and the read model (and the gateway's accounts). TLS as
    /// libpq's `sslmode` says (`disable`, `prefer` (the default), `require`, `verify-ca`,
    /// `verify-full`), verified against `sslrootcert=<PEM file>` or the system roots, e.g.
    /// `postgres://app:pw@db:5432/auction?sslmode=verify-full&sslrootcert=/etc/ssl/rds.pem`.
    #[arg(id = "DATABASE_URL", long = "database-url", env, default_value = DEFAULT_DATABASE_URL)]
    pub url: SecretUrl,
}

/// The JetStream stream the gateway's relay fills and the worker consumes. Whichever starts
/// first creates it, so both create it with these same settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ArchiveOptions {
    /// JetStream stream of archived events (created if missing).
    #[arg(id = "ARCHIVE_STREAM", long = "archive-stream", env, default_value = subjects::ARCHIVE_STREAM)]
    pub stream: String,

    /// JetStream duplicate window (seconds): a relay retry within it is stored only once.
    #[arg(
        id = "ARCHIVE_DUPLICATE_WINDOW_SECS",
        long = "archive-duplicate-window-secs",
        env,
        default_value_t = 120
    )]
    pub duplicate_window_secs: u64,

    /// Replicas of every JetStream stream and consumer the services create (1 on one NATS
    /// server, 3 on a three-node cluster); gateway and worker must use the same.
    #[arg(id = "JETSTREAM_REPLICAS", long = "jetstream-replicas", env, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
}

/// The parser of a count or a duration 0 would disable by accident: `--flag=0` stops startup
/// with a message naming the flag.
pub fn positive_u64() -> RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..)
}

/// [`positive_u64`] for a `u32` option.
pub fn positive_u32() -> RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..)
}

/// Why a subject prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a subject prefix: use dot-separated tokens of [A-Za-z0-9_-]")]
pub struct SubjectPrefixError(String);

/// A prefix becomes the first token(s) of NATS subjects, so it may not contain wildcards,
/// whitespace or empty tokens (a `*` would make a publish fan out to other deployments).
///
/// # Errors
/// [`SubjectPrefixError`] naming the value.
pub fn parse_subject_prefix(value: &str) -> Result<String, SubjectPrefixError> {
    let valid = !value.is_empty()
        && value.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if valid {
        Ok(value.to_owned())
    } else {
        Err(SubjectPrefixError(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Everything {
        #[command(flatten)]
        common: CommonOptions,
        #[command(flatten)]
        redis: RedisOptions,
        #[command(flatten)]
        database: DatabaseOptions,
        #[command(flatten)]
        archive: ArchiveOptions,
    }

    #[test]
    fn defaults_follow_the_contract() {
        let all = Everything::parse_from(["service"]);
        assert_eq!(all.common.nats_url.expose(), "nats://127.0.0.1:4222");
        assert_eq!(all.common.subject_prefix, "auction");
        assert_eq!(all.common.log_format, LogFormat::Json);
        assert_eq!(all.redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(all.redis.key_prefix, "");
        assert_eq!(
            all.database.url.expose(),
            "postgres://postgres@127.0.0.1:5432/auction"
        );
        assert_eq!(all.archive.stream, "AUCTION_ARCHIVE");
        assert_eq!(all.archive.duplicate_window_secs, 120);
        assert_eq!(all.archive.replicas, 1);
    }

    #[test]
    fn flags_keep_their_names() {
        let all = Everything::parse_from([
            "service",
            "--nats-url=nats://n:4222",
            "--subject-prefix=t1",
            "--log-format=pretty",
            "--redis-url=redis://r:6379",
            "--redis-key-prefix=k:",
            "--database-url=postgres://d/x",
            "--archive-stream=S",
            "--archive-duplicate-window-secs=600",
            "--jetstream-replicas=3",
        ]);
        assert_eq!(all.common.nats_url.expose(), "nats://n:4222");
        assert_eq!(all.common.subject_prefix, "t1");
        assert_eq!(all.common.log_format, LogFormat::Pretty);
        assert_eq!(all.redis.url.expose(), "redis://r:6379");
        assert_eq!(all.redis.key_prefix, "k:");
        assert_eq!(all.database.url.expose(), "postgres://d/x");
        assert_eq!(all.archive.stream, "S");
        assert_eq!(all.archive.duplicate_window_secs, 600);
        assert_eq!(all.archive.replicas, 3);
    }

    #[test]
    fn subject_prefix_with_a_wildcard_or_empty_token_is_rejected() {
        for bad in ["a.*", "a.>", "", "a..b", "a b", ".a"] {
            assert!(parse_subject_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_subject_prefix("t1.x-y"), Ok("t1.x-y".to_owned()));
    }

    #[test]
    fn a_bad_subject_prefix_stops_parsing_with_a_message_naming_the_flag() {
        let Err(e) = Everything::try_parse_from(["service", "--subject-prefix=a.*"]) else {
            panic!("a wildcard prefix was accepted");
        };
        assert!(e.to_string().contains("--subject-prefix"), "{e}");
    }

    #[test]
    fn a_redis_ca_file_is_read_when_the_options_are_parsed() {
        let ca = testkit::TestCa::new("test CA").expect("CA");
        let flag = format!("--redis-ca-file={}", ca.ca_file().display());
        let all = Everything::parse_from(["service", "--redis-url=rediss://r:6380", &flag]);
        let ca_file = all.redis.ca_file.expect("the CA file");
        assert_eq!(ca_file.path(), ca.ca_file());
        assert_eq!(ca_file.roots().len(), 1);
        assert!(Everything::parse_from(["service"]).redis.ca_file.is_none());
    }

    #[test]
    fn a_missing_redis_ca_file_stops_parsing_with_a_message_naming_the_flag() {
        let Err(e) = Everything::try_parse_from(["service", "--redis-ca-file=/no/such/ca.pem"])
        else {
            panic!("a missing CA file was accepted");
        };
        let text = e.to_string();
        assert!(
            text.contains("--redis-ca-file") && text.contains("/no/such/ca.pem"),
            "{text}"
        );
    }

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let all = Everything::parse_from([
            "service",
            "--redis-url=redis://user:hunter2@cache:6379",
            "--database-url=postgres://app:hunter2@db/auction",
            "--nats-url=nats://u:hunter2@n:4222",
        ]);
        for text in [
            format!("{:?}", all.redis),
            format!("{:?}", all.database),
            format!("{:?}", all.common),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
