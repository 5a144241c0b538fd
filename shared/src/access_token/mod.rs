//! Access tokens as every service checks them: the claims, the rules a token must pass, the
//! trusted keys and the one [`TokenVerifier`] the gateway and the broadcast service share.
//!
//! The gateway signs tokens (its own Ed25519 key, published at `/.well-known/jwks.json`) or a
//! deployment trusts an external OIDC issuer; either way every service verifies locally
//! against a key set, with no shared secret and no call to the issuer per token. Issuing stays
//! in the gateway; only the verifying half lives here.
//!
//! * [`claims`]: [`AccessClaims`] (`iss`, `aud`, `sub`, `roles`, `exp`) and [`Audience`].
//! * [`role`]: [`Role`], `user` and `admin`, as the `roles` claim carries them.
//! * [`check`]: [`check`](check::check) a token against one trusted key under [`TokenRules`].
//! * [`key_set`]: [`KeySet`], the trusted keys by `kid`, read from a JWKS document.
//! * [`remote_jwks`]: [`RemoteJwks`], a JWKS fetched from a URL, cached and refreshed.
//! * [`verifier`]: [`TokenVerifier`], a token's `kid` looked up and the token checked.
//! * [`rejection`]: [`TokenRejection`] (why a token is refused) and [`VerifyError`].

pub mod check;
pub mod claims;
pub mod key_set;
pub mod rejection;
pub mod remote_jwks;
pub mod role;
#[cfg(test)]
pub(crate) mod test_keys;
pub mod verifier;

pub use check::{TokenHeader, TokenRules, VerificationKey};
pub use claims::{AccessClaims, Audience};
pub use key_set::KeySet;
pub use rejection::{TokenRejection, VerifyError};
pub use remote_jwks::{RemoteJwks, RemoteJwksSettings};
pub use role::Role;
pub use verifier::TokenVerifier;

use std::time::Duration;

/// `iss` of the gateway's tokens unless configured otherwise (`JWT_ISSUER`); every service
/// that verifies them defaults to requiring it.
pub const DEFAULT_ISSUER: &str = "auction-api-gateway";
/// `aud` of the gateway's tokens unless configured otherwise (`JWT_AUDIENCE`).
pub const DEFAULT_AUDIENCE: &str = "auction-api";
/// Clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(15);
