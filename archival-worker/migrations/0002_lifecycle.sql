-- Auction lifecycle: cancellations, extensions and relisted rounds.

alter table auctions add column cancel_reason text;
alter table auction_results add column cancelled boolean not null default false;
alter table auction_results add column reason text;

-- Every auction_extended and auction_relisted event, exactly once.
create table auction_changes (
    event_id    uuid        primary key,
    type        text        not null,
    item_id     text        not null,
    round       integer     not null,
    seq         bigint      not null,
    end_time    timestamptz not null,
    occurred_at timestamptz not null
);
