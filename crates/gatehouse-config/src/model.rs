//! The validated model: what the rest of gatehouse reads.
//!
//! Every value here has been checked (paths exist, names resolve, addresses parse), defaults are
//! filled in, and durations and sizes are typed. Nothing in this module touches TOML; `file.rs`
//! holds the serde model and `validate.rs` turns one into the other.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Diagnostic;

/// A whole, valid configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (absolute), for messages and `/status`.
    pub path: PathBuf,
    pub server: Server,
    pub admin: Admin,
    pub log: Log,
    pub limits: Limits,
    pub listeners: Vec<Listener>,
    pub upstreams: Vec<Upstream>,
    pub apps: Vec<App>,
    pub routes: Vec<Route>,
    /// Things that are allowed but probably wrong (an expired certificate), located like errors.
    /// This crate does not log; whoever loads the config prints them.
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub pid_file: Option<PathBuf>,
    /// Where worker sockets live; `$XDG_RUNTIME_DIR/gatehouse` or `/tmp/gatehouse-<uid>` by default.
    pub runtime_dir: PathBuf,
    /// How long TERM waits for in-flight requests before closing what is left.
    pub graceful_timeout: Duration,
    pub watch_config: bool,
    /// Peers whose X-Forwarded-For we extend instead of replacing.
    pub trusted_proxies: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// `None` when `listen = "off"`.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// A tracing filter directive, e.g. `info` or `gatehouse=debug,hyper=warn`.
    pub level: String,
    pub format: LogFormat,
    pub access_log: AccessLogTarget,
    pub access_format: AccessFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessFormat {
    /// Nginx/Apache combined.
    Combined,
    /// One JSON object per line.
    Json,
    /// A Gunicorn-style `%(h)s %(r)s ...` format string, kept verbatim; the proxy compiles it.
    Gunicorn(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_header_bytes: u64,
    pub max_header_count: usize,
    pub max_body_size: u64,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// A WebSocket (any upgraded connection) with no byte either way for this long is closed;
    /// `None`: never.
    pub websocket_idle_timeout: Option<Duration>,
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub address: ListenAddress,
    /// Accept HTTP/2 (prior-knowledge h2c on plain listeners, ALPN on TLS ones).
    pub http2: bool,
    /// `Some(prefix)`: answer every request with a redirect to prefix + path and query.
    pub redirect_https: Option<String>,
    /// `Some`: terminate TLS on this listener.
    pub tls: Option<Tls>,
}

/// `[listener.tls]`: what the TLS end of a listener serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// At least one. SNI picks by each certificate's names; the first is the default for clients
    /// that send no SNI or a name no certificate covers.
    pub certificates: Vec<Certificate>,
    pub min_version: TlsVersion,
    /// The `Strict-Transport-Security` value added to every response on this listener.
    pub hsts: Option<String>,
    /// `Some`: clients must present a certificate issued by one of these CAs (mutual TLS).
    pub client_ca: Option<ClientCa>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A certificate chain and its private key, read from PEM files and checked: well-formed, the key
/// matches the leaf, the leaf is already valid. The files are read again when they change, so the
/// paths are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// Absolute.
    pub cert_path: PathBuf,
    /// Absolute.
    pub key_path: PathBuf,
    /// The leaf first, then any intermediates, as in the file.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKey,
    /// The leaf's DNS names, lower-case, wildcards as `*.example.com`: its subjectAltNames, or
    /// its subject's common name when it has none.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Certificate {
    /// What to call the certificate in logs and metrics: its first name, else its file.
    pub fn name(&self) -> String {
        match self.names.first() {
            Some(name) => name.clone(),
            None => self.cert_path.display().to_string(),
        }
    }
}

/// A private key in DER; `Debug` does not print it.
#[derive(PartialEq)]
pub struct PrivateKey(pub PrivateKeyDer<'static>);

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        PrivateKey(self.0.clone_key())
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// `client_ca`: the CA certificates client certificates must chain to.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCa {
    /// Absolute.
    pub path: PathBuf,
    pub certs: Vec<CertificateDer<'static>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// An inherited descriptor (`fd:3`), for socket activation.
    Fd(i32),
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Tcp(addr) => write!(f, "{addr}"),
            ListenAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            ListenAddress::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

/// A server of an upstream: where to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Host and port; the host is resolved at connect time.
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(hostport) => write!(f, "{hostport}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub servers: Vec<Endpoint>,
    pub connect_timeout: Duration,
    /// Waiting for the response head; 504 when it passes.
    pub timeout: Duration,
    pub health: Option<Health>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `None`: a successful connect is healthy.
    pub path: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before a server leaves the rotation.
    pub failures: u32,
}

/// An app whose worker processes gatehouse launches and supervises (Gunicorn's arbiter).
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub name: String,
    pub launch: Launch,
    /// The workers' working directory (absolute); the config file's directory by default.
    pub directory: PathBuf,
    /// Added to the environment gatehouse itself was started with.
    pub env: BTreeMap<String, String>,
    /// Worker processes at start; `"auto"` was already resolved to 2 x cores + 1.
    pub workers: usize,
    /// In-flight requests one worker takes: 1 for sync workers, N for threads, ~1000 for async.
    pub concurrency: usize,
    /// Whole-request deadline: 504, stack dump (ABRT), worker replaced.
    pub timeout: Duration,
    /// How long a draining worker may finish its requests before KILL.
    pub graceful_timeout: Duration,
    /// Recycle a worker after this many requests; 0 = never.
    pub max_requests: u64,
    /// A random 0..=jitter is added per worker so that workers do not all recycle at once.
    pub max_requests_jitter: u64,
    /// Recycle a worker whose process group's RSS exceeds this many bytes.
    pub max_memory: Option<u64>,
    /// How long a new worker may take to accept connections (and pass `health`).
    pub startup_timeout: Duration,
    /// Requests waiting for a free worker slot; above it, 503 with Retry-After.
    pub queue_size: usize,
    /// How long a request may wait in the queue before 503.
    pub queue_timeout: Duration,
    /// `None`: a worker is healthy while it accepts connections on its socket.
    pub health: Option<Health>,
    /// Drop privileges to this user (name or numeric id) when spawning workers.
    pub user: Option<String>,
    pub group: Option<String>,
    /// SCRIPT_NAME for the built-in WSGI worker: starts with `/`, no trailing `/`.
    pub root_path: Option<String>,
    /// Read the whole request body before forwarding and the whole response before sending,
    /// so that a slow client never holds a worker slot (Nginx's buffering; on for sync workers).
    pub buffering: bool,
}

/// How an app's worker processes are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// argv with `{socket}`, `{port}` and `{worker}` placeholders not yet substituted.
    Command(Vec<String>),
    /// The built-in WSGI worker loading `target` (`module:callable`) with `python`.
    Wsgi {
        target: String,
        /// `python3` (looked up in PATH) by default; an absolute path when the config gave a path.
        python: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `None` matches any host.
    pub host: Option<HostPattern>,
    /// A prefix, starting with `/`.
    pub path: String,
    pub action: Action,
    /// For app/upstream actions: remove `path` from the forwarded request path.
    pub strip_prefix: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Lower-case host name without port.
    Exact(String),
    /// `*.example.com` is stored as `.example.com` (lower-case), matching any deeper name.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Static(Static),
    /// The name of an app or an upstream (they share one namespace).
    Forward(String),
    /// A URL template; `{host}` and `{uri}` are substituted.
    Redirect(String),
    Respond {
        status: u16,
        body: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Static {
    /// Canonical (symlinks resolved) directory.
    pub root: PathBuf,
    pub index: Vec<String>,
    pub cache_control: Option<String>,
    pub precompressed: bool,
    pub dotfiles: bool,
    /// An app or upstream that answers when the file is missing (Nginx `try_files $uri @app`).
    pub fallback: Option<String>,
}

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: std::net::IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}
