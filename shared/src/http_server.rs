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
//! * a request's body must have arrived within `REQUEST_BODY_TIMEOUT_MS` (10 s) of its headers:
//!   a client that sends the headers and then trickles (or never sends) the body is answered
//!   408 `request_timeout` with the standard error body ([`crate::error_body`]) and the
//!   connection is closed. The handler never gets the body, so it changed nothing (every
//!   handler reads its body, through an extractor, before it acts). Only the body read has a
//!   deadline: a request without a body (every `GET`, a WebSocket upgrade) is not touched,
//!   a response may take as long as its handler does, and an upgraded socket is no longer
//!   HTTP;
//! * at most `MAX_HTTP_CONNECTIONS` (10,000) HTTP connections are served at once; past that
//!   the loop stops accepting (new clients wait in the kernel's backlog) until one ends. A
//!   WebSocket leaves this count once upgraded (the broadcast service caps those itself).

use crate::service_options::HttpServerOptions;
use crate::supervisor::Supervisor;
use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (out of file descriptors, say) before trying again, so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The `error` code of the 408 answered to a body that did not arrive in time (the gateway's
/// `ErrorCode::RequestTimeout` is the same string, for its OpenAPI document).
pub const REQUEST_TIMEOUT_CODE: &str = "request_timeout";

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
    let limits = ConnectionLimits {
        header_read: options.header_read_timeout(),
        body_read: options.request_body_timeout(),
    };
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
        let connection = serve_connection(tcp, peer, router.clone(), shutdown.clone(), limits);
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

/// The per-connection deadlines.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    header_read: Duration,
    body_read: Duration,
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    limits: ConnectionLimits,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        handle(router.clone(), request, limits.body_read)
    });
    let mut connection = pin!(
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
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

/// Serves one request. A request with a body gets it through a [`DeadlineBody`]: if the body
/// has not arrived `body_read` after the headers, reading it fails, the handler answers with
/// whatever rejection its extractor gives, and that answer is replaced by the one 408 (so the
/// answer is the same whichever extractor or service read the body).
async fn handle(
    mut router: Router,
    request: hyper::Request<Incoming>,
    body_read: Duration,
) -> Result<Response, std::convert::Infallible> {
    if request.body().is_end_stream() {
        // Nothing to wait for (a `GET`, a WebSocket upgrade, `Content-Length: 0`): no timer.
        // A `Router` is always ready, so calling it without `poll_ready` is fine.
        return tower::Service::call(&mut router, request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| DeadlineBody::new(body, body_read, Arc::clone(&expired)));
    let response = tower::Service::call(&mut router, request).await?;
    if expired.load(Ordering::Acquire) {
        return Ok(body_timeout_response(body_read));
    }
    Ok(response)
}

/// The 408 of a body that did not arrive within `limit`: the standard error body, and
/// `Connection: close` (the rest of the body may still come, and would be read as the next
/// request).
fn body_timeout_response(limit: Duration) -> Response {
    let mut response = crate::error_body::response(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT_CODE,
        &format!(
            "the request body did not arrive within {} ms of its headers",
            limit.as_millis()
        ),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The error a [`DeadlineBody`] fails with once its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(Duration);

/// A request body that must be complete by a deadline (set when the headers were read): a
/// frame that is ready is always passed on, but once the deadline has passed with the body
/// still incomplete, reading fails with [`BodyTimedOut`] and `expired` is set.
struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    expired: Arc<AtomicBool>,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, limit: Duration, expired: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
            expired,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.store(true, Ordering::Release);
                Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
            request_body_timeout_ms: 60_000,
            max_http_connections,
        }
    }

    /// Serves a one-route router with `options`; returns its address and the stop token.
    async fn server(options: HttpServerOptions) -> (SocketAddr, CancellationToken) {
        server_with(options, Router::new().route("/", get(|| async { "ok" }))).await
    }

    /// Serves `router` with `options`; returns its address and the stop token.
    async fn server_with(
        options: HttpServerOptions,
        router: Router,
    ) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
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

    fn body_options(request_body_timeout_ms: u64) -> HttpServerOptions {
        HttpServerOptions {
            request_body_timeout_ms,
            ..options(60_000, 100)
        }
    }

    /// A router whose `POST /` reads its body and counts the bodies it got in `got`; `GET
    /// /slow` answers three chunks 300 ms apart; `GET /upgrade` switches protocols and echoes
    /// one line back after 900 ms.
    fn body_router(got: Arc<std::sync::atomic::AtomicUsize>) -> Router {
        use axum::body::Body as AxumBody;
        use axum::extract::Request;
        Router::new()
            .route(
                "/",
                axum::routing::post(move |body: Bytes| async move {
                    got.fetch_add(1, Ordering::SeqCst);
                    format!("got {} bytes", body.len())
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    let chunks = futures::stream::unfold(0, |n| async move {
                        if n == 3 {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Some((
                            Ok::<_, std::io::Error>(Bytes::from(format!("chunk{n};"))),
                            n + 1,
                        ))
                    });
                    AxumBody::from_stream(chunks)
                }),
            )
            .route(
                "/upgrade",
                get(|mut request: Request| async move {
                    let upgrade = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let mut io = TokioIo::new(upgrade.await.expect("upgraded"));
                        let mut line = [0u8; 5];
                        tokio::time::sleep(Duration::from_millis(900)).await;
                        io.read_exact(&mut line).await.expect("a line");
                        io.write_all(&line).await.expect("echoed");
                    });
                    Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header(header::CONNECTION, "upgrade")
                        .header(header::UPGRADE, "echo")
                        .body(AxumBody::empty())
                        .unwrap()
                }),
            )
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_a_408_and_never_reaches_the_handler() {
        let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (addr, stop) = server_with(body_options(300), body_router(Arc::clone(&got))).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"half\":")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let answer = closed_within(&mut slow, Duration::from_secs(5))
            .await
            .expect("answered and closed");
        let waited = started.elapsed();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap();
        assert_eq!(body["error"], REQUEST_TIMEOUT_CODE, "{text}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("300 ms"),
            "{text}"
        );
        assert!(
            waited >= Duration::from_millis(250),
            "not before the deadline: {waited:?}"
        );
        assert!(waited < Duration::from_secs(3), "soon after it: {waited:?}");
        assert_eq!(
            got.load(Ordering::SeqCst),
            0,
            "the handler never got a body"
        );

        // A body that never starts is the same 408.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        silent
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let answer = closed_within(&mut silent, Duration::from_secs(5))
            .await
            .expect("answered and closed");
        assert!(
            answer.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        assert_eq!(got.load(Ordering::SeqCst), 0);
        stop.cancel();
    }

    #[tokio::test]
    async fn a_body_that_arrives_slowly_but_in_time_is_served() {
        let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (addr, stop) = server_with(body_options(2_000), body_router(Arc::clone(&got))).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n12345")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        client.write_all(b"67890").await.unwrap();
        let answer = closed_within(&mut client, Duration::from_secs(5))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("got 10 bytes"), "{text}");
        assert_eq!(got.load(Ordering::SeqCst), 1);
        stop.cancel();
    }

    #[tokio::test]
    async fn long_responses_and_upgraded_connections_outlive_the_body_deadline() {
        let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // 200 ms: the response below takes 900 ms, the upgraded socket lives longer.
        let (addr, stop) = server_with(body_options(200), body_router(got)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = closed_within(&mut client, Duration::from_secs(5))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.contains("chunk0;") && text.contains("chunk2;"),
            "whole: {text}"
        );

        let mut upgraded = TcpStream::connect(addr).await.unwrap();
        upgraded
            .write_all(
                b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            upgraded.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        // Well past the deadline, the socket still carries bytes both ways.
        tokio::time::sleep(Duration::from_millis(500)).await;
        upgraded.write_all(b"hello").await.unwrap();
        let mut echo = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), upgraded.read_exact(&mut echo))
            .await
            .expect("echoed in time")
            .expect("echoed");
        assert_eq!(&echo, b"hello");
        stop.cancel();
    }
}
