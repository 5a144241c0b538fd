//! A user's watchlist (`watchlist`, in the read model: the worker reads an item's watchers for
//! `ending_soon`). One of the two things the gateway writes there, both the signed-in user's
//! own actions.

use super::{ReadError, ReadModel};
use shared::{ItemId, UserId};

impl ReadModel {
    /// Adds `item` to `user`'s watchlist (again: no change).
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when PostgreSQL is unreachable or not migrated.
    pub async fn watch(&self, user: &UserId, item: &ItemId) -> Result<(), ReadError> {
        self.timed(async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "insert into watchlist (user_id, item_id) values ($1, $2)
                     on conflict do nothing",
                    &[&user.as_str(), &item.as_str()],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Removes `item` from `user`'s watchlist (absent: no change).
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when PostgreSQL is unreachable or not migrated.
    pub async fn unwatch(&self, user: &UserId, item: &ItemId) -> Result<(), ReadError> {
        self.timed(async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "delete from watchlist where user_id = $1 and item_id = $2",
                    &[&user.as_str(), &item.as_str()],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// The items `user` watches, most recently added first, at most `limit`.
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when PostgreSQL is unreachable or not migrated.
    pub async fn watched(&self, user: &UserId, limit: i64) -> Result<Vec<ItemId>, ReadError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "select item_id from watchlist where user_id = $1
                     order by created_at desc, item_id limit $2",
                    &[&user.as_str(), &limit],
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|row| ItemId::parse(row.get::<_, String>(0)).ok())
                .collect())
        })
        .await
    }
}
