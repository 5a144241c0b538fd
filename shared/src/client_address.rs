//! Who a request comes from, for the per-address limits of every service (the gateway's request
//! limits, the broadcast service's sockets per address): the peer address, or, when the peer is
//! one of our proxies, the address the proxies say they forwarded for.
//!
//! `X-Forwarded-For` is written by whoever sends it, so it is believed only as far as trusted
//! hands wrote it: walking it from the right (each proxy appends the address it received from),
//! every entry that is a trusted proxy (`TRUSTED_PROXIES`, CIDR networks) is skipped, and the
//! first one that is not is the client. A client can prepend whatever it likes and still be
//! counted as itself. With no trusted proxies (the default) the header is ignored.
//!
//! Addresses are grouped into the units one party controls: an IPv4 address, or an IPv6 /64
//! (one customer's network; an attacker gets 2^64 addresses in it for free).

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The proxy networks whose `X-Forwarded-For` entries are believed (`TRUSTED_PROXIES`: CIDR
/// networks or single addresses, comma-separated; empty for none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let networks = text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_network)
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }
}

/// One entry: a CIDR network (host bits dropped), or one address.
fn parse_network(entry: &str) -> Result<IpNet, String> {
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("`{entry}` is neither a CIDR network (10.0.0.0/8) nor an address"))
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let networks: Vec<String> = self.networks.iter().map(IpNet::to_string).collect();
        f.write_str(&networks.join(","))
    }
}

impl TrustedProxies {
    fn trusts(&self, addr: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(&addr))
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For` values (each
    /// header line in order; a line may list several entries).
    ///
    /// An entry that is not an address (garbage, `unknown`) ends the walk: the client is then
    /// the last trusted hop, i.e. the proxy that passed the garbage on, so a broken chain never
    /// lets a client choose who it is counted as.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        let mut client = peer;
        for entry in entries.into_iter().rev() {
            let Some(addr) = parse_entry(entry) else {
                break;
            };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as some proxies write it.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|addr| addr.to_canonical())
}

/// The unit one party controls, as a limit key: `4:<address>` or `6:<first 64 bits>::/64`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

impl ClientKey {
    pub fn of(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => Self(format!("4:{v4}")),
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                Self(format!("6:{a:x}:{b:x}:{c:x}:{d:x}::/64"))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ClientKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(networks: &[&str]) -> TrustedProxies {
        networks.join(",").parse().unwrap()
    }

    /// Asserts that `trusted` sees `expected` as the client behind `peer` given these
    /// `X-Forwarded-For` lines.
    #[track_caller]
    fn assert_client(trusted: &TrustedProxies, peer: &str, forwarded_for: &[&str], expected: &str) {
        assert_eq!(
            trusted.client(ip(peer), forwarded_for.iter().copied()),
            ip(expected)
        );
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_client(&none, "198.51.100.7", &["203.0.113.1"], "198.51.100.7");
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_client(&trusted, "198.51.100.7", &["203.0.113.1"], "198.51.100.7");
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_entry_it_appended() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_client(&trusted, "10.1.2.3", &["203.0.113.1"], "203.0.113.1");
    }

    #[test]
    fn entries_a_client_prepends_are_not_believed() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let spoofed = ["1.1.1.1, 8.8.8.8, 203.0.113.1"];
        assert_client(&trusted, "10.1.2.3", &spoofed, "203.0.113.1");
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_across_header_lines() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.0.1"]);
        let lines = ["1.1.1.1, 203.0.113.1", "192.168.0.1, 10.9.9.9"];
        assert_client(&trusted, "10.1.2.3", &lines, "203.0.113.1");
    }

    #[test]
    fn garbage_in_the_chain_stops_at_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_client(&trusted, "10.1.2.3", &["203.0.113.1, unknown"], "10.1.2.3");
        assert_client(&trusted, "10.1.2.3", &["unknown, 10.4.4.4"], "10.4.4.4");
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let trusted = proxies(&["127.0.0.1"]);
        assert_client(&trusted, "127.0.0.1", &[], "127.0.0.1");
    }

    #[test]
    fn entries_with_ports_and_mapped_addresses_are_understood() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_client(&trusted, "10.1.2.3", &["203.0.113.1:4711"], "203.0.113.1");
        assert_client(&trusted, "10.1.2.3", &["[2001:db8::1]:443"], "2001:db8::1");
        assert_client(
            &trusted,
            "::ffff:10.1.2.3",
            &["::ffff:203.0.113.1"],
            "203.0.113.1",
        );
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_key() {
        let a = ClientKey::of(ip("2001:db8:1:2::1"));
        let b = ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let other = ClientKey::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.as_str(), "6:2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_addresses_are_keyed_one_by_one_also_when_mapped() {
        assert_eq!(ClientKey::of(ip("203.0.113.1")).as_str(), "4:203.0.113.1");
        assert_eq!(
            ClientKey::of(ip("::ffff:203.0.113.1")).as_str(),
            "4:203.0.113.1"
        );
        assert_ne!(
            ClientKey::of(ip("203.0.113.1")),
            ClientKey::of(ip("203.0.113.2"))
        );
    }

    #[test]
    fn trusted_proxies_are_networks_or_addresses_separated_by_commas() {
        let parsed: TrustedProxies = " 10.1.2.3/8, ::1 ,192.168.0.1".parse().unwrap();
        assert_eq!(parsed.to_string(), "10.0.0.0/8,::1/128,192.168.0.1/32");
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        let error = "10.0.0.0/8,proxy.internal"
            .parse::<TrustedProxies>()
            .unwrap_err();
        assert!(error.contains("proxy.internal"), "{error}");
    }
}
