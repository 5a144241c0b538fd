//! Every SQL statement on the accounts schema (`migrations/`): migrating it, registering and
//! finding accounts, roles and suspensions (and the changes to them every gateway follows), and
//! the refresh-token families.
//!
//! Each call runs under the deadline given at construction; an unreachable or slow PostgreSQL
//! becomes [`AuthError::Unavailable`] quickly, never a hang. A unique violation on a login
//! index becomes [`AuthError::LoginTaken`]; other database refusals are bugs
//! ([`AuthError::Internal`]).

use super::display_name::DisplayName;
use super::error::{Activity, AuthError, Dependency};
use super::login::Login;
use super::password_hasher::PasswordHash;
use super::refresh_token::{self, RefreshToken, StoredState, Verdict};
use super::role::Role;
use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use shared::migrations::Migrator;
use shared::postgres_pool;
use shared::{Timestamp, UserId};
use std::future::Future;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// The accounts schema's migrations, with their own bookkeeping table and lock key, apart
/// from archival-worker's read model in the same database.
pub const MIGRATOR: Migrator = Migrator::new(
    "accounts.schema_migrations",
    0x4143_434f_554e_5401, // "ACCOUNT" + 1
    &[
        shared::migration!(1, "accounts", "0001_accounts.sql"),
        shared::migration!(2, "suspensions", "0002_suspensions.sql"),
    ],
);

/// The unique indexes whose violation means "this login is taken".
const LOGIN_INDEXES: [&str; 2] = ["users_email_key", "users_username_key"];

const ACCOUNT_COLUMNS: &str = "id, email, username, display_name, roles, \
                               bidding_suspended_at, selling_suspended_at, suspension_reason, \
                               created_at";

/// How far before the newest change seen a poll looks again: a change whose transaction began
/// (and took its `now()`) before another's but committed after it must still be read. Every
/// accounts statement runs under `DATABASE_TIMEOUT_MS`, far below this.
const CHANGE_MARGIN: Duration = Duration::from_secs(30);

/// An account as the API shows it to its owner (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: UserId,
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: String,
    pub roles: Vec<Role>,
    /// Since when the account may not bid; `None` when it may.
    pub bidding_suspended_at: Option<Timestamp>,
    /// Since when the account may not sell; `None` when it may.
    pub selling_suspended_at: Option<Timestamp>,
    /// The admin's note on the suspension; `None` when not suspended.
    pub suspension_reason: Option<String>,
    pub created_at: Timestamp,
}

impl Account {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the account may do `activity` now.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] when it is suspended from it, or it needs `admin`.
    pub fn may(&self, activity: Activity) -> Result<(), AuthError> {
        let allowed = match activity {
            Activity::Bid => self.bidding_suspended_at.is_none(),
            Activity::Sell => self.selling_suspended_at.is_none(),
            Activity::Administer => self.has_role(Role::Admin),
        };
        allowed.then_some(()).ok_or(AuthError::Forbidden(activity))
    }
}

/// An account found by its login, with what it must prove.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub account: Account,
    pub password_hash: PasswordHash,
}

/// Which suspensions an account should have; `true` suspends, `false` lifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Suspension {
    pub bidding: bool,
    pub selling: bool,
}

impl Suspension {
    /// Neither bidding nor selling is suspended.
    pub fn is_none(self) -> bool {
        !self.bidding && !self.selling
    }
}

/// Accounts whose suspensions changed, as a gateway's poll reads them.
#[derive(Debug, Clone, Default)]
pub struct SuspensionChanges {
    /// Each account's suspensions now (lifted ones included, as `Suspension::default()`).
    pub accounts: Vec<(UserId, Suspension)>,
    /// Where the next poll continues: the newest change among them, or the previous mark.
    pub newest: Option<DateTime<Utc>>,
}

/// The accounts schema in PostgreSQL.
#[derive(Clone)]
pub struct Accounts {
    pool: Pool,
    timeout: Duration,
}

impl Accounts {
    /// Statements on `pool`, each answered within `timeout` or refused as unavailable.
    pub fn new(pool: Pool, timeout: Duration) -> Self {
        Self { pool, timeout }
    }

    /// Brings the accounts schema up to date (safe when several gateways start together).
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable, [`AuthError::Internal`] when
    /// a migration fails.
    pub async fn migrate(&self) -> Result<Vec<i32>, AuthError> {
        self.timed(async {
            let mut client = self.pool.get().await?;
            MIGRATOR.run(&mut client).await.map_err(|e| match e {
                shared::migrations::MigrationError::Postgres(pg) => AuthError::from(pg),
                other => AuthError::Internal(anyhow::Error::new(other)),
            })
        })
        .await
    }

    /// Whether PostgreSQL answers, for `/ready` once the schema is migrated.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), AuthError> {
        self.timed(async {
            let client = self.pool.get().await?;
            client.execute("select 1", &[]).await?;
            Ok(())
        })
        .await
    }

    /// Creates an account with a new user id and the `user` role.
    ///
    /// # Errors
    /// [`AuthError::LoginTaken`] when another account has this email or username (in any
    /// case); [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn register(
        &self,
        login: &Login,
        display_name: &DisplayName,
        password_hash: &PasswordHash,
    ) -> Result<Account, AuthError> {
        let id = new_user_id()?;
        self.timed(async {
            let client = self.pool.get().await?;
            let row = client
                .query_one(
                    &format!(
                        "insert into accounts.users (id, email, username, display_name, password_hash)
                         values ($1, $2, $3, $4, $5)
                         returning {ACCOUNT_COLUMNS}"
                    ),
                    &[
                        &id.as_str(),
                        &login.email(),
                        &login.username(),
                        &display_name.as_str(),
                        &password_hash.as_str(),
                    ],
                )
                .await
                .map_err(login_taken)?;
            account(&row)
        })
        .await
    }

    /// The account signing in with `login` (in any case), with its password hash.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn find_by_login(&self, login: &Login) -> Result<Option<Credentials>, AuthError> {
        let column = if login.email().is_some() {
            "email"
        } else {
            "username"
        };
        self.timed(async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt(
                    &format!(
                        "select {ACCOUNT_COLUMNS}, password_hash from accounts.users
                         where lower({column}) = lower($1)"
                    ),
                    &[&login.as_str()],
                )
                .await?;
            row.map(|row| {
                Ok(Credentials {
                    account: account(&row)?,
                    password_hash: PasswordHash::from_stored(row.try_get("password_hash")?),
                })
            })
            .transpose()
        })
        .await
    }

    /// The account with this user id.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn find_by_id(&self, id: &UserId) -> Result<Option<Account>, AuthError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt(
                    &format!("select {ACCOUNT_COLUMNS} from accounts.users where id = $1"),
                    &[&id.as_str()],
                )
                .await?;
            row.as_ref().map(account).transpose()
        })
        .await
    }

    /// Grants `admin` to the account signing in with `login` (the first admin, or more);
    /// idempotent. The same as `select accounts.promote_to_admin('<login>')` in psql.
    ///
    /// # Errors
    /// [`AuthError::AccountNotFound`] when no account has this login.
    pub async fn promote_to_admin(&self, login: &Login) -> Result<UserId, AuthError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let id: Option<String> = client
                .query_one("select accounts.promote_to_admin($1)", &[&login.as_str()])
                .await?
                .try_get(0)?;
            let id = id.ok_or(AuthError::AccountNotFound)?;
            UserId::parse(id)
                .context("a stored user id breaks the id rules")
                .map_err(AuthError::from)
        })
        .await
    }

    /// Grants `admin` to the account with this user id; idempotent.
    ///
    /// # Errors
    /// [`AuthError::AccountNotFound`] when no account has this id.
    pub async fn promote_id_to_admin(&self, id: &UserId) -> Result<UserId, AuthError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let updated = client
                .execute(
                    "update accounts.users
                        set roles = case when 'admin' = any (roles) then roles
                                         else array_append(roles, 'admin') end,
                            updated_at = now()
                      where id = $1",
                    &[&id.as_str()],
                )
                .await?;
            if updated == 0 {
                return Err(AuthError::AccountNotFound);
            }
            Ok(id.clone())
        })
        .await
    }

    /// Sets the account's suspensions (a suspension already in force keeps its start time) and
    /// the admin's `reason` (dropped when nothing stays suspended), and marks the change for
    /// every gateway's poll.
    ///
    /// # Errors
    /// [`AuthError::AccountNotFound`] when no account has this id.
    pub async fn set_suspension(
        &self,
        id: &UserId,
        suspension: Suspension,
        reason: Option<&str>,
    ) -> Result<Account, AuthError> {
        let reason = reason.filter(|_| !suspension.is_none());
        self.timed(async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt(
                    &format!(
                        "update accounts.users set
                             bidding_suspended_at = case when $2 then coalesce(bidding_suspended_at, now()) end,
                             selling_suspended_at = case when $3 then coalesce(selling_suspended_at, now()) end,
                             suspension_reason = $4,
                             suspension_changed_at = now(),
                             updated_at = now()
                         where id = $1
                         returning {ACCOUNT_COLUMNS}"
                    ),
                    &[&id.as_str(), &suspension.bidding, &suspension.selling, &reason],
                )
                .await?
                .ok_or(AuthError::AccountNotFound)?;
            account(&row)
        })
        .await
    }

    /// With no mark, every account suspended now (a gateway's first load); with one, every
    /// account whose suspensions changed since shortly before it ([`CHANGE_MARGIN`]), lifted
    /// ones included. Either way with the newest change seen, for the next call.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn suspension_changes(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<SuspensionChanges, AuthError> {
        let margin = chrono::Duration::from_std(CHANGE_MARGIN).context("margin fits chrono")?;
        self.timed(async {
            let client = self.pool.get().await?;
            let rows = match since {
                None => {
                    client
                        .query(
                            "select id, bidding_suspended_at is not null, selling_suspended_at is not null,
                                    (select max(suspension_changed_at) from accounts.users)
                               from accounts.users
                              where bidding_suspended_at is not null or selling_suspended_at is not null",
                            &[],
                        )
                        .await?
                }
                Some(mark) => {
                    client
                        .query(
                            "select id, bidding_suspended_at is not null, selling_suspended_at is not null,
                                    suspension_changed_at
                               from accounts.users
                              where suspension_changed_at > $1",
                            &[&(mark - margin)],
                        )
                        .await?
                }
            };
            let mut changes = SuspensionChanges {
                accounts: Vec::with_capacity(rows.len()),
                newest: since,
            };
            for row in &rows {
                let id: String = row.try_get(0)?;
                let id = UserId::parse(id).context("a stored user id breaks the id rules")?;
                changes.accounts.push((
                    id,
                    Suspension {
                        bidding: row.try_get(1)?,
                        selling: row.try_get(2)?,
                    },
                ));
                let changed: Option<DateTime<Utc>> = row.try_get(3)?;
                changes.newest = changes.newest.max(changed);
            }
            if since.is_none() && rows.is_empty() {
                // Nobody is suspended now, but earlier changes set the mark all the same.
                let row = client
                    .query_one("select max(suspension_changed_at) from accounts.users", &[])
                    .await?;
                changes.newest = row.try_get(0)?;
            }
            Ok(changes)
        })
        .await
    }

    /// Stores `token` as the first of a new family for `user`, living `ttl`.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn start_family(
        &self,
        user: &UserId,
        token: &RefreshToken,
        ttl: Duration,
    ) -> Result<(), AuthError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let id = Uuid::now_v7();
            client
                .execute(
                    "insert into accounts.refresh_tokens (id, family_id, user_id, token_hash, expires_at)
                     values ($1, $1, $2, $3, now() + make_interval(secs => $4))",
                    &[&id, &user.as_str(), &token.hash().as_bytes(), &ttl.as_secs_f64()],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Exchanges `presented` for `next` (same family, living `ttl`) and returns the account
    /// it belongs to, as it is now (roles may have changed since sign-in).
    ///
    /// The presented row is locked for the transaction, so two concurrent uses of one token
    /// are serialized: the first rotates, the second finds it used and revokes the family.
    ///
    /// # Errors
    /// [`AuthError::RefreshTokenReused`] after revoking the family when `presented` was
    /// already used; [`AuthError::InvalidRefreshToken`] when it is unknown, expired or revoked.
    pub async fn rotate_refresh(
        &self,
        presented: &RefreshToken,
        next: &RefreshToken,
        ttl: Duration,
    ) -> Result<Account, AuthError> {
        self.timed(async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let row = tx
                .query_opt(
                    "select id, family_id, user_id, used_at is not null, revoked_at is not null,
                            expires_at <= now()
                     from accounts.refresh_tokens where token_hash = $1
                     for update",
                    &[&presented.hash().as_bytes()],
                )
                .await?;
            let Some(row) = row else {
                return Err(AuthError::InvalidRefreshToken);
            };
            let verdict = refresh_token::judge(StoredState {
                used: row.try_get(3)?,
                revoked: row.try_get(4)?,
                expired: row.try_get(5)?,
            });
            let id: Uuid = row.try_get(0)?;
            let family: Uuid = row.try_get(1)?;
            let user: String = row.try_get(2)?;
            match verdict {
                Verdict::Invalid => Err(AuthError::InvalidRefreshToken),
                Verdict::Reused => {
                    let revoked = tx
                        .execute(
                            "update accounts.refresh_tokens
                             set revoked_at = now(), revoked_reason = 'reuse'
                             where family_id = $1 and revoked_at is null",
                            &[&family],
                        )
                        .await?;
                    tx.commit().await?;
                    tracing::warn!(user_id = %user, family = %family, revoked, "refresh token reused: family revoked");
                    Err(AuthError::RefreshTokenReused)
                }
                Verdict::Rotate => {
                    tx.execute(
                        "update accounts.refresh_tokens set used_at = now() where id = $1",
                        &[&id],
                    )
                    .await?;
                    tx.execute(
                        "insert into accounts.refresh_tokens
                             (id, family_id, user_id, token_hash, parent_id, expires_at)
                         values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
                        &[
                            &Uuid::now_v7(),
                            &family,
                            &user,
                            &next.hash().as_bytes(),
                            &id,
                            &ttl.as_secs_f64(),
                        ],
                    )
                    .await?;
                    let row = tx
                        .query_one(
                            &format!("select {ACCOUNT_COLUMNS} from accounts.users where id = $1"),
                            &[&user],
                        )
                        .await?;
                    tx.commit().await?;
                    account(&row)
                }
            }
        })
        .await
    }

    /// Signs out the family `presented` belongs to (every token of that sign-in); returns
    /// whether there was anything left to revoke. Unknown tokens are no error: signing out
    /// twice is fine.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn revoke_family(&self, presented: &RefreshToken) -> Result<bool, AuthError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let revoked = client
                .execute(
                    "update accounts.refresh_tokens
                     set revoked_at = now(), revoked_reason = 'logout'
                     where revoked_at is null and family_id =
                         (select family_id from accounts.refresh_tokens where token_hash = $1)",
                    &[&presented.hash().as_bytes()],
                )
                .await?;
            Ok(revoked > 0)
        })
        .await
    }

    /// Signs `user` out everywhere (every family); returns how many tokens were revoked.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when PostgreSQL is unreachable.
    pub async fn revoke_all_families(&self, user: &UserId) -> Result<u64, AuthError> {
        self.timed(async {
            let client = self.pool.get().await?;
            Ok(client
                .execute(
                    "update accounts.refresh_tokens
                     set revoked_at = now(), revoked_reason = 'sign_out_everywhere'
                     where user_id = $1 and revoked_at is null",
                    &[&user.as_str()],
                )
                .await?)
        })
        .await
    }

    /// Runs `op` under the deadline; no answer in time is [`AuthError::Unavailable`].
    async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, AuthError>>,
    ) -> Result<T, AuthError> {
        postgres_pool::within(self.timeout, op).await
    }
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A new user id: `u` and a UUIDv7 in hex (33 characters, within the id rules, and never
/// derived from the email, which must not end up in subjects and keys).
fn new_user_id() -> Result<UserId, AuthError> {
    UserId::parse(format!("u{}", Uuid::now_v7().simple()))
        .context("a generated user id breaks the id rules")
        .map_err(AuthError::from)
}

fn account(row: &tokio_postgres::Row) -> Result<Account, AuthError> {
    let id: String = row.try_get("id")?;
    let roles: Vec<String> = row.try_get("roles")?;
    let time = |value: DateTime<Utc>| Timestamp::from_micros(value.timestamp_micros());
    Ok(Account {
        id: UserId::parse(id).context("a stored user id breaks the id rules")?,
        email: row.try_get("email")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        roles: Role::known(roles.iter().map(String::as_str)),
        bidding_suspended_at: row
            .try_get::<_, Option<DateTime<Utc>>>("bidding_suspended_at")?
            .map(time),
        selling_suspended_at: row
            .try_get::<_, Option<DateTime<Utc>>>("selling_suspended_at")?
            .map(time),
        suspension_reason: row.try_get("suspension_reason")?,
        created_at: time(row.try_get("created_at")?),
    })
}

/// A unique violation on a login index is [`AuthError::LoginTaken`]; anything else as usual.
fn login_taken(error: tokio_postgres::Error) -> AuthError {
    let taken = error.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::UNIQUE_VIOLATION
            && db
                .constraint()
                .is_some_and(|name| LOGIN_INDEXES.contains(&name))
    });
    if taken {
        AuthError::LoginTaken
    } else {
        AuthError::from(error)
    }
}

/// An outage by the one rule of `shared::postgres_pool` is unavailability (503, retry); any
/// other error is a bug here (500), such as a column of an unexpected type.
impl From<tokio_postgres::Error> for AuthError {
    fn from(error: tokio_postgres::Error) -> Self {
        if postgres_pool::is_unavailable(&error) {
            Self::Unavailable(Dependency::Accounts, error.into())
        } else {
            Self::Internal(anyhow::Error::new(error).context("accounts query"))
        }
    }
}

impl From<postgres_pool::NoAnswer> for AuthError {
    fn from(error: postgres_pool::NoAnswer) -> Self {
        Self::Unavailable(Dependency::Accounts, error.into())
    }
}

impl From<deadpool_postgres::PoolError> for AuthError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(Dependency::Accounts, error.into())
    }
}
