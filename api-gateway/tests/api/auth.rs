//! Accounts, sessions and refresh-token families against a real PostgreSQL: a fresh database
//! per test, migrated through the gateway's accounts migrator. These drive the `auth` module
//! directly, for what HTTP cannot reach (expiry, concurrency, suspensions); `accounts_http`
//! tests the same flows through the routes.

use api_gateway::auth::access_token::DEFAULT_LEEWAY;
use api_gateway::auth::accounts::Suspension;
use api_gateway::auth::error::{Activity, Dependency};
use api_gateway::auth::jwks::KeySet;
use api_gateway::auth::new_password::PasswordRule;
use api_gateway::auth::password_hasher::PasswordHasher;
use api_gateway::auth::sessions::DEFAULT_REFRESH_TTL;
use api_gateway::auth::{
    AccessTokenIssuer, Account, Accounts, AuthError, Role, Session, Sessions, SigningKey,
    TokenVerifier,
};
use setup::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

/// Asserts that `result` is an error matching `pattern`, showing it when it is not.
macro_rules! assert_refused {
    ($result:expr, $pattern:pat) => {{
        let result = $result;
        assert!(matches!(result, Err($pattern)), "{result:?}");
    }};
}

mod setup {
    use super::*;

    /// What registering answers.
    pub type Registered = Result<Session, AuthError>;

    /// One test's accounts world on its own database.
    pub struct World {
        pub url: String,
        pub accounts: Accounts,
        pub sessions: Sessions,
        pub verifier: TokenVerifier,
        issuer: AccessTokenIssuer,
    }

    impl World {
        /// The same world with another refresh-token lifetime.
        pub fn with_refresh_ttl(&self, ttl: Duration) -> Sessions {
            Sessions::new(
                self.accounts.clone(),
                cheap_hasher(),
                self.issuer.clone(),
                ttl,
            )
        }

        pub async fn sql(&self) -> tokio_postgres::Client {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .expect("postgres");
            tokio::spawn(connection);
            client
        }

        pub async fn count(&self, query: &str) -> i64 {
            self.sql()
                .await
                .query_one(query, &[])
                .await
                .expect("count query")
                .get(0)
        }

        /// How many accounts are stored.
        pub async fn users(&self) -> i64 {
            self.count("select count(*) from accounts.users").await
        }

        /// How many refresh-token families (sign-ins) are stored.
        pub async fn families(&self) -> i64 {
            let query = "select count(distinct family_id) from accounts.refresh_tokens";
            self.count(query).await
        }

        /// How many refresh tokens match the SQL condition `filter`.
        pub async fn refresh_tokens(&self, filter: &str) -> i64 {
            let query = format!("select count(*) from accounts.refresh_tokens where {filter}");
            self.count(&query).await
        }

        pub async fn register(&self, login: &str, name: &str, password: &str) -> Registered {
            self.sessions.register(login, name, password).await
        }

        /// Sets the account's suspensions, which must exist.
        pub async fn suspend(&self, id: &shared::UserId, bidding: bool, selling: bool) -> Account {
            let suspension = Suspension { bidding, selling };
            let result = self.accounts.set_suspension(id, suspension, None).await;
            result.expect("suspension set")
        }

        pub async fn sign_in(&self, login: &str) -> Session {
            self.sessions
                .sign_in(login, PASSWORD)
                .await
                .expect("signed in")
        }

        pub async fn refresh(&self, session: &Session) -> Result<Session, AuthError> {
            self.sessions.refresh(session.refresh_token.expose()).await
        }

        /// Refreshes a session that must still be valid (`why` says why it must).
        pub async fn rotate(&self, session: &Session, why: &str) -> Session {
            let refreshed = self.refresh(session).await;
            refreshed.unwrap_or_else(|error| panic!("{why}: {error:?}"))
        }

        pub async fn sign_up(&self, login: &str) -> Session {
            let registered = self.register(login, "Ada Lovelace", PASSWORD).await;
            registered.expect("registered")
        }
    }

    /// Argon2 at OWASP's cost takes seconds per hash in a debug build; the flows under test do
    /// not depend on the cost (the unit tests check the OWASP parameters).
    pub fn cheap_hasher() -> PasswordHasher {
        PasswordHasher::with_params(64, 1, 1, 2).expect("hasher")
    }

    pub fn pool(url: &str) -> deadpool_postgres::Pool {
        let mut config = deadpool_postgres::Config::new();
        config.url = Some(url.to_owned());
        config
            .create_pool(
                Some(deadpool_postgres::Runtime::Tokio1),
                tokio_postgres::NoTls,
            )
            .expect("pool")
    }

    pub async fn world() -> World {
        let url = testkit::fresh_database(testkit::SHARED_POSTGRES_ADMIN_URL)
            .await
            .expect("fresh database");
        let accounts = Accounts::new(pool(&url), Duration::from_secs(5));
        accounts.migrate().await.expect("migrated");
        let key = Arc::new(SigningKey::generate().expect("key"));
        let issuer = AccessTokenIssuer::new(
            Arc::clone(&key),
            "http://gateway.test",
            "auction-api",
            Duration::from_secs(300),
        );
        let verifier = TokenVerifier::local(
            issuer.rules(DEFAULT_LEEWAY),
            KeySet::of_signing_keys([key.as_ref()]),
        );
        let sessions = Sessions::new(
            accounts.clone(),
            cheap_hasher(),
            issuer.clone(),
            DEFAULT_REFRESH_TTL,
        );
        World {
            url,
            accounts,
            sessions,
            verifier,
            issuer,
        }
    }
}

#[tokio::test]
async fn migrating_twice_applies_the_accounts_schema_once_in_its_own_bookkeeping() {
    let world = world().await;
    assert_eq!(
        world.accounts.migrate().await.expect("again"),
        Vec::<i32>::new()
    );
    assert_eq!(
        world
            .count("select count(*) from accounts.schema_migrations")
            .await,
        2,
        "0001 accounts, 0002 suspensions"
    );
    assert_eq!(
        world
            .count("select count(*) from pg_tables where schemaname = 'public' and tablename = 'schema_migrations'")
            .await,
        0,
        "the read model's bookkeeping table is not touched"
    );
}

#[tokio::test]
async fn registering_signs_in_with_a_token_whose_subject_is_the_new_user_id() {
    let world = world().await;
    let session = world.sign_up("ada@example.org").await;
    let account = &session.account;
    assert!(account.id.as_str().starts_with('u'), "{}", account.id);
    assert_eq!(account.email.as_deref(), Some("ada@example.org"));
    assert_eq!(account.username, None);
    assert_eq!(account.display_name, "Ada Lovelace");
    assert_eq!(account.roles, vec![Role::User]);
    let claims = world
        .verifier
        .verify(&session.access_token.token)
        .await
        .expect("valid token");
    assert_eq!(claims.sub, account.id);
    assert_eq!(claims.roles, vec![Role::User]);
    let stored: String = world
        .sql()
        .await
        .query_one("select password_hash from accounts.users", &[])
        .await
        .expect("row")
        .get(0);
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains(PASSWORD));
}

#[tokio::test]
async fn signing_in_by_email_or_username_ignores_case() {
    let world = world().await;
    let by_email = world.sign_up("Ada@Example.org").await;
    let by_name = world.sign_up("Lovelace_1815").await;
    let again = world.sign_in("ada@EXAMPLE.org").await;
    assert_eq!(again.account.id, by_email.account.id);
    let again = world.sign_in("LOVELACE_1815").await;
    assert_eq!(again.account.id, by_name.account.id);
}

#[tokio::test]
async fn registering_a_login_taken_in_another_case_is_a_conflict_and_stores_nothing() {
    let world = world().await;
    world.sign_up("Ada@Example.org").await;
    world.sign_up("ada_l").await;
    for login in ["ada@example.ORG", "ADA_L"] {
        let again = world.register(login, "Another Ada", PASSWORD).await;
        assert_refused!(again, AuthError::LoginTaken);
    }
    assert_eq!(world.users().await, 2);
}

#[tokio::test]
async fn a_weak_password_or_bad_login_is_refused_with_its_rule_and_stores_nothing() {
    let world = world().await;
    let too_short = world.register("ada@example.org", "Ada", "too short").await;
    assert_refused!(too_short, AuthError::WeakPassword(PasswordRule::TooShort));
    let same_as_login = world.register("lovelace1815", "Ada", "Lovelace1815").await;
    assert_refused!(
        same_as_login,
        AuthError::WeakPassword(PasswordRule::SameAsLogin)
    );
    let bad_login = world.register("ada@localhost", "Ada", PASSWORD).await;
    assert_refused!(bad_login, AuthError::InvalidLogin(_));
    let blank_name = world.register("ada_l", "  ", PASSWORD).await;
    assert_refused!(blank_name, AuthError::InvalidDisplayName(_));
    assert_eq!(world.users().await, 0);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_login_give_the_same_error() {
    let world = world().await;
    world.sign_up("ada@example.org").await;
    // A wrong password first: every other refusal must read exactly like it.
    let mut errors = Vec::new();
    for (login, password) in [
        ("ada@example.org", "correct horse battery stapler"),
        ("grace@example.org", PASSWORD),
        ("not a login!", PASSWORD),
    ] {
        let refused = world.sessions.sign_in(login, password).await;
        errors.push(refused.expect_err("refused"));
    }
    for error in &errors {
        assert!(matches!(error, AuthError::InvalidCredentials), "{error:?}");
        assert_eq!(error.to_string(), errors[0].to_string());
    }
    assert_eq!(
        world.refresh_tokens("true").await,
        1,
        "only the registration's session"
    );
}

#[tokio::test]
async fn an_unknown_login_costs_an_argon2_verification_like_a_known_one() {
    // Not a timing-attack proof (the machine is shared and noisy), but it catches the shortcut
    // of answering an unknown login without hashing: with a deliberately slow hasher, both
    // answers take at least one hash.
    let world = world().await;
    world.sign_up("ada@example.org").await;
    let slow = PasswordHasher::with_params(8 * 1024, 3, 1, 2).expect("hasher");
    // The quicker of two dummy verifications, so one descheduled run does not raise the bar.
    let mut floor = Duration::MAX;
    for _ in 0..2 {
        let started = Instant::now();
        slow.verify(PASSWORD, None).await.expect("dummy verify");
        floor = floor.min(started.elapsed());
    }
    let sessions = Sessions::new(
        world.accounts.clone(),
        slow,
        AccessTokenIssuer::new(
            Arc::new(SigningKey::generate().expect("key")),
            "http://gateway.test",
            "auction-api",
            Duration::from_secs(60),
        ),
        DEFAULT_REFRESH_TTL,
    );
    let started = Instant::now();
    let _ = sessions.sign_in("grace@example.org", PASSWORD).await;
    assert!(
        started.elapsed() >= floor / 2,
        "unknown login answered in {:?}, a hash takes {floor:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refreshing_rotates_the_token_and_replaying_an_old_one_revokes_the_family() {
    let world = world().await;
    let first = world.sign_up("ada@example.org").await;
    let second = world.rotate(&first, "rotated").await;
    assert_ne!(second.refresh_token, first.refresh_token);
    world
        .verifier
        .verify(&second.access_token.token)
        .await
        .expect("new access token valid");
    let third = world.rotate(&second, "rotated again").await;

    assert_refused!(world.refresh(&first).await, AuthError::RefreshTokenReused);
    let latest = world.refresh(&third).await;
    assert!(
        matches!(latest, Err(AuthError::InvalidRefreshToken)),
        "the newest token of the family is revoked too: {latest:?}"
    );
    assert_eq!(
        world
            .refresh_tokens("revoked_reason is distinct from 'reuse'")
            .await,
        0,
        "every token of the family is revoked for reuse"
    );
    assert_eq!(world.families().await, 1);
}

#[tokio::test]
async fn reuse_in_one_sign_in_leaves_the_users_other_sessions_alone() {
    let world = world().await;
    let phone = world.sign_up("ada@example.org").await;
    let laptop = world.sign_in("ada@example.org").await;
    world.rotate(&phone, "rotated").await;
    assert_refused!(world.refresh(&phone).await, AuthError::RefreshTokenReused);
    world.rotate(&laptop, "the other family still works").await;
}

#[tokio::test]
async fn one_token_refreshed_twice_at_once_rotates_once_and_revokes_the_family() {
    let world = world().await;
    let session = world.sign_up("ada@example.org").await;
    let token = session.refresh_token.expose().to_owned();
    let (a, b) = tokio::join!(
        world.sessions.refresh(&token),
        world.sessions.refresh(&token)
    );
    let (winner, loser) = match (a, b) {
        (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
        (a, b) => panic!("expected one rotation and one reuse, got {a:?} and {b:?}"),
    };
    assert!(matches!(loser, AuthError::RefreshTokenReused), "{loser:?}");
    assert_refused!(world.refresh(&winner).await, AuthError::InvalidRefreshToken);
}

#[tokio::test]
async fn signing_out_revokes_the_family_and_can_be_repeated() {
    let world = world().await;
    let first = world.sign_up("ada@example.org").await;
    let second = world.rotate(&first, "rotated").await;
    world
        .sessions
        .sign_out(first.refresh_token.expose())
        .await
        .expect("signed out with an older token of the family");
    assert_refused!(world.refresh(&second).await, AuthError::InvalidRefreshToken);
    world
        .sessions
        .sign_out(second.refresh_token.expose())
        .await
        .expect("again");
    world
        .sessions
        .sign_out("garbage")
        .await
        .expect("garbage too");
    assert_eq!(world.refresh_tokens("revoked_reason = 'logout'").await, 2);
}

#[tokio::test]
async fn signing_out_everywhere_revokes_every_family_of_the_user_only() {
    let world = world().await;
    let ada = world.sign_up("ada@example.org").await;
    world.sign_in("ada@example.org").await;
    let grace = world.sign_up("grace@example.org").await;
    let revoked = world
        .accounts
        .revoke_all_families(&ada.account.id)
        .await
        .expect("revoked");
    assert_eq!(revoked, 2);
    assert_refused!(world.refresh(&ada).await, AuthError::InvalidRefreshToken);
    world
        .rotate(&grace, "another user's session lives on")
        .await;
}

#[tokio::test]
async fn an_expired_refresh_token_is_invalid_and_changes_nothing() {
    let world = world().await;
    world.sign_up("ada@example.org").await;
    let short = world.with_refresh_ttl(Duration::ZERO);
    let session = short
        .sign_in("ada@example.org", PASSWORD)
        .await
        .expect("signed in");
    assert_refused!(
        short.refresh(session.refresh_token.expose()).await,
        AuthError::InvalidRefreshToken
    );
    let touched = "used_at is not null or revoked_at is not null";
    assert_eq!(world.refresh_tokens(touched).await, 0);
}

#[tokio::test]
async fn a_refresh_carries_the_roles_the_account_has_now() {
    let world = world().await;
    let session = world.sign_up("ada@example.org").await;
    let login = api_gateway::auth::login::Login::parse("ADA@example.org").expect("login");
    let id = world
        .accounts
        .promote_to_admin(&login)
        .await
        .expect("promoted");
    assert_eq!(id, session.account.id);
    let refreshed = world.rotate(&session, "rotated").await;
    let claims = world
        .verifier
        .verify(&refreshed.access_token.token)
        .await
        .expect("valid");
    assert_eq!(claims.roles, vec![Role::User, Role::Admin]);
    assert!(refreshed.account.may(Activity::Administer).is_ok());
}

#[tokio::test]
async fn the_first_admin_can_be_made_with_the_documented_sql_function_once() {
    let world = world().await;
    let session = world.sign_up("ops_lead").await;
    let sql = world.sql().await;
    for _ in 0..2 {
        let id: Option<String> = sql
            .query_one("select accounts.promote_to_admin('OPS_LEAD')", &[])
            .await
            .expect("function")
            .get(0);
        assert_eq!(id.as_deref(), Some(session.account.id.as_str()));
    }
    let roles: Vec<String> = sql
        .query_one("select roles from accounts.users", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(roles, vec!["user", "admin"], "admin granted once");
    let nobody: Option<String> = sql
        .query_one("select accounts.promote_to_admin('nobody')", &[])
        .await
        .expect("function")
        .get(0);
    assert_eq!(nobody, None);
    let login = api_gateway::auth::login::Login::parse("nobody").expect("login");
    assert_refused!(
        world.accounts.promote_to_admin(&login).await,
        AuthError::AccountNotFound
    );
}

#[tokio::test]
async fn suspensions_are_set_kept_and_lifted_per_activity() {
    let world = world().await;
    let id = world.sign_up("ada@example.org").await.account.id;
    let suspended = world.suspend(&id, true, false).await;
    assert!(matches!(
        suspended.may(Activity::Bid),
        Err(AuthError::Forbidden(Activity::Bid))
    ));
    assert!(suspended.may(Activity::Sell).is_ok());
    let since = suspended.bidding_suspended_at.expect("since");

    let both = world.suspend(&id, true, true).await;
    assert_eq!(both.bidding_suspended_at, Some(since), "start time kept");
    assert!(both.selling_suspended_at.is_some());

    let lifted = world.suspend(&id, false, false).await;
    assert_eq!(lifted.bidding_suspended_at, None);
    assert_eq!(lifted.selling_suspended_at, None);
    assert!(lifted.may(Activity::Bid).is_ok());
    let unknown = shared::UserId::parse("u-nobody").expect("id");
    assert_refused!(
        world
            .accounts
            .set_suspension(&unknown, Suspension::default(), None)
            .await,
        AuthError::AccountNotFound
    );
}

#[tokio::test]
async fn a_suspended_account_still_signs_in() {
    let world = world().await;
    let id = world.sign_up("ada@example.org").await.account.id;
    world.suspend(&id, true, true).await;
    let session = world.sign_in("ada@example.org").await;
    assert!(session.account.may(Activity::Bid).is_err());
}

#[tokio::test]
async fn me_shows_the_account_without_its_password_hash() {
    let world = world().await;
    let session = world.sign_up("ada@example.org").await;
    let me = world.sessions.me(&session.account.id).await.expect("me");
    assert_eq!(me, session.account);
    let json = serde_json::to_value(&me).expect("json");
    assert_eq!(json["id"], session.account.id.as_str());
    assert_eq!(json["email"], "ada@example.org");
    assert_eq!(json["roles"], serde_json::json!(["user"]));
    assert!(json.get("password_hash").is_none(), "{json}");
    let unknown = shared::UserId::parse("u-nobody").expect("id");
    assert!(matches!(
        world.sessions.me(&unknown).await,
        Err(AuthError::AccountNotFound)
    ));
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_quickly() {
    let accounts = Accounts::new(
        pool("postgres://postgres@127.0.0.1:1/nothing"),
        Duration::from_millis(500),
    );
    let started = Instant::now();
    assert_refused!(
        accounts.migrate().await,
        AuthError::Unavailable(Dependency::Accounts, _)
    );
    let login = api_gateway::auth::login::Login::parse("ada@example.org").expect("login");
    assert_refused!(
        accounts.find_by_login(&login).await,
        AuthError::Unavailable(Dependency::Accounts, _)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
