//! The gateway's black-box tests, compiled into one binary. Every test starts the real
//! service in-process on port 0 against real Redis and NATS (the shared instances, isolated by
//! unique key and subject prefixes, or throwaway ones for tests that kill a dependency).

mod access;
mod accounts_helpers;
mod accounts_http;
mod admin;
mod auth;
mod bad_input;
mod bids;
mod cluster;
mod contention;
mod eviction;
mod helpers;
mod items;
mod lifecycle;
mod limits;
mod listing;
mod live;
mod openapi;
mod outages;
mod outbox;
mod prefilter;
mod rules;
mod rules_model;
mod strategy;
mod supervision;
mod tls;
mod web_app;
