//! One way to build a PostgreSQL connection pool (the gateway's read model and accounts, the
//! worker's store): it connects lazily, so a service starts while PostgreSQL is down, and every
//! wait (for a free connection, a new one, a recycle check) is bounded by the caller's
//! deadline, so an outage is a fast error rather than a queue of stuck requests.
//!
//! The same deadline bounds each whole query ([`within`]), and one rule tells an outage from a
//! bug ([`is_unavailable`], [`QueryError`]): an outage is a 503 or a retry, a bug a 500 or a
//! dead letter, in every service alike. Among the rest, one rule picks out a refusal of the
//! data itself ([`data_refusal`], [`QueryError::refused_data`]): the same statement would
//! succeed with other values, so the archive isolates and dead-letters the event that carried
//! them instead of retrying its batch forever.
//!
//! TLS is what the URL's `sslmode` says ([`crate::postgres_tls`]). A server certificate the
//! connector refuses fails the connection like an unreachable server (an I/O error in the TLS
//! handshake), so it is an outage to the caller: a 503, a failing `/ready`, a retried batch,
//! with the certificate's fault in the message.

use crate::postgres_tls::{self, PostgresTlsError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::error::Error;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::error::DbError;
use tokio_postgres::error::SqlState;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    /// `DATABASE_URL` is not a PostgreSQL connection string.
    #[error("invalid DATABASE_URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// Its TLS settings (`sslmode`, `sslrootcert`) cannot be honoured.
    #[error(transparent)]
    Tls(PostgresTlsError),
    /// The pool refused its own settings.
    #[error("building the PostgreSQL pool")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// A pool of at most `size` connections that waits at most `timeout` for any of them.
///
/// Connections are recycled with the fast check (is the socket still open), because every
/// query already runs under a deadline and a dead connection fails it quickly.
///
/// # Errors
/// When the URL is invalid or its TLS settings cannot be honoured (an unreadable
/// `sslrootcert`, an unknown `sslmode`).
pub fn lazy_pool(url: &str, size: usize, timeout: Duration) -> Result<Pool, PoolSetupError> {
    let settings = postgres_tls::settings(url).map_err(|e| match e {
        PostgresTlsError::InvalidUrl(e) => PoolSetupError::InvalidUrl(e),
        e => PoolSetupError::Tls(e),
    })?;
    let recycling = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match settings.tls {
        None => Manager::from_config(settings.config, tokio_postgres::NoTls, recycling),
        Some(tls) => Manager::from_config(settings.config, tls, recycling),
    };
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()?)
}

/// PostgreSQL did not answer a query within its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no answer within {0:?}")]
pub struct NoAnswer(pub Duration);

/// Runs one query (or transaction) `op` under `deadline`.
///
/// # Errors
/// `op`'s own error, or [`NoAnswer`] converted into it when the deadline passed first.
pub async fn within<T, E: From<NoAnswer>>(
    deadline: Duration,
    op: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout(deadline, op)
        .await
        .unwrap_or_else(|_| Err(E::from(NoAnswer(deadline))))
}

/// Whether `error` means PostgreSQL is not there for us right now rather than a bug: a broken
/// or refused connection, a server shutting down, starting up or full, or a table that does not
/// exist yet (its owner has not migrated). Anything else (a conversion of an unexpected column
/// type, a constraint, a syntax error) is a bug or a refusal, retried in vain.
pub fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    let io = error
        .source()
        .is_some_and(|cause| cause.is::<std::io::Error>());
    error.is_closed()
        || io
        || error.as_db_error().is_some_and(|db| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::UNDEFINED_TABLE,
            ]
            .contains(db.code())
        })
}

/// Whether any cause in `error`'s chain is an outage: the pool could not hand out a connection
/// (every [`deadpool_postgres::PoolError`] is one), or [`is_unavailable`].
pub fn any_cause_unavailable(error: &(dyn Error + 'static)) -> bool {
    std::iter::successors(Some(error), |&e| e.source()).any(|cause| {
        cause.is::<deadpool_postgres::PoolError>()
            || cause
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(is_unavailable)
    })
}

/// SQLSTATE classes in which PostgreSQL refuses the values, not the statement: `22` data
/// exception (a NUL in text, a number out of range, an invalid timestamp), `23` integrity
/// constraint violation (a `check`, `not null` or unique rule), `54` program limit exceeded (a
/// value too large to index). Any other class (a syntax error, an unknown column, a lost
/// serialization race, an outage) would fail the same way with any data, or is transient.
const DATA_REFUSAL_CLASSES: [&str; 3] = ["22", "23", "54"];

/// The server's refusal of the data itself, if any cause in `error`'s chain is one (see
/// [`DATA_REFUSAL_CLASSES`]); outages are never refusals.
pub fn data_refusal<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a DbError> {
    if any_cause_unavailable(error) {
        return None;
    }
    std::iter::successors(Some(error), |&e| e.source()).find_map(|cause| {
        let db = cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::as_db_error)
            .or_else(|| cause.downcast_ref::<DbError>())?;
        DATA_REFUSAL_CLASSES
            .contains(&db.code().code().get(..2)?)
            .then_some(db)
    })
}

/// Why a query failed, as far as its caller can act on it.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// PostgreSQL is unreachable, too slow, not accepting sessions or not migrated yet: retry
    /// later.
    #[error("postgres unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, or a statement PostgreSQL refused.
    #[error(transparent)]
    Other(anyhow::Error),
}

impl QueryError {
    /// PostgreSQL's refusal of the values this query carried (see [`data_refusal`]), as
    /// `"<SQLSTATE>: <message>"`; `None` for an outage or a bug.
    pub fn refused_data(&self) -> Option<String> {
        match self {
            Self::Unavailable(_) => None,
            Self::Other(e) => {
                data_refusal(e.as_ref()).map(|db| format!("{}: {}", db.code().code(), db.message()))
            }
        }
    }
}

impl From<anyhow::Error> for QueryError {
    /// Classified by [`any_cause_unavailable`], so `.context()` on the way keeps the cause.
    fn from(error: anyhow::Error) -> Self {
        if any_cause_unavailable(error.as_ref()) {
            Self::Unavailable(format!("{error:#}"))
        } else {
            Self::Other(error)
        }
    }
}

impl From<NoAnswer> for QueryError {
    fn from(error: NoAnswer) -> Self {
        Self::Unavailable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_url_is_refused_without_connecting() {
        assert!(matches!(
            lazy_pool("postgres://[", 2, Duration::from_millis(100)),
            Err(PoolSetupError::InvalidUrl(_))
        ));
    }

    #[tokio::test]
    async fn a_pool_is_built_while_postgres_is_unreachable() {
        let pool = lazy_pool(
            "postgres://postgres@127.0.0.1:1/none",
            2,
            Duration::from_millis(100),
        );
        assert_eq!(pool.map(|p| p.status().max_size).ok(), Some(2));
    }

    #[tokio::test]
    async fn a_query_past_its_deadline_is_unavailable() {
        let never = std::future::pending::<Result<(), QueryError>>();
        let result = within(Duration::from_millis(10), never).await;
        assert!(matches!(result, Err(QueryError::Unavailable(m)) if m.contains("no answer")));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_a_bug_is_not() {
        let pool = lazy_pool(
            "postgres://postgres@127.0.0.1:1/none",
            1,
            Duration::from_millis(200),
        )
        .unwrap();
        let refused = pool.get().await.map(drop).map_err(anyhow::Error::new);
        let refused = refused.map_err(|e| QueryError::from(e.context("getting a connection")));
        assert!(matches!(refused, Err(QueryError::Unavailable(_))));
        let bug = QueryError::from(anyhow::anyhow!("a column of an unexpected type"));
        assert!(matches!(bug, QueryError::Other(_)));
    }

    /// A statement on the machine's PostgreSQL, its error as the worker's store sees it.
    async fn refusal_of(sql: &str, text: &str) -> Option<String> {
        let url = "postgres://postgres@127.0.0.1:5432/postgres";
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("the shared PostgreSQL");
        let connection = tokio::spawn(connection);
        let error = client.query(sql, &[&text]).await.expect_err("refused");
        connection.abort();
        QueryError::from(anyhow::Error::new(error).context("running the statement")).refused_data()
    }

    #[tokio::test]
    async fn a_nul_in_text_and_a_broken_check_are_refusals_of_the_data() {
        let nul = refusal_of("select $1::text", "bad\u{0}reason").await;
        assert!(
            nul.as_deref()
                .is_some_and(|r| r.starts_with("22021: ") && r.contains("0x00")),
            "{nul:?}"
        );
        let overflow = refusal_of("select $1::text::int2", "99999").await;
        assert!(overflow.is_some_and(|r| r.starts_with("22")));
    }

    #[tokio::test]
    async fn an_unknown_column_is_a_bug_not_a_refusal_of_the_data() {
        let bug = refusal_of("select nope from (select $1::text) as t", "x").await;
        assert_eq!(bug, None);
    }

    #[test]
    fn an_outage_is_never_a_refusal_of_the_data() {
        assert_eq!(QueryError::Unavailable("down".into()).refused_data(), None);
        assert_eq!(
            QueryError::from(anyhow::anyhow!("not a database error")).refused_data(),
            None
        );
    }
}
