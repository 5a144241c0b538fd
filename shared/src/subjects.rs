//! NATS subject and stream names.
//!
//! Live events and a user's private events go on core NATS (fast, best effort), archived
//! events through JetStream (durable). Keeping them under different tokens means the stream
//! never captures live traffic. The first token is configurable (default `auction`) so tests and co-hosted
//! deployments can run side by side on one NATS without seeing each other's events.

use crate::ids::{ItemId, UserId};

/// Default JetStream stream holding every event for the archive.
pub const ARCHIVE_STREAM: &str = "AUCTION_ARCHIVE";
/// Default first subject token.
pub const DEFAULT_PREFIX: &str = "auction";

/// Subject names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Subjects {
    /// `prefix` must be a valid subject token sequence without wildcards (checked by config).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Core NATS subject of one item's live events: `auction.live.<item_id>`.
    pub fn live(&self, item: &ItemId) -> String {
        format!("{}.live.{item}", self.prefix)
    }

    /// Every item's live subject: `auction.live.>`.
    pub fn live_all(&self) -> String {
        format!("{}.live.>", self.prefix)
    }

    /// Core NATS subject of one signed-in user's private events (`outbid`, `won`, …):
    /// `auction.user.<user_id>`. The broadcast service forwards it to that user's
    /// authenticated sockets only.
    pub fn user(&self, user: &UserId) -> String {
        format!("{}.user.{user}", self.prefix)
    }

    /// JetStream subject of one item's archived events: `auction.archive.<item_id>`.
    pub fn archive(&self, item: &ItemId) -> String {
        format!("{}.archive.{item}", self.prefix)
    }

    /// Subjects the archive stream captures: `auction.archive.>`.
    pub fn archive_all(&self) -> String {
        format!("{}.archive.>", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_embed_the_item_id_as_one_token() {
        let item = ItemId::parse("lot-7").unwrap();
        let subjects = Subjects::default();
        assert_eq!(subjects.live(&item), "auction.live.lot-7");
        assert_eq!(subjects.archive(&item), "auction.archive.lot-7");
        assert_eq!(subjects.archive_all(), "auction.archive.>");
        assert_eq!(subjects.live_all(), "auction.live.>");
    }

    #[test]
    fn a_users_private_subject_embeds_the_user_id_as_one_token() {
        let user = UserId::parse("alice").unwrap();
        assert_eq!(Subjects::default().user(&user), "auction.user.alice");
        assert_eq!(Subjects::new("t1").user(&user), "t1.user.alice");
    }

    #[test]
    fn a_custom_prefix_replaces_the_first_token() {
        let item = ItemId::parse("x").unwrap();
        assert_eq!(Subjects::new("t1").live(&item), "t1.live.x");
    }
}
