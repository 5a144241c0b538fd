-- The archive and read model. Owned by archival-worker; api-gateway only reads it.

-- Every accepted bid, exactly once (event_id is the idempotency key of the whole pipeline).
create table bids (
    event_id       uuid        primary key,
    item_id        text        not null,
    round          integer     not null,
    seq            bigint      not null check (seq > 0),
    bid_id         text        not null,
    user_id        text        not null,
    amount_cents   bigint      not null check (amount_cents > 0),
    previous_cents bigint      not null check (previous_cents >= 0),
    placed_at      timestamptz not null,
    end_time       timestamptz not null,
    extended       boolean     not null,
    archived_at    timestamptz not null default now()
);
-- Item history, newest first, paged by seq.
create index bids_item_seq on bids (item_id, seq desc);
-- A bidder's history, newest first.
create index bids_user_time on bids (user_id, placed_at desc, event_id);

-- Projection of each auction's state and result.
create table auctions (
    item_id           text        primary key,
    round             integer     not null,
    status            text        not null default 'active',
    current_cents     bigint      not null default 0,
    highest_bidder    text,
    bid_count         bigint      not null default 0,
    last_seq          bigint      not null default 0,
    end_time          timestamptz,
    winner_id         text,
    final_price_cents bigint,
    reserve_met       boolean,
    closed_at         timestamptz,
    updated_at        timestamptz not null default now()
);

-- Every auction_closed event, exactly once.
create table auction_results (
    event_id          uuid        primary key,
    item_id           text        not null,
    round             integer     not null,
    seq               bigint      not null,
    winner_id         text,
    final_price_cents bigint,
    reserve_met       boolean     not null,
    closed_at         timestamptz not null
);

-- A bidder's highest bid per item: the base of "items bid on" and "total committed".
create table user_items (
    user_id       text   not null,
    item_id       text   not null,
    highest_cents bigint not null,
    primary key (user_id, item_id)
);

-- Counters that are sums of events (incremented only by rows actually inserted).
create table user_stats (
    user_id         text        primary key,
    bids_placed     bigint      not null default 0,
    items_won       bigint      not null default 0,
    total_won_cents bigint      not null default 0,
    updated_at      timestamptz not null default now()
);

-- Messages that could not be decoded or broke the schema; acked so they never block the stream.
create table dead_letters (
    id              bigserial   primary key,
    stream_sequence bigint      not null unique,
    subject         text        not null,
    payload         bytea       not null,
    reason          text        not null,
    received_at     timestamptz not null default now()
);
