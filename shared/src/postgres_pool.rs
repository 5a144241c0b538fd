//! One way to build a PostgreSQL connection pool (the gateway's read model, the worker's
//! store): it connects lazily, so a service starts while PostgreSQL is down, and every wait
//! (for a free connection, a new one, a recycle check) is bounded by the caller's deadline,
//! so an outage is a fast error rather than a queue of stuck requests.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::str::FromStr;
use std::time::Duration;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    /// `DATABASE_URL` is not a PostgreSQL connection string.
    #[error("invalid DATABASE_URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
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
/// When the URL is invalid.
pub fn lazy_pool(url: &str, size: usize, timeout: Duration) -> Result<Pool, PoolSetupError> {
    let config = tokio_postgres::Config::from_str(url).map_err(PoolSetupError::InvalidUrl)?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()?)
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
}
