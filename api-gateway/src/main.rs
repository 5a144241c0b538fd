//! Entry point: parse the command line, start telemetry, then either run until SIGINT/SIGTERM
//! or run one operator subcommand (`promote-admin`). Everything else lives in the library so
//! tests can start the same service in-process.

use api_gateway::config::{Cli, Command};
use api_gateway::{Application, promote_admin};
use clap::Parser;
use shared::shutdown::signal_token;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { config, command } = Cli::parse();
    shared::telemetry::init(config.common.log_format, "info");
    match command {
        None => Application::build(config).await?.run(signal_token()).await,
        Some(Command::PromoteAdmin { account }) => {
            let id = promote_admin::run(&config, &account).await?;
            println!("{id} is an admin; sign in again to get a token with the role");
            Ok(())
        }
    }
}
