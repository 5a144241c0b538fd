-- Suspensions an admin sets (PUT /api/v1/admin/users/{id}/suspension), and what every gateway
-- needs to learn them without querying PostgreSQL per bid.
--
-- `bidding_suspended_at` and `selling_suspended_at` (0001) say what is suspended since when.
-- `suspension_reason` is the admin's note, shown to the account and to admins.
-- `suspension_changed_at` is set whenever an admin changes an account's suspensions (lifting
-- included): each gateway keeps the suspended accounts in memory, loaded at start from the
-- partial index below, and every SUSPENSION_POLL_MS reads only the rows changed since the newest
-- change it has seen (minus a margin for transactions that committed out of order), through
-- the other index.
alter table accounts.users
    add column suspension_reason     text check (length(suspension_reason) between 1 and 500),
    add column suspension_changed_at timestamptz;

create index users_suspended on accounts.users (id)
    where bidding_suspended_at is not null or selling_suspended_at is not null;
create index users_suspension_changed on accounts.users (suspension_changed_at)
    where suspension_changed_at is not null;
