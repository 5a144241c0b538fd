//! Versioned SQL migrations for any schema a service owns, applied once each, in order, at start.
//!
//! Several instances of a service start together (a deploy, `make cluster`), so the runner
//! takes a transaction-scoped advisory lock before it reads what is applied: the first instance
//! migrates, the others wait on the lock and then find nothing left to do. All pending
//! migrations and their bookkeeping rows run in that one transaction (PostgreSQL's DDL is
//! transactional), so a failing migration leaves the database exactly as it was.
//!
//! Each owner passes its own bookkeeping table and lock key, so the read model
//! (`schema_migrations`, archival-worker) and the accounts schema
//! (`accounts.schema_migrations`, api-gateway) can share one database without either
//! mistaking the other's versions for its own, and without waiting on each other's lock.

use std::collections::HashSet;

/// One migration: a version (applied in ascending order), a name for the logs and the
/// bookkeeping row, and the SQL (usually `include_str!` of a file in the owner's
/// `migrations/` directory).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A [`Migration`] whose SQL is the calling crate's `migrations/<file>`, included at compile
/// time, so a schema's list of migrations reads as a table:
/// `shared::migration!(1, "read_model", "0001_read_model.sql")`.
#[macro_export]
macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        $crate::migrations::Migration::new(
            $version,
            $name,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $file)),
        )
    };
}

impl Migration {
    pub const fn new(version: i32, name: &'static str, sql: &'static str) -> Self {
        Self { version, name, sql }
    }
}

/// Why migrating failed. Nothing was applied in any case.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The bookkeeping table name is not `name` or `schema.name` of lowercase
    /// `[a-z_][a-z0-9_]*` parts. It is spliced into SQL, so nothing else is accepted.
    #[error("invalid migrations table name {0:?}")]
    InvalidTable(&'static str),
    /// The list has a version twice or out of ascending order (a merge mistake).
    #[error("migration versions must be unique and ascending, {0} is not")]
    Unordered(i32),
    /// One migration's SQL failed.
    #[error("migration {version} ({name}) failed")]
    Failed {
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// PostgreSQL refused the bookkeeping or the connection broke.
    #[error("postgres error while migrating")]
    Postgres(#[from] tokio_postgres::Error),
}

/// A service's migrations with where their bookkeeping lives.
#[derive(Debug, Clone, Copy)]
pub struct Migrator {
    table: &'static str,
    lock_key: i64,
    migrations: &'static [Migration],
}

impl Migrator {
    /// `table` records applied versions (`schema.table` creates the schema when missing);
    /// `lock_key` is the `pg_advisory_xact_lock` key that serializes concurrent runs of this
    /// owner (pick one per owner, never shared with another).
    pub const fn new(table: &'static str, lock_key: i64, migrations: &'static [Migration]) -> Self {
        Self {
            table,
            lock_key,
            migrations,
        }
    }

    /// Applies the migrations not yet recorded, in one transaction under the advisory lock,
    /// and returns the versions it applied (empty when the schema was current).
    ///
    /// # Errors
    /// [`MigrationError`]: an invalid table name or version list, a failing migration, or
    /// PostgreSQL unreachable; the transaction is then rolled back.
    pub async fn run(
        &self,
        client: &mut tokio_postgres::Client,
    ) -> Result<Vec<i32>, MigrationError> {
        let schema = checked_table(self.table)?;
        self.check_order()?;
        let table = self.table;
        let tx = client.transaction().await?;
        tx.execute("select pg_advisory_xact_lock($1)", &[&self.lock_key])
            .await?;
        if let Some(schema) = schema {
            tx.batch_execute(&format!("create schema if not exists {schema}"))
                .await?;
        }
        tx.batch_execute(&format!(
            "create table if not exists {table} (
                version integer primary key,
                name text not null,
                applied_at timestamptz not null default now())"
        ))
        .await?;
        let applied: HashSet<i32> = tx
            .query(&format!("select version from {table}"), &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut done = Vec::new();
        for migration in self.migrations {
            if applied.contains(&migration.version) {
                continue;
            }
            tx.batch_execute(migration.sql)
                .await
                .map_err(|source| MigrationError::Failed {
                    version: migration.version,
                    name: migration.name,
                    source,
                })?;
            tx.execute(
                &format!("insert into {table} (version, name) values ($1, $2)"),
                &[&migration.version, &migration.name],
            )
            .await?;
            tracing::info!(
                table,
                version = migration.version,
                name = migration.name,
                "migration applied"
            );
            done.push(migration.version);
        }
        tx.commit().await?;
        Ok(done)
    }

    fn check_order(&self) -> Result<(), MigrationError> {
        let mut last = None;
        for migration in self.migrations {
            if last.is_some_and(|last| migration.version <= last) {
                return Err(MigrationError::Unordered(migration.version));
            }
            last = Some(migration.version);
        }
        Ok(())
    }
}

/// Accepts `name` or `schema.name` made of `[a-z_][a-z0-9_]*` parts; returns the schema part.
fn checked_table(table: &'static str) -> Result<Option<&'static str>, MigrationError> {
    let identifier = |part: &str| {
        part.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let (schema, name) = match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    };
    if identifier(name) && schema.is_none_or(identifier) {
        Ok(schema)
    } else {
        Err(MigrationError::InvalidTable(table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: i64 = 0x5445_5354_4d49_4701; // "TESTMIG" + 1

    const TWO: &[Migration] = &[
        Migration::new(1, "things", "create table things (id integer primary key)"),
        Migration::new(
            2,
            "more_things",
            "create table more_things (id integer primary key)",
        ),
    ];

    async fn fresh_client() -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
        let url = testkit::fresh_database(testkit::SHARED_POSTGRES_ADMIN_URL)
            .await
            .expect("fresh database");
        connect(&url).await
    }

    async fn connect(url: &str) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("postgres");
        let handle = tokio::spawn(async move {
            let _ = connection.await;
        });
        (client, handle)
    }

    async fn versions(client: &tokio_postgres::Client, table: &str) -> Vec<i32> {
        client
            .query(
                &format!("select version from {table} order by version"),
                &[],
            )
            .await
            .expect("bookkeeping table")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    async fn table_exists(client: &tokio_postgres::Client, name: &str) -> bool {
        client
            .query_one("select to_regclass($1) is not null", &[&name])
            .await
            .expect("to_regclass")
            .get(0)
    }

    #[tokio::test]
    async fn pending_migrations_are_applied_in_order_and_recorded() {
        let (mut client, _conn) = fresh_client().await;
        let applied = Migrator::new("schema_migrations", LOCK, TWO)
            .run(&mut client)
            .await
            .expect("migrates");
        assert_eq!(applied, vec![1, 2]);
        assert_eq!(versions(&client, "schema_migrations").await, vec![1, 2]);
        assert!(table_exists(&client, "things").await);
        assert!(table_exists(&client, "more_things").await);
    }

    #[tokio::test]
    async fn a_second_run_applies_nothing() {
        let (mut client, _conn) = fresh_client().await;
        let migrator = Migrator::new("schema_migrations", LOCK, TWO);
        migrator.run(&mut client).await.expect("first run");
        let again = migrator.run(&mut client).await.expect("second run");
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(versions(&client, "schema_migrations").await, vec![1, 2]);
    }

    #[tokio::test]
    async fn a_new_migration_is_applied_on_top_of_recorded_ones() {
        let (mut client, _conn) = fresh_client().await;
        Migrator::new("schema_migrations", LOCK, &TWO[..1])
            .run(&mut client)
            .await
            .expect("first release");
        let applied = Migrator::new("schema_migrations", LOCK, TWO)
            .run(&mut client)
            .await
            .expect("second release");
        assert_eq!(applied, vec![2]);
    }

    #[tokio::test]
    async fn concurrent_runs_apply_each_migration_once() {
        let url = testkit::fresh_database(testkit::SHARED_POSTGRES_ADMIN_URL)
            .await
            .expect("fresh database");
        let runs = (0..4).map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let (mut client, _conn) = connect(&url).await;
                Migrator::new("schema_migrations", LOCK, TWO)
                    .run(&mut client)
                    .await
                    .expect("migrates")
            })
        });
        let mut applied: Vec<i32> = Vec::new();
        for run in runs.collect::<Vec<_>>() {
            applied.extend(run.await.expect("task"));
        }
        applied.sort_unstable();
        assert_eq!(
            applied,
            vec![1, 2],
            "each version applied by exactly one run"
        );
    }

    #[tokio::test]
    async fn a_failing_migration_leaves_nothing_behind() {
        let (mut client, _conn) = fresh_client().await;
        const BROKEN: &[Migration] = &[
            Migration::new(1, "things", "create table things (id integer primary key)"),
            Migration::new(2, "broken", "create table nope (id no_such_type)"),
        ];
        let error = Migrator::new("schema_migrations", LOCK, BROKEN)
            .run(&mut client)
            .await
            .expect_err("must fail");
        assert!(
            matches!(
                error,
                MigrationError::Failed {
                    version: 2,
                    name: "broken",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            !table_exists(&client, "things").await,
            "version 1 rolled back"
        );
        assert!(
            !table_exists(&client, "schema_migrations").await,
            "no bookkeeping left"
        );
    }

    #[tokio::test]
    async fn a_schema_qualified_table_creates_its_schema_and_stays_apart() {
        let (mut client, _conn) = fresh_client().await;
        const IN_SCHEMA: &[Migration] = &[Migration::new(
            1,
            "things",
            "create table accounts_test.things (id integer primary key)",
        )];
        Migrator::new("accounts_test.schema_migrations", LOCK + 1, IN_SCHEMA)
            .run(&mut client)
            .await
            .expect("migrates");
        Migrator::new("schema_migrations", LOCK, TWO)
            .run(&mut client)
            .await
            .expect("the other owner migrates too");
        assert_eq!(
            versions(&client, "accounts_test.schema_migrations").await,
            vec![1]
        );
        assert_eq!(versions(&client, "schema_migrations").await, vec![1, 2]);
        assert!(table_exists(&client, "accounts_test.things").await);
    }

    #[tokio::test]
    async fn versions_out_of_order_are_refused_before_touching_the_database() {
        let (mut client, _conn) = fresh_client().await;
        const SWAPPED: &[Migration] = &[TWO[1], TWO[0]];
        let error = Migrator::new("schema_migrations", LOCK, SWAPPED)
            .run(&mut client)
            .await
            .expect_err("must fail");
        assert!(matches!(error, MigrationError::Unordered(1)), "{error:?}");
        assert!(!table_exists(&client, "schema_migrations").await);
    }

    #[test]
    fn table_names_that_could_inject_sql_are_refused() {
        for bad in [
            "",
            "Schema_Migrations",
            "a.b.c",
            "x; drop table y",
            "1table",
            "a.",
            ".a",
            "a-b",
        ] {
            assert!(
                matches!(checked_table(bad), Err(MigrationError::InvalidTable(_))),
                "{bad:?} accepted"
            );
        }
        assert_eq!(checked_table("schema_migrations").ok(), Some(None));
        assert_eq!(
            checked_table("accounts.schema_migrations").ok(),
            Some(Some("accounts"))
        );
    }
}
