//! Items recently found not to exist, so a client that subscribes to one again (or many
//! clients that do) gets its `item_not_found` frame at once, without opening a room (a NATS
//! subscription) and reading Redis each time.
//!
//! The answer is kept briefly (`MISSING_ITEM_CACHE_MS`, 2 s): an item created meanwhile is
//! watchable that much later, which a client retrying a subscribe sees as a short delay. The
//! map is bounded: when full, expired entries are dropped, and if it is still full the new
//! answer is simply not kept (the next subscribe pays the read again, nothing breaks).

use shared::ItemId;
use shared::mutex;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most ids remembered at once (about 100 bytes each).
const MAX_ENTRIES: usize = 10_000;

pub struct MissingItems {
    ttl: Duration,
    /// A std mutex: a lookup or an insert, never held across `.await`.
    until: Mutex<HashMap<ItemId, Instant>>,
}

impl MissingItems {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            until: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers that `item` does not exist (a snapshot read found no hash).
    pub fn insert(&self, item: &ItemId) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut until = mutex::lock(&self.until);
        if until.len() >= MAX_ENTRIES {
            until.retain(|_, expires| *expires > now);
        }
        if until.len() < MAX_ENTRIES {
            until.insert(item.clone(), now + self.ttl);
        }
    }

    /// Whether `item` was found missing within the last `ttl`.
    pub fn contains(&self, item: &ItemId) -> bool {
        let now = Instant::now();
        let mut until = mutex::lock(&self.until);
        match until.get(item) {
            Some(expires) if *expires > now => true,
            Some(_) => {
                until.remove(item);
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> ItemId {
        ItemId::parse(id.to_owned()).unwrap()
    }

    #[test]
    fn a_missing_item_is_remembered_for_the_ttl_only() {
        let missing = MissingItems::new(Duration::from_millis(50));
        assert!(!missing.contains(&item("lot-1")));
        missing.insert(&item("lot-1"));
        assert!(missing.contains(&item("lot-1")));
        assert!(!missing.contains(&item("lot-2")));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!missing.contains(&item("lot-1")), "expired");
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let missing = MissingItems::new(Duration::ZERO);
        missing.insert(&item("lot-1"));
        assert!(!missing.contains(&item("lot-1")));
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let missing = MissingItems::new(Duration::from_secs(60));
        for n in 0..MAX_ENTRIES + 10 {
            missing.insert(&item(&format!("lot-{n}")));
        }
        assert_eq!(mutex::lock(&missing.until).len(), MAX_ENTRIES);
    }
}
