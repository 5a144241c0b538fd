//! [`AccessClaims`]: what an access token says about its bearer, as every service reads it.

use super::role::{Role, deserialize_known_roles};
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// The claims of an access token. The gateway's carry all of them; an external issuer's may
/// lack `roles` (then none) and `aud` (then `client_id` must name us, as in Cognito access
/// tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Defaulted only so that a missing `iss` is reported as a wrong issuer; it is required
    /// (and must match) by the checks.
    #[serde(default)]
    pub iss: String,
    #[serde(default, skip_serializing_if = "Audience::is_empty")]
    pub aud: Audience,
    /// The user id: the bidder of a bid, the seller of an auction, the owner of a socket's
    /// private events. It keeps the id rules because it becomes NATS subject tokens and Redis
    /// key parts.
    pub sub: UserId,
    /// Known roles only (see [`deserialize_known_roles`]); Cognito's `cognito:groups` is read
    /// as roles too, so a Cognito group named `admin` makes admins.
    #[serde(
        default,
        alias = "cognito:groups",
        deserialize_with = "deserialize_known_roles"
    )]
    pub roles: Vec<Role>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl AccessClaims {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the token is meant for `audience`: listed in `aud`, or, when there is no `aud`,
    /// named by `client_id` (Cognito puts the app client there in access tokens).
    pub(super) fn is_for(&self, audience: &str) -> bool {
        if self.aud.is_empty() {
            self.client_id.as_deref() == Some(audience)
        } else {
            self.aud.0.iter().any(|aud| aud == audience)
        }
    }
}

/// The `aud` claim: one string or a list (RFC 7519 allows both); written as one string when
/// there is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    pub fn one(audience: impl Into<String>) -> Self {
        Self(vec![audience.into()])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => Self(vec![one]),
            OneOrMany::Many(many) => Self(many),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_audience_is_written_as_a_string_and_read_from_either_form() {
        assert_eq!(
            serde_json::to_value(Audience::one("a")).unwrap(),
            json!("a")
        );
        let many: Audience = serde_json::from_value(json!(["a", "b"])).unwrap();
        assert!(!many.is_empty());
        let one: Audience = serde_json::from_value(json!("a")).unwrap();
        assert_eq!(one, Audience::one("a"));
    }
}
