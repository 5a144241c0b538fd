//! One NATS connection policy for every service.
//!
//! Services must start, and keep serving what they can, while NATS is down: the client
//! connects in the background, reconnects forever, and retries quickly (50 ms doubling to 1 s)
//! so a restarted NATS is back in use within about a second.

use std::time::Duration;

/// Options with the shared policy; callers add their own callbacks and timeouts.
pub fn connect_options(name: impl ToString) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(reconnect_delay)
}

/// Delay before reconnect attempt `attempts`: 50 ms doubling, at most 1 s.
fn reconnect_delay(attempts: usize) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempts.min(5))).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_start_fast_and_cap_at_one_second() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(50));
        assert_eq!(reconnect_delay(2), Duration::from_millis(200));
        assert_eq!(reconnect_delay(50), Duration::from_secs(1));
    }
}
