//! Entry point: parse the configuration, start telemetry, run until SIGINT/SIGTERM.
//! Everything else lives in the library so tests can start the same service in-process.

use api_gateway::{Application, config::Config};
use clap::Parser;
use shared::shutdown::signal_token;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    shared::telemetry::init(config.common.log_format, "info");
    Application::build(config).await?.run(signal_token()).await
}
