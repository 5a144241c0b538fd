//! [`Role`]: what an account may do beyond its own bids and auctions.
//!
//! Every account has `user` (bids, and sells its own auctions); `admin` acts on any auction and
//! suspends accounts. Roles travel in the access token's `roles` claim and in the accounts
//! table's `roles` column, both as lowercase strings.

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// The role named `text`, if we know it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Known roles among `names`, sorted and each once; unknown names are dropped.
    pub fn known<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Self> {
        let mut roles: Vec<Self> = names.into_iter().filter_map(Self::parse).collect();
        roles.sort_unstable();
        roles.dedup();
        roles
    }
}

/// Reads a `roles` claim leniently: an issuer (Cognito groups, say) may know roles we do not,
/// and such a token still proves who its subject is; the unknown names grant nothing here.
///
/// # Errors
/// When the claim is not a list of strings.
pub fn deserialize_known_roles<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Role>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    Ok(Role::known(names.iter().map(String::as_str)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_role_names_are_dropped_and_known_ones_kept_once() {
        assert_eq!(
            Role::known(["admin", "auditor", "user", "admin"]),
            vec![Role::User, Role::Admin]
        );
    }

    #[test]
    fn roles_serialize_as_lowercase_strings() {
        assert_eq!(
            serde_json::to_string(&[Role::User, Role::Admin]).expect("json"),
            r#"["user","admin"]"#
        );
    }
}
