//! Item creation and reads.

use super::{Store, StoreError};
use shared::item_state::field;
use shared::redis_reads::{self, ItemReadError};
use shared::{IncrementTable, ItemId, ItemState, UserId};

/// The validated terms of one auction round: what creating an item sets for its first round
/// and relisting it (`relist_item.lua`) sets for the next, so both keep the same rules.
#[derive(Debug, Clone)]
pub struct RoundTerms {
    pub starting_cents: i64,
    /// The increment schedule (a flat increment is one row).
    pub increments: IncrementTable,
    /// `0` for no reserve.
    pub reserve_cents: i64,
    /// `0` without buy it now.
    pub buy_now_cents: i64,
    /// `None`: start now (Redis time).
    pub start_us: Option<i64>,
    pub end_us: i64,
    pub extension_window_us: i64,
    pub extension_us: i64,
}

/// A validated item to create.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: ItemId,
    pub name: String,
    pub description: String,
    /// Its first round.
    pub terms: RoundTerms,
    /// Who creates it (the token's `sub`); `None` only for items made without an account.
    pub seller_id: Option<UserId>,
}

/// What creating an item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatedItem {
    Created,
    /// An item with this id exists already; nothing changed.
    Exists,
    /// The end time is not after both now and the start time; nothing changed.
    EndsInThePast,
}

impl RoundTerms {
    /// The start as a script argument: `""` for now (Redis time).
    pub(super) fn start_arg(&self) -> String {
        self.start_us.map(|s| s.to_string()).unwrap_or_default()
    }

    /// Appends the round's item-hash fields as name, value pairs (every field a round sets
    /// besides its times), the shape `create_item.lua` and `relist_item.lua` both `HSET`.
    pub(super) fn push_fields(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        invocation
            .arg(field::STARTING_CENTS)
            .arg(self.starting_cents)
            .arg(field::MIN_INCREMENT_CENTS)
            .arg(self.increments.first_increment())
            .arg(field::INCREMENTS)
            .arg(self.increments.to_storage())
            .arg(field::RESERVE_CENTS)
            .arg(self.reserve_cents)
            .arg(field::BUY_NOW_CENTS)
            .arg(self.buy_now_cents)
            .arg(field::EXTENSION_WINDOW_US)
            .arg(self.extension_window_us)
            .arg(field::EXTENSION_US)
            .arg(self.extension_us);
    }
}

impl Store {
    /// Creates the item hash, schedules its close and lists it (all in `create_item.lua`).
    ///
    /// # Errors
    /// When Redis is unavailable.
    #[tracing::instrument(name = "redis.create_item", skip_all, fields(item_id = %item.id))]
    pub async fn create_item(&self, item: &NewItem) -> Result<CreatedItem, StoreError> {
        let keys = self.keys.item(&item.id);
        let mut invocation = self.scripts.create_item.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&keys.closing)
            .key(&self.keys.listing_keys(keys.shard))
            .arg(item.id.as_str())
            .arg(item.terms.start_arg())
            .arg(item.terms.end_us)
            .arg(field::NAME)
            .arg(&item.name)
            .arg(field::DESCRIPTION)
            .arg(&item.description);
        item.terms.push_fields(&mut invocation);
        invocation.arg(field::SELLER_ID).arg(
            item.seller_id
                .as_ref()
                .map(UserId::as_str)
                .unwrap_or_default(),
        );
        self.run_script("create_item.lua", invocation, |reply| {
            reply.decide_without_event(&[
                ("created", CreatedItem::Created),
                ("exists", CreatedItem::Exists),
                ("ended", CreatedItem::EndsInThePast),
            ])
        })
        .await
    }

    /// The item's current state, or `None` if it does not exist.
    ///
    /// # Errors
    /// When Redis is unavailable or the hash is malformed.
    #[tracing::instrument(name = "redis.get_item", skip_all, fields(item_id = %id))]
    pub async fn get_item(&self, id: &ItemId) -> Result<Option<ItemState>, StoreError> {
        redis_reads::item_state(&self.redis, &self.keys, id)
            .await
            .map_err(ItemReadError::into_error)
    }
}
