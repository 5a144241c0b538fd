//! The Redis key layout, ready for Redis Cluster.
//!
//! Every key of an item carries the hash tag of its outbox shard (`{s<n>}`), so the bid script
//! can touch the item hash, the shard's outbox stream, its closing set and the idempotency key
//! in one atomic call even when they live on a cluster node. Sixteen shards spread the outbox
//! over nodes while keeping the relay's per-shard work small.
//!
//! An optional key prefix (default empty) lets tests and co-hosted deployments share a Redis;
//! it stands before the hash tag, so it never changes which slot a key lands in.

use crate::ids::{IdempotencyKey, ItemId};
use crate::item_state::ItemStatus;

/// Number of outbox shards. Changing it moves items between shards: never change it on a
/// running deployment without draining every outbox first.
pub const SHARDS: u32 = 16;

/// 32-bit FNV-1a: tiny, stable across languages and releases (unlike `std`'s hasher).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The outbox shard an item belongs to.
pub fn shard_of(item: &ItemId) -> u32 {
    fnv1a(item.as_str().as_bytes()) % SHARDS
}

/// Key names under one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Every shard number, in order.
    pub fn shards() -> impl Iterator<Item = u32> {
        0..SHARDS
    }

    /// Outbox stream of shard `shard`: events waiting for the archive.
    pub fn outbox(&self, shard: u32) -> String {
        format!("{}{{s{shard}}}:outbox", self.prefix)
    }

    /// Sorted set of shard `shard`'s item ids scored by end time (microseconds).
    pub fn closing(&self, shard: u32) -> String {
        format!("{}{{s{shard}}}:closing", self.prefix)
    }

    /// The legacy listing index: a set of every item id, in no slot's hash tag, which
    /// gateways before the per-shard listing sets wrote. Only the backfill
    /// (`api-gateway/src/listing_backfill.rs`) still reads it, and empties it as it goes.
    pub fn legacy_items_index(&self) -> String {
        format!("{}items:index", self.prefix)
    }

    /// Listing set of shard `shard`: its items in status `status` (by the stored status;
    /// `scheduled` until the start time), scored for `order`.
    pub fn listing(&self, shard: u32, status: ItemStatus, order: ListingOrder) -> String {
        format!(
            "{}{{s{shard}}}:list:{}:{}",
            self.prefix,
            status_word(status),
            order.word()
        )
    }

    /// Every listing set of shard `shard`, in the order the scripts take them as their last
    /// [`LISTING_KEYS`] `KEYS` (see `scripts/item_index.lua`): per status (active, scheduled,
    /// closed, cancelled) the ending then the newest set, then the scheduled items by start
    /// time (which the closer's pass reads to move started items to active).
    pub fn listing_keys(&self, shard: u32) -> [String; LISTING_KEYS] {
        let by = |status, order| self.listing(shard, status, order);
        [
            by(ItemStatus::Active, ListingOrder::EndingSoon),
            by(ItemStatus::Active, ListingOrder::Newest),
            by(ItemStatus::Scheduled, ListingOrder::EndingSoon),
            by(ItemStatus::Scheduled, ListingOrder::Newest),
            by(ItemStatus::Closed, ListingOrder::EndingSoon),
            by(ItemStatus::Closed, ListingOrder::Newest),
            by(ItemStatus::Cancelled, ListingOrder::EndingSoon),
            by(ItemStatus::Cancelled, ListingOrder::Newest),
            format!("{}{{s{shard}}}:list:scheduled:starts", self.prefix),
        ]
    }

    /// The gateways' shared rate-limit bucket of `key` in `family` (`bid`, `ip`): a hash with
    /// the GCRA theoretical arrival time, with a TTL of the time it is ahead of now. No hash
    /// tag: each command touches this one key, so the buckets spread over a cluster's slots.
    pub fn rate_bucket(&self, family: &str, key: &str) -> String {
        format!("{}rl:{family}:{key}", self.prefix)
    }

    /// Stream of "over the limit" verdicts that every gateway reads after each sync, so a key
    /// refused by one instance is refused by all (capped in length).
    pub fn rate_verdicts(&self) -> String {
        format!("{}rl:verdicts", self.prefix)
    }

    /// An exact attempt counter of the sign-in throttle (`kind`: `fail`, `reg`, `ip`), with the
    /// TTL of its window.
    pub fn auth_attempts(&self, kind: &str, key: &str) -> String {
        format!("{}auth:{kind}:{key}", self.prefix)
    }

    /// The keys of one item.
    pub fn item(&self, id: &ItemId) -> ItemKeys {
        let shard = shard_of(id);
        ItemKeys {
            item: format!("{}{{s{shard}}}:item:{id}", self.prefix),
            outbox: self.outbox(shard),
            closing: self.closing(shard),
            idempotency_prefix: format!("{}{{s{shard}}}:idem:{id}:", self.prefix),
            shard,
        }
    }
}

/// How many listing sets one shard has (the length of [`Keyspace::listing_keys`]).
pub const LISTING_KEYS: usize = 9;

/// The orders a listing can be read in; each has its own sorted set per status and shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingOrder {
    /// Scored by end time (µs), read ascending: the soonest end first.
    EndingSoon,
    /// Scored by listing time (µs: creation, or the latest relist), read descending: the most
    /// recently listed first.
    Newest,
}

impl ListingOrder {
    /// The word in the key (and the API's `sort` value's key part).
    pub fn word(self) -> &'static str {
        match self {
            Self::EndingSoon => "ending",
            Self::Newest => "newest",
        }
    }
}

fn status_word(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Scheduled => "scheduled",
        ItemStatus::Active => "active",
        ItemStatus::Closed => "closed",
        ItemStatus::Cancelled => "cancelled",
    }
}

/// The keys of one item, all in one hash slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKeys {
    pub shard: u32,
    /// Hash with the item's state.
    pub item: String,
    /// The shard's outbox stream.
    pub outbox: String,
    /// The shard's closing set.
    pub closing: String,
    idempotency_prefix: String,
}

impl ItemKeys {
    /// Stored answer of a bid made with this `Idempotency-Key`.
    pub fn idempotency(&self, key: &IdempotencyKey) -> String {
        format!("{}{key}", self.idempotency_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn all_keys_of_an_item_share_one_hash_tag() {
        let id = ItemId::parse("item-42").unwrap();
        let keys = Keyspace::default().item(&id);
        let tag = format!("{{s{}}}", shard_of(&id));
        let idem = keys.idempotency(&IdempotencyKey::parse("k1").unwrap());
        for key in [&keys.item, &keys.outbox, &keys.closing, &idem] {
            assert!(key.starts_with(&tag), "{key}");
        }
        assert_eq!(keys.item, format!("{tag}:item:item-42"));
        assert_eq!(idem, format!("{tag}:idem:item-42:k1"));
    }

    #[test]
    fn a_prefix_stands_before_the_hash_tag() {
        let id = ItemId::parse("a").unwrap();
        let keys = Keyspace::new("t1:").item(&id);
        assert!(keys.item.starts_with("t1:{s"));
        assert_eq!(Keyspace::new("t1:").legacy_items_index(), "t1:items:index");
    }

    #[test]
    fn listing_sets_share_their_shards_hash_tag_and_are_all_distinct() {
        let keys = Keyspace::new("t1:").listing_keys(3);
        for key in &keys {
            assert!(key.starts_with("t1:{s3}:list:"), "{key}");
        }
        let distinct: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), LISTING_KEYS);
        assert_eq!(keys[0], "t1:{s3}:list:active:ending");
        assert_eq!(
            Keyspace::default().listing(0, ItemStatus::Closed, ListingOrder::Newest),
            "{s0}:list:closed:newest"
        );
    }

    #[test]
    fn rate_limit_keys_carry_the_prefix_and_no_hash_tag() {
        let keys = Keyspace::new("t1:");
        assert_eq!(keys.rate_bucket("bid", "alice"), "t1:rl:bid:alice");
        assert_eq!(keys.rate_verdicts(), "t1:rl:verdicts");
        assert_eq!(
            keys.auth_attempts("ip", "4:10.0.0.1"),
            "t1:auth:ip:4:10.0.0.1"
        );
        assert!(!keys.rate_bucket("ip", "6:2001:db8::/64").contains('{'));
    }

    #[test]
    fn shards_cover_zero_to_fifteen() {
        assert_eq!(
            Keyspace::shards().collect::<Vec<_>>(),
            (0..16).collect::<Vec<_>>()
        );
    }
}
