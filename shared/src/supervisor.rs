//! Owns a service's core background tasks, so none of them stops unnoticed.
//!
//! A detached `tokio::spawn` that returns or panics is a silent outage: the gateway keeps
//! accepting bids while nothing relays them. Here every core task is spawned with a name and
//! a fate, chosen by the service for each task:
//!
//! * **restart** ([`Supervisor::spawn_restarting`]): the task is built again from its factory
//!   after a pause that doubles up to a cap (mini-redis backs off its accept loop the same
//!   way), for tasks whose state lives outside them (Redis, JetStream, PostgreSQL);
//! * **stop the service** ([`Supervisor::spawn_critical`]): [`Supervisor::failed`] resolves,
//!   and the service's `run` shuts down and returns the [`TaskStopped`] error, for a task that
//!   cannot be rebuilt in place.
//!
//! Either way the end is logged with the task's name and the task is listed by
//! [`TaskHealth::down`] until it runs again, which `/ready` reports as a 503 naming it. Once the
//! supervisor is stopping, tasks are expected to end and nothing is reported.
//!
//! [`TaskFaults`] is the test hook: it makes a named task end as if it had returned, so tests
//! prove the above against the real services without sleeping or patching code.

use crate::mutex;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pauses between restarts: `first`, doubling up to `max`. A task that ran at least `max`
/// before it ended counts as having recovered, so its next end is retried after `first` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The pause after `pause` failed again: twice as long, at most `max`. Every retry loop of
    /// the services (restarts, the relay, the closer's shards, migrations, backfills) doubles
    /// this way.
    #[must_use]
    pub fn after(self, pause: Duration) -> Duration {
        (pause * 2).min(self.max)
    }
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEnd {
    /// Its future completed although nobody asked it to stop.
    Returned,
    /// It panicked, with this message.
    Panicked(String),
    /// A test stopped it through [`TaskFaults`].
    Injected,
}

impl fmt::Display for TaskEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskEnd::Returned => f.write_str("returned"),
            TaskEnd::Panicked(message) => write!(f, "panicked: {message}"),
            TaskEnd::Injected => f.write_str("stopped by an injected fault"),
        }
    }
}

/// A task whose end stopped the service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("core task {task} {end}")]
pub struct TaskStopped {
    pub task: String,
    pub end: TaskEnd,
}

/// Names of the core tasks not running right now (cheap to clone; read by `/ready`).
#[derive(Debug, Clone, Default)]
pub struct TaskHealth {
    /// A std mutex: every section is a set insert or copy, never held across an `.await`.
    down: Arc<Mutex<BTreeSet<String>>>,
}

impl TaskHealth {
    /// The tasks that are down, sorted by name.
    pub fn down(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn mark_down(&self, task: &str) {
        self.lock().insert(task.to_owned());
    }

    fn mark_up(&self, task: &str) {
        self.lock().remove(task);
    }

    /// Each section is one set call, so a poisoned lock is still consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        mutex::lock(&self.down)
    }
}

/// Test hook: ends named tasks on demand, as if they had returned. Inert unless a test calls
/// [`stop`](Self::stop); services carry it in their `Config` (not a flag) so tests reach it.
#[derive(Debug, Clone)]
pub struct TaskFaults {
    stopped: Arc<watch::Sender<BTreeSet<String>>>,
}

impl Default for TaskFaults {
    fn default() -> Self {
        Self {
            stopped: Arc::new(watch::channel(BTreeSet::new()).0),
        }
    }
}

impl TaskFaults {
    /// Ends `task` now, and again at once each time it is restarted, until [`resume`].
    ///
    /// [`resume`]: Self::resume
    pub fn stop(&self, task: &str) {
        self.stopped.send_modify(|stopped| {
            stopped.insert(task.to_owned());
        });
    }

    /// Lets `task` run normally from its next start.
    pub fn resume(&self, task: &str) {
        self.stopped.send_modify(|stopped| {
            stopped.remove(task);
        });
    }

    /// Resolves while `task` is to be stopped.
    fn stopped(&self, task: &str) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.subscribe();
        let task = task.to_owned();
        async move {
            if stopped.wait_for(|set| set.contains(&task)).await.is_err() {
                // The sender lives as long as any clone of these faults: never in practice.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The first critical task that stopped, and a token cancelled when it did.
#[derive(Clone, Default)]
struct Failure {
    signal: CancellationToken,
    first: Arc<Mutex<Option<TaskStopped>>>,
}

impl Failure {
    fn report(&self, stopped: TaskStopped) {
        mutex::lock(&self.first).get_or_insert(stopped);
        self.signal.cancel();
    }

    fn get(&self) -> Option<TaskStopped> {
        mutex::lock(&self.first).clone()
    }
}

/// Owner of a service's core background tasks.
pub struct Supervisor {
    tracker: TaskTracker,
    /// Cancelled by [`stop`](Self::stop): tasks watch it, and an end after it is expected.
    shutdown: CancellationToken,
    health: TaskHealth,
    failure: Failure,
    faults: TaskFaults,
}

/// What each supervised task's loop needs (cloned into it).
#[derive(Clone)]
struct Watch {
    name: String,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    health: TaskHealth,
    faults: TaskFaults,
}

impl Watch {
    /// Runs `task` once, in its own tokio task so a panic is caught, until it ends or the
    /// fault hook stops it.
    async fn attempt(&self, task: impl Future<Output = ()> + Send + 'static) -> TaskEnd {
        let injected = self.faults.stopped(&self.name);
        let handle = self.tracker.spawn(async move {
            // Neither branch is resumed after the other wins: the loser is dropped, which for
            // the service's task is the same as cancelling it at an `.await`.
            tokio::select! {
                () = task => TaskEnd::Returned,
                () = injected => TaskEnd::Injected,
            }
        });
        match handle.await {
            Ok(end) => end,
            Err(e) => match e.try_into_panic() {
                Ok(payload) => TaskEnd::Panicked(panic_message(payload.as_ref())),
                // Only a runtime shutting down cancels it.
                Err(_) => TaskEnd::Returned,
            },
        }
    }

    /// An end after shutdown began is expected; a panic is still a bug worth a line.
    fn ended_at_shutdown(&self, end: &TaskEnd) -> bool {
        if !self.shutdown.is_cancelled() {
            return false;
        }
        if let TaskEnd::Panicked(message) = end {
            tracing::error!(task = %self.name, %message, "core task panicked during shutdown");
        }
        true
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new(TaskFaults::default())
    }
}

impl Supervisor {
    /// A supervisor with no tasks yet; `faults` is the test hook (inert by default).
    pub fn new(faults: TaskFaults) -> Self {
        Self {
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            health: TaskHealth::default(),
            failure: Failure::default(),
            faults,
        }
    }

    /// The token every supervised task watches to stop; cancelled by [`stop`](Self::stop).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Which tasks are down, for `/ready`.
    pub fn health(&self) -> TaskHealth {
        self.health.clone()
    }

    fn watch(&self, name: String) -> Watch {
        Watch {
            name,
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.clone(),
            health: self.health.clone(),
            faults: self.faults.clone(),
        }
    }

    /// Runs the task `make` builds, and builds and runs it again after `backoff` each time it
    /// ends before [`stop`](Self::stop). Down (for `/ready`) from its end to its restart.
    pub fn spawn_restarting<F, Fut>(&self, name: impl Into<String>, backoff: Backoff, mut make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let watch = self.watch(name.into());
        self.tracker.spawn(async move {
            let mut pause = backoff.first;
            loop {
                let started = Instant::now();
                let end = watch.attempt(make()).await;
                if watch.ended_at_shutdown(&end) {
                    return;
                }
                if started.elapsed() >= backoff.max {
                    pause = backoff.first;
                }
                watch.health.mark_down(&watch.name);
                tracing::error!(task = %watch.name, %end, retry_in = ?pause, "core task stopped; restarting it");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = watch.shutdown.cancelled() => return,
                }
                pause = backoff.after(pause);
                watch.health.mark_up(&watch.name);
                tracing::info!(task = %watch.name, "core task restarted");
            }
        });
    }

    /// Runs `task`; if it ends before [`stop`](Self::stop), the service must stop:
    /// [`failed`](Self::failed) resolves and [`failure`](Self::failure) names it.
    pub fn spawn_critical(
        &self,
        name: impl Into<String>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let watch = self.watch(name.into());
        let failure = self.failure.clone();
        self.tracker.spawn(async move {
            let end = watch.attempt(task).await;
            if watch.ended_at_shutdown(&end) {
                return;
            }
            watch.health.mark_down(&watch.name);
            tracing::error!(task = %watch.name, %end, "core task stopped; stopping the service");
            failure.report(TaskStopped {
                task: watch.name.clone(),
                end,
            });
        });
    }

    /// Resolves once a critical task has stopped (never, if none does). Independent of
    /// `self`, so it can be handed to a server's graceful-shutdown hook.
    pub fn failed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.failure.signal.clone().cancelled_owned()
    }

    /// The first critical task that stopped the service, if any.
    pub fn failure(&self) -> Option<TaskStopped> {
        self.failure.get()
    }

    /// Tells every task to stop and waits up to `grace` for all of them.
    ///
    /// # Errors
    /// When some task was still running after `grace` (it is left to the runtime's end).
    pub async fn stop(&self, grace: Duration) -> Result<(), tokio::time::error::Elapsed> {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use testkit::wait_until;

    const WAIT: Duration = Duration::from_secs(5);
    const QUICK: Backoff = Backoff {
        first: Duration::from_millis(20),
        max: Duration::from_millis(50),
    };
    const NEVER_SOON: Backoff = Backoff {
        first: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
    };

    #[test]
    fn a_pause_doubles_up_to_the_max() {
        let pauses: Vec<_> = std::iter::successors(Some(QUICK.first), |p| Some(QUICK.after(*p)))
            .take(4)
            .map(|p| p.as_millis())
            .collect();
        assert_eq!(pauses, [20, 40, 50, 50]);
    }

    #[tokio::test]
    async fn a_task_that_returns_before_shutdown_is_restarted() {
        let supervisor = Supervisor::default();
        let token = supervisor.shutdown_token();
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&starts);
        supervisor.spawn_restarting("flaky", QUICK, move || {
            let start = counted.fetch_add(1, Ordering::SeqCst) + 1;
            let token = token.clone();
            async move {
                if start >= 3 {
                    token.cancelled().await;
                }
            }
        });
        wait_until(WAIT, "a third start", || async {
            (starts.load(Ordering::SeqCst) == 3).then_some(())
        })
        .await
        .unwrap();
        assert_eq!(supervisor.health().down(), Vec::<String>::new());
        assert!(supervisor.stop(WAIT).await.is_ok());
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_task_that_panics_is_named_down_until_it_runs_again() {
        let supervisor = Supervisor::default();
        supervisor.spawn_restarting("panicky", NEVER_SOON, || async {
            panic!("boom");
        });
        let down = wait_until(WAIT, "the task reported down", || async {
            let down = supervisor.health().down();
            (!down.is_empty()).then_some(down)
        })
        .await
        .unwrap();
        assert_eq!(down, ["panicky"]);
        assert!(
            supervisor.failure().is_none(),
            "a restartable task never fails the service"
        );
        assert!(
            supervisor.stop(WAIT).await.is_ok(),
            "the pause ends at shutdown"
        );
    }

    #[tokio::test]
    async fn a_critical_task_that_stops_fails_the_service_naming_it() {
        let supervisor = Supervisor::default();
        supervisor.spawn_critical("publisher", async {});
        tokio::time::timeout(WAIT, supervisor.failed())
            .await
            .unwrap();
        assert_eq!(
            supervisor.failure(),
            Some(TaskStopped {
                task: "publisher".into(),
                end: TaskEnd::Returned
            })
        );
        assert_eq!(supervisor.health().down(), ["publisher"]);
    }

    #[tokio::test]
    async fn tasks_that_end_because_of_shutdown_are_not_failures() {
        let supervisor = Supervisor::default();
        let token = supervisor.shutdown_token();
        supervisor.spawn_critical("waits", async move { token.cancelled().await });
        let token = supervisor.shutdown_token();
        supervisor.spawn_restarting("also_waits", QUICK, move || {
            let token = token.clone();
            async move { token.cancelled().await }
        });
        assert!(supervisor.stop(WAIT).await.is_ok());
        assert_eq!(supervisor.failure(), None);
        assert_eq!(supervisor.health().down(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_injected_fault_keeps_a_task_down_until_it_is_resumed() {
        let faults = TaskFaults::default();
        let supervisor = Supervisor::new(faults.clone());
        let token = supervisor.shutdown_token();
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&starts);
        supervisor.spawn_restarting("relay", QUICK, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            token.clone().cancelled_owned()
        });
        wait_until(WAIT, "the first start", || async {
            (starts.load(Ordering::SeqCst) == 1).then_some(())
        })
        .await
        .unwrap();

        faults.stop("relay");
        wait_until(WAIT, "the task reported down", || async {
            (supervisor.health().down() == ["relay"]).then_some(())
        })
        .await
        .unwrap();
        faults.resume("relay");
        wait_until(WAIT, "the task running again", || async {
            supervisor.health().down().is_empty().then_some(())
        })
        .await
        .unwrap();
        assert!(starts.load(Ordering::SeqCst) >= 2);
        assert!(supervisor.stop(WAIT).await.is_ok());
    }
}
