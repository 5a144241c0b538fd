//! TLS to Redis and PostgreSQL through `shared`'s one connection path, against real servers
//! started for each test with a throwaway CA (testkit): what connects, what is refused, and
//! that a refusal is an outage-like error with its reason, never a panic.

mod postgres;
mod redis;
