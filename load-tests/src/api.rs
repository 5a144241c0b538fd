//! Every call the experiments make to the gateway's HTTP API, in one place. Goose users send
//! through goose's own client (so goose times them) but build their bids and read the answers
//! with the types here. Money crosses the wire as [`Cents`], never through `f64`.
//!
//! Requests carry real access tokens ([`crate::credentials`]): items are created by
//! [`SELLER_ID`], and each bid by its user's token ([`BidAuth::Token`]), unless a run measures
//! a gateway in `--auth-mode open`, whose bids go without one ([`BidAuth::Open`]).

use crate::credentials::Credentials;
use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use reqwest::{RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::{Cents, MoneyError, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Longest a call may take unless the client is built with another timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Items [`ApiClient::create_items`] creates at once.
const CREATE_CONCURRENCY: usize = 16;
/// The name bid requests carry in goose's metrics (instead of a path with the item id).
pub const BID_REQUEST_NAME: &str = "POST /api/v1/items/{id}/bid";
/// The goose name of a bid carrying a maximum (`bench-write --proxy-bidders`), timed apart
/// from the plain bids of the same run.
pub const PROXY_BID_REQUEST_NAME: &str = "POST /api/v1/items/{id}/bid (max_amount)";
/// The item list, which the mixed workload reads.
pub const ITEMS_PATH: &str = "/api/v1/items";
/// The account every experiment's items are created by (it never bids).
pub const SELLER_ID: &str = "load-seller";

pub fn item_path(id: &str) -> String {
    format!("{ITEMS_PATH}/{id}")
}

pub fn bid_path(id: &str) -> String {
    format!("{ITEMS_PATH}/{id}/bid")
}

/// An item's newest `limit` bids, from the archive (PostgreSQL).
pub fn history_path(id: &str, limit: u32) -> String {
    format!("{ITEMS_PATH}/{id}/bids?limit={limit}")
}

/// `secs` seconds from now, e.g. an item's end time.
pub fn in_secs(secs: i64) -> Timestamp {
    Timestamp::from_micros(Timestamp::now().micros() + secs * 1_000_000)
}

/// How bids say who bids.
#[derive(Debug, Clone)]
pub enum BidAuth {
    /// `Authorization: Bearer` with the user's token (the body repeats the user id, which the
    /// gateway allows).
    Token(Arc<Credentials>),
    /// No token: the body's `user_id` (a gateway in `--auth-mode open`, for comparison).
    Open,
}

impl BidAuth {
    /// The bearer token for `user`'s bid; `None` in open mode.
    ///
    /// # Errors
    /// When `user` breaks the id rules or signing fails.
    pub fn token(&self, user: &str) -> anyhow::Result<Option<String>> {
        match self {
            Self::Token(credentials) => credentials.token(user).map(Some),
            Self::Open => Ok(None),
        }
    }
}

/// The body of `POST /api/v1/items/{id}/bid`.
#[derive(Debug, Serialize)]
pub struct BidBody<'a> {
    pub user_id: &'a str,
    pub amount: Cents,
    /// A proxy bid's maximum; absent for a plain bid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Cents>,
}

impl<'a> BidBody<'a> {
    pub fn plain(user_id: &'a str, amount: Cents) -> Self {
        Self {
            user_id,
            amount,
            max_amount: None,
        }
    }
}

/// An item to create with `POST /api/v1/items` (its body).
#[derive(Debug, Clone, Serialize)]
pub struct NewItem {
    pub id: String,
    pub name: String,
    pub starting_price: Cents,
    pub min_increment: Cents,
    pub end_time: Timestamp,
}

impl NewItem {
    /// An item with these prices in cents.
    ///
    /// # Errors
    /// A price is not a positive amount.
    pub fn new(
        id: String,
        name: &str,
        prices: (i64, i64),
        end: Timestamp,
    ) -> Result<Self, MoneyError> {
        Ok(Self {
            id,
            name: name.to_owned(),
            starting_price: Cents::new(prices.0)?,
            min_increment: Cents::new(prices.1)?,
            end_time: end,
        })
    }
}

/// The fields experiments read from any answer: a bid's, an item's or an error body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reply {
    pub success: bool,
    /// A bid's `accepted`, `bid_too_low`, …
    pub code: Option<String>,
    /// An error body's code.
    pub error: Option<String>,
    pub seq: Option<u64>,
    pub bid_count: Option<u64>,
    pub event_id: Option<Uuid>,
    current_bid_cents: Option<i64>,
    current_bid: Option<Box<RawValue>>,
}

impl Reply {
    /// The current price, preferring the integer field; 0 (the gateway's "no bid yet") and
    /// `null` read as `None`.
    ///
    /// # Errors
    /// Only the decimal field is there and it is not a whole number of cents.
    pub fn current_cents(&self) -> Result<Option<i64>, MoneyError> {
        if let Some(cents) = self.current_bid_cents {
            return Ok((cents > 0).then_some(cents));
        }
        match self.current_bid.as_deref().map(RawValue::get) {
            None | Some("null") => Ok(None),
            Some(text) if text.bytes().all(|b| b == b'0' || b == b'.') => Ok(None),
            Some(text) => Cents::parse_decimal(text).map(|c| Some(c.get())),
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer, with the body's `code` (bids) or `error` (error bodies) when present.
    Answered { status: u16, code: Option<String> },
    /// No HTTP answer: `timeout`, `connect` (refused) or `other` (reset mid-request, …).
    Transport(&'static str),
}

/// One request's outcome and what its body said.
#[derive(Debug)]
pub struct Answer {
    pub outcome: Outcome,
    pub reply: Reply,
}

impl Answer {
    /// A bid answered 200 `accepted`: its `seq`.
    pub fn accepted_seq(&self) -> Option<u64> {
        let ok = matches!(self.outcome, Outcome::Answered { status: 200, .. });
        self.reply
            .seq
            .filter(|_| ok && self.reply.code.as_deref() == Some("accepted"))
    }
}

/// An item's current state, as `GET /api/v1/items/{id}` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub seq: u64,
    pub bid_count: u64,
    /// `None` while the item has no bid.
    pub current_bid_cents: Option<i64>,
}

/// HTTP client for the gateway's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base_url: String,
    http: reqwest::Client,
    /// Signs the seller's token, and the bidders' unless `bid_auth` is open.
    credentials: Arc<Credentials>,
    bid_auth: BidAuth,
    /// Accounts registered through the API, for the first users of a run.
    registered: Arc<Vec<String>>,
}

impl ApiClient {
    /// A client for the service at `base_url`, whose requests give up after 10 s.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        Self::with_timeout(base_url, REQUEST_TIMEOUT)
    }

    /// A client whose requests give up after `timeout`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(512);
        let base_url = base_url.trim_end_matches('/').to_owned();
        let credentials = Credentials::shared()?;
        Ok(Self {
            base_url,
            http: http.build()?,
            bid_auth: BidAuth::Token(Arc::clone(&credentials)),
            credentials,
            registered: Arc::default(),
        })
    }

    /// The same client whose bids carry no token (for a gateway in `--auth-mode open`).
    pub fn open_mode(mut self) -> Self {
        self.bid_auth = BidAuth::Open;
        self
    }

    /// The service's base URL.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// How this client's bids say who bids.
    pub fn bid_auth(&self) -> &BidAuth {
        &self.bid_auth
    }

    /// User ids of the accounts [`ApiClient::register_bidders`] registered.
    pub fn registered_bidders(&self) -> &[String] {
        &self.registered
    }

    /// Registers `count` bidder accounts through `POST /api/v1/auth/register`, as people
    /// would, and keeps their tokens for their bids; retries while the gateway's accounts
    /// schema is not migrated yet (503), for up to 30 s.
    ///
    /// # Errors
    /// Registration keeps failing, or an answer lacks the account or its token.
    pub async fn register_bidders(mut self, count: usize) -> anyhow::Result<Self> {
        let url = format!("{}/api/v1/auth/register", self.base_url);
        let mut ids = Vec::with_capacity(count);
        for n in 0..count {
            let username = format!("bidder{n}x{:08x}", fastrand::u32(..));
            let body = serde_json::json!({
                "username": username,
                "display_name": format!("Bidder {n}"),
                "password": "load test password 1",
            });
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let registered: serde_json::Value = loop {
                let response = self.http.post(&url).json(&body).send().await;
                match response {
                    Ok(r) if r.status() == StatusCode::CREATED => break r.json().await?,
                    Ok(r)
                        if r.status() == StatusCode::SERVICE_UNAVAILABLE
                            && tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    other => {
                        let response = expect(other, StatusCode::CREATED, &url).await?;
                        break response.json().await?;
                    }
                }
            };
            let field = |value: &serde_json::Value| value.as_str().map(str::to_owned);
            let (Some(id), Some(token)) = (
                field(&registered["user"]["id"]),
                field(&registered["access_token"]),
            ) else {
                bail!("{url} answered without the account's id or token: {registered}");
            };
            self.credentials.remember(&id, token);
            ids.push(id);
        }
        tracing::info!(count, "bidder accounts registered through the API");
        self.registered = Arc::new(ids);
        Ok(self)
    }

    /// Whether `GET /ready` answers 200 (dependencies reachable).
    pub async fn is_ready(&self) -> bool {
        let url = format!("{}/ready", self.base_url);
        let ready = self.http.get(url).send().await;
        matches!(ready, Ok(r) if r.status() == StatusCode::OK)
    }

    /// Creates an item; the gateway must answer 201.
    ///
    /// # Errors
    /// The request fails or the status is not 201 (the body is quoted).
    pub async fn create_item(&self, item: &NewItem) -> anyhow::Result<()> {
        let url = format!("{}{ITEMS_PATH}", self.base_url);
        let token = self.credentials.token(SELLER_ID)?;
        let response = self
            .http
            .post(&url)
            .bearer_auth(token)
            .json(item)
            .send()
            .await;
        expect(response, StatusCode::CREATED, &url).await.map(drop)
    }

    /// Reads an item's current state.
    ///
    /// # Errors
    /// The request fails, the status is not 200, or the body lacks `seq` or `bid_count` or
    /// has an unreadable `current_bid`.
    pub async fn item_state(&self, id: &str) -> anyhow::Result<ItemState> {
        let url = format!("{}{}", self.base_url, item_path(id));
        let response = expect(self.http.get(&url).send().await, StatusCode::OK, &url).await?;
        let body: Reply = response.json().await?;
        let unread = || format!("GET {url}: no seq, bid_count or current_bid");
        Ok(ItemState {
            seq: body.seq.with_context(unread)?,
            bid_count: body.bid_count.with_context(unread)?,
            current_bid_cents: body.current_cents().with_context(unread)?,
        })
    }

    /// The value of the unlabelled Prometheus sample `name` on `GET /metrics`, or `None` when
    /// the service does not expose it (the figure does not apply).
    ///
    /// # Errors
    /// The request fails.
    pub async fn counter(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let url = format!("{}/metrics", self.base_url);
        let response = self.http.get(&url).send().await;
        let text = response.with_context(|| format!("GET {url}"))?.text();
        Ok(counter_value(&text.await?, name))
    }

    /// Places a bid as `user_id` (with its token unless the client is in open mode); a
    /// transport failure is an [`Outcome`], not an error.
    pub async fn bid(&self, item: &str, user_id: &str, amount: Cents) -> Answer {
        let url = format!("{}{}", self.base_url, bid_path(item));
        let token = self.bid_auth.token(user_id).unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "no token for the bid; sending none");
            None
        });
        let body = BidBody::plain(user_id, amount);
        let request = self.http.post(url).json(&body);
        send(match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
        .await
    }

    /// Creates every item of `items`, a few at a time.
    ///
    /// # Errors
    /// As [`ApiClient::create_item`], for the first item that fails.
    pub async fn create_items(&self, items: Vec<NewItem>) -> anyhow::Result<()> {
        futures::stream::iter(items)
            .map(|item| async move { self.create_item(&item).await })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect()
            .await
    }

    /// `GET path` (e.g. [`item_path`]), its body read to the end.
    pub async fn get(&self, path: &str) -> Answer {
        send(self.http.get(format!("{}{path}", self.base_url))).await
    }
}

/// The response if it has `status`, else an error quoting its body.
async fn expect(
    response: reqwest::Result<reqwest::Response>,
    status: StatusCode,
    url: &str,
) -> anyhow::Result<reqwest::Response> {
    let response = response.with_context(|| format!("{url}: no answer"))?;
    if response.status() != status {
        let got = response.status();
        let body = response.text().await?;
        bail!("{url} answered {got} ({status} expected): {body}");
    }
    Ok(response)
}

async fn send(request: RequestBuilder) -> Answer {
    let transport = |e: &reqwest::Error| {
        let kind = match () {
            () if e.is_timeout() => "timeout",
            () if e.is_connect() => "connect",
            () => "other",
        };
        Answer {
            outcome: Outcome::Transport(kind),
            reply: Reply::default(),
        }
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return transport(&e),
    };
    let status = response.status().as_u16();
    let reply = match response.bytes().await {
        // A non-JSON body (a proxy's page, a truncated answer) still has its status.
        Ok(body) => serde_json::from_slice::<Reply>(&body).unwrap_or_default(),
        Err(e) if e.is_timeout() => return transport(&e),
        Err(_) => Reply::default(),
    };
    let code = reply.code.clone().or_else(|| reply.error.clone());
    Answer {
        outcome: Outcome::Answered { status, code },
        reply,
    }
}

/// The value of the unlabelled sample `name` in a Prometheus text exposition.
fn counter_value(metrics: &str, name: &str) -> Option<f64> {
    let value = |line: &str| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    };
    metrics.lines().find_map(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::MoneyError::TooManyFractionDigits;

    #[test]
    fn a_counter_is_read_by_its_exact_name() {
        let text = "# HELP gateway_optimistic_retries Optimistic bid attempts retried\n\
                    # TYPE gateway_optimistic_retries counter\n\
                    gateway_optimistic_retries_total 42\n\
                    gateway_optimistic_retries_total_other 7\n";
        let value = |name| counter_value(text, name);
        assert_eq!(value("gateway_optimistic_retries_total"), Some(42.0));
        assert_eq!(value("gateway_prefilter_rejections_total"), None);
    }

    fn reply(json: &str) -> Reply {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_integer_price_is_preferred_and_a_missing_null_or_zero_price_is_no_bid() {
        for (json, cents) in [
            (
                r#"{"current_bid":9.99,"current_bid_cents":42}"#,
                Ok(Some(42)),
            ),
            (r#"{"current_bid":20.07}"#, Ok(Some(2007))),
            (r#"{"current_bid":1.005}"#, Err(TooManyFractionDigits)),
            ("{}", Ok(None)),
            (r#"{"current_bid":null}"#, Ok(None)),
            (r#"{"current_bid":0}"#, Ok(None)),
            (r#"{"current_bid_cents":0}"#, Ok(None)),
        ] {
            assert_eq!(reply(json).current_cents(), cents, "{json}");
        }
        let both = reply(r#"{"success":false,"code":"bid_too_low","seq":3}"#);
        assert!(!both.success);
        let (code, seq) = (both.code.as_deref(), both.seq);
        assert_eq!((code, seq), (Some("bid_too_low"), Some(3)));
        assert!(reply(r#"{"success":true}"#).success);
    }

    #[test]
    fn only_a_200_accepted_answer_has_an_accepted_seq() {
        for (status, code, seq) in [
            (200, "accepted", Some(4)),
            (200, "bid_too_low", None),
            (503, "accepted", None),
        ] {
            let reply = reply(&format!(r#"{{"code":"{code}","seq":4}}"#));
            let outcome = Outcome::Answered { status, code: None };
            let answer = Answer { outcome, reply };
            assert_eq!(answer.accepted_seq(), seq, "{status} {code}");
        }
    }

    #[test]
    fn bodies_carry_amounts_as_json_decimals() {
        let amount = Cents::new(1001).unwrap();
        let text = serde_json::to_string(&BidBody {
            user_id: "u1",
            amount,
            max_amount: None,
        })
        .unwrap();
        assert_eq!(text, r#"{"user_id":"u1","amount":10.01}"#);
        let proxy = serde_json::to_string(&BidBody {
            user_id: "u1",
            amount,
            max_amount: Cents::new(2000).ok(),
        })
        .unwrap();
        assert_eq!(proxy, r#"{"user_id":"u1","amount":10.01,"max_amount":20}"#);
        let item = NewItem::new("a".into(), "n", (100, 5), Timestamp::from_micros(0)).unwrap();
        let text = serde_json::to_string(&item).unwrap();
        let prices = r#""starting_price":1,"min_increment":0.05"#;
        assert!(text.contains(prices), "{text}");
        assert_eq!(bid_path("a"), "/api/v1/items/a/bid");
    }
}
