//! The accounts schema's migration at start, retried in the background until it succeeds, and
//! [`AccountsStatus`], what the auth routes and `/ready` learn from it.
//!
//! Bids, item reads and token checks never touch PostgreSQL, so the gateway must start and
//! serve them while PostgreSQL is down or the schema is not migrated yet. Migrating therefore
//! is not a step of `Application::build` but a supervised task: it retries with a capped
//! backoff inside itself (so a PostgreSQL outage at start is not a task "down" that would fail
//! `/ready`), records the outcome, and then waits for shutdown. Until it succeeded the auth
//! routes answer 503 at once, without touching the pool.

use crate::auth::{Accounts, AuthError};
use shared::supervisor::Backoff;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where the accounts schema stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountsState {
    /// No migration has succeeded yet, and PostgreSQL answered (or was not asked yet).
    NotMigrated,
    /// The last attempt could not reach PostgreSQL.
    Down,
    /// The schema is current; the routes may use it.
    Migrated,
}

impl AccountsState {
    /// The word `/ready` shows before the schema is migrated.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotMigrated => "not_migrated",
            Self::Down => "down",
            Self::Migrated => "migrated",
        }
    }
}

/// The migration task's latest outcome, shared with the routes (cheap to clone).
#[derive(Debug, Clone)]
pub struct AccountsStatus(Arc<watch::Sender<AccountsState>>);

impl Default for AccountsStatus {
    fn default() -> Self {
        Self(Arc::new(watch::channel(AccountsState::NotMigrated).0))
    }
}

impl AccountsStatus {
    pub fn get(&self) -> AccountsState {
        *self.0.borrow()
    }

    pub fn is_migrated(&self) -> bool {
        self.get() == AccountsState::Migrated
    }

    /// Returns once the schema is migrated (at once if it is).
    pub async fn migrated(&self) {
        let mut state = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = state.wait_for(|s| *s == AccountsState::Migrated).await;
    }

    /// Records `state`; true when it changed (so a repeated failure is logged once).
    fn set(&self, state: AccountsState) -> bool {
        self.0.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        })
    }
}

/// Migrates the accounts schema, retrying after `backoff` pauses (doubling to its max) until it
/// succeeds or `stop` is cancelled; after success it waits for `stop`, so the supervisor only
/// sees it end at shutdown (or by a panic, which it restarts).
pub async fn run(
    accounts: Accounts,
    status: AccountsStatus,
    backoff: Backoff,
    stop: CancellationToken,
) {
    let mut pause = backoff.first;
    loop {
        // Cancel-safe: dropping a migration mid-way rolls its transaction back.
        let attempt = tokio::select! {
            attempt = accounts.migrate() => attempt,
            () = stop.cancelled() => return,
        };
        match attempt {
            Ok(applied) => {
                status.set(AccountsState::Migrated);
                tracing::info!(
                    ?applied,
                    "accounts schema migrated; the auth routes are open"
                );
                stop.cancelled().await;
                return;
            }
            Err(error) => {
                let state = match error {
                    AuthError::Unavailable(..) => AccountsState::Down,
                    _ => AccountsState::NotMigrated,
                };
                if status.set(state) {
                    tracing::warn!(
                        error = %format!("{:#}", anyhow::Error::new(error)),
                        retry_in = ?pause,
                        "accounts schema not migrated; the auth routes answer 503 until it is"
                    );
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
        pause = backoff.after(pause);
    }
}
