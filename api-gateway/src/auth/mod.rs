//! Identity and access: accounts, passwords, access and refresh tokens, and the keys that sign
//! and verify them (issue 12). Routes and configuration call into this module; nothing here
//! knows about HTTP.
//!
//! * [`sessions`]: register, sign in, refresh, sign out, me: the flows the routes call.
//! * [`accounts`]: every SQL statement on the `accounts` schema (`migrations/`), and its
//!   migrator.
//! * [`login`], [`display_name`]: what a person signs in with and is shown as.
//! * [`new_password`]: the rules a new password must meet.
//! * [`password_hasher`]: Argon2id hashing, with a dummy verify for unknown accounts.
//! * [`role`]: `user` and `admin`.
//! * [`signing_key`]: the Ed25519 key from configuration (or a throwaway one) and its JWK.
//! * [`access_token`]: the claims, issuing, and the checks every token must pass.
//! * [`refresh_token`]: opaque rotating tokens, stored hashed, and the reuse rule.
//! * [`jwks`]: the published key set document and the trusted keys by `kid`.
//! * [`remote_jwks`]: an external OIDC issuer's key set, fetched and cached.
//! * [`verifier`]: access-token verification against the one trusted issuer.
//! * [`error`]: [`AuthError`], the one error type, each variant naming its status.

pub mod access_token;
pub mod accounts;
pub mod display_name;
pub mod error;
pub mod jwks;
pub mod login;
pub mod new_password;
pub mod password_hasher;
pub mod refresh_token;
pub mod remote_jwks;
pub mod role;
pub mod sessions;
pub mod signing_key;
pub mod verifier;

pub use access_token::{AccessClaims, AccessTokenIssuer, TokenRules};
pub use accounts::{Account, Accounts};
pub use error::AuthError;
pub use role::Role;
pub use sessions::{Session, Sessions};
pub use signing_key::SigningKey;
pub use verifier::TokenVerifier;
