//! The gateway on a TLS-only Redis (`rediss://`, a throwaway CA given as `REDIS_CA_FILE`):
//! every connection it opens (the store's, the outbox readers') speaks TLS, and a certificate
//! it cannot trust is an outage (503, `/ready` down), not a crash.

use crate::helpers::*;
use serde_json::json;
use shared::tls::CaFile;
use testkit::{TestCa, TlsRedisServer};

fn tls_config(server: &TlsRedisServer, ca: &TestCa) -> api_gateway::config::Config {
    let mut config = test_config(&server.url(), testkit::SHARED_NATS_URL);
    config.redis.ca_file = Some(CaFile::read(ca.ca_file()).expect("CA file"));
    config
}

#[tokio::test]
async fn bids_over_rediss_are_accepted_and_relayed_to_the_archive() {
    let ca = TestCa::new("test CA").unwrap();
    let server = TlsRedisServer::start(&ca.issue(&["127.0.0.1"]).unwrap(), &[]).unwrap();
    let app = spawn_app_with(tls_config(&server, &ca)).await;
    let item = app.create_item(json!({})).await;
    let accepted = app.accepted_bid(&item, "alice", json!(11)).await;
    // The relay read the outbox over its own TLS connections and published it.
    let archived = app.wait_archived(1).await;
    assert_eq!(archived[0]["event_id"], accepted.event_id, "{archived:?}");
    assert_eq!(app.get("/ready").await.assert_status(200)["redis"], "up");
}

#[tokio::test]
async fn a_redis_certificate_of_another_ca_is_an_outage() {
    let (ca, other) = (
        TestCa::new("test CA").unwrap(),
        TestCa::new("other CA").unwrap(),
    );
    let server = TlsRedisServer::start(&ca.issue(&["127.0.0.1"]).unwrap(), &[]).unwrap();
    let app = spawn_app_with(tls_config(&server, &other)).await;
    let item = unique_id("tls");
    app.bid(&item, "alice", json!(11))
        .await
        .assert_error(503, "unavailable");
    assert_eq!(app.get("/ready").await.assert_status(503)["redis"], "down");
}
