//! [`Suspensions`]: which accounts an admin suspended from bidding or selling, held in memory by
//! every gateway, and [`follow`], the task that keeps it current.
//!
//! A bid must not query PostgreSQL (bids keep working while it is down, and a query per bid
//! would cap the write path at the database's rate), so each gateway holds the suspended
//! accounts in a map read under a short lock. The task loads every suspended account once the
//! accounts schema is migrated, then every `SUSPENSION_POLL_MS` reads only the accounts whose
//! suspensions changed since the newest change it has seen (`suspension_changed_at`), lifted
//! ones included. The gateway that sets a suspension applies it to its own map at once and
//! announces it on core NATS (`<prefix>.accounts.suspensions`), on which every gateway polls
//! at once: a suspension reaches every gateway within milliseconds when NATS is up, and within
//! one poll interval plus one query (`DATABASE_TIMEOUT_MS`) when it is not.
//!
//! While PostgreSQL is down the map keeps what it last read; suspensions cannot change then
//! either (setting one needs PostgreSQL). A gateway that starts during an outage knows no
//! suspension until PostgreSQL answers: it lets those accounts bid rather than refuse every
//! bid, the same trade as accepting their unexpired tokens.

use crate::accounts_migration::AccountsStatus;
use crate::auth::Accounts;
use crate::auth::accounts::Suspension;
use crate::auth::error::Activity;
use shared::UserId;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The suspended accounts this gateway knows of (shared by every request).
#[derive(Debug, Default)]
pub struct Suspensions {
    /// Only accounts with a suspension in force. A std lock: held for a map lookup or
    /// update, never across an `.await`.
    suspended: RwLock<HashMap<UserId, Suspension>>,
}

impl Suspensions {
    /// Whether `user` is suspended from `activity` (`Bid` or `Sell`).
    pub fn forbids(&self, user: &UserId, activity: Activity) -> bool {
        let suspended = self.suspended.read().unwrap_or_else(|e| e.into_inner());
        suspended.get(user).is_some_and(|s| match activity {
            Activity::Bid => s.bidding,
            Activity::Sell => s.selling,
            Activity::Administer => false,
        })
    }

    /// Records each account's suspensions as they are now (none lifts them).
    pub fn apply(&self, accounts: impl IntoIterator<Item = (UserId, Suspension)>) {
        let mut suspended = self.suspended.write().unwrap_or_else(|e| e.into_inner());
        for (user, suspension) in accounts {
            if suspension.is_none() {
                suspended.remove(&user);
            } else {
                suspended.insert(user, suspension);
            }
        }
    }

    /// How many accounts are suspended from something.
    pub fn len(&self) -> usize {
        self.suspended.read().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps `suspensions` current until `stop`: waits for the accounts schema, loads every
/// suspended account, then re-reads the changed ones every `interval` and whenever a message
/// arrives on `subject`. A failed read is retried at the next tick (the map keeps what it
/// had); the task itself never ends before `stop`, so the supervisor only restarts it after a
/// panic.
pub async fn follow(
    accounts: Accounts,
    status: AccountsStatus,
    suspensions: std::sync::Arc<Suspensions>,
    nats: async_nats::Client,
    subject: String,
    interval: Duration,
    stop: CancellationToken,
) {
    // Cancel-safe: waiting for the migration holds nothing.
    tokio::select! {
        () = status.migrated() => {}
        () = stop.cancelled() => return,
    }
    // Best effort: without the subscription (NATS down at start) the poll alone propagates.
    // `subscribe` queues the SUB while disconnected, and the client re-subscribes after a
    // reconnect, so this normally succeeds.
    let mut announcements = match nats.subscribe(subject).await {
        Ok(subscriber) => Some(subscriber),
        Err(e) => {
            tracing::warn!(error = %e, "no suspension announcements; polling only");
            None
        }
    };
    let mut mark = None;
    let mut loaded = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Cancel-safe: an interrupted tick or receive loses nothing; the next read covers it.
        tokio::select! {
            _ = tick.tick() => {}
            Some(_) = next_announcement(&mut announcements) => {}
            () = stop.cancelled() => return,
        }
        let since = if loaded { mark } else { None };
        match accounts.suspension_changes(since).await {
            Ok(changes) => {
                if !loaded || !changes.accounts.is_empty() {
                    tracing::debug!(
                        changed = changes.accounts.len(),
                        first_load = !loaded,
                        "suspensions read"
                    );
                }
                suspensions.apply(changes.accounts);
                mark = changes.newest;
                loaded = true;
            }
            Err(e) => {
                tracing::debug!(error = %format!("{:#}", anyhow::Error::new(e)), "suspensions not read; retrying at the next tick");
            }
        }
    }
}

/// The next announcement, or never when there is no subscription (or it ended).
async fn next_announcement(
    announcements: &mut Option<async_nats::Subscriber>,
) -> Option<async_nats::Message> {
    use futures::StreamExt as _;
    match announcements {
        Some(subscriber) => match subscriber.next().await {
            Some(message) => Some(message),
            None => {
                *announcements = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn a_suspension_forbids_only_its_activity_and_lifting_it_forgets_the_account() {
        let suspensions = Suspensions::default();
        let bidding_only = Suspension {
            bidding: true,
            selling: false,
        };
        suspensions.apply([(id("ada"), bidding_only)]);
        assert!(suspensions.forbids(&id("ada"), Activity::Bid));
        assert!(!suspensions.forbids(&id("ada"), Activity::Sell));
        assert!(!suspensions.forbids(&id("bob"), Activity::Bid));
        suspensions.apply([(id("ada"), Suspension::default())]);
        assert!(!suspensions.forbids(&id("ada"), Activity::Bid));
        assert!(suspensions.is_empty());
    }
}
