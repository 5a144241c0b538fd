//! Entry point: parse the configuration, start telemetry, run until SIGINT/SIGTERM.
//! Everything else lives in the library so tests can start the same service in-process.

use broadcast_service::{Application, config::Config};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    shared::telemetry::init(config.common.log_format, "info");
    let shutdown = CancellationToken::new();
    tokio::spawn(shared::shutdown::cancel_on_signal(shutdown.clone()));
    let app = Application::build(config).await?;
    app.run(shutdown).await
}
