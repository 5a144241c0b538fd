//! Identifiers that cross service boundaries.
//!
//! Item and user ids become NATS subject tokens (`auction.live.<item_id>`) and Redis key parts
//! (`{s3}:item:<item_id>`), so the allowed alphabet is deliberately narrow: no dots (subject
//! separators), no `*`/`>` (subject wildcards), no braces (Redis hash tags), no colons (our key
//! separator), no whitespace.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("may contain only letters, digits, '_' and '-'")]
    InvalidCharacter,
}

fn check(value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    if value.len() > max {
        return Err(IdError::TooLong { max });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(IdError::InvalidCharacter);
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest accepted identifier, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Parses an identifier.
            ///
            /// # Errors
            /// [`IdError`] when the value is empty, too long or has a character outside
            /// `[A-Za-z0-9_-]`.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check(&value, $max)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// An auction item's id: 1–64 characters of `[A-Za-z0-9_-]`.
    ItemId,
    max = 64
);
identifier!(
    /// A bidder's id: 1–64 characters of `[A-Za-z0-9_-]`.
    UserId,
    max = 64
);
identifier!(
    /// A client-chosen `Idempotency-Key`: 1–128 characters of `[A-Za-z0-9_-]` (UUIDs fit).
    IdempotencyKey,
    max = 128
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_accepted() {
        for ok in ["a", "item-42", "User_7", &"x".repeat(64)] {
            assert_eq!(ItemId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn empty_id_is_rejected() {
        assert_eq!(ItemId::parse(""), Err(IdError::Empty));
    }

    #[test]
    fn id_of_65_characters_is_rejected() {
        assert_eq!(
            UserId::parse("x".repeat(65)),
            Err(IdError::TooLong { max: 64 })
        );
    }

    #[test]
    fn subject_and_key_metacharacters_are_rejected() {
        for bad in ["a.b", "a*", "a>", "{s1}", "a:b", "a b", "é", "a/b", "a\n"] {
            assert_eq!(
                ItemId::parse(bad),
                Err(IdError::InvalidCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn idempotency_keys_allow_128_characters() {
        assert!(IdempotencyKey::parse("k".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse("k".repeat(129)).is_err());
    }

    #[test]
    fn invalid_id_in_json_fails_deserialization() {
        assert!(serde_json::from_str::<ItemId>("\"a.b\"").is_err());
        assert_eq!(
            serde_json::from_str::<ItemId>("\"ab\"").unwrap().as_str(),
            "ab"
        );
    }
}
