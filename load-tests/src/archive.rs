//! Reading what the durable path stored: the archive's `bids` rows in PostgreSQL (schema owned
//! by archival-worker, `migrations/0001_read_model.sql`) and a JetStream stream's message count.
//!
//! Each call opens its own connection, bounded in time: resilience restarts PostgreSQL and NATS
//! during its run, and a fresh connection per poll needs no reconnection logic.

use crate::latency::{Histogram, from_ms};
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

/// How many of `ids` (all rows for `None`) have a row in `bids`, 0 before the worker created
/// the table.
///
/// # Errors
/// PostgreSQL is unreachable or slow.
pub async fn count_archived(database_url: &str, ids: Option<&[Uuid]>) -> anyhow::Result<usize> {
    let result = with_client(database_url, async move |db| match ids {
        Some(ids) => {
            let sql = "select count(*) from bids where event_id = any($1)";
            db.query_one(sql, &[&ids]).await
        }
        None => db.query_one("select count(*) from bids", &[]).await,
    });
    match result.await {
        Ok(row) => Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0)),
        Err(e) if format!("{e:#}").contains("does not exist") => Ok(0),
        Err(e) => Err(e),
    }
}

/// Polls every 100 ms, for at most `timeout`, until `bids` holds `n` rows; the last count.
pub async fn wait_for_rows(database_url: &str, n: usize, timeout: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let rows = count_archived(database_url, None).await.unwrap_or(0);
        if rows >= n || tokio::time::Instant::now() >= deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each row's delay from the bid's acceptance (`placed_at`, Redis time) to the start of its
/// archiving batch's transaction (`archived_at`).
///
/// # Errors
/// PostgreSQL is unreachable or the table is missing.
pub async fn archive_delays(database_url: &str) -> anyhow::Result<Histogram> {
    let sql = "select extract(epoch from archived_at - placed_at)::float8 from bids";
    let rows = with_client(database_url, async |db| db.query(sql, &[]).await).await?;
    let mut delays = Histogram::exact();
    for row in rows {
        delays.record(from_ms(row.get::<_, f64>(0) * 1000.0));
    }
    Ok(delays)
}

/// Seconds from the first archiving batch to the last.
///
/// # Errors
/// PostgreSQL is unreachable or the table is missing.
pub async fn archive_span_secs(database_url: &str) -> anyhow::Result<f64> {
    let sql = "select extract(epoch from max(archived_at) - min(archived_at))::float8 from bids";
    let row = with_client(database_url, async |db| db.query_one(sql, &[]).await).await?;
    Ok(row.get::<_, Option<f64>>(0).unwrap_or(0.0))
}

/// Every row of `bids`.
///
/// # Errors
/// PostgreSQL is unreachable or the table is missing.
pub async fn archived_bids(database_url: &str) -> anyhow::Result<Vec<ArchivedBid>> {
    let sql = "select event_id, item_id, amount_cents from bids";
    let rows = with_client(database_url, async |db| db.query(sql, &[]).await).await?;
    let bid = |row: &tokio_postgres::Row| ArchivedBid {
        event_id: row.get(0),
        item_id: row.get(1),
        amount_cents: row.get(2),
    };
    Ok(rows.iter().map(bid).collect())
}

/// One item's rows in `bids`: how many, how many distinct `seq`s, and the highest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ItemRows {
    pub item_id: String,
    pub rows: u64,
    pub distinct_seqs: u64,
    pub max_seq: u64,
}

/// [`ItemRows`] of every item with rows, for exactly-once checks (one row per accepted bid,
/// `seq` 1…n without repeats).
///
/// # Errors
/// PostgreSQL is unreachable or the table is missing.
pub async fn rows_per_item(database_url: &str) -> anyhow::Result<Vec<ItemRows>> {
    let sql = "select item_id, count(*), count(distinct seq), max(seq) from bids group by item_id";
    let rows = with_client(database_url, async |db| db.query(sql, &[]).await).await?;
    let count = |row: &tokio_postgres::Row, i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(rows
        .iter()
        .map(|row| ItemRows {
            item_id: row.get(0),
            rows: count(row, 1),
            distinct_seqs: count(row, 2),
            max_seq: count(row, 3),
        })
        .collect())
}

async fn jetstream<T>(
    nats_url: &str,
    call: impl AsyncFnOnce(async_nats::jetstream::Context) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let work = async {
        let client = async_nats::connect(nats_url)
            .await
            .context("connecting to NATS")?;
        call(async_nats::jetstream::new(client)).await
    };
    tokio::time::timeout(CALL_TIMEOUT, work)
        .await
        .context("NATS did not answer in time")?
}

/// Messages in stream `name`: every outbox entry the relays published, after JetStream's
/// `Nats-Msg-Id` de-duplication.
///
/// # Errors
/// NATS is unreachable or the stream does not exist.
pub async fn stream_messages(nats_url: &str, name: &str) -> anyhow::Result<u64> {
    jetstream(nats_url, async |js| {
        let mut stream = js.get_stream(name).await.context("looking up the stream")?;
        let info = stream.info().await.context("reading the stream's info")?;
        Ok(info.state.messages)
    })
    .await
}

/// Deletes stream `name`.
///
/// # Errors
/// NATS is unreachable or refuses.
pub async fn delete_stream(nats_url: &str, name: &str) -> anyhow::Result<()> {
    jetstream(nats_url, async |js| {
        js.delete_stream(name)
            .await
            .context("deleting the stream")?;
        Ok(())
    })
    .await
}
