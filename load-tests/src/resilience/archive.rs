//! Reading what the pipeline stored: the archive's `bids` rows in PostgreSQL (schema owned by
//! archival-worker, `migrations/0001_read_model.sql`) and the JetStream stream's message count.
//!
//! Each call opens its own connection: PostgreSQL and NATS are restarted during the run, and a
//! fresh connection per poll needs no reconnection logic.

use anyhow::Context;
use std::time::Duration;
use uuid::Uuid;

/// Longest one connection attempt or query may take (the server may be down).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// One archived bid, enough to trace it back to the request that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedBid {
    pub event_id: Uuid,
    pub item_id: String,
    pub amount_cents: i64,
}

async fn with_client<T>(
    database_url: &str,
    query: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> anyhow::Result<T> {
    let work = async {
        let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        let connection = tokio::spawn(connection);
        let result = query(&client).await.context("querying the archive");
        drop(client);
        // The connection task ends once the client is gone.
        let _ = connection.await;
        result
    };
    tokio::time::timeout(CALL_TIMEOUT, work)
        .await
        .context("PostgreSQL did not answer in time")?
}

/// How many of `ids` have a row in `bids` (0 before the worker created the table).
///
/// # Errors
/// PostgreSQL is unreachable or slow.
pub async fn count_archived(database_url: &str, ids: &[Uuid]) -> anyhow::Result<usize> {
    let ids = ids.to_vec();
    let result = with_client(database_url, async move |db| {
        db.query_one(
            "select count(*) from bids where event_id = any($1)",
            &[&ids],
        )
        .await
    })
    .await;
    match result {
        Ok(row) => Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0)),
        Err(e) if format!("{e:#}").contains("does not exist") => Ok(0),
        Err(e) => Err(e),
    }
}

/// Every row of `bids`.
///
/// # Errors
/// PostgreSQL is unreachable or the table is missing.
pub async fn archived_bids(database_url: &str) -> anyhow::Result<Vec<ArchivedBid>> {
    let rows = with_client(database_url, async |db| {
        db.query("select event_id, item_id, amount_cents from bids", &[])
            .await
    })
    .await?;
    Ok(rows
        .iter()
        .map(|row| ArchivedBid {
            event_id: row.get(0),
            item_id: row.get(1),
            amount_cents: row.get(2),
        })
        .collect())
}

/// Messages in the archive stream: every outbox entry the relays published, after JetStream's
/// `Nats-Msg-Id` de-duplication.
///
/// # Errors
/// NATS is unreachable or the stream does not exist.
pub async fn stream_messages(nats_url: &str) -> anyhow::Result<u64> {
    let work = async {
        let client = async_nats::connect(nats_url)
            .await
            .context("connecting to NATS")?;
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream
            .get_stream(shared::subjects::ARCHIVE_STREAM)
            .await
            .context("looking up the archive stream")?;
        let info = stream.info().await.context("reading the stream's info")?;
        anyhow::Ok(info.state.messages)
    };
    tokio::time::timeout(CALL_TIMEOUT, work)
        .await
        .context("NATS did not answer in time")?
}
