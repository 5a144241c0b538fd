//! Entry point: parse the configuration, start telemetry, run until SIGINT/SIGTERM.

use archival_worker::{Application, config::Config};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    shared::telemetry::init(config.common.log_format, "info");
    let shutdown = CancellationToken::new();
    tokio::spawn(shared::shutdown::cancel_on_signal(shutdown.clone()));
    Application::build(config).await?.run(shutdown).await
}
