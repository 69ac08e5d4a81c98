//! The diagnostic log: tracing to stderr, as text or JSON, filtered by `[log] level`.

use std::io::IsTerminal;

use gatehouse_config::model::{Log, LogFormat};
use tracing_subscriber::EnvFilter;

/// Libraries whose chatter stays at warn unless the level names them explicitly.
const QUIET_BY_DEFAULT: &str = "hyper=warn,h2=warn,rustls=warn";

pub fn init(log: &Log) {
    let directives = format!("{QUIET_BY_DEFAULT},{}", log.level);
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests calling into the library twice) is harmless: keep the first.
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
