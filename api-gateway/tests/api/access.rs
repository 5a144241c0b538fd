//! Who may do what (issue 12): every write is authorised by a verified token, and a refused
//! request changes nothing. A role × action matrix against real PostgreSQL (accounts, a
//! suspended account, the read model), Redis and NATS, then the cases one by one: a body
//! naming another bidder, a seller bidding on their own item under either Redis strategy, the
//! anonymous "mallory" bid, a seller's own cancellation, `--auth-mode open`, suspensions
//! reaching other gateways, and the first admin.

use crate::accounts_helpers::*;
use crate::helpers::*;
use api_gateway::config::{AuthMode, RedisStrategy};
use serde_json::{Value, json};
use shared::IdempotencyKey;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::reply::Reply;

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// Any signed-in account that is not the item's seller.
    User,
    /// The seller of the item the action is on (every matrix item is [`SELLER`]'s).
    Seller,
    /// An account an admin suspended from bidding and selling.
    Suspended,
    Admin,
}

const EVERYONE: [Who; 5] = [
    Who::Anonymous,
    Who::User,
    Who::Seller,
    Who::Suspended,
    Who::Admin,
];

/// What they ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Bid,
    CreateItem,
    /// Cancel an auction before its first bid (the seller's own, for [`Who::Seller`]).
    Cancel,
    Close,
    Extend,
    Relist,
    Suspend,
    ReadOwnHistory,
    ReadOthersHistory,
}

const ACTIONS: [Action; 9] = [
    Action::Bid,
    Action::CreateItem,
    Action::Cancel,
    Action::Close,
    Action::Extend,
    Action::Relist,
    Action::Suspend,
    Action::ReadOwnHistory,
    Action::ReadOthersHistory,
];

/// What the matrix expects: allowed with a status, or refused with a status and a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed(u16),
    Refused(u16, &'static str),
}

/// The contract's answer for each cell.
fn expected(action: Action, who: Who) -> Expect {
    use Action::*;
    use Expect::*;
    use Who::*;
    if who == Anonymous {
        return Refused(401, "unauthorized");
    }
    let forbidden = Refused(403, "forbidden");
    match (action, who) {
        (Bid, Seller) => Refused(403, "seller_cannot_bid"),
        (Bid, Suspended) => Refused(403, "account_suspended"),
        (Bid, _) => Allowed(200),
        (CreateItem, Suspended) => Refused(403, "account_suspended"),
        (CreateItem, _) => Allowed(201),
        (Cancel, Seller | Admin) => Allowed(200),
        (Cancel, _) => forbidden,
        (Close | Extend | Relist | Suspend | ReadOthersHistory, Admin) => Allowed(200),
        (Close | Extend | Relist | Suspend | ReadOthersHistory, _) => forbidden,
        (ReadOwnHistory, _) => Allowed(200),
    }
}

/// One matrix's gateway, on a fresh database with the accounts schema and the read model.
struct World {
    app: TestApp,
    /// The suspended account: its user id and token (registered through the API).
    suspended: (String, String),
    /// The account admins suspend in the `Suspend` cells: its id and token.
    victim: (String, String),
}

/// An account registered through the API: its user id and access token.
async fn registered(app: &TestApp, login: &str) -> (String, String) {
    let body = app.signed_up(login).await;
    let id = body["user"]["id"].as_str().expect("user id").to_owned();
    let token = body["access_token"].as_str().expect("token").to_owned();
    (id, token)
}

/// Migrates archival-worker's read model into `url`, so history reads answer 200.
async fn migrate_read_model(url: &str) {
    archival_worker::store::Store::new(url, 1, Duration::from_secs(10))
        .expect("read model pool")
        .migrate()
        .await
        .expect("read model migrated");
}

impl World {
    async fn new() -> Self {
        let config = accounts_config().await;
        migrate_read_model(config.database.url.expose()).await;
        let app = spawn_accounts_app_with(config).await;
        let suspended = registered(&app, "suspended@example.com").await;
        let victim = registered(&app, "victim@example.com").await;
        let path = format!("/api/v1/admin/users/{}/suspension", suspended.0);
        let body = json!({"bidding": true, "selling": true, "reason": "chargebacks"});
        let suspension = app
            .send(
                app.http()
                    .put(app.url(&path))
                    .bearer_auth(app.admin_token())
                    .json(&body),
            )
            .await;
        let account = suspension.assert_status(200);
        assert!(account["bidding_suspended_at"].is_string(), "{account}");
        assert_eq!(account["suspension_reason"], "chargebacks");
        Self {
            app,
            suspended,
            victim,
        }
    }

    fn token(&self, who: Who) -> Option<String> {
        match who {
            Who::Anonymous => None,
            Who::User => Some(self.app.token("matrix-user")),
            Who::Seller => Some(self.app.token(SELLER)),
            Who::Suspended => Some(self.suspended.1.clone()),
            Who::Admin => Some(self.app.admin_token()),
        }
    }

    /// The user id whose history is `who`'s own (the victim's for the anonymous caller).
    fn own_id(&self, who: Who) -> String {
        match who {
            Who::Anonymous => self.victim.0.clone(),
            Who::User => "matrix-user".into(),
            Who::Seller => SELLER.into(),
            Who::Suspended => self.suspended.0.clone(),
            Who::Admin => ADMIN.into(),
        }
    }

    async fn send(&self, who: Who, method: reqwest::Method, path: &str, body: Value) -> Reply {
        let mut request = self.app.http().request(method, self.app.url(path));
        if !body.is_null() {
            request = request.json(&body);
        }
        if let Some(token) = self.token(who) {
            request = request.bearer_auth(token);
        }
        self.app.send(request).await
    }

    /// The victim's account as they see it (to tell whether a suspension changed it).
    async fn victim_account(&self) -> Value {
        self.app.me(Some(&self.victim.1)).await.body
    }

    /// Runs one cell: prepares what the action needs, asks as `who`, checks the answer, and
    /// for a refusal that nothing changed.
    async fn run(&self, action: Action, who: Who) {
        let app = &self.app;
        let item = match action {
            Action::Bid | Action::Cancel | Action::Close | Action::Extend => {
                Some(app.create_item(json!({})).await)
            }
            Action::Relist => {
                let item = app.create_item(json!({})).await;
                app.admin(&item, "close", json!({}))
                    .await
                    .assert_status(200);
                Some(item)
            }
            _ => None,
        };
        let before = match &item {
            Some(item) => Some((app.item_hash(item).await, app.events_for(item).await)),
            None => None,
        };
        let victim_before = self.victim_account().await;
        let new_item = unique_id("made");
        let on = |path: &str| format!("/api/v1/items/{}/{path}", item.as_deref().unwrap_or("-"));
        use reqwest::Method;
        let (method, path, body) = match action {
            Action::Bid => (Method::POST, on("bid"), json!({"amount": 20})),
            Action::CreateItem => (
                Method::POST,
                "/api/v1/items".to_owned(),
                json!({"id": new_item, "name": "x", "starting_price": 1, "end_time": in_secs(600)}),
            ),
            Action::Cancel => (Method::POST, on("cancel"), json!({"reason": "withdrawn"})),
            Action::Close => (Method::POST, on("close"), json!({})),
            Action::Extend => (
                Method::POST,
                on("extend"),
                json!({"end_time": in_secs(7200)}),
            ),
            Action::Relist => (
                Method::POST,
                on("relist"),
                json!({"starting_price": 5, "end_time": in_secs(600)}),
            ),
            Action::Suspend => (
                Method::PUT,
                format!("/api/v1/admin/users/{}/suspension", self.victim.0),
                json!({"bidding": true, "selling": false}),
            ),
            Action::ReadOwnHistory => (
                Method::GET,
                format!("/api/v1/users/{}/stats", self.own_id(who)),
                Value::Null,
            ),
            Action::ReadOthersHistory => (
                Method::GET,
                format!("/api/v1/users/{}/stats", self.victim.0),
                Value::Null,
            ),
        };
        let reply = self.send(who, method, &path, body).await;
        let cell = format!("{action:?} by {who:?}");
        match expected(action, who) {
            Expect::Allowed(status) => {
                assert_eq!(reply.status, status, "{cell}: {}", reply.text);
                if action == Action::Suspend {
                    // Put the victim back for the next cells.
                    let lift = json!({"bidding": false, "selling": false});
                    let path = format!("/api/v1/admin/users/{}/suspension", self.victim.0);
                    self.send(Who::Admin, Method::PUT, &path, lift)
                        .await
                        .assert_status(200);
                }
            }
            Expect::Refused(status, code) => {
                assert_eq!(
                    (reply.status, reply.body["error"].as_str()),
                    (status, Some(code)),
                    "{cell}: {}",
                    reply.text
                );
                if let (Some(item), Some((hash, outbox))) = (&item, before) {
                    assert_eq!(app.item_hash(item).await, hash, "{cell} changed the item");
                    assert_eq!(app.events_for(item).await, outbox, "{cell} wrote an event");
                }
                let made = app.get(&format!("/api/v1/items/{new_item}")).await;
                assert_eq!(made.status, 404, "{cell} created an item");
                assert_eq!(
                    self.victim_account().await,
                    victim_before,
                    "{cell} changed an account"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_role_may_do_what_the_contract_says_and_a_refusal_changes_nothing() {
    let world = World::new().await;
    for action in ACTIONS {
        for who in EVERYONE {
            world.run(action, who).await;
        }
    }
}

#[tokio::test]
async fn a_body_user_id_naming_someone_else_is_403_and_changes_nothing() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    let path = format!("/api/v1/items/{item}/bid");
    let as_alice = |body: Value| {
        app.http()
            .post(app.url(&path))
            .bearer_auth(app.token("alice"))
            .json(&body)
    };
    let mismatch = app
        .send(as_alice(json!({"user_id": "bob", "amount": 20})))
        .await;
    let body = mismatch.assert_error(403, "user_id_mismatch");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("bob")),
        "{body}"
    );
    app.assert_no_bid_on(&item).await;

    // The caller's own id in the body is fine (the original clients always send one).
    let own = app
        .send(as_alice(json!({"user_id": "alice", "amount": 20})))
        .await;
    own.assert_outcome("accepted");
    assert_eq!(app.item(&item).await["highest_bidder_id"], "alice");
}

#[tokio::test]
async fn the_seller_cannot_bid_on_their_own_item_under_either_strategy() {
    for strategy in [RedisStrategy::Lua, RedisStrategy::Optimistic] {
        let mut config = shared_config();
        config.redis_strategy = strategy;
        let app = spawn_app_with(config).await;
        let item = app.create_item(json!({})).await;
        let refused = app.bid(&item, SELLER, json!(50)).await;
        refused.assert_error(403, "seller_cannot_bid");
        app.assert_no_bid_on(&item).await;

        app.accepted_bid(&item, "alice", json!(20)).await;
        // Below the price: the pre-filter knows it too low, but it is the seller's bid.
        for amount in [json!(15), json!(90)] {
            let refused = app.bid(&item, SELLER, amount.clone()).await;
            refused.assert_error(403, "seller_cannot_bid");
        }
        let key = "seller-retry-1";
        let keyed = app.bid_with_key(&item, SELLER, json!(95), key).await;
        keyed.assert_error(403, "seller_cannot_bid");
        let record = app
            .item_keys(&item)
            .idempotency(&IdempotencyKey::parse(key).expect("key"));
        let stored: Option<String> = redis::cmd("GET")
            .arg(record)
            .query_async(&mut app.redis().await)
            .await
            .expect("get");
        assert_eq!(stored, None, "{strategy:?}: a refusal stores no answer");

        let state = app.item(&item).await;
        assert_eq!(
            (state["seq"].as_u64(), state["highest_bidder_id"].as_str()),
            (Some(1), Some("alice")),
            "{strategy:?}: {state}"
        );
        assert_eq!(app.events_for(&item).await, 1, "{strategy:?}");
    }
}

#[tokio::test]
async fn mallory_cannot_freeze_the_demo_auction_anonymously() {
    let app = spawn_app().await;
    let item = app
        .create_item(json!({"name": "Demo: vintage camera"}))
        .await;
    let mallory = json!({"user_id": "mallory", "amount": 999_999_999_999.99_f64});
    let path = format!("/api/v1/items/{item}/bid");
    app.post(&path, mallory.clone())
        .await
        .assert_error(401, "unauthorized");
    let forged = app
        .http()
        .post(app.url(&path))
        .bearer_auth("eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.")
        .json(&mallory);
    let reply = app.send(forged).await;
    reply.assert_error(401, "invalid_token");
    app.assert_no_bid_on(&item).await;
    // The auction is not frozen: an ordinary bid still wins.
    app.accepted_bid(&item, "alice", json!(12.5)).await;
}

#[tokio::test]
async fn a_seller_cancels_their_own_auction_only_before_the_first_bid() {
    let app = spawn_app().await;
    let untouched = app.create_item(json!({})).await;
    let cancel = |item: &str| format!("/api/v1/items/{item}/cancel");
    let reason = json!({"reason": "sold elsewhere"});
    app.post_as(Some("alice"), &cancel(&untouched), reason.clone())
        .await
        .assert_error(403, "forbidden");
    let cancelled = app
        .post_as(Some(SELLER), &cancel(&untouched), reason.clone())
        .await;
    let event = &cancelled.assert_status(200)["event"];
    assert_eq!(
        (event["cancelled"].as_bool(), event["seller_id"].as_str()),
        (Some(true), Some(SELLER))
    );
    assert_eq!(app.item(&untouched).await["status"], "cancelled");

    let bid_on = app.create_item(json!({})).await;
    app.accepted_bid(&bid_on, "alice", json!(20)).await;
    let late = app
        .post_as(Some(SELLER), &cancel(&bid_on), reason.clone())
        .await;
    late.assert_error(409, "auction_has_bids");
    assert_eq!(app.item(&bid_on).await["status"], "active");
    assert_eq!(app.events_for(&bid_on).await, 1, "only the bid");
    app.admin(&bid_on, "cancel", reason)
        .await
        .assert_status(200);

    // The item and every one of its events carry the seller.
    assert_eq!(app.item(&bid_on).await["seller_id"], SELLER);
    let events = app.wait_archived(3).await;
    for event in &events {
        assert_eq!(event["seller_id"], SELLER, "{event}");
    }
}

/// A writer that keeps what a test's log subscriber prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[tokio::test]
async fn open_mode_takes_the_go_systems_bid_body_and_warns_at_start() {
    use tracing::instrument::WithSubscriber as _;
    let mut config = shared_config();
    config.auth.auth_mode = AuthMode::Open;
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    let service = testkit::service::Service::start(
        api_gateway::Application::build(config.clone()).with_subscriber(subscriber),
        api_gateway::Application::port,
        api_gateway::Application::run,
    )
    .await;
    let warning = logs.text();
    assert!(
        warning.contains("WARN") && warning.contains("AUTH_MODE=open"),
        "{warning}"
    );

    // Items still need a seller's token; the Go client's bid needs none.
    let minter = testkit::gateway::TokenMinter::for_config(&config).expect("minter");
    let item = unique_id("go");
    let create = service
        .http()
        .post(service.url("/api/v1/items"))
        .json(&json!({"id": item, "name": "Go", "starting_price": 10, "end_time": in_secs(600)}));
    service
        .send(create.try_clone().expect("clonable"))
        .await
        .assert_error(401, "unauthorized");
    service
        .send(create.bearer_auth(minter.token(SELLER, false)))
        .await
        .assert_status(201);
    let path = format!("/api/v1/items/{item}/bid");
    let go_bid = service
        .post(&path, json!({"user_id": "gopher", "amount": 12.5}))
        .await;
    let body = go_bid.assert_outcome("accepted");
    assert_eq!(
        (body["success"].as_bool(), body["is_highest"].as_bool()),
        (Some(true), Some(true))
    );
    service
        .post(&path, json!({"amount": 13}))
        .await
        .assert_error(400, "invalid_input");
    // A token still decides when one is sent, and admin actions still need an admin's.
    let mismatch = service
        .http()
        .post(service.url(&path))
        .bearer_auth(minter.token("alice", false))
        .json(&json!({"user_id": "gopher", "amount": 14}));
    service
        .send(mismatch)
        .await
        .assert_error(403, "user_id_mismatch");
    service
        .post(&format!("/api/v1/items/{item}/close"), json!({}))
        .await
        .assert_error(401, "unauthorized");
    let state = service.get(&format!("/api/v1/items/{item}")).await;
    assert_eq!(state.body["highest_bidder_id"], "gopher");
    assert_eq!(state.body["seq"], 1);
}

/// Sets `user`'s suspensions through `app` as the admin.
async fn suspend(app: &TestApp, user: &str, bidding: bool, selling: bool) {
    let path = format!("/api/v1/admin/users/{user}/suspension");
    let request = app
        .http()
        .put(app.url(&path))
        .bearer_auth(app.admin_token())
        .json(&json!({"bidding": bidding, "selling": selling}));
    app.send(request).await.assert_status(200);
}

/// Ada, registered through `a` with a bid accepted through `b`, then suspended from bidding
/// (and from selling when `selling`) through `a`: her id, her token, the item, and how long
/// `b` took (at most `within`) to refuse her bids.
async fn suspended_through(
    a: &TestApp,
    b: &TestApp,
    selling: bool,
    within: Duration,
) -> (String, String, String, Duration) {
    let (ada, token) = registered(a, "ada@example.com").await;
    let item = a.create_item(json!({})).await;
    b.accepted_bid(&item, &ada, json!(20)).await;
    suspend(a, &ada, true, selling).await;
    let took = until_bid_answers(b, &item, &token, "account_suspended", within).await;
    (ada, token, item, took)
}

/// Waits until a bid by `token` on `item` through `app` answers `code` (an error code, or an
/// outcome); returns how long it took.
async fn until_bid_answers(
    app: &TestApp,
    item: &str,
    token: &str,
    code: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let mut amount = 20;
    wait_until(within, &format!("a bid answered {code}"), || {
        amount += 1;
        let request = app
            .http()
            .post(app.url(&format!("/api/v1/items/{item}/bid")))
            .bearer_auth(token)
            .json(&json!({ "amount": amount }));
        async move {
            let reply = app.send(request).await;
            let answered = reply.body["error"].as_str().or(reply.body["code"].as_str());
            (answered == Some(code)).then_some(())
        }
    })
    .await
    .expect("the answer changed in time");
    started.elapsed()
}

#[tokio::test]
async fn a_suspension_reaches_another_gateway_at_once_and_lifting_it_too() {
    let config = accounts_config().await;
    let a = spawn_accounts_app_with(config.clone()).await;
    let b = spawn_accounts_app_with(config).await;
    let (ada, token, item, took) = suspended_through(&a, &b, false, Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(2),
        "within the poll interval: {took:?}"
    );
    let seq = b.item(&item).await["seq"].clone();
    let refused = b.bid(&item, &ada, json!(500)).await;
    refused.assert_error(403, "account_suspended");
    assert_eq!(
        b.item(&item).await["seq"],
        seq,
        "a refused bid changes nothing"
    );
    // Bidding only: selling still works, on the other gateway too.
    let sold = b
        .send(
            b.http()
                .post(b.url("/api/v1/items"))
                .bearer_auth(&token)
                .json(&json!({"name": "x", "starting_price": 1, "end_time": in_secs(600)})),
        )
        .await;
    sold.assert_status(201);

    suspend(&a, &ada, false, false).await;
    until_bid_answers(&b, &item, &token, "accepted", Duration::from_secs(5)).await;
}

#[tokio::test]
async fn without_the_announcement_a_suspension_arrives_by_the_next_poll() {
    let config = accounts_config().await;
    let a = spawn_accounts_app_with(config.clone()).await;
    // Another subject prefix: this gateway never hears A's announcements, only polls.
    let mut deaf = config;
    deaf.common.subject_prefix = format!("{}deaf", deaf.common.subject_prefix);
    deaf.auth.suspension_poll_ms = 300;
    // Nor does it relay: its archive would be another stream on the same outbox.
    deaf.relay_enabled = false;
    deaf.archive.stream = format!("{}DEAF", deaf.archive.stream);
    let b = spawn_accounts_app_with(deaf).await;
    let (_, _, _, took) = suspended_through(&a, &b, true, Duration::from_secs(10)).await;
    // The bound: one poll interval plus one query, with room for a loaded test machine.
    assert!(took < Duration::from_millis(300 + 2_000), "{took:?}");
}

#[tokio::test]
async fn promote_admin_makes_a_registered_account_an_admin_once_it_signs_in_again() {
    let config = accounts_config().await;
    let app = spawn_accounts_app_with(config.clone()).await;
    let first = app.signed_up("ops@example.com").await;
    let id = first["user"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        jwt_part(first["access_token"].as_str().expect("token"), 1)["roles"],
        json!(["user"])
    );

    let promoted = api_gateway::promote_admin::run(&config, "ops@example.com")
        .await
        .expect("promoted");
    assert_eq!(promoted.as_str(), id);
    // Idempotent, and by user id too.
    api_gateway::promote_admin::run(&config, &id)
        .await
        .expect("again, by id");
    let unknown = api_gateway::promote_admin::run(&config, "nobody@example.com").await;
    assert!(unknown.is_err(), "{unknown:?}");

    let again = app.login("ops@example.com", PASSWORD).await;
    assert_eq!(again.status, 200, "{again:?}");
    let token = again.body["access_token"].as_str().expect("token");
    assert_eq!(jwt_part(token, 1)["roles"], json!(["user", "admin"]));
    let item = app.create_item(json!({})).await;
    let close = app
        .http()
        .post(app.url(&format!("/api/v1/items/{item}/close")))
        .bearer_auth(token);
    app.send(close).await.assert_status(200);
}
