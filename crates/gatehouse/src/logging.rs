//! The diagnostic log: tracing to stderr, as text or JSON, filtered by `[log] level`, which a
//! reload may change ([`set_level`]); the format is chosen once, at start.

use std::io::IsTerminal;
use std::sync::OnceLock;

use gatehouse_config::model::{Log, LogFormat};
use tracing_subscriber::EnvFilter;

/// Libraries whose chatter stays at warn unless the level names them explicitly.
const QUIET_BY_DEFAULT: &str = "hyper=warn,h2=warn,rustls=warn";

type Reload = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Replaces the installed subscriber's filter; set by [`init`].
static RELOAD: OnceLock<Reload> = OnceLock::new();

pub fn init(log: &Log) {
    let filter = filter(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests calling into the library twice) is harmless: keep the first.
    let _ = match log.format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = RELOAD.set(Box::new(move |filter| {
                handle.reload(filter).map_err(|error| error.to_string())
            }));
            builder.try_init()
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = RELOAD.set(Box::new(move |filter| {
                handle.reload(filter).map_err(|error| error.to_string())
            }));
            builder.try_init()
        }
    };
}

/// The filter for a `[log] level`, or why it is not one.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(format!("{QUIET_BY_DEFAULT},{level}"))
        .map_err(|error| format!("log.level {level:?}: {error}"))
}

/// A reload changed `[log] level`.
pub fn set_level(filter: EnvFilter) {
    if let Some(reload) = RELOAD.get() {
        if let Err(error) = reload(filter) {
            tracing::warn!(%error, "cannot change the log level");
        }
    }
}
