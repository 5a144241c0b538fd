//! `sslmode` and `sslrootcert` through `shared::postgres_pool`, against a PostgreSQL with
//! `ssl=on` and a test CA's certificate for 127.0.0.1 and `localhost`. `pg_stat_ssl` tells
//! whether a session is encrypted; plain sessions are accepted too, so `disable` can be seen.

use shared::postgres_pool::{self, PoolSetupError, QueryError};
use std::time::Duration;
use testkit::{PostgresServer, TestCa};

const DEADLINE: Duration = Duration::from_secs(5);

struct Tls {
    ca: TestCa,
    other: TestCa,
    server: PostgresServer,
}

fn tls_postgres() -> Tls {
    let ca = TestCa::new("test CA").unwrap();
    let cert = ca.issue(&["127.0.0.1", "localhost"]).unwrap();
    Tls {
        other: TestCa::new("other CA").unwrap(),
        server: PostgresServer::start_tls(&cert).expect("TLS postgres"),
        ca,
    }
}

impl Tls {
    /// The server's URL with these query parameters.
    fn url(&self, query: &str) -> String {
        format!("{}?{query}", self.server.url())
    }

    /// Reached as `host` (the name the certificate must hold) at 127.0.0.1.
    fn url_as(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/auction?hostaddr=127.0.0.1&{query}",
            self.server.port()
        )
    }

    fn root(&self, ca: &TestCa) -> String {
        format!("sslrootcert={}", ca.ca_file().display())
    }
}

/// Whether a session from a pool for `url` is encrypted, or why it could not be had.
async fn session_is_encrypted(url: &str) -> Result<bool, QueryError> {
    let pool = postgres_pool::lazy_pool(url, 1, DEADLINE).expect("pool settings");
    postgres_pool::within(DEADLINE, async {
        let client = pool.get().await.map_err(anyhow::Error::new)?;
        let row = client
            .query_one(
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(anyhow::Error::new)?;
        Ok(row.get(0))
    })
    .await
}

#[tokio::test]
async fn verify_full_with_the_ca_connects_over_tls() {
    let tls = tls_postgres();
    let url = tls.url(&format!("sslmode=verify-full&{}", tls.root(&tls.ca)));
    assert!(session_is_encrypted(&url).await.expect("verify-full"));
}

#[tokio::test]
async fn verify_full_refuses_a_server_of_another_ca_as_an_outage() {
    let tls = tls_postgres();
    let url = tls.url(&format!("sslmode=verify-full&{}", tls.root(&tls.other)));
    let Err(QueryError::Unavailable(why)) = session_is_encrypted(&url).await else {
        panic!("a server signed by another CA was accepted, or refused as a bug");
    };
    assert!(why.contains("UnknownIssuer"), "{why}");
}

/// Asserts that a session on `url` fails as an outage (its certificate refused).
async fn assert_unavailable(url: &str) {
    let result = session_is_encrypted(url).await;
    assert!(
        matches!(result, Err(QueryError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let tls = tls_postgres();
    let root = tls.root(&tls.ca);
    let wrong_name = tls.url_as("db.example", &format!("sslmode=verify-full&{root}"));
    let Err(QueryError::Unavailable(why)) = session_is_encrypted(&wrong_name).await else {
        panic!("a certificate for other names was accepted by verify-full");
    };
    assert!(why.contains("not valid for name"), "{why}");
    let right_name = tls.url_as("localhost", &format!("sslmode=verify-full&{root}"));
    assert!(session_is_encrypted(&right_name).await.expect("localhost"));
    let chain_only = tls.url_as("db.example", &format!("sslmode=verify-ca&{root}"));
    assert!(session_is_encrypted(&chain_only).await.expect("verify-ca"));
    let other_ca = tls.url_as(
        "localhost",
        &format!("sslmode=verify-ca&{}", tls.root(&tls.other)),
    );
    assert_unavailable(&other_ca).await;
}

#[tokio::test]
async fn require_and_prefer_encrypt_without_checking_the_certificate() {
    let tls = tls_postgres();
    for query in [
        "sslmode=require",
        "sslmode=prefer",
        "application_name=no-sslmode",
    ] {
        let url = tls.url(query);
        assert!(session_is_encrypted(&url).await.expect(query), "{query}");
    }
    // As in libpq, a CA file makes `require` check the chain.
    let url = tls.url(&format!("sslmode=require&{}", tls.root(&tls.other)));
    assert_unavailable(&url).await;
}

#[tokio::test]
async fn disable_stays_plain() {
    let tls = tls_postgres();
    let url = tls.url("sslmode=disable");
    assert!(!session_is_encrypted(&url).await.expect("disable"));
}

#[tokio::test]
async fn an_unreadable_root_certificate_stops_startup() {
    let Err(PoolSetupError::Tls(error)) = postgres_pool::lazy_pool(
        "postgres://postgres@127.0.0.1/auction?sslmode=verify-full&sslrootcert=/no/such/ca.pem",
        1,
        DEADLINE,
    ) else {
        panic!("a missing sslrootcert was accepted");
    };
    let chain = format!("{:#}", anyhow::Error::new(error));
    assert!(chain.contains("/no/such/ca.pem"), "{chain}");
}
