//! The HTTP side of the service skeleton: binding the listener, the port it got, and, for the
//! services served by `axum::serve` (the gateway and the worker; the broadcast service runs
//! its own accept loop so upgraded sockets stay reachable), the serve loop that ties the
//! server's life to the service's supervised tasks.

use crate::supervisor::Supervisor;
use anyhow::Context;
use axum::Router;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The port `listener` is bound to (the one the OS picked for port 0); 0 if the socket cannot
/// say, which only a closed socket does.
pub fn port(listener: &TcpListener) -> u16 {
    listener.local_addr().map(|a| a.port()).unwrap_or(0)
}

/// A service's bound listener, with what serving it needs: the service's name for the logs
/// and how long stopping waits for its supervised tasks.
pub struct HttpListener {
    listener: TcpListener,
    service: &'static str,
    grace: Duration,
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
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Ok(Self {
            listener,
            service,
            grace,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        port(&self.listener)
    }

    /// Serves `router` until `shutdown` is cancelled or a critical task of `supervisor`
    /// stopped; then stops accepting, finishes the requests in flight, and only then stops the
    /// supervised tasks (waiting up to the grace), so work a request handed to a task is not
    /// lost.
    ///
    /// # Errors
    /// When the server fails, or a critical task stopped the service (the error names it).
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
        } = self;
        tracing::info!(service, addr = %listener.local_addr()?, "listening");
        let task_failed = supervisor.failed();
        // Every request carries its peer address (`ConnectInfo<SocketAddr>`), which the
        // gateway's per-address limits start from.
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // Both branches only wait for a token; the one that loses is simply dropped.
                tokio::select! {
                    () = shutdown.cancelled_owned() => {}
                    () = task_failed => {}
                }
            })
            .await
            .context("HTTP server failed");
        if supervisor.stop(grace).await.is_err() {
            tracing::warn!(service, "background tasks did not finish within {grace:?}");
        }
        tracing::info!(service, "stopped");
        served?;
        match supervisor.failure() {
            Some(stopped) => Err(anyhow::Error::new(stopped).context(format!("{service} stopped"))),
            None => Ok(()),
        }
    }
}
