//! The item listing (`GET /api/v1/items`): per-shard sorted sets read page by page after a
//! cursor, then only the page's items.
//!
//! Every script that changes what a listing shows of an item (status, end time, listing time)
//! updates the item's shard's listing sets in the same atomic call (`scripts/item_index.lua`),
//! so the index is never behind the items it names; the closer's pass moves items whose start
//! came from the scheduled sets to the active ones ([`Store::start_listed`]). A page reads the
//! sixteen shard sets of one status and order after the cursor (`list_page.lua`, each on the
//! master holding it in cluster mode), merges them by (score, id), keeps `limit` and reads
//! those items' hashes. The work per request is bounded: at most `limit + 1` entries per shard
//! and at most [`EXAMINE_BUDGET`] entries looked at (a page cut short by it still carries a
//! cursor).
//!
//! The listing has a connection of its own (`Store::listing`): its replies never queue in
//! front of a bid's on the bid path's connection.

use super::{Store, StoreError};
use shared::redis_connection::RedisCallError;
use shared::redis_keys::{Keyspace, ListingOrder};
use shared::{ItemId, ItemState, ItemStatus, Timestamp};
use std::collections::HashMap;

/// Most index entries one request examines: a page whose items are mostly filtered out (a
/// name search, items changing status) ends there, with a cursor to go on from.
pub const EXAMINE_BUDGET: usize = 1_000;
/// Entries a name search examines per round trip.
const SEARCH_BATCH: usize = 200;
/// Most started items one shard's pass moves from scheduled to active.
const START_BATCH: usize = 1_000;

/// What to list.
#[derive(Debug, Clone)]
pub struct ListingQuery {
    pub status: ItemStatus,
    pub order: ListingOrder,
    /// Where the previous page ended.
    pub after: Option<ListingCursor>,
    /// 1 or more.
    pub limit: usize,
    /// Only items whose name contains this (compared in lower case).
    pub name_contains: Option<String>,
}

/// A position in a listing: the score (end or listing time, µs) and id of the last entry a
/// page examined. Valid for the status and order it was made for only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingCursor {
    pub score: i64,
    pub id: ItemId,
}

impl ListingCursor {
    /// `<order><status><score>_<id>`, e.g. `ea1767225600000000_item-1`. Opaque to clients.
    pub fn encode(&self, status: ItemStatus, order: ListingOrder) -> String {
        format!(
            "{}{}{}_{}",
            order_tag(order),
            status_tag(status),
            self.score,
            self.id
        )
    }

    /// The cursor `text` encodes, if it is one made for `status` and `order`.
    pub fn parse(text: &str, status: ItemStatus, order: ListingOrder) -> Option<Self> {
        let rest = text.strip_prefix(order_tag(order))?;
        let rest = rest.strip_prefix(status_tag(status))?;
        let (score, id) = rest.split_once('_')?;
        if score.is_empty() || !score.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            score: score.parse().ok()?,
            id: ItemId::parse(id).ok()?,
        })
    }
}

fn order_tag(order: ListingOrder) -> char {
    match order {
        ListingOrder::EndingSoon => 'e',
        ListingOrder::Newest => 'n',
    }
}

fn status_tag(status: ItemStatus) -> char {
    match status {
        ItemStatus::Active => 'a',
        ItemStatus::Scheduled => 's',
        ItemStatus::Closed => 'c',
        ItemStatus::Cancelled => 'x',
    }
}

/// One page.
#[derive(Debug, Clone)]
pub struct ListingPage {
    pub items: Vec<ItemState>,
    /// Where the next page starts; `None` when the listing is exhausted.
    pub next: Option<ListingCursor>,
}

impl Store {
    /// One page of `query` at `now`: items whose status at `now` is the one asked for, in the
    /// order asked for, after the cursor.
    ///
    /// # Errors
    /// When Redis is unavailable or a shard's reply is malformed.
    #[tracing::instrument(name = "redis.list_items", skip_all, fields(status = ?query.status))]
    pub async fn list_items(
        &self,
        query: &ListingQuery,
        now: Timestamp,
    ) -> Result<ListingPage, StoreError> {
        let mut after = query.after.clone();
        let mut items = Vec::new();
        let mut examined = 0;
        loop {
            let want = match query.name_contains {
                Some(_) => SEARCH_BATCH,
                None => query.limit - items.len(),
            };
            let (entries, more) = self.index_window(query, after.as_ref(), want, now).await?;
            examined += entries.len();
            let states = self.matching_states(&entries, query, now).await?;
            let last = entries.len();
            for (n, (entry, state)) in entries.into_iter().zip(states).enumerate() {
                after = Some(entry);
                items.extend(state);
                if items.len() == query.limit {
                    let rest = more || n + 1 < last;
                    return Ok(ListingPage {
                        items,
                        next: after.filter(|_| rest),
                    });
                }
            }
            if !more {
                return Ok(ListingPage { items, next: None });
            }
            if examined >= EXAMINE_BUDGET {
                return Ok(ListingPage { items, next: after });
            }
        }
    }

    /// The next `want` entries after `after` over every shard, merged, and whether more exist.
    async fn index_window(
        &self,
        query: &ListingQuery,
        after: Option<&ListingCursor>,
        want: usize,
        now: Timestamp,
    ) -> Result<(Vec<ListingCursor>, bool), StoreError> {
        let ascending = query.order == ListingOrder::EndingSoon;
        // An active auction ends after now; the closer closes the others within its interval.
        let floor = if ascending && query.status == ItemStatus::Active {
            now.micros().to_string()
        } else {
            String::new()
        };
        let args = [
            (if ascending { "asc" } else { "desc" }).to_owned(),
            after.map(|a| a.score.to_string()).unwrap_or_default(),
            after.map(|a| a.id.to_string()).unwrap_or_default(),
            (want + 1).to_string(),
            floor,
        ];
        let sets: Vec<String> = Keyspace::shards()
            .map(|shard| self.keys.listing(shard, query.status, query.order))
            .collect();
        let replies = self.list_shards(&sets, &args).await?;
        let mut entries = Vec::new();
        for flat in replies {
            entries.extend(parse_entries(flat).map_err(StoreError::Internal)?);
        }
        entries.sort_by(|a, b| (a.score, a.id.as_str()).cmp(&(b.score, b.id.as_str())));
        if !ascending {
            entries.reverse();
        }
        let more = entries.len() > want;
        entries.truncate(want);
        Ok((entries, more))
    }

    /// Runs every shard's `list_page.lua` call: as one pipeline of `EVALSHA`s (one round trip
    /// on one server; in cluster mode each goes to its own master, concurrently), or, when a
    /// server does not have the script yet (`NOSCRIPT`: just started, or restarted), as calls of
    /// their own, each loading it where needed.
    async fn list_shards(
        &self,
        sets: &[String],
        args: &[String],
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let script = &self.scripts.list_page;
        let mut pipe = redis::pipe();
        for set in sets {
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(1)
                .arg(set)
                .arg(args);
        }
        match self.listing.query_pipeline(&pipe).await {
            Err(RedisCallError::Redis(e))
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                let calls = sets.iter().map(|set| async move {
                    let mut invocation = script.prepare_invoke();
                    invocation.key(set).arg(args);
                    self.listing.invoke::<Vec<String>>(&invocation).await
                });
                Ok(futures::future::try_join_all(calls).await?)
            }
            replies => Ok(replies?),
        }
    }

    /// Each entry's item if it is one to list (its status at `now`, its name), else `None`:
    /// a name search reads the names first and only the matching items' hashes.
    async fn matching_states(
        &self,
        entries: &[ListingCursor],
        query: &ListingQuery,
        now: Timestamp,
    ) -> Result<Vec<Option<ItemState>>, StoreError> {
        let named: Vec<bool> = match &query.name_contains {
            None => vec![true; entries.len()],
            Some(needle) => {
                let mut pipe = redis::pipe();
                for entry in entries {
                    pipe.cmd("HGET")
                        .arg(self.keys.item(&entry.id).item)
                        .arg(shared::item_state::field::NAME);
                }
                let names: Vec<Option<String>> = self.query_listing_pipeline(&pipe).await?;
                names
                    .iter()
                    .map(|name| name.as_ref().is_some_and(|n| name_matches(n, needle)))
                    .collect()
            }
        };
        let wanted: Vec<&ListingCursor> = entries
            .iter()
            .zip(&named)
            .filter_map(|(entry, named)| named.then_some(entry))
            .collect();
        let mut pipe = redis::pipe();
        for entry in &wanted {
            // The whole hash: the view shows whatever `ItemState::from_hash` reads.
            pipe.cmd("HGETALL").arg(self.keys.item(&entry.id).item);
        }
        let hashes: Vec<HashMap<String, String>> = self.query_listing_pipeline(&pipe).await?;
        let mut states = wanted.into_iter().zip(hashes).map(|(entry, hash)| {
            // A hash deleted or malformed since it was indexed is skipped, not an error.
            ItemState::from_hash(entry.id.clone(), &hash)
                .ok()
                .filter(|state| state.status_at(now) == query.status)
        });
        Ok(named
            .into_iter()
            .map(|named| if named { states.next().flatten() } else { None })
            .collect())
    }

    async fn query_listing_pipeline<T: redis::FromRedisValue + Default>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        if pipe.is_empty() {
            return Ok(T::default());
        }
        Ok(self.listing.query_pipeline(pipe).await?)
    }

    /// Moves `shard`'s items whose start time has come from its scheduled listing sets to
    /// its active ones (`start_listed.lua`); returns how many moved.
    ///
    /// On the listing's connection, which never waits for a replica (`--durable-accept`): a
    /// move lost in a failover is simply made again by the next pass, and the closer runs this
    /// for every shard every tick.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn start_listed(&self, shard: u32) -> Result<u64, StoreError> {
        let mut invocation = self.scripts.start_listed.prepare_invoke();
        invocation
            .key(&self.keys.listing_keys(shard))
            .arg(START_BATCH);
        Ok(self.listing.invoke(&invocation).await?)
    }

    /// Puts `id` in the listing sets its hash says (`reindex_item.lua`); returns whether the
    /// item exists. Idempotent.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn reindex_item(&self, id: &ItemId) -> Result<bool, StoreError> {
        let keys = self.keys.item(id);
        let mut invocation = self.scripts.reindex_item.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&self.keys.listing_keys(keys.shard))
            .arg(id.as_str());
        let exists: i64 = self.redis.invoke(&invocation).await?;
        Ok(exists == 1)
    }

    /// One round of the backfill from the legacy `items:index` set (`crate::listing_backfill`):
    /// takes up to `batch` ids, indexes each item as its hash says, then removes them from
    /// the set; returns how many ids it took (0: the set is empty).
    ///
    /// # Errors
    /// When Redis is unavailable; the ids of a failed round stay in the set.
    pub async fn backfill_listing_batch(&self, batch: usize) -> Result<usize, StoreError> {
        let legacy = self.keys.legacy_items_index();
        let ids: Vec<String> = self
            .redis
            .query(redis::cmd("SRANDMEMBER").arg(&legacy).arg(batch))
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // An id that is not valid names no item the gateway wrote: it is only removed.
        let valid: Vec<ItemId> = ids
            .iter()
            .filter_map(|id| ItemId::parse(id.as_str()).ok())
            .collect();
        futures::future::try_join_all(valid.iter().map(|id| self.reindex_item(id))).await?;
        self.redis
            .query::<i64>(redis::cmd("SREM").arg(&legacy).arg(&ids))
            .await?;
        Ok(ids.len())
    }

    /// Queues `reindex_item.lua` for `id` in `pipe` (the optimistic strategy's `MULTI`, where
    /// a script cannot be loaded on demand, so its text goes with it).
    pub(super) fn queue_reindex(&self, pipe: &mut redis::Pipeline, id: &ItemId) {
        let keys = self.keys.item(id);
        pipe.cmd("EVAL")
            .arg(&self.scripts.reindex_item_text)
            .arg(1 + shared::redis_keys::LISTING_KEYS)
            .arg(&keys.item)
            .arg(&self.keys.listing_keys(keys.shard))
            .arg(id.as_str())
            .ignore();
    }
}

/// Case-insensitive substring match (Unicode lower case).
fn name_matches(name: &str, needle_lower: &str) -> bool {
    name.to_lowercase().contains(needle_lower)
}

/// `list_page.lua`'s flat `id, score, …` reply.
fn parse_entries(flat: Vec<String>) -> anyhow::Result<Vec<ListingCursor>> {
    if !flat.len().is_multiple_of(2) {
        anyhow::bail!("list_page.lua replied an odd number of values");
    }
    let mut entries = Vec::with_capacity(flat.len() / 2);
    let mut values = flat.into_iter();
    while let (Some(id), Some(score)) = (values.next(), values.next()) {
        // Scores are integer µs, exact as doubles; Redis may write them in exponent form.
        let score = score
            .parse::<i64>()
            .ok()
            .or_else(|| score.parse::<f64>().ok().map(|s| s as i64))
            .ok_or_else(|| anyhow::anyhow!("listing score {score:?} is not a number"))?;
        // An id that is not a valid one was never written by the gateway; skip it.
        if let Ok(id) = ItemId::parse(id) {
            entries.push(ListingCursor { score, id });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(score: i64, id: &str) -> ListingCursor {
        ListingCursor {
            score,
            id: ItemId::parse(id).unwrap(),
        }
    }

    #[test]
    fn a_cursor_reads_back_for_its_own_status_and_order_only() {
        let c = cursor(1_767_225_600_000_000, "item_1-x");
        let text = c.encode(ItemStatus::Active, ListingOrder::EndingSoon);
        assert_eq!(
            ListingCursor::parse(&text, ItemStatus::Active, ListingOrder::EndingSoon),
            Some(c)
        );
        assert_eq!(
            ListingCursor::parse(&text, ItemStatus::Closed, ListingOrder::EndingSoon),
            None
        );
        assert_eq!(
            ListingCursor::parse(&text, ItemStatus::Active, ListingOrder::Newest),
            None
        );
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for bad in [
            "",
            "ea",
            "ea_x",
            "ea12",
            "ea-12_x",
            "ea+12_x",
            "ea12_",
            "ea12_bad.id",
            "ea99999999999999999999_x",
            "xx12_x",
        ] {
            assert_eq!(
                ListingCursor::parse(bad, ItemStatus::Active, ListingOrder::EndingSoon),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn names_match_case_insensitively_as_substrings() {
        assert!(name_matches("Vintage CAMERA", "camera"));
        assert!(name_matches("Ärger", "ärg"));
        assert!(!name_matches("Lens", "camera"));
    }

    #[test]
    fn shard_replies_parse_integer_and_exponent_scores() {
        let flat = ["a", "1767225600000000", "b", "1.7672256e+15"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            parse_entries(flat).unwrap(),
            vec![
                cursor(1_767_225_600_000_000, "a"),
                cursor(1_767_225_600_000_000, "b")
            ]
        );
        assert!(parse_entries(vec!["a".into()]).is_err());
    }
}
