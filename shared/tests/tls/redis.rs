//! `rediss://` through `shared::redis_connection`, configured as the services are: from the
//! `--redis-url` and `--redis-ca-file` flags.

use clap::Parser;
use shared::redis_connection::{self, RedisFailure, RedisHandle};
use shared::service_options::RedisOptions;
use std::time::Duration;
use testkit::{TestCa, TlsRedisServer};

const DEADLINE: Duration = Duration::from_secs(3);

/// ElastiCache's two AUTH styles: an AUTH token for the default user, or an RBAC user.
const USERS: &[&str] = &[
    "--user",
    "default",
    "on",
    ">the-token",
    "~*",
    "&*",
    "+@all",
    "--user",
    "app",
    "on",
    ">app-secret",
    "~*",
    "&*",
    "+@all",
];

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    redis: RedisOptions,
}

/// The options as a service parses them from its command line.
fn options(url: &str, ca_file: Option<&std::path::Path>) -> RedisOptions {
    let mut args = vec!["service".to_owned(), format!("--redis-url={url}")];
    if let Some(ca) = ca_file {
        args.push(format!("--redis-ca-file={}", ca.display()));
    }
    Flags::parse_from(args).redis
}

/// A TLS Redis with a certificate of `ca` for 127.0.0.1.
fn server(ca: &TestCa) -> TlsRedisServer {
    let cert = ca.issue(&["127.0.0.1"]).expect("server certificate");
    TlsRedisServer::start(&cert, USERS).expect("TLS redis-server")
}

async fn set_and_get(redis: &RedisHandle) -> Result<String, redis_connection::RedisCallError> {
    redis
        .query::<()>(redis::cmd("SET").arg("tls-probe").arg("over tls"))
        .await?;
    redis.query(redis::cmd("GET").arg("tls-probe")).await
}

#[tokio::test]
async fn rediss_with_the_ca_file_connects_with_elasticache_style_auth() {
    let ca = TestCa::new("test CA").unwrap();
    let server = server(&ca);
    for credentials in ["app:app-secret", ":the-token"] {
        let url = format!("rediss://{credentials}@127.0.0.1:{}", server.port());
        let redis = RedisHandle::connect_lazily(&options(&url, Some(ca.ca_file())), DEADLINE)
            .expect("client");
        assert_eq!(
            set_and_get(&redis).await.expect(credentials),
            "over tls",
            "{credentials}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_over_tls() {
    let ca = TestCa::new("test CA").unwrap();
    let server = server(&ca);
    let url = format!("rediss://app:wrong@127.0.0.1:{}", server.port());
    let redis = RedisHandle::connect_lazily(&options(&url, Some(ca.ca_file())), DEADLINE).unwrap();
    let error = redis
        .ping()
        .await
        .expect_err("a wrong password was accepted");
    assert!(error.to_string().to_lowercase().contains("pass"), "{error}");
}

/// Connects as a service would and asserts its first call fails as an outage, for `reason`
/// (a part of the error's text).
async fn assert_refused(url: String, ca_file: Option<&std::path::Path>, reason: &str) {
    let redis = RedisHandle::connect_lazily(&options(&url, ca_file), DEADLINE).expect("client");
    let error = redis
        .ping()
        .await
        .expect_err("the server's certificate was accepted");
    assert_eq!(error.failure(), RedisFailure::Unavailable, "{error}");
    assert!(error.to_string().contains(reason), "{error}");
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused_as_an_outage() {
    let (ca, other) = (
        TestCa::new("test CA").unwrap(),
        TestCa::new("other CA").unwrap(),
    );
    let server = server(&ca);
    let url = format!("rediss://app:app-secret@127.0.0.1:{}", server.port());
    assert_refused(url, Some(other.ca_file()), "UnknownIssuer").await;
}

#[tokio::test]
async fn verification_is_on_without_a_ca_file() {
    let ca = TestCa::new("private CA").unwrap();
    let server = server(&ca);
    // The system roots do not know the private CA.
    assert_refused(
        format!("rediss://app:app-secret@127.0.0.1:{}", server.port()),
        None,
        "UnknownIssuer",
    )
    .await;
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused() {
    let ca = TestCa::new("test CA").unwrap();
    let cert = ca.issue(&["cache.example"]).unwrap();
    let server = TlsRedisServer::start(&cert, USERS).unwrap();
    let url = format!("rediss://app:app-secret@127.0.0.1:{}", server.port());
    assert_refused(url, Some(ca.ca_file()), "not valid for name").await;
}

#[tokio::test]
async fn a_ca_file_with_a_plain_url_is_refused_before_connecting() {
    let ca = TestCa::new("test CA").unwrap();
    let Err(error) =
        redis_connection::client(&options(testkit::SHARED_REDIS_URL, Some(ca.ca_file())))
    else {
        panic!("a CA file for redis:// was accepted");
    };
    assert!(error.to_string().contains("rediss://"), "{error}");
}

#[tokio::test]
async fn plain_redis_is_unchanged() {
    let redis =
        RedisHandle::connect_lazily(&options(testkit::SHARED_REDIS_URL, None), DEADLINE).unwrap();
    redis.ping().await.expect("plain redis://");
}
