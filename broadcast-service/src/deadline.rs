//! Optional deadlines as `select!` branches, for the loops that wait on one only sometimes (a
//! room's reorder hold, a session's stalled write or snapshot retry).

use tokio::time::Instant;

/// Sleeps until `deadline`; pending forever without one. The caller still guards the branch
/// with `if deadline.is_some()`, so a missing deadline costs no timer.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
