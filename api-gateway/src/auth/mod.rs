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
//! * [`role`]: `user` and `admin` (defined in `shared::access_token`, where tokens are read).
//! * [`signing_key`]: the Ed25519 key from configuration (or a throwaway one) and its JWK.
//! * [`access_token`]: issuing access tokens; their claims and checks are
//!   `shared::access_token`'s.
//! * [`refresh_token`]: opaque rotating tokens, stored hashed, and the reuse rule.
//! * [`jwks`]: the published key set document.
//! * [`error`]: [`AuthError`], the one error type, each variant naming its status.
//!
//! Verification is `shared::access_token`'s [`TokenVerifier`], the one the broadcast service
//! uses too: our own keys as a local key set, or an external issuer's JWKS fetched and cached.
//! Its errors become [`AuthError`]s (`From<VerifyError>`), so routes keep one mapping.

pub mod access_token;
pub mod accounts;
pub mod display_name;
pub mod error;
pub mod jwks;
pub mod login;
pub mod new_password;
pub mod password_hasher;
pub mod refresh_token;
pub mod role;
pub mod sessions;
pub mod signing_key;

pub use access_token::{AccessClaims, AccessTokenIssuer, TokenRules};
pub use accounts::{Account, Accounts};
pub use error::AuthError;
pub use role::Role;
pub use sessions::{Session, Sessions};
pub use shared::access_token::{RemoteJwks, RemoteJwksSettings, TokenVerifier};
pub use signing_key::SigningKey;
