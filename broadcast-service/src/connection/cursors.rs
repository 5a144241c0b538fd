//! The items one session watches, by item id.
//!
//! A short list rather than a hash map: a socket watches at most
//! `MAX_SUBSCRIPTIONS_PER_CONNECTION` (32) items and nearly always one, and a map's smallest
//! table holds four entries, resident for as long as the viewer is connected. The list holds
//! exactly one entry for one item, and a scan of a few ids costs less than hashing one.

use shared::ItemId;

/// Entries keyed by item id, in the order they were added.
#[derive(Debug)]
pub(super) struct Cursors<T> {
    entries: Vec<(ItemId, T)>,
}

impl<T> Default for Cursors<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T> Cursors<T> {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn contains_key(&self, item: &ItemId) -> bool {
        self.entries.iter().any(|(id, _)| id == item)
    }

    pub(super) fn get_mut(&mut self, item: &ItemId) -> Option<&mut T> {
        self.entries
            .iter_mut()
            .find_map(|(id, value)| (id == item).then_some(value))
    }

    /// Adds `item` (the caller checked it is not there yet).
    pub(super) fn insert(&mut self, item: ItemId, value: T) {
        if self.entries.capacity() == 0 {
            self.entries.reserve_exact(1);
        }
        self.entries.push((item, value));
    }

    /// Removes `item`; its value if it was there.
    pub(super) fn remove(&mut self, item: &ItemId) -> Option<T> {
        let at = self.entries.iter().position(|(id, _)| id == item)?;
        Some(self.entries.swap_remove(at).1)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&ItemId, &T)> {
        self.entries.iter().map(|(id, value)| (id, value))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &ItemId> {
        self.entries.iter().map(|(id, _)| id)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_replaced_and_removed_by_item() {
        let (a, b) = (ItemId::parse("a").unwrap(), ItemId::parse("b").unwrap());
        let mut cursors = Cursors::default();
        cursors.insert(a.clone(), 1);
        cursors.insert(b.clone(), 2);
        assert_eq!(cursors.len(), 2);
        *cursors.get_mut(&b).unwrap() += 10;
        assert_eq!(cursors.remove(&a), Some(1));
        assert_eq!(cursors.remove(&a), None);
        assert!(!cursors.contains_key(&a) && cursors.contains_key(&b));
        assert_eq!(cursors.iter().collect::<Vec<_>>(), [(&b, &12)]);
        assert_eq!(cursors.keys().count(), 1);
        assert_eq!(cursors.values().sum::<i32>(), 12);
    }
}
