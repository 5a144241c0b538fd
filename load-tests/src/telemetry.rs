//! Progress logging: human-readable lines on stderr, `RUST_LOG` to filter, so
//! stdout keeps the experiment's summary.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Goose logs every user's start and stop at info; its warnings are what matter here.
const DEFAULT_FILTER: &str = "info,goose=warn";

/// Installs the global subscriber; call once, at startup.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in captured logs.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
