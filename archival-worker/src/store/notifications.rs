//! The notifications' SQL: deriving them from a batch's newly archived events inside its
//! transaction, the `ending_soon` pass, and the insert they share.
//!
//! Every insert is `on conflict (source, user_id, type) do nothing returning …`, so what comes
//! back is exactly what is new, and only that is published: a redelivered event or a second
//! `ending_soon` pass for the same schedule changes nothing and sends nothing.

use crate::notifications::{self, NewNotification, Notification};
use anyhow::Context;
use chrono::{DateTime, Utc};
use shared::{AuctionClosed, BidPlaced, ItemId, ItemState, Timestamp, UserId};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Who each newly archived bid outbid: the round's leader just before it (the bidder of the
/// round's previous bid, since every accepted bid leads), unless that is the same user, or
/// the bid is `answered`: a standing maximum answered it at once with its owner's automatic
/// bid, so that owner never lost the lead. The flag is on the bid's own event (set by the bid
/// script), so the decision never depends on whether the answer is in the same batch: a
/// batch boundary between the two changes nothing. A bid written by a gateway from before the
/// flag (a rolling upgrade) is still recognised when its answer is archived already: the
/// round's next bid being the outbid user's own automatic one. `items` is the batch's items as
/// Redis showed them, for the minimum that would lead again.
pub(super) async fn outbids(
    tx: &deadpool_postgres::Transaction<'_>,
    bids: &[&BidPlaced],
    items: &HashMap<ItemId, ItemState>,
) -> anyhow::Result<Vec<NewNotification>> {
    let ids: Vec<Uuid> = bids
        .iter()
        .filter(|b| !b.answered)
        .map(|b| b.event_id.as_uuid())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Both lateral reads walk the `(item_id, seq desc)` index; `seq` rises across rounds, so
    // the bid just before is checked for being of the same round.
    let rows = tx
        .query(
            "select b.event_id, p.user_id
             from unnest($1::uuid[]) as n(event_id)
             join bids b on b.event_id = n.event_id
             cross join lateral (select user_id, round from bids p
                                 where p.item_id = b.item_id and p.seq < b.seq
                                 order by p.seq desc limit 1) p
             left join lateral (select user_id, automatic from bids s
                                where s.item_id = b.item_id and s.seq > b.seq
                                      and s.round = b.round
                                order by s.seq limit 1) s on true
             where p.round = b.round and p.user_id <> b.user_id
                   and (s.user_id = p.user_id and s.automatic) is not true",
            &[&ids],
        )
        .await
        .context("finding outbid bidders")?;
    let by_id: HashMap<Uuid, &BidPlaced> =
        bids.iter().map(|b| (b.event_id.as_uuid(), *b)).collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.get(0);
        let user: String = row.get(1);
        let (Some(bid), Ok(user)) = (by_id.get(&id), UserId::parse(user)) else {
            continue;
        };
        let minimum = items
            .get(&bid.item_id)
            .filter(|state| state.round == bid.round)
            .map(|state| state.minimum_bid_cents().max(bid.amount_cents + 1));
        out.push(notifications::outbid(user, bid, minimum));
    }
    Ok(out)
}

/// `won` and `lost` for every newly archived close, to the bidders of its round.
pub(super) async fn closes(
    tx: &deadpool_postgres::Transaction<'_>,
    closes: &[&AuctionClosed],
) -> anyhow::Result<Vec<NewNotification>> {
    if closes.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = closes.iter().map(|c| c.item_id.as_str()).collect();
    let rounds: Vec<i32> = closes.iter().map(|c| c.round as i32).collect();
    let rows = tx
        .query(
            "select distinct c.item_id, c.round, b.user_id
             from unnest($1::text[], $2::int4[]) as c(item_id, round)
             join bids b on b.item_id = c.item_id and b.round = c.round
             order by 1, 2, 3",
            &[&items, &rounds],
        )
        .await
        .context("finding the bidders of closed rounds")?;
    let mut bidders: BTreeMap<(String, i32), Vec<UserId>> = BTreeMap::new();
    for row in rows {
        if let Ok(user) = UserId::parse(row.get::<_, String>(2)) {
            bidders
                .entry((row.get(0), row.get(1)))
                .or_default()
                .push(user);
        }
    }
    Ok(closes
        .iter()
        .flat_map(|close| {
            let key = (close.item_id.to_string(), close.round as i32);
            let round = bidders.get(&key).map(Vec::as_slice).unwrap_or_default();
            notifications::closed(close, round)
        })
        .collect())
}

/// Inserts the notifications not stored yet; returns those it inserted, oldest first.
pub(super) async fn insert(
    tx: &impl deadpool_postgres::GenericClient,
    notes: &[NewNotification],
) -> anyhow::Result<Vec<Notification>> {
    if notes.is_empty() {
        return Ok(Vec::new());
    }
    // Sorted by the unique key, so concurrent workers take its locks in one order.
    let mut sorted: Vec<&NewNotification> = notes.iter().collect();
    sorted.sort_by(|a, b| (&a.source, &a.user_id, a.kind).cmp(&(&b.source, &b.user_id, b.kind)));
    sorted.dedup_by(|a, b| (&a.source, &a.user_id, a.kind) == (&b.source, &b.user_id, b.kind));
    let users: Vec<&str> = sorted.iter().map(|n| n.user_id.as_str()).collect();
    let kinds: Vec<&str> = sorted.iter().map(|n| n.kind.as_str()).collect();
    let items: Vec<&str> = sorted.iter().map(|n| n.item_id.as_str()).collect();
    let sources: Vec<&str> = sorted.iter().map(|n| n.source.as_str()).collect();
    let data: Vec<&serde_json::Value> = sorted.iter().map(|n| &n.data).collect();
    let created: Vec<DateTime<Utc>> = sorted.iter().map(|n| n.created_at).collect();
    let rows = tx
        .query(
            "insert into notifications (user_id, type, item_id, source, data, created_at)
             select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                                  $6::timestamptz[])
             order by 4, 1, 2
             on conflict (source, user_id, type) do nothing
             returning id, user_id, data, created_at",
            &[&users, &kinds, &items, &sources, &data, &created],
        )
        .await
        .context("inserting notifications")?;
    let mut stored: Vec<Notification> = rows
        .iter()
        .filter_map(|row| {
            let at: DateTime<Utc> = row.get(3);
            Some(Notification {
                id: row.get(0),
                user_id: UserId::parse(row.get::<_, String>(1)).ok()?,
                data: row.get(2),
                created_at: Timestamp::from_micros(at.timestamp_micros()),
            })
        })
        .collect();
    stored.sort_by_key(|n| n.id);
    Ok(stored)
}

/// The `ending_soon` of one auction round ending at `end`, for its bidders and watchers who
/// have none for the round's current schedule yet. The schedule is the round's latest admin
/// extension (its `seq`, 0 for none): an admin moving the end re-arms the notice, an
/// anti-sniping extension by a late bid does not (the people in a bidding war already get
/// `outbid` and see the new end live; a notice per late bid would only be noise).
pub(super) async fn ending_soon(
    client: &impl deadpool_postgres::GenericClient,
    state: &ItemState,
    now: Timestamp,
) -> anyhow::Result<Vec<Notification>> {
    let item = state.id.as_str();
    let round = state.round as i32;
    let schedule: i64 = client
        .query_one(
            "select coalesce(max(seq), 0)::bigint from auction_changes
             where item_id = $1 and round = $2 and type = 'auction_extended'",
            &[&item, &round],
        )
        .await
        .context("reading the round's schedule")?
        .get(0);
    let users = client
        .query(
            "select user_id from bids where item_id = $1 and round = $2
             union select user_id from watchlist where item_id = $1",
            &[&item, &round],
        )
        .await
        .context("reading bidders and watchers")?;
    let source = format!("{item}:{round}:{schedule}");
    let data = notifications::ending_soon_data(&state.id, state.end);
    let notes: Vec<NewNotification> = users
        .iter()
        .filter_map(|row| UserId::parse(row.get::<_, String>(0)).ok())
        .map(|user| NewNotification {
            user_id: user,
            kind: notifications::Kind::EndingSoon,
            item_id: state.id.clone(),
            source: source.clone(),
            data: data.clone(),
            created_at: now.to_datetime(),
        })
        .collect();
    insert(client, &notes).await
}
