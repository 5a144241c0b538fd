//! Item creation and reads.

use super::{Store, StoreError};
use shared::item_state::field;
use shared::redis_reads::{self, ItemReadError};
use shared::{IncrementTable, ItemId, ItemState, UserId};

/// A validated item to create.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: ItemId,
    pub name: String,
    pub description: String,
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
            .arg(item.start_us.map(|s| s.to_string()).unwrap_or_default())
            .arg(item.end_us)
            .arg(field::NAME)
            .arg(&item.name)
            .arg(field::DESCRIPTION)
            .arg(&item.description)
            .arg(field::STARTING_CENTS)
            .arg(item.starting_cents)
            .arg(field::MIN_INCREMENT_CENTS)
            .arg(item.increments.first_increment())
            .arg(field::INCREMENTS)
            .arg(item.increments.to_storage())
            .arg(field::RESERVE_CENTS)
            .arg(item.reserve_cents)
            .arg(field::BUY_NOW_CENTS)
            .arg(item.buy_now_cents)
            .arg(field::EXTENSION_WINDOW_US)
            .arg(item.extension_window_us)
            .arg(field::EXTENSION_US)
            .arg(item.extension_us)
            .arg(field::SELLER_ID)
            .arg(
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
