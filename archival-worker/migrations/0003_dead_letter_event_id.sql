-- Dead letters name the event they held, when it has one: the relay's `Nats-Msg-Id` header or
-- the payload's `event_id`. Events PostgreSQL refused (a NUL in a text, a broken check) land
-- here too, isolated from the batch that carried them, with the refusal as their reason.

alter table dead_letters add column event_id uuid;
create index dead_letters_event_id on dead_letters (event_id) where event_id is not null;
