//! `load-tests <experiment> [flags]`: parse, run, and turn the outcome into the
//! exit code (0 passed, 1 a correctness check failed, 2 the run failed).

use clap::Parser;
use load_tests::{Cli, Verdict};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    load_tests::telemetry::init();
    let runtime = match cli.command.runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(load_tests::run(cli.command)) {
        Ok(Verdict::Passed) => ExitCode::SUCCESS,
        Ok(Verdict::Violated) => ExitCode::from(1),
        Err(e) => {
            tracing::error!("run failed: {e:#}");
            ExitCode::from(2)
        }
    }
}
