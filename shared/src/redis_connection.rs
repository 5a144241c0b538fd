//! One way to open a Redis connection, with one timeout rule, for every service and every
//! connection in it (the gateway's store and outbox readers, the broadcast service's store).
//!
//! A connection tolerates Redis being down: it connects lazily, reconnects briefly in the
//! background and bounds every response. The rule ties two timeouts to one deadline per call:
//!
//! * the **response timeout** (for a command that was sent) is three quarters of the deadline,
//!   so a sent-but-unanswered command fails first, as a redis-rs timeout
//!   (`RedisError::is_timeout`): it may still run, so a write's outcome is unknown;
//! * the **deadline** itself ([`within`]) catches a call that never got a connection:
//!   [`RedisCallError::NoConnection`], nothing was sent.
//!
//! Telling the two apart is what lets the gateway answer "not applied" or "outcome unknown"
//! truthfully; a service that treats both alike loses nothing by the same rule.
//!
//! [`RedisCallError::failure`] is the one classification of a failed call, and [`RedisHandle`]
//! the one deadline-bound connection both services' stores are built on.
//!
//! [`client`] is the one place a URL becomes a client: `redis://` in plain text, `rediss://`
//! over TLS with the server's certificate and host name always verified (against
//! `--redis-ca-file` or the system roots). A certificate the client refuses is an I/O error of
//! the connection, so it counts as [`RedisFailure::Unavailable`]: a fast 503 and a failing
//! `/ready`, with the reason in the error, exactly like an unreachable Redis.
//!
//! **Cluster mode.** A `REDIS_URL` listing several comma-separated node URLs selects Redis
//! Cluster ([`RedisTopology`]); [`connect_lazily`] then returns redis-rs's async cluster
//! connection (slot map, `MOVED`, failover) inside the same [`RedisConnection`], which every
//! `query_async`/`invoke_async`/`Script` call takes unchanged. Two rules keep the guarantees:
//!
//! * the cluster client never re-sends a command by itself (`retries(0)`): a command whose
//!   connection dropped may have run, and a bid script run twice would answer `bid_too_low` to
//!   a bid it accepted. A redirect or an outage is one failed call ([`RedisFailure`] says
//!   `Unavailable`: a fast 503 the client retries, with its `Idempotency-Key`), while redis-rs
//!   refreshes its slot map in the background;
//! * a non-transaction pipeline is sent one command at a time, concurrently, each to the node
//!   of its own key (`XLEN` of every outbox shard, `HGETALL` of every listed item), because a
//!   Redis Cluster pipeline may only address one slot. A `MULTI` pipeline goes whole: its
//!   keys share one hash tag by the key layout.
//!
//! With [`RedisHandle::with_replica_ack`] (`--durable-accept`) every script call is followed
//! on the same node's connection by `WAIT 1 <ms>` (see [`replica_ack`], a part of this module:
//! it wraps a [`RedisConnection`] and only [`RedisHandle`] uses it).

mod replica_ack;

use crate::service_options::RedisOptions;
use futures::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue, IntoConnectionInfo, Pipeline,
    RedisFuture, RedisResult, Value,
};
use std::future::Future;
use std::time::Duration;

/// Shortest connection timeout, so a very short deadline still lets a healthy Redis connect.
const MIN_CONNECTION_TIMEOUT: Duration = Duration::from_millis(200);

/// Why a Redis call bounded by [`within`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisCallError {
    /// No connection within the deadline: the command was never sent.
    #[error("no Redis connection within {0:?}")]
    NoConnection(Duration),
    /// Redis (or the connection to it) failed the command; a timeout here means it was sent
    /// and not answered in time.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// What a failed call means to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    /// Nothing was applied: no connection, a refused or dropped one, or Redis answering "not
    /// now" (`LOADING` while a restarted Redis reads its append-only file, `TRYAGAIN`,
    /// `MASTERDOWN`, `CLUSTERDOWN`: redis-rs marks these wait-and-retry). Retry later; the
    /// `resilience` experiment found `LOADING` answered as 500s for seconds after a restart
    /// before it counted here.
    Unavailable,
    /// The command was sent and not answered in time: it may still run, so a write's outcome
    /// is unknown.
    TimedOut,
    /// Redis answered with an error that means a bug (a script error, a wrong type).
    Internal,
}

impl RedisCallError {
    /// The one classification of a failed call (see [`RedisFailure`]).
    pub fn failure(&self) -> RedisFailure {
        let Self::Redis(e) = self else {
            return RedisFailure::Unavailable;
        };
        if e.is_timeout() {
            RedisFailure::TimedOut
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
            || matches!(e.retry_method(), redis::RetryMethod::WaitAndRetry)
        {
            RedisFailure::Unavailable
        } else {
            RedisFailure::Internal
        }
    }
}

/// A connection to standalone Redis or to a Redis Cluster, chosen by `REDIS_URL` (see the
/// module docs); both reconnect by themselves and are cheap to clone (multiplexed).
#[derive(Clone)]
pub enum RedisConnection {
    /// One server (`REDIS_URL` names one node).
    Standalone(ConnectionManager),
    /// A Redis Cluster (`REDIS_URL` lists several nodes): one connection per node, routed by
    /// key slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => {
                if pipeline.is_transaction() || pipeline.len() < 2 {
                    conn.req_packed_commands(pipeline, offset, count)
                } else {
                    per_command(conn.clone(), pipeline).boxed()
                }
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A non-transaction pipeline on a cluster: every command on its own, all sent at once (in
/// order, so commands for one node keep their order on its connection), the replies in the
/// pipeline's order as a pipeline returns them.
async fn per_command(conn: ClusterConnection, pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
    futures::future::try_join_all(pipeline.cmd_iter().map(|cmd| {
        let mut conn = conn.clone();
        async move { conn.req_packed_command(cmd).await }
    }))
    .await
}

/// What `REDIS_URL` names: one server or the seed nodes of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTopology {
    Standalone,
    Cluster,
}

impl RedisTopology {
    /// Several comma-separated URLs select Redis Cluster (the contract's "Cluster mode"), and
    /// so does `--redis-cluster` for one seed URL (ElastiCache's configuration endpoint).
    pub fn of(options: &RedisOptions) -> Self {
        if options.cluster || options.url.expose().contains(',') {
            Self::Cluster
        } else {
            Self::Standalone
        }
    }
}

/// A lazily connected, self-reconnecting Redis connection whose every call is bounded by one
/// deadline (cheap to clone: one multiplexed connection shared by every clone).
#[derive(Clone)]
pub struct RedisHandle {
    conn: RedisConnection,
    deadline: Duration,
    /// `Some(timeout)` with `--durable-accept`: a script's reply waits for one replica's
    /// acknowledgement of its writes, for at most `timeout`.
    replica_ack: Option<Duration>,
}

impl RedisHandle {
    /// Prepares the connection; Redis does not have to be up.
    ///
    /// # Errors
    /// When the options are refused (see [`client`]).
    pub fn connect_lazily(options: &RedisOptions, deadline: Duration) -> RedisResult<Self> {
        Ok(Self {
            conn: connect_lazily(options, deadline)?,
            deadline,
            replica_ack: None,
        })
    }

    /// Makes every script call (the writes: bids, creations, closes) wait for `WAIT 1
    /// <timeout>` on its node before it answers; a write no replica acknowledged in time is a
    /// [`RedisFailure::TimedOut`] ("outcome unknown": it was applied on the master but may not
    /// survive a failover, and a retry with the same `Idempotency-Key` settles it).
    pub fn with_replica_ack(mut self, timeout: Duration) -> Self {
        self.replica_ack = Some(timeout);
        self
    }

    /// The deadline of every call.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs one command.
    ///
    /// # Errors
    /// See [`within`].
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisCallError> {
        let mut conn = self.conn.clone();
        within(self.deadline, cmd.query_async(&mut conn)).await
    }

    /// Runs one pipeline.
    ///
    /// # Errors
    /// See [`within`].
    pub async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisCallError> {
        let mut conn = self.conn.clone();
        within(self.deadline, pipe.query_async(&mut conn)).await
    }

    /// Runs one script (`EVALSHA`, loading it on `NOSCRIPT`).
    ///
    /// # Errors
    /// See [`within`].
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisCallError> {
        match self.replica_ack {
            None => {
                let mut conn = self.conn.clone();
                within(self.deadline, invocation.invoke_async(&mut conn)).await
            }
            Some(timeout) => {
                let mut conn =
                    replica_ack::ReplicaAcked::new(self.conn.clone(), timeout, self.deadline);
                // The script runs within the response timeout (3/4 of the deadline) and the
                // `WAIT` within `timeout` plus an eighth of it, so this outer bound only ever
                // catches a call that never got a connection (nothing was sent).
                within(self.deadline + timeout, invocation.invoke_async(&mut conn)).await
            }
        }
    }

    /// `PING`, for readiness.
    ///
    /// # Errors
    /// See [`within`].
    pub async fn ping(&self) -> Result<(), RedisCallError> {
        self.query::<String>(&redis::cmd("PING")).await.map(drop)
    }
}

/// Connection options for calls bounded by `deadline` (see the module docs for the rule).
pub fn connection_config(deadline: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(deadline.max(MIN_CONNECTION_TIMEOUT)))
        .set_response_timeout(Some(response_timeout(deadline)))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// The cluster client's options for calls bounded by `deadline`: the same connection and
/// response timeouts as [`connection_config`], and no command ever re-sent by the client
/// (see the module docs).
fn cluster_config(deadline: Duration) -> ClusterConfig {
    ClusterConfig::new()
        .set_connection_timeout(deadline.max(MIN_CONNECTION_TIMEOUT))
        .set_response_timeout(response_timeout(deadline))
}

/// A lazily connected, self-reconnecting connection for calls bounded by `deadline`: to one
/// server, or to a Redis Cluster when `REDIS_URL` lists several nodes. Redis does not have to
/// be up.
///
/// # Errors
/// When the options are refused (see [`client`] and [`cluster_client`]).
pub fn connect_lazily(options: &RedisOptions, deadline: Duration) -> RedisResult<RedisConnection> {
    match RedisTopology::of(options) {
        RedisTopology::Standalone => {
            ConnectionManager::new_lazy_with_config(client(options)?, connection_config(deadline))
                .map(RedisConnection::Standalone)
        }
        RedisTopology::Cluster => Ok(RedisConnection::Cluster(
            cluster_client(options)?
                .get_pending_async_connection_with_config(cluster_config(deadline)),
        )),
    }
}

/// The cluster client for `options` (`REDIS_URL` a comma-separated list of seed nodes, all
/// `redis://` or all `rediss://`, one password); it does not connect. TLS follows the same
/// rules as [`client`]: verified always, against `--redis-ca-file` or the system roots.
///
/// # Errors
/// `InvalidClientConfig` when a URL is invalid or `#insecure`, the nodes mix TLS modes or
/// passwords, or a CA file is given for plain `redis://` nodes.
pub fn cluster_client(options: &RedisOptions) -> RedisResult<ClusterClient> {
    let nodes = options
        .url
        .expose()
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            let info = url.into_connection_info()?;
            tls_of(&info).map(|tls| (info, tls))
        })
        .collect::<RedisResult<Vec<(ConnectionInfo, bool)>>>()?;
    let tls = nodes.iter().any(|(_, tls)| *tls);
    if tls && !nodes.iter().all(|(_, tls)| *tls) {
        return Err(refused(
            "REDIS_URL mixes redis:// and rediss:// nodes: a cluster's nodes all use TLS or none",
        ));
    }
    let builder = ClusterClient::builder(nodes.into_iter().map(|(info, _)| info)).retries(0);
    match (&options.ca_file, tls) {
        (None, false) => builder.build(),
        (Some(_), false) => Err(ca_file_without_tls()),
        (ca_file, true) => {
            crate::tls::crypto_provider();
            builder
                .certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: ca_file.as_ref().map(|ca| ca.pem().to_vec()),
                })
                .build()
        }
    }
}

/// Whether `info` asks for TLS; `#insecure` is refused (verification cannot be turned off).
fn tls_of(info: &ConnectionInfo) -> RedisResult<bool> {
    match info.addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => Err(refused(
            "REDIS_URL asks to skip certificate verification (#insecure), which is not \
             supported; give the CA with --redis-ca-file instead",
        )),
        ConnectionAddr::TcpTls { .. } => Ok(true),
        _ => Ok(false),
    }
}

fn ca_file_without_tls() -> redis::RedisError {
    refused("--redis-ca-file is set but REDIS_URL is not rediss://: use rediss:// for TLS")
}

/// The client for `options`; it does not connect.
///
/// `rediss://` verifies the server's certificate chain and host name: against the CA file when
/// one is given (it replaces the system roots), the system roots otherwise. Verification cannot
/// be turned off: redis-rs's `#insecure` URL fragment is refused here.
///
/// # Errors
/// `InvalidClientConfig` when the URL is invalid, is `#insecure`, or a CA file is given for a
/// plain `redis://` URL (the operator asked for TLS and would silently not get it).
pub fn client(options: &RedisOptions) -> RedisResult<redis::Client> {
    let info = options.url.expose().into_connection_info()?;
    let tls = tls_of(&info)?;
    match (&options.ca_file, tls) {
        (None, false) => redis::Client::open(info),
        (Some(_), false) => Err(ca_file_without_tls()),
        (ca_file, true) => {
            // redis-rs builds its rustls config from the process default provider.
            crate::tls::crypto_provider();
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: ca_file.as_ref().map(|ca| ca.pem().to_vec()),
            };
            redis::Client::build_with_tls(info, certificates)
        }
    }
}

fn refused(why: &'static str) -> redis::RedisError {
    redis::RedisError::from((ErrorKind::InvalidClientConfig, why))
}

/// Runs one Redis call under `deadline`.
///
/// # Errors
/// [`RedisCallError::NoConnection`] when the deadline passed first (the connection's own
/// response timeout, shorter, fires first for a command that was sent), otherwise the call's
/// own error.
pub async fn within<T>(
    deadline: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, RedisCallError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result.map_err(RedisCallError::Redis),
        Err(_) => Err(RedisCallError::NoConnection(deadline)),
    }
}

/// Three quarters of the deadline: short enough to fire before the deadline does.
fn response_timeout(deadline: Duration) -> Duration {
    deadline * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_command_times_out_before_the_call_deadline() {
        assert_eq!(
            response_timeout(Duration::from_millis(80)),
            Duration::from_millis(60)
        );
        assert!(response_timeout(Duration::from_millis(1)) < Duration::from_millis(1));
    }

    #[tokio::test]
    async fn a_call_that_never_gets_a_connection_is_told_apart_from_a_redis_error() {
        let never = std::future::pending::<RedisResult<()>>();
        let result = within(Duration::from_millis(10), never).await;
        assert!(matches!(result, Err(RedisCallError::NoConnection(_))));
    }

    fn failure_of(kind: redis::ErrorKind) -> RedisFailure {
        RedisCallError::Redis(redis::RedisError::from((kind, "server said so"))).failure()
    }

    #[test]
    fn redis_loading_or_asking_to_try_again_is_unavailable() {
        use redis::{ErrorKind, ServerErrorKind};
        for kind in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
        ] {
            assert_eq!(
                failure_of(ErrorKind::Server(kind)),
                RedisFailure::Unavailable,
                "{kind:?}"
            );
        }
        assert_eq!(
            RedisCallError::NoConnection(Duration::from_millis(1)).failure(),
            RedisFailure::Unavailable
        );
    }

    #[test]
    fn a_script_error_is_internal() {
        assert_eq!(
            failure_of(redis::ErrorKind::Server(
                redis::ServerErrorKind::ResponseError
            )),
            RedisFailure::Internal
        );
    }

    fn options(url: &str, ca_file: Option<crate::tls::CaFile>) -> RedisOptions {
        RedisOptions {
            url: url.into(),
            key_prefix: String::new(),
            ca_file,
            cluster: false,
        }
    }

    #[test]
    fn an_invalid_url_is_refused_at_once() {
        assert!(connect_lazily(&options("not a url", None), Duration::from_millis(80)).is_err());
    }

    #[test]
    fn skipping_certificate_verification_is_refused() {
        let Err(e) = client(&options("rediss://127.0.0.1:6380/#insecure", None)) else {
            panic!("#insecure was accepted");
        };
        assert!(e.to_string().contains("#insecure"), "{e}");
    }

    #[tokio::test]
    async fn several_urls_or_the_cluster_flag_select_redis_cluster() {
        let one = options("redis://127.0.0.1:1", None);
        assert_eq!(RedisTopology::of(&one), RedisTopology::Standalone);
        let several = options("redis://127.0.0.1:1,redis://127.0.0.1:2", None);
        assert_eq!(RedisTopology::of(&several), RedisTopology::Cluster);
        let seed = RedisOptions {
            cluster: true,
            ..one
        };
        assert_eq!(RedisTopology::of(&seed), RedisTopology::Cluster);
        assert!(matches!(
            connect_lazily(&several, Duration::from_millis(80)),
            Ok(RedisConnection::Cluster(_))
        ));
    }

    #[test]
    fn a_cluster_refuses_mixed_tls_insecure_nodes_and_a_ca_file_without_tls() {
        let mixed = options("redis://127.0.0.1:1,rediss://127.0.0.1:2", None);
        assert!(cluster_client(&mixed).is_err(), "mixed TLS modes");
        let insecure = options("rediss://127.0.0.1:1/#insecure,rediss://127.0.0.1:2", None);
        let Err(e) = cluster_client(&insecure) else {
            panic!("#insecure was accepted");
        };
        assert!(e.to_string().contains("#insecure"), "{e}");
        let ca = testkit::TestCa::new("test CA").expect("CA");
        let ca_file = crate::tls::parse_ca_file(&ca.ca_file().display().to_string()).expect("CA");
        let plain = options(
            "redis://127.0.0.1:1,redis://127.0.0.1:2",
            Some(ca_file.clone()),
        );
        assert!(cluster_client(&plain).is_err(), "a CA file for plain nodes");
        let tls = options("rediss://127.0.0.1:1,rediss://127.0.0.1:2", Some(ca_file));
        assert!(cluster_client(&tls).is_ok());
    }

    #[test]
    fn plain_and_tls_urls_make_clients_without_connecting() {
        let plain = client(&options("redis://127.0.0.1:1", None)).expect("redis://");
        assert!(matches!(
            plain.get_connection_info().addr(),
            ConnectionAddr::Tcp(..)
        ));
        let tls = client(&options("rediss://user:pw@127.0.0.1:1", None)).expect("rediss://");
        assert!(matches!(
            tls.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        ));
    }
}
