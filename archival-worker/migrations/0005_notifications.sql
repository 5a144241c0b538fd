-- A user's private notifications (outbid, won, lost, ending_soon) and watchlist.
--
-- Both live in the read model, beside the bids they are derived from, because the worker
-- derives notifications in the transaction that stores the events and must read the watchers
-- of an item in the same database; the accounts schema exists only with the gateway's own
-- accounts (an external OIDC issuer keeps none), and a watchlist must work with either.
-- The gateway writes exactly two things here, both a signed-in user's own actions: watchlist
-- rows and `notifications.read_at`. Everything else is the worker's.

-- Items a user watches (PUT/DELETE /api/v1/me/watchlist/{item_id}).
create table watchlist (
    user_id    text        not null,
    item_id    text        not null,
    created_at timestamptz not null default now(),
    primary key (user_id, item_id)
);
-- The watchers of an item, for ending_soon.
create index watchlist_item on watchlist (item_id);

-- Every notification once. `source` is what produced it: the event id of the bid or close
-- for outbid, won and lost; `<item>:<round>:<schedule seq>` for ending_soon. Unique per
-- (source, user, type), so a redelivered batch or a second ending_soon pass inserts nothing.
create table notifications (
    id         bigserial   primary key,
    user_id    text        not null,
    type       text        not null check (type in ('outbid', 'won', 'lost', 'ending_soon')),
    item_id    text        not null,
    source     text        not null,
    -- The frame's fields (without `notification_id` and `timestamp`).
    data       jsonb       not null,
    created_at timestamptz not null,
    read_at    timestamptz,
    unique (source, user_id, type)
);
-- A user's notifications, newest first, paged by id.
create index notifications_user on notifications (user_id, id desc);
-- Their unread ones, for unread_count and ?unread=true.
create index notifications_unread on notifications (user_id, id desc) where read_at is null;
