//! A user's notifications as the worker stored them (`notifications`), paged newest first,
//! and marking them read: `read_at` is the other thing the gateway writes in the read model.

use super::{ReadError, ReadModel};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::{Timestamp, UserId};

/// One notification as `GET /api/v1/me/notifications` shows it.
#[derive(Debug, Clone)]
pub struct StoredNotification {
    pub id: i64,
    pub kind: String,
    pub item_id: String,
    pub created_at: Timestamp,
    pub read: bool,
    /// The frame's fields as stored (without `notification_id` and `timestamp`).
    pub data: Value,
}

impl StoredNotification {
    /// The API's row: `data` holds the fields of the frame that was published, exactly.
    pub fn to_json(&self) -> Value {
        let mut data = self.data.clone();
        if let Some(fields) = data.as_object_mut() {
            fields.insert("notification_id".into(), self.id.into());
            fields.insert("timestamp".into(), json!(self.created_at));
        }
        json!({
            "id": self.id,
            "type": self.kind,
            "item_id": self.item_id,
            "created_at": self.created_at,
            "read": self.read,
            "data": data,
        })
    }
}

/// One page of a user's notifications.
#[derive(Debug, Clone)]
pub struct NotificationPage {
    pub notifications: Vec<StoredNotification>,
    pub unread_count: i64,
}

impl ReadModel {
    /// `user`'s notifications older than `before` (an id), newest first, at most `limit`;
    /// only unread ones when `unread_only`; and how many are unread in all.
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when PostgreSQL is unreachable or not migrated.
    pub async fn notifications(
        &self,
        user: &UserId,
        limit: i64,
        before: Option<i64>,
        unread_only: bool,
    ) -> Result<NotificationPage, ReadError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "select id, type, item_id, created_at, read_at is not null, data
                     from notifications
                     where user_id = $1 and id < coalesce($2, 9223372036854775807)
                           and (not $3 or read_at is null)
                     order by id desc limit $4",
                    &[&user.as_str(), &before, &unread_only, &limit],
                )
                .await?;
            let unread: i64 = client
                .query_one(
                    "select count(*) from notifications where user_id = $1 and read_at is null",
                    &[&user.as_str()],
                )
                .await?
                .get(0);
            let notifications = rows
                .iter()
                .map(|row| {
                    let at: DateTime<Utc> = row.get(3);
                    StoredNotification {
                        id: row.get(0),
                        kind: row.get(1),
                        item_id: row.get(2),
                        created_at: Timestamp::from_micros(at.timestamp_micros()),
                        read: row.get(4),
                        data: row.get(5),
                    }
                })
                .collect();
            Ok(NotificationPage {
                notifications,
                unread_count: unread,
            })
        })
        .await
    }

    /// Marks `user`'s notifications with these ids read (`None`: all of them). Ids of other
    /// users' notifications change nothing.
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when PostgreSQL is unreachable or not migrated.
    pub async fn mark_read(&self, user: &UserId, ids: Option<&[i64]>) -> Result<(), ReadError> {
        self.timed(async {
            let client = self.pool.get().await?;
            match ids {
                Some(ids) => {
                    client
                        .execute(
                            "update notifications set read_at = now()
                             where user_id = $1 and id = any($2) and read_at is null",
                            &[&user.as_str(), &ids],
                        )
                        .await?
                }
                None => {
                    client
                        .execute(
                            "update notifications set read_at = now()
                             where user_id = $1 and read_at is null",
                            &[&user.as_str()],
                        )
                        .await?
                }
            };
            Ok(())
        })
        .await
    }
}
