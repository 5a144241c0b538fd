//! Everything two or more auction services must agree on.
//!
//! * [`access_token`]: access-token verification every service shares: the claims, the checks,
//!   trusted key sets (local or a JWKS fetched and cached) and [`access_token::TokenVerifier`].
//! * [`client_address`]: whom a request counts against for per-address limits: the peer, or
//!   the client a trusted proxy (`TRUSTED_PROXIES`) forwarded for; IPv6 grouped by /64.
//! * [`ids`]: validated identifiers ([`ItemId`], [`UserId`], [`IdempotencyKey`]) that are safe
//!   as NATS subject tokens and Redis key parts.
//! * [`money`]: [`Cents`], money as integer minor units, parsed from decimal literals exactly.
//! * [`increments`]: bid increment schedules ([`IncrementTable`]), flat or tiered by price.
//! * [`event`]: the event schema published live, archived and stored ([`Event`]).
//! * [`event_fields`]: the same event as the flat field list the gateway's scripts write to
//!   the outbox and return ([`Event::to_fields`], [`Event::from_fields`]).
//! * [`timestamp`]: microsecond UTC timestamps rendered as RFC 3339.
//! * [`nats`]: the NATS connection policy every service uses, and the archive stream's settings.
//! * [`redis_connection`]: the Redis client (`redis://`, `rediss://`, one server or a Redis
//!   Cluster), the deadline-bound connection, its one timeout rule and the one classification
//!   of a failed call, and `--durable-accept` (a write's reply after a replica has it).
//! * [`redis_reads`]: reads of the Redis layout that more than one service makes.
//! * [`postgres_pool`]: the PostgreSQL pool builder, the query deadline and the one rule that
//!   tells an outage from a bug.
//! * [`postgres_tls`]: `DATABASE_URL`'s `sslmode` and `sslrootcert` as libpq means them.
//! * [`tls`]: what TLS connections trust (a CA file, the system roots) and the crypto provider.
//! * [`service_options`]: the command-line options the services share, flattened into each
//!   service's `Config`.
//! * [`health`]: the `/health`, `/ready` and `/metrics` routes.
//! * [`http_server`]: binding, and the one accept loop (header-read timeout, connection cap)
//!   tied to the supervised tasks.
//! * [`error_body`]: the JSON error body, and the 404 and 405 every router answers.
//! * [`metrics`]: the per-application Prometheus registry and its text.
//! * [`mutex`]: locking a std mutex whose data a panicking holder cannot corrupt.
//! * [`supervisor`]: ownership of core background tasks: restart or stop, never unnoticed.
//! * [`subjects`]: NATS subject and stream names.
//! * [`redact`]: credential-free URLs for logs.
//! * [`redis_keys`]: the cluster-ready Redis key layout (hash tags, outbox shards).
//! * [`item_state`]: an item's current state as stored in its Redis hash.
//! * [`migrations`]: versioned SQL migrations under an advisory lock, for each schema's owner.
//! * [`shutdown`]: SIGINT/SIGTERM to a cancellation token.
//! * [`telemetry`]: one tracing subscriber setup, JSON or pretty.
//! * [`text`]: validated free text ([`text::ItemName`], [`text::ItemDescription`],
//!   [`text::Reason`]): sizes, and no control characters.

pub mod access_token;
pub mod client_address;
pub mod error_body;
pub mod event;
pub mod event_fields;
pub mod health;
pub mod http_server;
pub mod ids;
pub mod increments;
pub mod item_state;
pub mod metrics;
pub mod migrations;
pub mod money;
pub mod mutex;
pub mod nats;
pub mod postgres_pool;
pub mod postgres_tls;
pub mod redact;
pub mod redis_connection;
pub mod redis_keys;
pub mod redis_reads;
pub mod service_options;
pub mod shutdown;
pub mod subjects;
pub mod supervisor;
pub mod telemetry;
pub mod text;
pub mod timestamp;
pub mod tls;

pub use event::{AuctionClosed, AuctionExtended, AuctionRelisted, BidPlaced, Event, EventId};
pub use event_fields::{FieldError, FieldList};
pub use ids::{IdError, IdempotencyKey, ItemId, UserId};
pub use increments::{IncrementError, IncrementRow, IncrementTable};
pub use item_state::{ItemState, ItemStatus};
pub use money::{Cents, MoneyError};
pub use timestamp::Timestamp;
