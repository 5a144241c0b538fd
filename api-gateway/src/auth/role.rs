//! [`Role`]: `user` and `admin`. Defined in `shared::access_token` because every service reads
//! it from the token's `roles` claim; the accounts store keeps the same lowercase names in its
//! `roles` column.

pub use shared::access_token::role::{Role, deserialize_known_roles};
