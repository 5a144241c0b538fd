//! The broadcast service's black-box tests, compiled into one binary. Every test starts the
//! real service in-process on port 0 against real Redis and NATS (the shared instances,
//! isolated by unique key and subject prefixes, or throwaway ones for tests that kill a
//! dependency), produces events through a real in-process gateway, and watches them with
//! real WebSocket clients.

mod auction_events;
mod bad_input;
mod fan_out;
mod fuzz;
mod helpers;
mod lifecycle;
mod ordering;
mod outages;
mod presence;
mod proxy_privacy;
mod sign_in;
mod slow_viewer;
mod subscriptions;
mod supervision;
mod tokens;
