//! The shutdown trigger every service's `main` installs: SIGINT (Ctrl-C) or SIGTERM (what
//! container runtimes send) cancels one token that every long-lived task watches.

use tokio_util::sync::CancellationToken;

/// A token cancelled on SIGINT or SIGTERM, for `main` to hand to the service's `run`. The
/// listener is a task for the rest of the process: there is exactly one, and nothing outlives
/// it. Before it is installed a signal ends the process at once, which is right while nothing
/// has started serving yet.
pub fn signal_token() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn(cancel_on_signal(token.clone()));
    token
}

/// Waits for SIGINT or SIGTERM, then cancels `token`.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
    token.cancel();
}
