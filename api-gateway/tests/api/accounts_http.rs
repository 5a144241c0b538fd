//! Accounts and tokens over HTTP (issue 12, phase 1): register, login, refresh with rotation
//! and reuse detection, logout, `/me` behind the bearer-token extractor, the published JWKS,
//! the signing key's configuration, and the auth routes' 503 while PostgreSQL is missing.
//! Every test runs the real gateway on its own fresh PostgreSQL database.

use crate::accounts_helpers::*;
use crate::helpers::*;
use api_gateway::Application;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;

/// How many accounts the app's database holds.
async fn account_count(app: &TestApp) -> i64 {
    let (client, connection) =
        tokio_postgres::connect(app.config.database.url.expose(), tokio_postgres::NoTls)
            .await
            .expect("postgres");
    tokio::spawn(connection);
    client
        .query_one("select count(*) from accounts.users", &[])
        .await
        .expect("count")
        .get(0)
}

fn text(value: &Value) -> &str {
    value.as_str().expect("a string")
}

#[tokio::test]
async fn registering_answers_201_with_tokens_and_me_shows_the_new_account() {
    let app = spawn_accounts_app().await;

    let answer = app.register("ada@example.org", PASSWORD).await;

    answer.assert_status(201);
    let body = &answer.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(text(&body["refresh_token"]).len(), 43);
    let user_id = text(&body["user"]["id"]);
    assert!(user_id.starts_with('u'), "{body}");
    assert_eq!(body["user"]["email"], "ada@example.org");
    assert_eq!(jwt_part(text(&body["access_token"]), 1)["sub"], user_id);

    let me = app.me(Some(text(&body["access_token"]))).await;
    me.assert_status(200);
    assert_eq!(me.body["id"], user_id);
    assert_eq!(me.body["email"], "ada@example.org");
    assert_eq!(me.body["display_name"], "Ada Lovelace");
    assert_eq!(me.body["roles"], json!(["user"]));
    assert!(me.body.get("password_hash").is_none(), "{}", me.body);
    assert_eq!(account_count(&app).await, 1);
}

#[tokio::test]
async fn a_username_account_signs_in_by_its_username_in_any_case() {
    let app = spawn_accounts_app().await;
    let registered = app.signed_up("ada_lovelace").await;

    let answer = app.login("Ada_Lovelace", PASSWORD).await;

    answer.assert_status(200);
    assert_eq!(answer.body["user"]["id"], registered["user"]["id"]);
    assert_eq!(answer.body["user"]["username"], "ada_lovelace");
    let me = app.me(Some(text(&answer.body["access_token"]))).await;
    assert_eq!(me.body["id"], registered["user"]["id"]);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_login_get_the_identical_401() {
    let app = spawn_accounts_app().await;
    app.signed_up("ada@example.org").await;

    let wrong_password = app
        .login("ada@example.org", "not the password at all")
        .await;
    let unknown_login = app.login("grace@example.org", PASSWORD).await;

    wrong_password.assert_error(401, "invalid_credentials", "");
    assert_eq!(
        wrong_password, unknown_login,
        "status, challenge and body must not tell the two apart"
    );
}

#[tokio::test]
async fn registering_a_taken_login_in_another_case_is_409_and_stores_nothing_more() {
    let app = spawn_accounts_app().await;
    app.signed_up("ada@example.org").await;

    let again = app.register("ADA@Example.org", PASSWORD).await;

    again.assert_error(409, "login_taken", "");
    assert_eq!(account_count(&app).await, 1);
}

#[tokio::test]
async fn a_password_breaking_a_rule_is_400_naming_it_and_stores_nothing() {
    let app = spawn_accounts_app().await;

    let short = app.register("ada@example.org", "too short").await;
    let same_as_login = app.register("ada_lovelace", "Ada_Lovelace").await;

    short.assert_error(400, "weak_password", "");
    assert!(
        text(&short.body["message"]).contains("at least 12 characters"),
        "{short:?}"
    );
    assert_eq!(same_as_login.body["error"], "weak_password");
    assert_eq!(account_count(&app).await, 0);
}

#[tokio::test]
async fn malformed_registrations_get_the_usual_400_body_and_store_nothing() {
    let app = spawn_accounts_app().await;
    let cases = [
        (
            json!({"username": "ada@example.org", "display_name": "Ada", "password": PASSWORD}),
            "invalid_login",
        ),
        (
            json!({"email": "ada.example.org", "display_name": "Ada", "password": PASSWORD}),
            "invalid_login",
        ),
        (
            json!({"email": "a@example.org", "username": "ada", "display_name": "Ada", "password": PASSWORD}),
            "invalid_login",
        ),
        (
            json!({"display_name": "Ada", "password": PASSWORD}),
            "invalid_login",
        ),
        (
            json!({"email": "ada@example.org", "display_name": " ", "password": PASSWORD}),
            "invalid_display_name",
        ),
        (
            json!({"email": "ada@example.org", "password": PASSWORD}),
            "invalid_input",
        ),
        (
            json!({"email": "ada@example.org", "display_name": "Ada", "password": 12}),
            "invalid_input",
        ),
    ];
    for (body, code) in cases {
        let answer = app.auth_post("register", body.clone()).await;
        assert_eq!(
            (answer.status, text(&answer.body["error"])),
            (400, code),
            "{body}: {answer:?}"
        );
        assert!(answer.body["message"].is_string(), "{answer:?}");
    }
    let not_json = app
        .http()
        .post(app.url("/api/v1/auth/register"))
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.expect("json body");
    assert_eq!(body["error"], "invalid_json");
    assert_eq!(account_count(&app).await, 0);
}

#[tokio::test]
async fn refreshing_rotates_and_replaying_the_old_token_revokes_the_newer_one_too() {
    let app = spawn_accounts_app().await;
    let first = app.signed_up("ada@example.org").await;

    let second = app.refresh(&first["refresh_token"]).await;
    second.assert_status(200);
    assert_ne!(second.body["refresh_token"], first["refresh_token"]);
    assert_eq!(second.body["user"]["id"], first["user"]["id"]);
    let me = app.me(Some(text(&second.body["access_token"]))).await;
    assert_eq!(me.status, 200, "the refreshed access token works: {me:?}");

    let replayed = app.refresh(&first["refresh_token"]).await;
    replayed.assert_error(401, "refresh_token_reused", "");

    let newer = app.refresh(&second.body["refresh_token"]).await;
    newer.assert_error(401, "invalid_refresh_token", "the family is revoked");
}

#[tokio::test]
async fn logging_out_ends_the_refresh_token_and_can_be_repeated() {
    let app = spawn_accounts_app().await;
    let session = app.signed_up("ada@example.org").await;

    app.logout(&session["refresh_token"])
        .await
        .assert_status(204);
    app.refresh(&session["refresh_token"])
        .await
        .assert_error(401, "invalid_refresh_token", "");
    assert_eq!(app.logout(&session["refresh_token"]).await.status, 204);
    assert_eq!(app.logout(&json!("not a token")).await.status, 204);
    // Access tokens are checked without a database: this one lives until it expires.
    let me = app.me(Some(text(&session["access_token"]))).await;
    me.assert_status(200);
}

#[tokio::test]
async fn me_without_a_token_is_401_with_a_bearer_challenge() {
    let app = spawn_accounts_app().await;

    let answer = app.me(None).await;

    answer.assert_error(401, "unauthorized", "");
    assert_eq!(answer.challenge.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn me_with_a_forged_expired_or_foreign_token_is_401_invalid_token() {
    let key = TestKey::generate();
    let mut config = accounts_config().await;
    config.auth.jwt_signing_key = Some(key.pem().into());
    let app = spawn_accounts_app_with(config).await;
    let session = app.signed_up("ada@example.org").await;
    let genuine = text(&session["access_token"]).to_owned();
    let kid = text(&jwt_part(&genuine, 0)["kid"]).to_owned();
    let now = now_secs();
    let claims = |changes: Value| {
        let mut claims = json!({
            "iss": app.config.auth.jwt_issuer, "aud": app.config.auth.jwt_audience,
            "sub": session["user"]["id"], "roles": ["user"], "exp": now + 300, "iat": now,
        });
        for (name, value) in changes.as_object().expect("object") {
            claims[name] = value.clone();
        }
        claims
    };
    // The control: the test's own signing with the configured key is accepted.
    let control = app.me(Some(&key.sign(&kid, &claims(json!({}))))).await;
    control.assert_status(200);

    let other = TestKey::generate();
    let tampered = {
        let (header, rest) = genuine.split_once('.').expect("three parts");
        let (_, signature) = rest.split_once('.').expect("three parts");
        let mut forged = jwt_part(&genuine, 1);
        forged["roles"] = json!(["user", "admin"]);
        format!("{header}.{}.{signature}", b64_json(&forged))
    };
    let forgeries = [
        (
            "alg none",
            format!(
                "{}.{}.",
                b64_json(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                b64_json(&claims(json!({})))
            ),
        ),
        (
            "another key under our kid",
            other.sign(&kid, &claims(json!({}))),
        ),
        (
            "another key under its own kid",
            other.sign("other", &claims(json!({}))),
        ),
        (
            "expired",
            key.sign(&kid, &claims(json!({"exp": now - 3600}))),
        ),
        (
            "wrong issuer",
            key.sign(&kid, &claims(json!({"iss": "https://evil.example"}))),
        ),
        (
            "wrong audience",
            key.sign(&kid, &claims(json!({"aud": "another-api"}))),
        ),
        ("tampered payload", tampered),
        ("not a jwt", "not-a-jwt".to_owned()),
    ];
    for (what, token) in forgeries {
        let answer = app.me(Some(&token)).await;
        answer.assert_error(401, "invalid_token", what);
        assert_eq!(answer.challenge.as_deref(), Some(INVALID_TOKEN), "{what}");
    }
}

#[tokio::test]
async fn the_jwks_publishes_the_key_the_access_token_names() {
    let app = spawn_accounts_app().await;
    let session = app.signed_up("ada@example.org").await;

    let header = jwt_part(text(&session["access_token"]), 0);
    let keys = app.jwks().await;

    assert_eq!(header["alg"], "EdDSA");
    let named: Vec<&Value> = keys.iter().filter(|k| k["kid"] == header["kid"]).collect();
    assert_eq!(named.len(), 1, "{keys:?}");
    assert_eq!(named[0]["kty"], "OKP");
    assert_eq!(named[0]["crv"], "Ed25519");
    assert_eq!(named[0]["alg"], "EdDSA");
    assert_eq!(named[0]["use"], "sig");
    assert!(named[0].get("d").is_none(), "no private part: {keys:?}");
}

#[tokio::test]
async fn a_configured_pem_key_signs_the_tokens_and_is_the_published_jwk() {
    let key = TestKey::generate();
    let path = std::env::temp_dir().join(format!("{}.pem", unique_id("jwt-key")));
    std::fs::write(&path, key.pem()).expect("key file");
    let mut by_file = accounts_config().await;
    by_file.auth.jwt_signing_key_file = Some(path.clone());
    let mut by_text = accounts_config().await;
    by_text.auth.jwt_signing_key = Some(key.pem().into());

    for config in [by_file, by_text] {
        let app = spawn_accounts_app_with(config).await;
        let session = app.signed_up("ada@example.org").await;
        let keys = app.jwks().await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0]["x"], key.x());
        let token = text(&session["access_token"]);
        assert_eq!(jwt_part(token, 0)["kid"], keys[0]["kid"]);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_audience(&[&app.config.auth.jwt_audience]);
        let verified = jsonwebtoken::decode::<Value>(
            token,
            &jsonwebtoken::DecodingKey::from_ed_components(&key.x()).expect("public key"),
            &validation,
        );
        assert!(
            verified.is_ok(),
            "signed by the configured key: {verified:?}"
        );
    }
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_signing_key_that_is_not_a_usable_pem_stops_startup_naming_the_flag() {
    let mut bad_text = accounts_config().await;
    bad_text.auth.jwt_signing_key = Some("-----BEGIN PRIVATE KEY-----\nnope\n".to_owned().into());
    let mut missing_file = accounts_config().await;
    missing_file.auth.jwt_signing_key_file = Some(std::env::temp_dir().join(unique_id("absent")));
    let p256 = std::env::temp_dir().join(format!("{}.pem", unique_id("p256")));
    std::fs::write(
        &p256,
        "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggzs55ahUSj+mHE6O
UbIxt2hWBd4T/ab3IPSn8HTgNgmhRANCAASofhdDJW8h3SOEUEC1NBrHXxWiL4As
yEEqZ8JFG0Cr2AwlKpnutkxdmQsDImEKTox734Xtd/O8wboCRr1v8rF1
-----END PRIVATE KEY-----
",
    )
    .expect("key file");
    let mut not_ed25519 = accounts_config().await;
    not_ed25519.auth.jwt_signing_key_file = Some(p256.clone());

    for (config, flag) in [
        (bad_text, "--jwt-signing-key (JWT_SIGNING_KEY)"),
        (
            missing_file,
            "--jwt-signing-key-file (JWT_SIGNING_KEY_FILE)",
        ),
        (not_ed25519, "--jwt-signing-key-file (JWT_SIGNING_KEY_FILE)"),
    ] {
        let Err(error) = Application::build(config).await else {
            panic!("a gateway started with a bad key ({flag})");
        };
        let message = format!("{error:#}");
        assert!(message.contains(flag), "{message}");
        assert!(!message.contains("MIGHAgEA"), "no key material: {message}");
    }
    let _ = std::fs::remove_file(p256);
}

#[tokio::test]
async fn with_postgres_unreachable_the_auth_routes_answer_503_fast_while_bids_work() {
    let key = TestKey::generate();
    let mut config = accounts_config().await;
    config.database.url = "postgres://postgres@127.0.0.1:1/auction".into();
    config.auth.jwt_signing_key = Some(key.pem().into());
    let app = spawn_app_with(config).await;

    app.wait_accounts("down").await;
    let ready = app.wait_ready(Duration::from_secs(20)).await;
    assert_eq!(
        ready["accounts"], "down",
        "ready, since bids do not need it: {ready}"
    );

    let kid = text(&app.jwks().await[0]["kid"]).to_owned();
    let now = now_secs();
    let token = key.sign(
        &kid,
        &json!({"iss": app.config.auth.jwt_issuer, "aud": app.config.auth.jwt_audience,
                "sub": "u-ada", "roles": ["user"], "exp": now + 300}),
    );
    let refresh = json!("A".repeat(43));
    let mut elapsed = Vec::new();
    // Times one call and checks it is the auth routes' 503.
    macro_rules! unavailable {
        ($call:expr) => {{
            let started = Instant::now();
            let answer = $call.await;
            elapsed.push(started.elapsed());
            answer.assert_error(503, "unavailable", "");
        }};
    }
    for _ in 0..3 {
        unavailable!(app.register("ada@example.org", PASSWORD));
        unavailable!(app.login("ada@example.org", PASSWORD));
        unavailable!(app.refresh(&refresh));
        unavailable!(app.logout(&refresh));
        unavailable!(app.me(Some(&token)));
    }
    elapsed.sort();
    let median = elapsed[elapsed.len() / 2];
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(
        elapsed.iter().all(|e| *e < Duration::from_secs(1)),
        "{elapsed:?}"
    );

    let item = app.create_item(json!({})).await;
    app.bid(&item, "alice", json!(11))
        .await
        .assert_outcome("accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_routes_open_once_postgres_comes_back_without_a_restart() {
    let mut postgres = tokio::task::spawn_blocking(testkit::PostgresServer::start)
        .await
        .expect("task")
        .expect("postgres starts");
    postgres.stop();
    let mut config = accounts_config().await;
    config.database.url = postgres.url().into();
    let app = spawn_app_with(config).await;
    app.wait_accounts("down").await;
    assert_eq!(app.register("ada@example.org", PASSWORD).await.status, 503);

    let mut postgres = tokio::task::spawn_blocking(move || postgres.restart().map(|()| postgres))
        .await
        .expect("task")
        .expect("postgres restarts");
    app.wait_accounts("up").await;

    let answer = app.register("ada@example.org", PASSWORD).await;
    answer.assert_status(201);
    app.stop().await;
    tokio::task::spawn_blocking(move || postgres.stop())
        .await
        .expect("task");
}

#[tokio::test]
async fn a_gateway_trusting_another_as_external_issuer_verifies_its_tokens_and_signs_none() {
    let issuer = spawn_accounts_app().await;
    let session = issuer.signed_up("ada@example.org").await;
    let mut config = shared_config();
    config.auth.oidc_issuer = Some(issuer.config.auth.jwt_issuer.clone());
    config.auth.oidc_jwks_url = Some(issuer.url("/.well-known/jwks.json"));
    config.auth.oidc_audience = Some(issuer.config.auth.jwt_audience.clone());
    let relying = spawn_app_with(config).await;

    let me = relying.me(Some(text(&session["access_token"]))).await;
    me.assert_status(200);
    assert_eq!(
        me.body,
        json!({"id": session["user"]["id"], "roles": ["user"]})
    );
    assert!(relying.jwks().await.is_empty(), "it signs nothing");
    let register = relying.register("grace@example.org", PASSWORD).await;
    register.assert_status(404);
    let forged = TestKey::generate().sign("other", &jwt_part(text(&session["access_token"]), 1));
    assert_eq!(relying.me(Some(&forged)).await.status, 401);
    let ready = relying.wait_ready(Duration::from_secs(20)).await;
    assert!(
        ready.get("accounts").is_none(),
        "no local accounts: {ready}"
    );
}
