//! [`PasswordHasher`]: Argon2id hashing and verification, and [`PasswordHash`], what is stored.
//!
//! Argon2id with OWASP's Password Storage Cheat Sheet parameters (19 MiB, 2 iterations, 1
//! lane), stored as a PHC string whose parameters travel with it. Each hash is tens of
//! milliseconds of CPU and 19 MiB of memory, so the work runs on the blocking pool behind a
//! semaphore: a burst of sign-ins queues instead of stalling the async workers or allocating
//! without bound.
//!
//! Unknown accounts are verified against a dummy hash made with the same parameters, so a
//! sign-in costs the same whether the account exists or not and timing does not enumerate
//! users.

use super::error::AuthError;
use super::new_password::NewPassword;
use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use std::fmt;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// OWASP's Argon2id parameters: memory in KiB, iterations, lanes.
pub const OWASP_MEMORY_KIB: u32 = 19 * 1024;
pub const OWASP_ITERATIONS: u32 = 2;
pub const OWASP_LANES: u32 = 1;

/// Argon2id's cost: memory (KiB), iterations and lanes. [`Default`] is OWASP's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

impl PasswordCost {
    pub const OWASP: Self = Self {
        memory_kib: OWASP_MEMORY_KIB,
        iterations: OWASP_ITERATIONS,
        lanes: OWASP_LANES,
    };
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self::OWASP
    }
}

/// A stored Argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash read back from storage (the accounts table).
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// Argon2id with fixed parameters, a dummy hash for unknown accounts, and a bound on how many
/// hashes run at once. Cheap to clone (shared state behind `Arc`).
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A hash of a random password with the same parameters, verified when the account is
    /// unknown so the answer takes as long as for a real one.
    dummy: Arc<str>,
    /// Permits for concurrent hashes; each holds 19 MiB while it runs.
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    /// Argon2id with OWASP's parameters; at most one hash per CPU at a time.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when the dummy hash cannot be made (no OS randomness).
    pub fn owasp() -> Result<Self, AuthError> {
        Self::with_cost(PasswordCost::OWASP)
    }

    /// Argon2id at `cost`; at most one hash per CPU at a time.
    ///
    /// # Errors
    /// As [`PasswordHasher::with_params`].
    pub fn with_cost(cost: PasswordCost) -> Result<Self, AuthError> {
        let concurrency = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_params(cost.memory_kib, cost.iterations, cost.lanes, concurrency)
    }

    /// Argon2id with the given cost (tests use a tiny one to stay fast in debug builds).
    ///
    /// # Errors
    /// [`AuthError::Internal`] for parameters Argon2 refuses, or no OS randomness.
    pub fn with_params(
        memory_kib: u32,
        iterations: u32,
        lanes: u32,
        concurrency: usize,
    ) -> Result<Self, AuthError> {
        let params = Params::new(memory_kib, iterations, lanes, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut random = [0u8; 32];
        aws_lc_rs::rand::fill(&mut random).context("no OS randomness for the dummy password")?;
        let dummy = argon2
            .hash_password(&random)
            .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e}"))?
            .to_string();
        Ok(Self {
            argon2,
            dummy: dummy.into(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        })
    }

    /// Hashes a new password with a fresh random salt.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when Argon2 or the OS random source fails.
    pub async fn hash(&self, password: &NewPassword) -> Result<PasswordHash, AuthError> {
        let argon2 = self.argon2.clone();
        let password = password.expose().to_owned();
        let phc = self
            .blocking(move || {
                argon2
                    .hash_password(password.as_bytes())
                    .map(|hash| hash.to_string())
                    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
            })
            .await?;
        Ok(PasswordHash(phc))
    }

    /// Whether `candidate` is the password of the account whose hash is `stored`; `None` (no
    /// such account) verifies against the dummy hash and answers `false`, after the same work.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when a stored hash is not a valid PHC string.
    pub async fn verify(
        &self,
        candidate: &str,
        stored: Option<&PasswordHash>,
    ) -> Result<bool, AuthError> {
        let argon2 = self.argon2.clone();
        let candidate = candidate.to_owned();
        let known = stored.is_some();
        let phc = stored.map_or_else(|| self.dummy.to_string(), |hash| hash.0.clone());
        let matched = self
            .blocking(
                move || match argon2.verify_password(candidate.as_bytes(), phc.as_str()) {
                    Ok(()) => Ok(true),
                    Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                    Err(e) => Err(anyhow::anyhow!(
                        "verifying a password against its hash: {e}"
                    )),
                },
            )
            .await?;
        Ok(known && matched)
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("the password hashing semaphore is closed")?;
        let result = tokio::task::spawn_blocking(work)
            .await
            .context("the password hashing task failed")?;
        Ok(result?)
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::login::Login;
    use super::*;

    fn password() -> NewPassword {
        let login = Login::parse("ada").expect("valid login");
        NewPassword::parse("correct horse battery staple", &login).expect("valid")
    }

    /// Argon2 at OWASP's cost takes seconds in a debug build; these tests do not need it.
    fn cheap() -> PasswordHasher {
        PasswordHasher::with_params(64, 1, 1, 2).expect("hasher")
    }

    /// The test password hashed by `hasher`, after checking the hash starts with `prefix`
    /// (the algorithm and its parameters, as PHC writes them).
    async fn hashed(hasher: &PasswordHasher, prefix: &str) -> PasswordHash {
        let hash = hasher.hash(&password()).await.expect("hash");
        assert!(hash.as_str().starts_with(prefix), "{}", hash.as_str());
        hash
    }

    #[tokio::test]
    async fn the_right_password_verifies_and_a_wrong_one_does_not() {
        let hasher = cheap();
        let hash = hashed(&hasher, "$argon2id$v=19$").await;
        assert!(
            hasher
                .verify("correct horse battery staple", Some(&hash))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("correct horse battery stapler", Some(&hash))
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_their_salt() {
        let hasher = cheap();
        let password = password();
        let first = hasher.hash(&password).await.expect("hash");
        let second = hasher.hash(&password).await.expect("hash");
        assert_ne!(first.as_str(), second.as_str());
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies_even_with_the_dummy_password() {
        let hasher = cheap();
        assert!(
            !hasher
                .verify("anything at all", None)
                .await
                .expect("verify")
        );
        assert!(!hasher.verify("", None).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_internal_error_not_a_wrong_password() {
        let hasher = cheap();
        let corrupt = PasswordHash::from_stored("$argon2id$garbage".into());
        assert!(matches!(
            hasher.verify("whatever", Some(&corrupt)).await,
            Err(AuthError::Internal(_))
        ));
    }

    #[tokio::test]
    async fn owasp_hasher_stores_owasp_parameters_in_the_hash() {
        let hasher = PasswordHasher::owasp().expect("hasher");
        hashed(&hasher, "$argon2id$v=19$m=19456,t=2,p=1$").await;
        // The dummy uses the same parameters, so an unknown account costs the same.
        assert!(hasher.dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }
}
