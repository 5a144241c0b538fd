//! [`BidderPseudonyms`]: how the public bid history of an item names its bidders without saying
//! who they are, as auction sites do.
//!
//! Each bidder of an item is shown as `bidder-<12 hex digits>`: the start of an HMAC-SHA-256 of
//! the item and user ids under a secret derived from the signing key. The same bidder is the
//! same pseudonym on every row and page of that item (so a reader can follow the duel between
//! two bidders) and on every gateway (they share the key), but a different one on another item
//! (so nobody can collect one person's bids across auctions), and without the secret nobody can
//! test a guessed user id against it. 48 bits keep two bidders of one item apart (a clash needs
//! millions of bidders on it).
//!
//! With an external OIDC issuer this gateway holds no signing key; it then draws a random
//! secret at start, so pseudonyms are stable per gateway process only.

use aws_lc_rs::hmac;
use shared::{ItemId, UserId};

/// What the secret is derived for (changing it renames every bidder).
pub const PURPOSE: &str = "auction bid history pseudonyms v1";

/// Hex digits of the HMAC a pseudonym shows.
const DIGITS: usize = 12;

#[derive(Clone)]
pub struct BidderPseudonyms {
    key: hmac::Key,
}

impl BidderPseudonyms {
    pub fn new(secret: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A random secret, when there is no signing key to derive one from.
    ///
    /// # Errors
    /// When the OS has no randomness to give.
    pub fn random() -> anyhow::Result<Self> {
        let mut secret = [0; 32];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| anyhow::anyhow!("no randomness for the pseudonym secret"))?;
        Ok(Self::new(&secret))
    }

    /// `user`'s pseudonym on `item`.
    pub fn of(&self, item: &ItemId, user: &str) -> String {
        // The item id cannot contain the separator, so no two (item, user) pairs collide.
        let message = format!("{item}\n{user}");
        let tag = hmac::sign(&self.key, message.as_bytes());
        let mut name = String::with_capacity(7 + DIGITS);
        name.push_str("bidder-");
        for byte in tag.as_ref().iter().take(DIGITS / 2) {
            name.push_str(&format!("{byte:02x}"));
        }
        name
    }

    /// [`of`](Self::of) for a parsed user id.
    pub fn of_user(&self, item: &ItemId, user: &UserId) -> String {
        self.of(item, user.as_str())
    }
}

impl std::fmt::Debug for BidderPseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BidderPseudonyms(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> ItemId {
        ItemId::parse(id).unwrap()
    }

    #[test]
    fn a_bidder_keeps_one_pseudonym_per_item_and_another_on_the_next() {
        let names = BidderPseudonyms::new(&[7; 32]);
        let first = names.of(&item("lot-1"), "alice");
        assert_eq!(first, names.of(&item("lot-1"), "alice"));
        assert_ne!(first, names.of(&item("lot-2"), "alice"));
        assert_ne!(first, names.of(&item("lot-1"), "bob"));
        assert!(first.starts_with("bidder-") && first.len() == 19, "{first}");
        assert!(!first.contains("alice"));
    }

    #[test]
    fn another_secret_gives_other_pseudonyms() {
        let ours = BidderPseudonyms::new(&[7; 32]);
        let theirs = BidderPseudonyms::new(&[8; 32]);
        assert_ne!(
            ours.of(&item("lot-1"), "alice"),
            theirs.of(&item("lot-1"), "alice")
        );
    }
}
