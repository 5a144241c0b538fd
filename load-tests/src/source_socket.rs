//! Client sockets bound to a chosen 127.0.0.x source address.
//!
//! A source address has ~28,000 ephemeral ports, so the fan-out benchmarks spread their
//! client processes over several loopback addresses; both `viewers` and fanout-floor's readers
//! connect this way.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Connects to `server` from `source` (blocking, at most `timeout`). The socket closes with
/// a reset: a graceful close from this side would leave each source port in TIME_WAIT, and the
/// next level's `bind` to the same address then searched through them (a 50,000-socket level
/// took 19 s to connect instead of 1).
///
/// # Errors
/// When the socket cannot be made, bound or connected.
pub fn connect(source: IpAddr, server: SocketAddr, timeout: Duration) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&server.into(), timeout)?;
    socket.set_linger(Some(Duration::ZERO))?;
    Ok(socket)
}
