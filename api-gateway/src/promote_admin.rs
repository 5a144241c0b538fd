//! `api-gateway promote-admin <account>`: the documented way to make the first admin (and any
//! later one), instead of a shared static token.
//!
//! An operator registers an account the ordinary way (`POST /api/v1/auth/register`), then runs
//! this with the account's email, username or user id against the deployment's
//! `DATABASE_URL`. It migrates the accounts schema if needed, grants `admin` (idempotent), prints
//! the user id and exits; the account signs in again to get a token that carries the role.
//! `infrastructure/local/run.sh` does exactly this for `make run`'s demo admin.

use crate::auth::login::Login;
use crate::auth::{Accounts, AuthError};
use crate::config::Config;
use anyhow::Context;
use shared::UserId;
use std::time::Duration;

/// Grants `admin` to `account` (an email, a username or a user id); returns its user id.
///
/// # Errors
/// When PostgreSQL is unreachable, the schema cannot be migrated, or no account matches.
pub async fn run(config: &Config, account: &str) -> anyhow::Result<UserId> {
    let timeout = Duration::from_millis(config.database_timeout_ms.max(5_000));
    let pool = shared::postgres_pool::lazy_pool(config.database.url.expose(), 1, timeout)
        .context("building the accounts pool")?;
    let accounts = Accounts::new(pool, timeout);
    accounts
        .migrate()
        .await
        .map_err(anyhow::Error::new)
        .with_context(|| format!("migrating the accounts schema at {}", config.database.url))?;
    let by_login = match Login::parse(account) {
        Ok(login) => Some(accounts.promote_to_admin(&login).await),
        Err(_) => None,
    };
    let promoted = match (by_login, UserId::parse(account)) {
        (Some(Ok(id)), _) => Ok(id),
        (Some(Err(AuthError::AccountNotFound)) | None, Ok(id)) => {
            accounts.promote_id_to_admin(&id).await
        }
        (Some(Err(e)), _) => Err(e),
        (None, Err(_)) => Err(AuthError::AccountNotFound),
    };
    promoted
        .map_err(anyhow::Error::new)
        .with_context(|| format!("promoting {account:?} to admin"))
}
