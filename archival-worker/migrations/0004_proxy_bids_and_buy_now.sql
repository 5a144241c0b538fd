-- Issue 16: a bid the system placed for a bidder's maximum (proxy bidding) is archived like
-- any other, flagged `automatic`; the maximum itself is never in an event, so never here.
-- An auction ended by buy it now says so in its result.

alter table bids add column automatic boolean not null default false;
alter table auction_results add column buy_now boolean not null default false;
