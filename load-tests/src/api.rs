//! The few gateway calls an experiment makes outside the load itself: readiness,
//! creating the item under test and reading its final state. The load is sent
//! by goose's own clients (see each experiment).

use crate::money::{Decimal, reported_cents};
use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;

/// Longest any of these calls may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An item to create with `POST /api/v1/items`.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: String,
    pub name: String,
    pub starting_price_cents: i64,
    pub min_increment_cents: i64,
    pub end_time: DateTime<Utc>,
}

#[derive(Serialize)]
struct NewItemBody<'a> {
    id: &'a str,
    name: &'a str,
    starting_price: Decimal,
    min_increment: Decimal,
    end_time: String,
}

/// An item's current state, as `GET /api/v1/items/{id}` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub seq: u64,
    pub bid_count: u64,
    /// `None` while the item has no bid.
    pub current_bid_cents: Option<i64>,
}

#[derive(Deserialize)]
struct ItemStateBody {
    seq: u64,
    bid_count: u64,
    #[serde(default)]
    current_bid: Option<Box<RawValue>>,
    #[serde(default)]
    current_bid_cents: Option<i64>,
}

/// The value of the unlabelled counter `name` in a Prometheus text exposition.
fn counter_value(metrics: &str, name: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// HTTP client for the gateway's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base_url: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for the gateway at `base_url` (no trailing slash).
    ///
    /// # Errors
    ///
    /// The HTTP client cannot be built.
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Whether `GET /ready` answers 200 (dependencies reachable).
    pub async fn is_ready(&self) -> bool {
        let url = format!("{}/ready", self.base_url);
        matches!(self.http.get(url).send().await, Ok(r) if r.status() == StatusCode::OK)
    }

    /// Creates an item; the gateway must answer 201.
    ///
    /// # Errors
    ///
    /// The request fails or the status is not 201 (the body is quoted).
    pub async fn create_item(&self, item: &NewItem) -> anyhow::Result<()> {
        let body = NewItemBody {
            id: &item.id,
            name: &item.name,
            starting_price: Decimal(item.starting_price_cents),
            min_increment: Decimal(item.min_increment_cents),
            end_time: item.end_time.to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        let url = format!("{}/api/v1/items", self.base_url);
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if status != StatusCode::CREATED {
            let text = response.text().await.unwrap_or_default();
            bail!("POST {url} answered {status} (201 expected): {text}");
        }
        Ok(())
    }

    /// The gateway's count of bids answered by its local price pre-filter (no Redis call), or
    /// `None` when the gateway does not expose it.
    ///
    /// # Errors
    ///
    /// The request fails.
    pub async fn prefilter_rejections(&self) -> anyhow::Result<Option<u64>> {
        self.counter("gateway_prefilter_rejections_total").await
    }

    /// The value of the unlabelled Prometheus counter `name` on `GET /metrics`, or `None`
    /// when the gateway does not expose it (an older gateway, or the figure does not apply).
    ///
    /// # Errors
    ///
    /// The request fails.
    pub async fn counter(&self, name: &str) -> anyhow::Result<Option<u64>> {
        let url = format!("{}/metrics", self.base_url);
        let text = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .text()
            .await
            .with_context(|| format!("GET {url}: body"))?;
        Ok(counter_value(&text, name))
    }

    /// Reads an item's current state.
    ///
    /// # Errors
    ///
    /// The request fails, the status is not 200, or the body lacks `seq` or
    /// `bid_count` or has an unreadable `current_bid`.
    pub async fn item_state(&self, id: &str) -> anyhow::Result<ItemState> {
        let url = format!("{}/api/v1/items/{id}", self.base_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if status != StatusCode::OK {
            let text = response.text().await.unwrap_or_default();
            bail!("GET {url} answered {status} (200 expected): {text}");
        }
        let body: ItemStateBody = response
            .json()
            .await
            .with_context(|| format!("GET {url}: unexpected body"))?;
        let current_bid_cents = reported_cents(body.current_bid_cents, body.current_bid.as_deref())
            .with_context(|| format!("GET {url}: current_bid"))?;
        Ok(ItemState {
            seq: body.seq,
            bid_count: body.bid_count,
            current_bid_cents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_read_by_its_exact_name() {
        let text = "# HELP gateway_optimistic_retries Optimistic bid attempts retried\n\
                    # TYPE gateway_optimistic_retries counter\n\
                    gateway_optimistic_retries_total 42\n\
                    gateway_optimistic_retries_total_other 7\n";
        assert_eq!(
            counter_value(text, "gateway_optimistic_retries_total"),
            Some(42)
        );
        assert_eq!(
            counter_value(text, "gateway_prefilter_rejections_total"),
            None
        );
    }
}
