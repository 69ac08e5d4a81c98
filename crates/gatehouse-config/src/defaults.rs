//! Every default value of the configuration in one place, so that `config/reference.toml`, the
//! validator and other crates (e.g. `gatehouse serve`, which builds a config without a file) agree.
//! Defaults follow Nginx and Gunicorn where they have one.

use std::time::Duration;

pub const SERVER_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
pub const WATCH_CONFIG: bool = true;

/// Loopback only: metrics and status are not for the internet.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9180";

pub const LOG_LEVEL: &str = "info";

pub const MAX_HEADER_BYTES: u64 = 16 * 1024;
pub const MAX_HEADER_COUNT: usize = 100;
/// Nginx's `client_max_body_size` is 1m; 10MiB fits more apps that take uploads.
pub const MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Nginx's `keepalive_timeout`.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
pub const MAX_CONNECTIONS: usize = 10_000;
/// Long enough for apps whose WebSockets never ping, short enough to reclaim half-open ones.
pub const WEBSOCKET_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

pub const LISTENER_HTTP2: bool = true;

pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
pub const HEALTH_FAILURES: u32 = 3;

pub const STATIC_INDEX: &str = "index.html";
pub const STATIC_PRECOMPRESSED: bool = false;
pub const STATIC_DOTFILES: bool = false;

/// Gunicorn's default: one worker unless told otherwise; `"auto"` asks for 2 x cores + 1.
pub const APP_WORKERS: usize = 1;
pub const APP_CONCURRENCY: usize = 1;
/// Gunicorn's `--timeout`.
pub const APP_TIMEOUT: Duration = Duration::from_secs(30);
/// Gunicorn's `--graceful-timeout`.
pub const APP_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
pub const APP_MAX_REQUESTS: u64 = 0;
pub const APP_MAX_REQUESTS_JITTER: u64 = 0;
pub const APP_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
pub const APP_QUEUE_SIZE: usize = 1024;
pub const APP_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// The built-in WSGI worker's interpreter, looked up in PATH.
pub const APP_PYTHON: &str = "python3";

/// Worker count for `workers = "auto"`: the guide's rule of thumb.
pub fn auto_workers(cores: usize) -> usize {
    cores.max(1).saturating_mul(2).saturating_add(1)
}
