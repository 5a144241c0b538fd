//! [`Sessions`]: the account flows the routes call, one method per endpoint (register, sign in,
//! refresh, sign out, me), so each handler is extract, call, map.
//!
//! A sign-in answers [`AuthError::InvalidCredentials`] for every failure, after the same
//! Argon2 work: an unknown login, a malformed one and a wrong password are indistinguishable
//! by text and by timing.

use super::access_token::{AccessTokenIssuer, IssuedAccessToken};
use super::accounts::{Account, Accounts};
use super::display_name::DisplayName;
use super::error::AuthError;
use super::login::Login;
use super::new_password::NewPassword;
use super::password_hasher::PasswordHasher;
use super::refresh_token::RefreshToken;
use shared::UserId;
use std::time::Duration;

/// How long a refresh token lives unused; each refresh starts a new one.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// What a client gets on sign-in and refresh.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: IssuedAccessToken,
    pub refresh_token: RefreshToken,
    pub account: Account,
}

/// Accounts, password hashing and token issuing, put together.
#[derive(Debug, Clone)]
pub struct Sessions {
    accounts: Accounts,
    hasher: PasswordHasher,
    issuer: AccessTokenIssuer,
    refresh_ttl: Duration,
}

impl Sessions {
    pub fn new(
        accounts: Accounts,
        hasher: PasswordHasher,
        issuer: AccessTokenIssuer,
        refresh_ttl: Duration,
    ) -> Self {
        Self {
            accounts,
            hasher,
            issuer,
            refresh_ttl,
        }
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    pub fn issuer(&self) -> &AccessTokenIssuer {
        &self.issuer
    }

    /// Registers an account and signs it in.
    ///
    /// # Errors
    /// [`AuthError::InvalidLogin`], [`AuthError::InvalidDisplayName`] or
    /// [`AuthError::WeakPassword`] for bad input; [`AuthError::LoginTaken`] when the login is in
    /// use; [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn register(
        &self,
        login: &str,
        display_name: &str,
        password: &str,
    ) -> Result<Session, AuthError> {
        let login = Login::parse(login)?;
        let display_name = DisplayName::parse(display_name)?;
        let password = NewPassword::parse(password, &login)?;
        let hash = self.hasher.hash(&password).await?;
        let account = self.accounts.register(&login, &display_name, &hash).await?;
        self.start(account).await
    }

    /// Checks a login and password and starts a session.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`] when either is wrong (or the login cannot exist);
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn sign_in(&self, login: &str, password: &str) -> Result<Session, AuthError> {
        let found = match Login::parse(login) {
            Ok(login) => self.accounts.find_by_login(&login).await?,
            Err(_) => None,
        };
        let matched = self
            .hasher
            .verify(password, found.as_ref().map(|c| &c.password_hash))
            .await?;
        match found {
            Some(credentials) if matched => self.start(credentials.account).await,
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// Exchanges a refresh token for a new access token and a new refresh token, with the
    /// account's current roles.
    ///
    /// # Errors
    /// [`AuthError::InvalidRefreshToken`], or [`AuthError::RefreshTokenReused`] after revoking
    /// the token's family.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, AuthError> {
        let presented = RefreshToken::from_client(refresh_token)?;
        let next = RefreshToken::generate()?;
        let account = self
            .accounts
            .rotate_refresh(&presented, &next, self.refresh_ttl)
            .await?;
        let access_token = self.issuer.issue(&account.id, &account.roles)?;
        Ok(Session {
            access_token,
            refresh_token: next,
            account,
        })
    }

    /// Ends the session the refresh token belongs to. Its access tokens stay valid until they
    /// expire (minutes): they are checked without a database.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable. An unknown or malformed token
    /// is no error.
    pub async fn sign_out(&self, refresh_token: &str) -> Result<(), AuthError> {
        match RefreshToken::from_client(refresh_token) {
            Ok(token) => self.accounts.revoke_family(&token).await.map(|_| ()),
            Err(_) => Ok(()),
        }
    }

    /// The signed-in user's account.
    ///
    /// # Errors
    /// [`AuthError::AccountNotFound`] when it was deleted since the token was issued.
    pub async fn me(&self, user: &UserId) -> Result<Account, AuthError> {
        self.accounts
            .find_by_id(user)
            .await?
            .ok_or(AuthError::AccountNotFound)
    }

    async fn start(&self, account: Account) -> Result<Session, AuthError> {
        let refresh_token = RefreshToken::generate()?;
        self.accounts
            .start_family(&account.id, &refresh_token, self.refresh_ttl)
            .await?;
        let access_token = self.issuer.issue(&account.id, &account.roles)?;
        Ok(Session {
            access_token,
            refresh_token,
            account,
        })
    }
}
