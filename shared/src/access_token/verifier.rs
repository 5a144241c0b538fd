//! [`TokenVerifier`]: checks an access token against the one issuer a deployment trusts.
//!
//! The keys come from a local [`KeySet`] (the gateway's own keys: no network) or from a JWKS
//! fetched over HTTP and cached ([`RemoteJwks`]: the broadcast service reading the gateway's
//! `/.well-known/jwks.json`, or any service trusting an external OIDC issuer such as
//! Cognito). The rules are the same either way ([`check`](super::check::check)); only where
//! the keys come from differs.

use super::check::{self, TokenRules};
use super::claims::AccessClaims;
use super::key_set::KeySet;
use super::rejection::{TokenRejection, VerifyError};
use super::remote_jwks::RemoteJwks;
use std::sync::Arc;

/// Verifies access tokens for one trusted issuer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    rules: Arc<TokenRules>,
    keys: Keys,
}

#[derive(Debug, Clone)]
enum Keys {
    Local(Arc<KeySet>),
    Remote(Arc<RemoteJwks>),
}

impl TokenVerifier {
    /// Trusts tokens under `rules` signed by one of `keys` (ours).
    pub fn local(rules: TokenRules, keys: KeySet) -> Self {
        Self {
            rules: Arc::new(rules),
            keys: Keys::Local(Arc::new(keys)),
        }
    }

    /// Trusts tokens under `rules` signed by a key of the remote set.
    pub fn remote(rules: TokenRules, jwks: Arc<RemoteJwks>) -> Self {
        Self {
            rules: Arc::new(rules),
            keys: Keys::Remote(jwks),
        }
    }

    /// What this verifier's tokens must say.
    pub fn rules(&self) -> &TokenRules {
        &self.rules
    }

    /// The claims of `token` when it is valid.
    ///
    /// # Errors
    /// [`VerifyError::InvalidToken`] with the reason; [`VerifyError::KeysUnavailable`] when a
    /// remote key set is needed and cannot be fetched.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let header = check::read_header(token)?;
        let kid = header.kid.ok_or(TokenRejection::UnknownKey)?;
        let key = match &self.keys {
            Keys::Local(keys) => keys.get(&kid).cloned().ok_or(TokenRejection::UnknownKey)?,
            Keys::Remote(jwks) => jwks.key(&kid).await?,
        };
        Ok(check::check(token, &key, &self.rules)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::remote_jwks::RemoteJwksSettings;
    use super::super::role::Role;
    use super::super::test_keys::{AUDIENCE, ISSUER, TestKey, claims, document, rules};
    use super::*;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::{Json, Router};
    use jsonwebtoken::jwk::JwkSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    /// A stand-in issuer on 127.0.0.1:0: serves a JWKS, counts fetches, can fail.
    struct FakeIssuer {
        url: String,
        state: Arc<IssuerState>,
        server: tokio::task::JoinHandle<()>,
    }

    struct IssuerState {
        jwks: Mutex<JwkSet>,
        fetches: AtomicUsize,
        failing: AtomicBool,
    }

    impl FakeIssuer {
        async fn start(keys: &[&TestKey]) -> Self {
            Self::serving(document(keys)).await
        }

        async fn serving(set: JwkSet) -> Self {
            let state = Arc::new(IssuerState {
                jwks: Mutex::new(set),
                fetches: AtomicUsize::new(0),
                failing: AtomicBool::new(false),
            });
            let app = Router::new()
                .route("/.well-known/jwks.json", get(serve_jwks))
                .with_state(Arc::clone(&state));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!(
                "http://{}/.well-known/jwks.json",
                listener.local_addr().expect("address")
            );
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Self { url, state, server }
        }

        fn publish(&self, keys: &[&TestKey]) {
            *self.state.jwks.lock().expect("lock") = document(keys);
        }

        fn fetches(&self) -> usize {
            self.state.fetches.load(Ordering::SeqCst)
        }

        fn fail(&self, failing: bool) {
            self.state.failing.store(failing, Ordering::SeqCst);
        }

        fn verifier(&self, settings: RemoteJwksSettings) -> TokenVerifier {
            let jwks = RemoteJwks::new(self.url.clone(), settings).expect("client");
            TokenVerifier::remote(rules(), Arc::new(jwks))
        }
    }

    impl Drop for FakeIssuer {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    async fn serve_jwks(State(state): State<Arc<IssuerState>>) -> Result<Json<JwkSet>, StatusCode> {
        state.fetches.fetch_add(1, Ordering::SeqCst);
        if state.failing.load(Ordering::SeqCst) {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        Ok(Json(state.jwks.lock().expect("lock").clone()))
    }

    fn settings(max_age: u64, min_refetch_interval: u64) -> RemoteJwksSettings {
        RemoteJwksSettings {
            max_age: Duration::from_secs(max_age),
            min_refetch_interval: Duration::from_secs(min_refetch_interval),
            timeout: Duration::from_secs(5),
        }
    }

    fn rejection(result: Result<AccessClaims, VerifyError>) -> Option<TokenRejection> {
        result.err().and_then(|error| error.rejection())
    }

    fn unavailable(result: &Result<AccessClaims, VerifyError>) -> bool {
        matches!(result, Err(VerifyError::KeysUnavailable(_)))
    }

    /// Verifies a fresh token of `key`, failing the test with `why` if it is refused.
    async fn accepts(verifier: &TokenVerifier, key: &TestKey, why: &str) {
        verifier.verify(&key.token(60)).await.expect(why);
    }

    #[tokio::test]
    async fn the_local_verifier_accepts_our_tokens_only_by_a_known_kid() {
        let ours = TestKey::generate();
        let verifier = TokenVerifier::local(rules(), KeySet::of_signing_keys([&ours]));
        let claims = verifier.verify(&ours.token(60)).await.expect("valid");
        assert_eq!(claims.sub.as_str(), "u-ada");
        assert_eq!(
            rejection(verifier.verify(&TestKey::generate().token(60)).await),
            Some(TokenRejection::UnknownKey)
        );
    }

    #[tokio::test]
    async fn a_token_without_kid_is_refused() {
        let ours = TestKey::generate();
        let verifier = TokenVerifier::local(rules(), KeySet::of_signing_keys([&ours]));
        let no_kid = ours.sign_with(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &claims(60),
        );
        assert_eq!(
            rejection(verifier.verify(&no_kid).await),
            Some(TokenRejection::UnknownKey)
        );
    }

    #[tokio::test]
    async fn the_remote_set_is_fetched_once_and_then_served_from_the_cache() {
        let key = TestKey::generate();
        let issuer = FakeIssuer::start(&[&key]).await;
        let verifier = issuer.verifier(settings(600, 30));
        for _ in 0..3 {
            let claims = verifier.verify(&key.token(60)).await.expect("valid");
            assert_eq!(claims.iss, ISSUER);
        }
        assert_eq!(issuer.fetches(), 1);
    }

    #[tokio::test]
    async fn nothing_is_fetched_before_the_first_token() {
        let key = TestKey::generate();
        let issuer = FakeIssuer::start(&[&key]).await;
        let _verifier = issuer.verifier(settings(600, 30));
        assert_eq!(issuer.fetches(), 0);
    }

    #[tokio::test]
    async fn a_rotated_key_is_picked_up_by_refetching_on_its_unknown_kid() {
        let old = TestKey::generate();
        let new = TestKey::generate();
        let issuer = FakeIssuer::start(&[&old]).await;
        let verifier = issuer.verifier(settings(600, 0));
        accepts(&verifier, &old, "old key valid").await;
        issuer.publish(&[&new, &old]);
        accepts(&verifier, &new, "new key valid after refetch").await;
        assert_eq!(issuer.fetches(), 2);
    }

    #[tokio::test]
    async fn a_stale_set_is_refetched_and_a_retired_key_stops_working() {
        let old = TestKey::generate();
        let new = TestKey::generate();
        let issuer = FakeIssuer::start(&[&old]).await;
        // Always stale: every token's use refetches.
        let verifier = issuer.verifier(settings(0, 0));
        accepts(&verifier, &old, "old key valid").await;
        issuer.publish(&[&new]);
        assert_eq!(
            rejection(verifier.verify(&old.token(60)).await),
            Some(TokenRejection::UnknownKey)
        );
        accepts(&verifier, &new, "new key valid").await;
    }

    #[tokio::test]
    async fn invented_kids_refetch_at_most_once_per_interval() {
        let key = TestKey::generate();
        let issuer = FakeIssuer::start(&[&key]).await;
        let verifier = issuer.verifier(settings(600, 60));
        accepts(&verifier, &key, "valid").await;
        for _ in 0..5 {
            assert_eq!(
                rejection(verifier.verify(&TestKey::generate().token(60)).await),
                Some(TokenRejection::UnknownKey)
            );
        }
        assert_eq!(
            issuer.fetches(),
            1,
            "the interval has not passed since the first fetch"
        );
    }

    #[tokio::test]
    async fn cached_keys_keep_working_while_the_issuer_is_down() {
        let key = TestKey::generate();
        let issuer = FakeIssuer::start(&[&key]).await;
        // Always stale and always allowed to refetch: every call goes to the issuer.
        let verifier = issuer.verifier(settings(0, 0));
        accepts(&verifier, &key, "valid").await;
        issuer.fail(true);
        accepts(&verifier, &key, "cached key still valid").await;
        assert!(issuer.fetches() >= 2, "the refetch was tried");
        assert!(unavailable(
            &verifier.verify(&TestKey::generate().token(60)).await
        ));
    }

    #[tokio::test]
    async fn an_issuer_that_never_answered_is_unavailable_not_a_bad_token() {
        let key = TestKey::generate();
        let issuer = FakeIssuer::start(&[&key]).await;
        issuer.fail(true);
        let verifier = issuer.verifier(settings(600, 60));
        assert!(unavailable(&verifier.verify(&key.token(60)).await));
        // Within the interval the failure is remembered, not retried.
        assert!(unavailable(&verifier.verify(&key.token(60)).await));
        assert_eq!(issuer.fetches(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_unavailable_and_a_later_one_is_used() {
        let key = TestKey::generate();
        // Nothing listens here: the fetch is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let jwks = RemoteJwks::new(
            format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
            settings(600, 0),
        )
        .expect("client");
        let verifier = TokenVerifier::remote(rules(), Arc::new(jwks));
        assert!(unavailable(&verifier.verify(&key.token(60)).await));
        // The issuer appears on that very port (as a restarted gateway would).
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the same port");
        let set = document(&[&key]);
        let app = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let set = set.clone();
                async move { Json(set) }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        accepts(&verifier, &key, "valid once the issuer answers").await;
        server.abort();
    }

    #[tokio::test]
    async fn a_remote_issuers_token_for_another_audience_is_refused() {
        let key = TestKey::generate();
        let issuer = FakeIssuer::start(&[&key]).await;
        let verifier = issuer.verifier(settings(600, 30));
        let mut other = claims(60);
        other["aud"] = serde_json::json!("someone-else");
        assert_eq!(
            rejection(verifier.verify(&key.sign(&other)).await),
            Some(TokenRejection::Audience)
        );
    }

    #[tokio::test]
    async fn a_cognito_style_rs256_token_verifies_against_a_jwks_entry_without_alg() {
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;

        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key");
        let public = rsa.public_key();
        let jwk = serde_json::json!({
            "kty": "RSA", "kid": "cognito-1", "use": "sig", "e":
            URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        });
        let issuer = FakeIssuer::serving(
            serde_json::from_value(serde_json::json!({ "keys": [jwk] })).expect("jwks"),
        )
        .await;
        let header = serde_json::json!({"alg": "RS256", "kid": "cognito-1"});
        let claims = serde_json::json!({
            "iss": ISSUER, "client_id": AUDIENCE, "token_use": "access",
            "sub": "3f1c2d9e-8a7b-4c6d-9e0f-1a2b3c4d5e6f", "cognito:groups": ["admin"],
            "exp": u32::MAX,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; rsa.public_modulus_len()];
        rsa.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .expect("sign");
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signature));

        let verifier = issuer.verifier(settings(600, 30));
        let verified = verifier.verify(&token).await.expect("valid RS256 token");
        assert_eq!(
            verified.sub.as_str(),
            "3f1c2d9e-8a7b-4c6d-9e0f-1a2b3c4d5e6f"
        );
        assert_eq!(verified.roles, vec![Role::Admin]);

        // The same token relabelled HS256 (the key decides the algorithm) is refused.
        let relabelled = format!(
            "{}.{}",
            URL_SAFE_NO_PAD
                .encode(serde_json::json!({"alg": "HS256", "kid": "cognito-1"}).to_string()),
            token.split_once('.').map(|(_, rest)| rest).expect("dots")
        );
        assert_eq!(
            rejection(verifier.verify(&relabelled).await),
            Some(TokenRejection::Algorithm)
        );
    }
}
