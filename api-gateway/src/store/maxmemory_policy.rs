//! Reading the auctions' Redis's `maxmemory-policy`, for the gateway's eviction check
//! (`crate::eviction_policy` says why it matters and what the gateway does about it).

use super::{Store, StoreError};

/// The one policy under which Redis never drops a key.
const NO_EVICTION: &str = "noeviction";

/// What the gateway knows of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PolicyReading {
    /// Not read yet (Redis not reached since start).
    #[default]
    NotRead,
    /// The server refused `CONFIG GET` and `INFO` alike: not known.
    Hidden,
    /// The policy, or the distinct policies of a cluster's primaries, sorted.
    Known(Vec<String>),
}

impl PolicyReading {
    /// `Some(true)` when a policy read may evict keys (anything but `noeviction`), `None`
    /// while unknown.
    pub fn evicts(&self) -> Option<bool> {
        match self {
            Self::Known(policies) => Some(policies.iter().any(|p| p != NO_EVICTION)),
            Self::NotRead | Self::Hidden => None,
        }
    }

    /// The policy as shown (`allkeys-lru`; several nodes' comma-separated; `unknown` when
    /// hidden), `None` before the first reading.
    pub fn shown(&self) -> Option<String> {
        match self {
            Self::NotRead => None,
            Self::Hidden => Some("unknown".to_owned()),
            Self::Known(policies) => Some(policies.join(",")),
        }
    }
}

impl Store {
    /// Redis's `maxmemory-policy` (why it matters: `crate::eviction_policy`): `CONFIG GET`, or
    /// where the server refuses `CONFIG` (ElastiCache renames it), the `maxmemory_policy` line
    /// of `INFO memory`, from every primary in cluster mode; [`PolicyReading::Hidden`] when it
    /// refuses both. On the listing's connection, off the bids' path.
    ///
    /// # Errors
    /// When Redis is unavailable or too slow (try again later).
    pub async fn maxmemory_policy(&self) -> Result<PolicyReading, StoreError> {
        let config = self
            .listing
            .query::<std::collections::HashMap<String, String>>(
                redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"),
            )
            .await
            .map_err(StoreError::from);
        match config {
            Ok(reply) => {
                if let Some(policy) = reply.get("maxmemory-policy") {
                    return Ok(PolicyReading::Known(vec![policy.trim().to_owned()]));
                }
            }
            Err(e) if refused(&e) => {
                tracing::debug!(error = %e, "CONFIG GET refused; reading INFO memory instead");
            }
            Err(e) => return Err(e),
        }
        let info = self
            .listing
            .query::<redis::Value>(redis::cmd("INFO").arg("memory"))
            .await
            .map_err(StoreError::from);
        match info {
            Ok(reply) => {
                let policies = policies_in_info(info_texts(&reply).iter().map(String::as_str));
                Ok(if policies.is_empty() {
                    PolicyReading::Hidden
                } else {
                    PolicyReading::Known(policies)
                })
            }
            Err(e) if refused(&e) => {
                tracing::debug!(error = %e, "INFO memory refused too");
                Ok(PolicyReading::Hidden)
            }
            Err(e) => Err(e),
        }
    }
}

/// The policies in `INFO memory` text(s): each `maxmemory_policy:<name>` line.
fn policies_in_info<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut policies: Vec<String> = texts
        .into_iter()
        .flat_map(str::lines)
        .filter_map(|line| line.trim().strip_prefix("maxmemory_policy:"))
        .map(|policy| policy.trim().to_owned())
        .filter(|policy| !policy.is_empty())
        .collect();
    policies.sort();
    policies.dedup();
    policies
}

/// Whether a failed `CONFIG GET` or `INFO` was the server refusing the command (renamed,
/// disabled or not permitted: try the next way, or give up) rather than an outage (retry).
fn refused(error: &StoreError) -> bool {
    matches!(error, StoreError::Internal(_))
}

/// The text(s) of an `INFO` reply: one server's string, or in cluster mode a map of each
/// primary's address to its string.
fn info_texts(reply: &redis::Value) -> Vec<String> {
    use redis::Value;
    match reply {
        Value::BulkString(bytes) => vec![String::from_utf8_lossy(bytes).into_owned()],
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => vec![text.clone()],
        Value::Map(pairs) => pairs.iter().flat_map(|(_, v)| info_texts(v)).collect(),
        Value::Array(values) | Value::Set(values) => values.iter().flat_map(info_texts).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_noeviction_is_safe() {
        let known = |p: &[&str]| PolicyReading::Known(p.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(known(&["noeviction"]).evicts(), Some(false));
        for policy in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert_eq!(known(&[policy]).evicts(), Some(true), "{policy}");
        }
        assert_eq!(known(&["allkeys-lru", "noeviction"]).evicts(), Some(true));
        assert_eq!(
            known(&["allkeys-lru", "noeviction"]).shown().as_deref(),
            Some("allkeys-lru,noeviction")
        );
        assert_eq!(PolicyReading::Hidden.evicts(), None);
        assert_eq!(PolicyReading::Hidden.shown().as_deref(), Some("unknown"));
        assert_eq!(PolicyReading::NotRead.shown(), None);
    }

    #[test]
    fn info_memory_lines_give_the_policy_of_every_node() {
        let one =
            "# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\nmaxmemory_policy:volatile-lru\r\n";
        let other = "# Memory\r\nmaxmemory_policy:noeviction\r\n";
        assert_eq!(policies_in_info([one]), ["volatile-lru"]);
        assert_eq!(
            policies_in_info([one, other, other]),
            ["noeviction", "volatile-lru"]
        );
        assert!(policies_in_info(["# Memory\r\nused_memory:1\r\n"]).is_empty());
    }
}
