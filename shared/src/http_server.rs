//! The HTTP side of the service skeleton: binding the listener, the port it got, and the one
//! accept loop every service serves its router with (HTTP/1 from hyper, routes from axum).
//!
//! `axum::serve` would do for the gateway and the worker, but it has neither a header-read
//! timeout nor a connection cap, and it wraps each connection in adapters an upgraded
//! WebSocket cannot be unwrapped from (the broadcast service needs the `TcpStream` back after
//! the upgrade, as `TokioIo<TcpStream>`). So every service uses [`serve_connections`]:
//!
//! * a client has `HEADER_READ_TIMEOUT_MS` (10 s) to send a request's headers, counted from
//!   the moment its connection is accepted, so a slow or silent client cannot hold a socket;
//! * at most `MAX_HTTP_CONNECTIONS` (10,000) HTTP connections are served at once; past that
//!   the loop stops accepting (new clients wait in the kernel's backlog) until one ends. A
//!   WebSocket leaves this count once upgraded (the broadcast service caps those itself).

use crate::service_options::{positive_u32, positive_u64};
use crate::supervisor::Supervisor;
use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (out of file descriptors, say) before trying again, so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How the HTTP server treats slow and numerous clients; the same flags in every service.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpServerOptions {
    /// Time a client has to send a request's headers from when its connection is accepted
    /// (and, between requests on a kept-alive connection, from the previous response);
    /// slower clients are disconnected (milliseconds).
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = positive_u64())]
    pub header_read_timeout_ms: u64,

    /// HTTP connections served at once; past it new connections wait in the kernel's accept
    /// backlog until one ends (upgraded WebSockets do not count).
    #[arg(long, env = "MAX_HTTP_CONNECTIONS", default_value_t = 10_000, value_parser = positive_u32())]
    pub max_http_connections: u32,
}

impl HttpServerOptions {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
}

/// The port `listener` is bound to (the one the OS picked for port 0); 0 if the socket cannot
/// say, which only a closed socket does.
pub fn port(listener: &TcpListener) -> u16 {
    listener.local_addr().map(|a| a.port()).unwrap_or(0)
}

/// A service's bound listener, with what serving it needs: the service's name for the logs,
/// how long stopping waits for its supervised tasks, and the server's limits.
pub struct HttpListener {
    listener: TcpListener,
    service: &'static str,
    grace: Duration,
    options: HttpServerOptions,
}

impl HttpListener {
    /// Binds `addr` (port 0 asks the OS for a free port, as tests do).
    ///
    /// # Errors
    /// When the address cannot be bound; the message names it.
    pub async fn bind(
        service: &'static str,
        addr: SocketAddr,
        grace: Duration,
        options: HttpServerOptions,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Ok(Self {
            listener,
            service,
            grace,
            options,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        port(&self.listener)
    }

    /// Serves `router` until `shutdown` is cancelled or a critical task of `supervisor`
    /// stopped; then stops accepting, finishes the requests in flight (up to the grace), and
    /// only then stops the supervised tasks (waiting up to the grace), so work a request
    /// handed to a task is not lost.
    ///
    /// # Errors
    /// When a critical task stopped the service (the error names it).
    pub async fn serve(
        self,
        router: Router,
        shutdown: CancellationToken,
        supervisor: &Supervisor,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            service,
            grace,
            options,
        } = self;
        tracing::info!(service, addr = %listener.local_addr()?, "listening");
        let stop = shutdown.child_token();
        let task_failed = supervisor.failed();
        let stopper = tokio::spawn({
            let stop = stop.clone();
            async move {
                task_failed.await;
                stop.cancel();
            }
        });
        serve_connections(listener, router, stop, grace, &options).await;
        stopper.abort();
        if supervisor.stop(grace).await.is_err() {
            tracing::warn!(service, "background tasks did not finish within {grace:?}");
        }
        tracing::info!(service, "stopped");
        match supervisor.failure() {
            Some(stopped) => Err(anyhow::Error::new(stopped).context(format!("{service} stopped"))),
            None => Ok(()),
        }
    }
}

/// Serves `router` on `listener` until `shutdown`; then stops accepting, lets requests in
/// flight finish (at most `grace`) and returns. Every request carries its peer address
/// (`ConnectInfo<SocketAddr>`), which the per-address limits start from. Upgraded WebSockets
/// are not waited for here: they belong to their own tasks once the upgrade completes.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
    options: &HttpServerOptions,
) {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(options.max_http_connections as usize));
    let header_read_timeout = options.header_read_timeout();
    loop {
        // A slot first: at the cap, the loop waits here and clients wait in the backlog.
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Responses and frames are small and latency matters more than packet count.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let connection = serve_connection(
            tcp,
            peer,
            router.clone(),
            shutdown.clone(),
            header_read_timeout,
        );
        connections.spawn(async move {
            connection.await;
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections did not finish within {grace:?}");
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    header_read_timeout: Duration,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        // A `Router` is always ready, so calling it without `poll_ready` is fine.
        tower::Service::call(&mut router.clone(), request)
    });
    let mut connection = pin!(
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades()
    );
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            // Finish the request in flight, then close instead of keeping the connection alive.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn options(header_read_timeout_ms: u64, max_http_connections: u32) -> HttpServerOptions {
        HttpServerOptions {
            header_read_timeout_ms,
            max_http_connections,
        }
    }

    /// Serves a one-route router with `options`; returns its address and the stop token.
    async fn server(options: HttpServerOptions) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let router = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn({
            let stop = stop.clone();
            async move {
                serve_connections(listener, router, stop, Duration::from_secs(1), &options).await
            }
        });
        (addr, stop)
    }

    /// Reads until the server closes; `None` if it did not within `wait`.
    async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
        let mut got = Vec::new();
        tokio::time::timeout(wait, tcp.read_to_end(&mut got))
            .await
            .ok()
            .map(|_| got)
    }

    #[tokio::test]
    async fn a_client_that_sends_half_a_header_is_disconnected_after_the_timeout() {
        let (addr, stop) = server(options(300, 100)).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let answer = closed_within(&mut slow, Duration::from_secs(5)).await;
        assert!(answer.is_some(), "the slow client was disconnected");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "not before the timeout: {waited:?}"
        );
        assert!(waited < Duration::from_secs(3), "soon after it: {waited:?}");

        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed_within(&mut silent, Duration::from_secs(5))
                .await
                .is_some(),
            "a client that sends nothing is disconnected too"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn past_the_connection_cap_a_client_waits_until_a_connection_ends() {
        let (addr, stop) = server(options(60_000, 1)).await;
        let first = TcpStream::connect(addr).await.unwrap();
        // The kernel completes the handshake; the loop does not serve it yet.
        let mut second = TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        assert!(
            closed_within(&mut second, Duration::from_millis(500))
                .await
                .is_none(),
            "not served while the only slot is taken"
        );
        drop(first);
        let answer = closed_within(&mut second, Duration::from_secs(5))
            .await
            .expect("served once the slot is free");
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        stop.cancel();
    }
}
