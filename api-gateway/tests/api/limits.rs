//! Limits that hold across gateways (bids per user, requests per address), whom a request
//! counts against (trusted proxies, IPv6 /64), the fallback when the limiter's Redis is down,
//! the sign-in throttle, and CORS. Every limit here is a GCRA bucket: `burst` at once, then
//! `rate` a second, so the checks allow what the time the test itself took has freed, and
//! never depend on how fast this machine is.

use crate::accounts_helpers::{PASSWORD, accounts_config, spawn_accounts_app_with};
use crate::helpers::*;
use api_gateway::config::Config;
use futures::StreamExt;
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};
use testkit::reply::Reply;

const WAIT: Duration = Duration::from_secs(10);

/// What a run of requests until the first 429 saw.
struct Run {
    /// Requests answered other than 429 before the refusal.
    admitted: u64,
    /// The first 429, if one came within the run.
    refusal: Option<Reply>,
    /// From the first request sent to the last answer.
    elapsed: Duration,
}

impl Run {
    /// GCRA's bound: `burst` plus what `rate` freed meanwhile (plus one for rounding).
    #[track_caller]
    fn assert_within(&self, burst: u64, per_second: u64) {
        let freed = per_second * self.elapsed.as_secs() + per_second;
        assert!(
            self.admitted <= burst + freed,
            "{} admitted in {:?}: over the burst of {burst} at {per_second}/s",
            self.admitted,
            self.elapsed
        );
    }

    #[track_caller]
    fn refusal(&self) -> &Reply {
        let refusal = self
            .refusal
            .as_ref()
            .expect("a request was refused with 429");
        refusal.assert_error(429, "rate_limited");
        let retry = refusal.headers["retry-after"].to_str().expect("ascii");
        assert!(retry.parse::<u64>().expect("seconds") >= 1, "{retry}");
        refusal
    }
}

/// Sends `send(n)` for n = 0, 1, … until one is answered 429, at most `max` times.
async fn until_refused<F, Fut>(max: u64, mut send: F) -> Run
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Reply>,
{
    let started = Instant::now();
    for n in 0..max {
        let reply = send(n).await;
        if reply.status == 429 {
            return Run {
                admitted: n,
                refusal: Some(reply),
                elapsed: started.elapsed(),
            };
        }
    }
    Run {
        admitted: max,
        refusal: None,
        elapsed: started.elapsed(),
    }
}

/// A GET of an item no test creates (404 when admitted), from the address `forwarded_for`
/// names when given.
async fn probe_item(app: &TestApp, forwarded_for: Option<String>) -> Reply {
    let mut request = app.http().get(app.url("/api/v1/items/no-such-item"));
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    Reply::read(request.send().await.expect("request sent")).await
}

/// A second gateway of the same deployment as `config`: same Redis, prefixes and limits, its
/// own instance id.
fn same_deployment(config: &Config) -> Config {
    let mut other = config.clone();
    other.instance_id = unique_id("gw");
    other
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_the_bid_limit_on_one_gateway_is_limited_on_the_other_within_the_bound() {
    let (burst, rate) = (20, 1);
    let mut config = shared_config();
    config.bid_rate_per_user = rate;
    config.bid_burst_per_user = burst;
    let first = spawn_app_with(config.clone()).await;
    let second = spawn_app_with(same_deployment(&config)).await;
    let item = first.create_penny_item().await;
    let mut price = 100;
    let started = Instant::now();

    let on_first = until_refused(100, |_| {
        price += 1;
        first.bid(&item, "mallory", decimal(price))
    })
    .await;
    on_first.refusal();
    // The other gateway never saw mallory; the verdict tells it.
    second
        .wait_metric(WAIT, "gateway_rate_limit_verdicts_applied_total", 1.0)
        .await;
    let on_second = until_refused(100, |_| {
        price += 1;
        second.bid(&item, "mallory", decimal(price))
    })
    .await;
    on_second.refusal();

    // Both gateways together admitted what one would have: no second burst on the other.
    let together = Run {
        admitted: on_first.admitted + on_second.admitted,
        refusal: None,
        elapsed: started.elapsed(),
    };
    together.assert_within(u64::from(burst), u64::from(rate));
    assert_eq!(
        first.item(&item).await["bid_count"].as_u64(),
        Some(together.admitted),
        "every admitted bid was accepted, no refused one was applied"
    );
    // Someone else bids on as usual.
    first
        .accepted_bid(&item, "alice", decimal(price + 100))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limits_let_a_thousand_bidders_behind_one_address_through() {
    let defaults = Config::defaults();
    let mut config = shared_config();
    config.bid_rate_per_user = defaults.bid_rate_per_user;
    config.bid_burst_per_user = defaults.bid_burst_per_user;
    assert_eq!(config.limits.ip_rate_per_sec, 0, "off by default");
    let app = spawn_app_with(config).await;
    let item = app.create_penny_item().await;

    // 1,000 people on one NAT, each placing a quick pair of bids, 64 at a time.
    let statuses: Vec<u16> = futures::stream::iter(0..2_000u64)
        .map(|n| {
            let (app, item) = (&app, &item);
            async move {
                app.bid(item, &format!("nat-{}", n % 1_000), decimal(101 + n))
                    .await
                    .status
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 0);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_for_is_ignored_and_the_peer_is_limited() {
    let (burst, rate) = (5, 1);
    let mut config = shared_config();
    config.limits.ip_rate_per_sec = rate;
    config.limits.ip_burst = burst;
    let app = spawn_app_with(config).await;

    // Each request claims another client; all of them are the peer, 127.0.0.1.
    let run = until_refused(100, |n| probe_item(&app, Some(format!("203.0.113.{n}")))).await;
    run.refusal();
    run.assert_within(u64::from(burst), u64::from(rate));
    // The probes of a load balancer on the same address are never refused.
    app.get("/health").await.assert_status(200);
    assert!(app.metric("gateway_rate_limited_total{limit=\"ip\"}").await >= 1.0);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget_and_cannot_spoof_another()
{
    let (burst, rate) = (5, 1);
    let mut config = shared_config();
    config.limits.ip_rate_per_sec = rate;
    config.limits.ip_burst = burst;
    config.limits.trusted_proxies = "127.0.0.1".parse().expect("address");
    let app = spawn_app_with(config).await;

    // (the X-Forwarded-For of the n-th request, another client's): the client prepends a new
    // address each time, and the proxy's entry, last, is what counts; one IPv6 /64 is one
    // client, whichever of its addresses a request comes from. Another client is not affected.
    type ForwardedFor = fn(u64) -> String;
    let clients: [(ForwardedFor, &str); 2] = [
        (|n| format!("10.9.{n}.1, 203.0.113.5"), "203.0.113.6"),
        (|n| format!("2001:db8:1:2::{n:x}"), "2001:db8:1:3::1"),
    ];
    for (forwarded_for, other) in clients {
        let refused = until_refused(100, |n| probe_item(&app, Some(forwarded_for(n)))).await;
        refused.refusal();
        refused.assert_within(u64::from(burst), u64::from(rate));
        probe_item(&app, Some(other.into()))
            .await
            .assert_error(404, "item_not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_limiters_redis_down_bids_are_served_and_the_local_limit_applies() {
    let (burst, rate) = (5, 1);
    let mut limiter_redis = RedisServer::start().unwrap();
    let mut config = shared_config();
    config.bid_rate_per_user = rate;
    config.bid_burst_per_user = burst;
    config.limits.rate_limit_redis_url = Some(limiter_redis.url().into());
    let app = spawn_app_with(config).await;
    let item = app.create_penny_item().await;
    app.accepted_bid(&item, "alice", decimal(101)).await;
    app.wait_metric(WAIT, "gateway_rate_limit_shared", 1.0)
        .await;

    limiter_redis.stop();
    app.wait_metric(WAIT, "gateway_rate_limit_shared", 0.0)
        .await;
    let mut price = 200;
    let run = until_refused(100, |_| {
        price += 1;
        app.bid(&item, "bob", decimal(price))
    })
    .await;
    run.refusal();
    run.assert_within(u64::from(burst), u64::from(rate));
    assert!(run.admitted >= u64::from(burst), "the burst was served");
    assert_eq!(
        app.item(&item).await["bid_count"].as_u64(),
        Some(1 + run.admitted)
    );
    assert!(app.metric("gateway_rate_limit_redis_failures_total").await >= 1.0);
    // Readiness is about taking bids: the limiter's Redis is not one of its conditions.
    let ready = app.wait_ready(WAIT).await;
    assert_eq!(ready["redis"], "up", "{ready}");

    limiter_redis.restart().unwrap();
    app.wait_metric(WAIT, "gateway_rate_limit_shared", 1.0)
        .await;
}

/// An accounts gateway whose sign-in throttle allows `per_login` failures per login and
/// `per_address` attempts per address a minute.
async fn throttled_accounts_app(per_login: u32, per_address: u32) -> TestApp {
    let mut config = accounts_config().await;
    config.limits.login_failures_per_account = per_login;
    config.limits.auth_attempts_per_ip_per_minute = per_address;
    config.limits.trusted_proxies = "127.0.0.1".parse().expect("address");
    spawn_accounts_app_with(config).await
}

/// `POST /api/v1/auth/<route>` from the client `forwarded_for` names (through the trusted
/// loopback proxy).
async fn auth_from(app: &TestApp, route: &str, body: Value, forwarded_for: &str) -> Reply {
    let request = app
        .http()
        .post(app.url(&format!("/api/v1/auth/{route}")))
        .header("x-forwarded-for", forwarded_for)
        .json(&body);
    Reply::read(request.send().await.expect("request sent")).await
}

async fn sign_in(app: &TestApp, login: &str, password: &str, client: &str) -> Reply {
    let body = json!({ "login": login, "password": password });
    auth_from(app, "login", body, client).await
}

/// `times` sign-ins to `login` from `client` with a wrong password, each refused as
/// invalid_credentials (none throttled yet).
async fn wrong_passwords(app: &TestApp, login: &str, client: &str, times: usize) {
    for _ in 0..times {
        sign_in(app, login, "wrong password!", client)
            .await
            .assert_error(401, "invalid_credentials");
    }
}

/// What a throttled answer shows a client, with the seconds it names taken out (two windows
/// opened a moment apart may end a second apart).
fn throttled_shape(reply: &Reply) -> (u16, Value, Vec<String>) {
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry), "{retry}");
    let mut body = reply.body.clone();
    let message = body["message"].as_str().unwrap_or_default();
    body["message"] = Value::String(message.replace(&retry.to_string(), "N"));
    let mut headers: Vec<String> = reply.headers.keys().map(|k| k.to_string()).collect();
    headers.retain(|name| name != "date");
    headers.sort();
    (reply.status, body, headers)
}

#[tokio::test]
async fn a_login_that_failed_too_often_is_throttled_and_an_unknown_one_identically() {
    let app = throttled_accounts_app(3, 1_000).await;
    app.signed_up("ada@example.org").await;
    let client = "203.0.113.20";
    for login in ["ada@example.org", "nobody@example.org"] {
        wrong_passwords(&app, login, client, 3).await;
    }

    // The right password no longer helps until the window ends.
    let known = sign_in(&app, "Ada@Example.org", PASSWORD, client).await;
    let unknown = sign_in(&app, "nobody@example.org", PASSWORD, client).await;
    known.assert_error(429, "rate_limited");
    assert_eq!(
        throttled_shape(&known),
        throttled_shape(&unknown),
        "a throttled sign-in says nothing about whether the account exists"
    );
    assert_eq!(
        app.metric("gateway_rate_limited_total{limit=\"login_account\"}")
            .await,
        2.0
    );
    // Another account from the same address is not affected.
    app.signed_up("bob@example.org").await;
    sign_in(&app, "bob@example.org", PASSWORD, client)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_successful_sign_in_forgets_the_logins_failures() {
    let app = throttled_accounts_app(3, 1_000).await;
    app.signed_up("ada@example.org").await;
    let client = "203.0.113.21";
    wrong_passwords(&app, "ada@example.org", client, 2).await;
    sign_in(&app, "ada@example.org", PASSWORD, client)
        .await
        .assert_status(200);
    wrong_passwords(&app, "ada@example.org", client, 3).await;
    sign_in(&app, "ada@example.org", PASSWORD, client)
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn one_address_trying_many_logins_is_throttled_and_another_address_is_not() {
    let app = throttled_accounts_app(10, 4).await;
    let noisy = "203.0.113.30";
    for n in 0..4 {
        sign_in(
            &app,
            &format!("user{n}@example.org"),
            "wrong password!",
            noisy,
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    let refused = sign_in(&app, "user9@example.org", "wrong password!", noisy).await;
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    refused.assert_error(429, "rate_limited");
    // Registering counts against the same budget.
    let registration =
        json!({"email": "new@example.org", "display_name": "New", "password": PASSWORD});
    auth_from(&app, "register", registration.clone(), noisy)
        .await
        .assert_error(429, "rate_limited");
    assert_eq!(account_count_of(&app, "new@example.org").await, 0);

    auth_from(&app, "register", registration, "203.0.113.31")
        .await
        .assert_status(201);
}

#[tokio::test]
async fn registering_one_login_over_and_over_is_throttled() {
    let app = throttled_accounts_app(2, 1_000).await;
    let body = json!({"username": "ada_l", "display_name": "Ada", "password": PASSWORD});
    auth_from(&app, "register", body.clone(), "203.0.113.40")
        .await
        .assert_status(201);
    auth_from(&app, "register", body.clone(), "203.0.113.41")
        .await
        .assert_error(409, "login_taken");
    auth_from(&app, "register", body, "203.0.113.42")
        .await
        .assert_error(429, "rate_limited");
}

/// Accounts whose login is `login` (0 or 1).
async fn account_count_of(app: &TestApp, login: &str) -> i64 {
    let (client, connection) =
        tokio_postgres::connect(app.config.database.url.expose(), tokio_postgres::NoTls)
            .await
            .expect("postgres");
    let connection = tokio::spawn(connection);
    let row = client
        .query_one(
            "select count(*) from accounts.users where lower(email) = lower($1)",
            &[&login],
        )
        .await
        .expect("count");
    drop(client);
    let _ = connection.await;
    row.get(0)
}

/// A CORS preflight of a bid from `origin`.
async fn preflight(app: &TestApp, origin: &str) -> Reply {
    let request = app
        .http()
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/items/x/bid"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        );
    Reply::read(request.send().await.expect("request sent")).await
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).map(|v| v.to_str().expect("ascii"))
}

#[tokio::test]
async fn a_configured_origin_passes_the_preflight_and_reads_retry_after_and_others_do_not() {
    let mut config = shared_config();
    config.limits.cors_origins = "https://auction.example".parse().expect("origin");
    config.limits.ip_rate_per_sec = 1;
    config.limits.ip_burst = 1;
    let app = spawn_app_with(config).await;

    let allowed = preflight(&app, "https://auction.example").await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("https://auction.example")
    );
    let headers = header(&allowed, "access-control-allow-headers").unwrap_or_default();
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(name), "{headers}");
    }
    let methods = header(&allowed, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");

    let refused = preflight(&app, "https://evil.example").await;
    assert_eq!(header(&refused, "access-control-allow-origin"), None);

    // A real request from the page: a 429 carries the CORS headers and exposes Retry-After
    // (preflights above were not counted against the address).
    let from_page = |_| {
        let request = app
            .http()
            .get(app.url("/api/v1/items/no-such-item"))
            .header("origin", "https://auction.example");
        async { Reply::read(request.send().await.expect("request sent")).await }
    };
    let run = until_refused(100, from_page).await;
    let limited = run.refusal();
    assert_eq!(
        header(limited, "access-control-allow-origin"),
        Some("https://auction.example")
    );
    let exposed = header(limited, "access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("retry-after"), "{exposed}");
}

#[tokio::test]
async fn without_configured_origins_no_cors_header_is_sent() {
    let app = spawn_app().await;
    let answer = preflight(&app, "https://auction.example").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    let plain = app
        .http()
        .get(app.url("/health"))
        .header("origin", "https://auction.example")
        .send()
        .await
        .expect("sent");
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}
