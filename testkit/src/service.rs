//! A service started in-process the way its `main` starts it (`Application::build`, then
//! `run` with a shutdown token), on the port it bound, and the HTTP calls every test makes
//! to one: requests that come back as a [`Reply`], metrics, and the probes.

use crate::reply::Reply;
use crate::wait_until;
use serde_json::Value;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// `127.0.0.1:0`: where every test service listens (the OS picks the port).
pub const LOOPBACK_ANY_PORT: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));

/// A running service; cancelled (graceful shutdown) when dropped.
pub struct Service {
    port: u16,
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Installs the log subscriber when `TEST_LOG` is set, so tests stay quiet otherwise.
fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        shared::telemetry::init(shared::telemetry::LogFormat::Pretty, "info");
    }
}

impl Service {
    /// Builds a service and runs it on the test's runtime: `build` is its
    /// `Application::build(config)`, `port` and `run` its `Application::port` and
    /// `Application::run`.
    ///
    /// # Panics
    /// When the service does not build: nothing of the test can run without it.
    pub async fn start<App, Run>(
        build: impl Future<Output = anyhow::Result<App>>,
        port: impl FnOnce(&App) -> u16,
        run: impl FnOnce(App, CancellationToken) -> Run,
    ) -> Self
    where
        Run: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        init_logs();
        let app = match build.await {
            Ok(app) => app,
            Err(error) => panic!("the service did not build: {error:#}"),
        };
        let port = port(&app);
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(app, shutdown.clone()));
        Self {
            port,
            base: format!("http://127.0.0.1:{port}"),
            // The concurrency tests (2,000 bids, 1,000 auctions) keep hundreds of requests in
            // flight; their connections are reused instead of reopened.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("an HTTP client with default TLS settings builds"),
            shutdown,
            handle: Some(handle),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The client to build a request the helpers below do not cover (headers, raw bodies).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` and reads the whole answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        Reply::read(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.get("/metrics").await.text
    }

    /// The value of one series (`name` with its labels, as exposed), if it is exposed.
    pub async fn reported_metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics_text().await, series)
    }

    /// The value of one series, `0` when it is not exposed (a labelled counter or gauge
    /// appears only once it is first touched).
    pub async fn metric(&self, series: &str) -> f64 {
        self.reported_metric(series).await.unwrap_or(0.0)
    }

    /// Waits (up to `within`) until `series` equals `value`.
    pub async fn wait_metric(&self, within: Duration, series: &str, value: f64) {
        wait_until(within, &format!("{series} == {value}"), || async {
            (self.metric(series).await == value).then_some(())
        })
        .await
        .expect("the metric reached its value");
    }

    /// Waits (up to `within`) until `/ready` answers 200; returns its body.
    pub async fn wait_ready(&self, within: Duration) -> Value {
        wait_until(within, "ready", || async {
            let reply = self.get("/ready").await;
            (reply.status == 200).then_some(reply.body)
        })
        .await
        .expect("the service became ready")
    }

    /// Waits (up to `within`) until `/ready` reports `dependency` (`redis`, `nats`,
    /// `postgres`) as up, whatever it says of the others.
    pub async fn wait_dependency_up(&self, within: Duration, dependency: &str) {
        wait_until(within, &format!("{dependency} up"), || async {
            (self.get("/ready").await.body[dependency] == "up").then_some(())
        })
        .await
        .expect("the dependency came up");
    }

    /// Waits (up to `within`) until `/ready` answers 503 naming `task`, and only it, as the
    /// task that is down, then asserts it says `not_ready` with each of `dependencies` up: the
    /// task alone is the cause. Returns its body.
    pub async fn wait_task_down(
        &self,
        within: Duration,
        task: &str,
        dependencies: &[&str],
    ) -> Value {
        let body = wait_until(within, &format!("ready to name {task} as down"), || async {
            let reply = self.get("/ready").await;
            (reply.status == 503 && reply.body["tasks_down"] == serde_json::json!([task]))
                .then_some(reply.body)
        })
        .await
        .expect("ready named the stopped task");
        assert_eq!(body["status"], "not_ready", "only {task} is down: {body}");
        for dependency in dependencies {
            assert_eq!(body[dependency], "up", "only {task} is down: {body}");
        }
        body
    }

    /// Stops the service gracefully and waits for it; its `run` must end cleanly.
    pub async fn stop(mut self) {
        self.stop_in_place().await;
    }

    /// [`Service::stop`] for an owner that cannot give the service up (one with a `Drop`).
    pub async fn stop_in_place(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("the service task did not panic")
                .expect("the service ran cleanly");
        }
    }

    /// Waits (up to `within`) for the service to stop by itself, without asking it to, and
    /// returns what its `run` returned.
    pub async fn exited(mut self, within: Duration) -> anyhow::Result<()> {
        self.exited_in_place(within).await
    }

    /// [`Service::exited`] for an owner that cannot give the service up (one with a `Drop`).
    pub async fn exited_in_place(&mut self, within: Duration) -> anyhow::Result<()> {
        let handle = self.handle.take().expect("the service is still running");
        tokio::time::timeout(within, handle)
            .await
            .expect("the service stopped by itself in time")
            .expect("the service task did not panic")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The value of `series` in a Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}
