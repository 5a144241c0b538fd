//! Connection admission: at most so many open sockets per client address and in total.
//!
//! A client address is the unit one party controls (`shared::client_address`: an IPv4 address
//! or an IPv6 /64, behind `TRUSTED_PROXIES` the client they forwarded for), the same rule the
//! gateway's limits use. The per-address default (`MAX_CONNECTIONS_PER_IP`, 5,000) is generous
//! on purpose: a carrier NAT, an office or a load test puts thousands of real viewers behind
//! one address, and the total cap (`MAX_CONNECTIONS`) is what protects the instance.
//!
//! A permit is taken before the upgrade and released when the connection's task drops it, so
//! the counts are exact however a connection ends. A refused client still gets a WebSocket
//! close frame with code 1013 ("try again later") and a reason, which browsers can show,
//! rather than a bare HTTP error they cannot read.

use shared::client_address::ClientKey;
use shared::mutex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyFromAddress,
    TooManyConnections,
}

impl Refusal {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooManyFromAddress => "per_ip",
            Self::TooManyConnections => "total",
        }
    }

    /// Close-frame reason (at most 123 bytes).
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooManyFromAddress => "too many connections from your address",
            Self::TooManyConnections => "server is full",
        }
    }
}

#[derive(Default)]
struct Counts {
    per_ip: HashMap<ClientKey, usize>,
    total: usize,
}

pub struct ConnectionLimits {
    max_per_ip: usize,
    max_total: usize,
    /// A std mutex: a map update per connect and disconnect, never held across `.await`.
    counts: Mutex<Counts>,
}

/// An admitted connection; dropping it frees its place.
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    client: ClientKey,
}

impl ConnectionLimits {
    pub fn new(max_per_ip: usize, max_total: usize) -> Self {
        Self {
            max_per_ip,
            max_total,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        mutex::lock(&self.counts)
    }

    /// Admits a connection from `client` if both limits allow it.
    ///
    /// # Errors
    /// The limit that refuses it.
    pub fn try_acquire(self: &Arc<Self>, client: ClientKey) -> Result<ConnectionPermit, Refusal> {
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return Err(Refusal::TooManyConnections);
        }
        let from_ip = counts.per_ip.entry(client.clone()).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(ConnectionPermit {
            limits: Arc::clone(self),
            client,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::IpAddr;

    fn ip(last: u8) -> ClientKey {
        ClientKey::of(IpAddr::from([10, 0, 0, last]))
    }

    fn v6(text: &str) -> ClientKey {
        ClientKey::of(text.parse().unwrap())
    }

    #[test]
    fn one_ipv6_64_counts_as_one_address() {
        let limits = Arc::new(ConnectionLimits::new(2, 100));
        let _a = limits.try_acquire(v6("2001:db8:1:2::1")).unwrap();
        let _b = limits.try_acquire(v6("2001:db8:1:2::2")).unwrap();
        assert_eq!(
            limits.try_acquire(v6("2001:db8:1:2::ffff")).err(),
            Some(Refusal::TooManyFromAddress),
            "another address of the same /64 is the same party"
        );
        assert!(limits.try_acquire(v6("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn one_address_gets_at_most_its_share() {
        let limits = Arc::new(ConnectionLimits::new(2, 100));
        let a = limits.try_acquire(ip(1)).unwrap();
        let _b = limits.try_acquire(ip(1)).unwrap();
        assert_eq!(
            limits.try_acquire(ip(1)).err(),
            Some(Refusal::TooManyFromAddress)
        );
        assert!(limits.try_acquire(ip(2)).is_ok(), "others are not affected");
        drop(a);
        assert!(
            limits.try_acquire(ip(1)).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn the_total_limit_applies_across_addresses() {
        let limits = Arc::new(ConnectionLimits::new(10, 2));
        let _a = limits.try_acquire(ip(1)).unwrap();
        let _b = limits.try_acquire(ip(2)).unwrap();
        assert_eq!(
            limits.try_acquire(ip(3)).err(),
            Some(Refusal::TooManyConnections)
        );
    }

    #[test]
    fn dropping_every_permit_forgets_the_address() {
        let limits = Arc::new(ConnectionLimits::new(2, 2));
        drop(limits.try_acquire(ip(1)).unwrap());
        let counts = limits.counts();
        assert!(counts.per_ip.is_empty());
        assert_eq!(counts.total, 0);
    }
}
