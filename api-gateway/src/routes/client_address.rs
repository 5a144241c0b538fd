//! The `ClientAddress` extractor: whom a request counts against for the per-address limits
//! (`shared::client_address` has the rule and why).

use super::AppState;
use crate::rate_limit::ClientKey;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The client's address unit (an IPv4 address or an IPv6 /64).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub ClientKey);

impl ClientAddress {
    /// The client of a request with these parts.
    pub fn of(parts: &Parts, ctx: &AppState) -> Self {
        // The server adds the peer to every request (`into_make_service_with_connect_info`);
        // a router driven without a server (nothing in this crate does) counts as one client.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Self(ClientKey::of(ctx.proxies.client(peer, forwarded)))
    }
}

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, Infallible> {
        Ok(Self::of(parts, ctx))
    }
}
