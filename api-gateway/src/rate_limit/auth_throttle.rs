//! [`AuthThrottle`]: how often one may try to sign in or register, per account and per client
//! address, counted exactly in Redis for every gateway at once.
//!
//! * **Per account**: `LOGIN_FAILURES_PER_ACCOUNT` (10) failed sign-ins of one login within
//!   `LOGIN_FAILURE_WINDOW_SECS` (15 min, from the first failure) and the next attempt is
//!   refused until the window ends, whatever the password; a successful sign-in forgets the
//!   failures. Registrations of one login are counted the same way (every attempt).
//! * **Per address**: `AUTH_ATTEMPTS_PER_IP_PER_MINUTE` (1,200) sign-in and registration
//!   attempts per client address (an IPv4 address or an IPv6 /64) per minute. Generous, so a
//!   thousand people behind one NAT can all sign in in the same minute; one host still cannot
//!   try more than 20 passwords a second, and any one account gets only its 10.
//!
//! A refused attempt is a 429 with `Retry-After`, decided before any password is hashed or any
//! account is looked up. The account counter is keyed by the login text (normalised, hashed),
//! never by whether an account has it: an unknown login is refused the same way, with the same
//! answer, in the same time, so the throttle reveals nothing about who has an account.
//!
//! These are rare requests that already cost an Argon2 hash, so each check is a synchronous
//! round trip (one pipeline), exact across instances. Redis down: the counts fall back to this
//! instance's memory, the same rules per instance, until it answers again.

use crate::metrics::Metrics;
use crate::store::rate_limits::{Attempt, Counted, RateLimitStore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use prometheus_client::metrics::counter::Counter;
use shared::client_address::ClientKey;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The window of the per-address count.
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(60);

/// Counter kinds (Redis key parts).
const FAILED_SIGN_INS: &str = "fail";
const REGISTRATIONS: &str = "reg";
const ADDRESS: &str = "ip";

/// Local counters past this many are swept of expired windows before a new one is added.
const LOCAL_SWEEP_ABOVE: usize = 10_000;

/// The throttle's numbers; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRules {
    /// Failed sign-ins (and registrations) of one login per `failure_window`.
    pub failures_per_login: u32,
    pub failure_window: Duration,
    /// Sign-in and registration attempts per client address per minute.
    pub attempts_per_address: u32,
}

/// An attempt the throttle refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Until the window that refused it ends.
    pub retry_after: Duration,
}

pub struct AuthThrottle {
    store: Arc<RateLimitStore>,
    rules: AuthRules,
    /// The counts while the limiter's Redis does not answer.
    local: LocalCounts,
    refused_login: Counter,
    refused_registration: Counter,
    refused_address: Counter,
    metrics: Arc<Metrics>,
}

impl AuthThrottle {
    pub fn new(store: Arc<RateLimitStore>, rules: AuthRules, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            rules,
            local: LocalCounts::default(),
            refused_login: metrics.rate_limited("login_account"),
            refused_registration: metrics.rate_limited("register_account"),
            refused_address: metrics.rate_limited("auth_ip"),
            metrics,
        }
    }

    /// Before checking a password: counts the attempt for `client` and reads the login's
    /// failures.
    ///
    /// # Errors
    /// [`Throttled`] when either limit is reached.
    pub async fn before_sign_in(&self, login: &str, client: &ClientKey) -> Result<(), Throttled> {
        let login = login_key(login);
        let failures = self.failure_rule(FAILED_SIGN_INS, &login, 0);
        self.check(failures, client, &self.refused_login).await
    }

    /// A sign-in of `login` failed (wrong password or no such account).
    pub async fn sign_in_failed(&self, login: &str) {
        let login = login_key(login);
        if let Some(attempt) = self
            .failure_rule(FAILED_SIGN_INS, &login, 1)
            .map(|(a, _)| a)
        {
            self.count(&[attempt]).await;
        }
    }

    /// A sign-in of `login` succeeded: its failures are forgotten.
    pub async fn sign_in_succeeded(&self, login: &str) {
        if self.rules.failures_per_login == 0 {
            return;
        }
        let login = login_key(login);
        self.local.forget(FAILED_SIGN_INS, &login);
        if let Err(e) = self.store.forget_attempts(FAILED_SIGN_INS, &login).await {
            self.metrics.rate_limit_redis_failures.inc();
            tracing::debug!(error = %e, "could not reset a login's failed sign-ins");
        }
    }

    /// Before registering `login` (when the request names one): counts the attempt for the
    /// login and for `client`.
    ///
    /// # Errors
    /// [`Throttled`] when either limit is reached.
    pub async fn before_register(
        &self,
        login: Option<&str>,
        client: &ClientKey,
    ) -> Result<(), Throttled> {
        let login = login.map(login_key);
        let registrations = login
            .as_deref()
            .and_then(|login| self.failure_rule(REGISTRATIONS, login, 1));
        // Counted before this attempt is judged: the attempt itself must stay within the limit.
        let registrations = registrations.map(|(attempt, limit)| (attempt, limit + 1));
        self.check(registrations, client, &self.refused_registration)
            .await
    }

    /// The per-login attempt of `kind` adding `add`, with the count at which it refuses.
    fn failure_rule<'a>(
        &self,
        kind: &'a str,
        login: &'a str,
        add: u32,
    ) -> Option<(Attempt<'a>, u64)> {
        (self.rules.failures_per_login > 0).then_some((
            Attempt {
                kind,
                key: login,
                window: self.rules.failure_window,
                add,
            },
            u64::from(self.rules.failures_per_login),
        ))
    }

    /// Counts the address attempt with the per-login one in one round trip, and refuses when
    /// the login's count has reached its limit or the address's went past its own.
    async fn check(
        &self,
        login: Option<(Attempt<'_>, u64)>,
        client: &ClientKey,
        refused_login: &Counter,
    ) -> Result<(), Throttled> {
        let address = (self.rules.attempts_per_address > 0).then_some(Attempt {
            kind: ADDRESS,
            key: client.as_str(),
            window: ADDRESS_WINDOW,
            add: 1,
        });
        let attempts: Vec<Attempt<'_>> = login.iter().map(|(a, _)| *a).chain(address).collect();
        let counted = self.count(&attempts).await;
        let mut counted = counted.into_iter();
        if let Some((_, limit)) = login
            && let Some(count) = counted.next()
            && count.count >= limit
        {
            refused_login.inc();
            return Err(Throttled {
                retry_after: count.ttl,
            });
        }
        if address.is_some()
            && let Some(count) = counted.next()
            && count.count > u64::from(self.rules.attempts_per_address)
        {
            self.refused_address.inc();
            return Err(Throttled {
                retry_after: count.ttl,
            });
        }
        Ok(())
    }

    /// Counts in Redis, or in memory while Redis fails.
    async fn count(&self, attempts: &[Attempt<'_>]) -> Vec<Counted> {
        if attempts.is_empty() {
            return Vec::new();
        }
        match self.store.count_attempts(attempts).await {
            Ok(counted) => counted,
            Err(e) => {
                self.metrics.rate_limit_redis_failures.inc();
                tracing::debug!(error = %e, "sign-in throttle counts locally: its Redis failed");
                let now = Instant::now();
                attempts.iter().map(|a| self.local.count(a, now)).collect()
            }
        }
    }
}

/// The login as the account counters know it: trimmed, case-folded (as the unique indexes
/// compare), then hashed, so Redis holds no email address and every key has one shape.
fn login_key(login: &str) -> String {
    let folded = login.trim().to_lowercase();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, folded.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// Exact counters in this instance's memory, with the same windows as the Redis ones.
#[derive(Default)]
struct LocalCounts {
    counters: DashMap<String, (Instant, u64)>,
}

impl LocalCounts {
    fn count(&self, attempt: &Attempt<'_>, now: Instant) -> Counted {
        if self.counters.len() > LOCAL_SWEEP_ABOVE {
            self.counters.retain(|_, (ends, _)| *ends > now);
        }
        let mut counter = self
            .counters
            .entry(format!("{}:{}", attempt.kind, attempt.key))
            .or_insert((now + attempt.window, 0));
        if counter.0 <= now {
            *counter = (now + attempt.window, 0);
        }
        counter.1 += u64::from(attempt.add);
        Counted {
            count: counter.1,
            ttl: counter.0 - now,
        }
    }

    fn forget(&self, kind: &str, key: &str) {
        self.counters.remove(&format!("{kind}:{key}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_keyed_without_regard_to_case_or_surrounding_space() {
        assert_eq!(login_key(" Ada@Example.org "), login_key("ada@example.org"));
        assert_ne!(login_key("ada@example.org"), login_key("bob@example.org"));
        assert_eq!(login_key("ada").len(), 22);
    }

    #[test]
    fn local_counts_add_within_a_window_and_restart_after_it() {
        let local = LocalCounts::default();
        let attempt = |add| Attempt {
            kind: ADDRESS,
            key: "4:10.0.0.1",
            window: Duration::from_millis(30),
            add,
        };
        let start = Instant::now();
        assert_eq!(local.count(&attempt(1), start).count, 1);
        let later = local.count(&attempt(1), start + Duration::from_millis(10));
        assert_eq!((later.count, later.ttl), (2, Duration::from_millis(20)));
        assert_eq!(local.count(&attempt(0), start).count, 2);
        let after = start + Duration::from_millis(30);
        assert_eq!(local.count(&attempt(0), after).count, 0);
        local.count(&attempt(1), after);
        local.forget(ADDRESS, "4:10.0.0.1");
        assert_eq!(local.count(&attempt(0), after).count, 0);
    }
}
