//! Turning the file model into the validated model: defaults filled in, units converted, paths
//! resolved, names and addresses checked.
//!
//! Validation never stops at the first problem: each check records a [`Problem`] (a key path and
//! a message) and carries on with a default, so one run reports everything wrong with a file.
//! Relative paths (static roots, Unix sockets, `pid_file`, the access log file, `runtime_dir`,
//! app directories) are resolved against the directory of the config file, not the working
//! directory, so that a config means the same thing wherever gatehouse is started from.
//! This module checks the global sections and listeners; `app` and `route` check the rest.

mod app;
mod net;
mod route;
mod tls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::defaults;
use crate::file;
use crate::location::KeyPath;
use crate::machine::Machine;
use crate::model::{
    AccessFormat, AccessLogTarget, Admin, Config, Limits, ListenAddress, Listener, Log, LogFormat,
    Server,
};
use crate::units;

/// One thing wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: KeyPath,
    pub message: String,
}

/// Validate a deserialized file. `config_path` is absolute; relative paths are resolved against
/// its directory. A valid file comes back with its warnings (their `Config::warnings` are left
/// for the caller to locate).
pub fn validate(
    file: file::File,
    config_path: &Path,
    machine: &Machine,
) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let base = config_path.parent().unwrap_or(Path::new("/"));
    let mut v = Validator {
        base,
        machine,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let root = KeyPath::root();
    let server = v.server(&root.key("server"), file.server);
    let admin = v.admin(&root.key("admin"), file.admin);
    let log = v.log(&root.key("log"), file.log);
    let limits = v.limits(&root.key("limits"), file.limits);
    let listeners = v.listeners(&root.key("listener"), file.listener);
    let names = v.names(&file.app, &file.upstream);
    let apps = file
        .app
        .into_iter()
        .enumerate()
        .map(|(i, app)| v.app(&root.key("app").index(i), app))
        .collect();
    let upstreams = file
        .upstream
        .into_iter()
        .enumerate()
        .map(|(i, upstream)| v.upstream(&root.key("upstream").index(i), upstream))
        .collect();
    let routes = v.routes(&root.key("route"), file.route, &names);
    if !v.problems.is_empty() {
        return Err(v.problems);
    }
    let config = Config {
        path: config_path.to_path_buf(),
        server,
        admin,
        log,
        limits,
        listeners,
        upstreams,
        apps,
        routes,
        warnings: Vec::new(),
    };
    Ok((config, v.warnings))
}

/// Whether a name belongs to an app or an upstream (one namespace for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    App,
    Upstream,
}

struct Validator<'a> {
    base: &'a Path,
    machine: &'a Machine,
    problems: Vec<Problem>,
    /// Allowed but suspicious; reported without failing the file.
    warnings: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.clone(),
            message: message.into(),
        });
    }

    fn warning(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.clone(),
            message: message.into(),
        });
    }

    /// A relative path from the file, resolved against the config file's directory.
    fn resolve(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }

    fn duration(
        &mut self,
        path: &KeyPath,
        value: Option<&units::Duration>,
        default: Duration,
    ) -> Duration {
        match value.map(units::Duration::to_std) {
            None => default,
            Some(Ok(duration)) => duration,
            Some(Err(message)) => {
                self.problem(path, message);
                default
            }
        }
    }

    /// A duration that must not be zero (a zero timeout would fail everything at once).
    fn positive_duration(
        &mut self,
        path: &KeyPath,
        value: Option<&units::Duration>,
        default: Duration,
    ) -> Duration {
        let duration = self.duration(path, value, default);
        if duration.is_zero() {
            self.problem(path, "must be greater than zero");
            return default;
        }
        duration
    }

    fn positive_size(&mut self, path: &KeyPath, value: Option<&units::Size>, default: u64) -> u64 {
        match value.map(units::Size::to_bytes) {
            None => default,
            Some(Ok(0)) => {
                self.problem(path, "must be greater than zero");
                default
            }
            Some(Ok(bytes)) => bytes,
            Some(Err(message)) => {
                self.problem(path, message);
                default
            }
        }
    }

    /// An integer of at least `min`.
    fn count(&mut self, path: &KeyPath, value: Option<i64>, default: usize, min: usize) -> usize {
        let Some(value) = value else {
            return default;
        };
        match usize::try_from(value) {
            Ok(n) if n >= min => n,
            _ if min == 0 => {
                self.problem(path, "must not be negative");
                default
            }
            _ => {
                self.problem(path, format!("must be at least {min}"));
                default
            }
        }
    }

    /// A string key that must be present and not empty.
    fn required(&mut self, path: &KeyPath, value: Option<String>) -> Option<String> {
        match value {
            None => {
                self.problem(path, "required key is missing");
                None
            }
            Some(text) if text.trim().is_empty() => {
                self.problem(path, "must not be empty");
                None
            }
            Some(text) => Some(text),
        }
    }

    fn server(&mut self, path: &KeyPath, server: file::Server) -> Server {
        let mut trusted_proxies = Vec::new();
        let proxies_path = path.key("trusted_proxies");
        for (i, text) in server
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            match net::cidr(text) {
                Ok(cidr) => trusted_proxies.push(cidr),
                Err(message) => self.problem(&proxies_path.index(i), message),
            }
        }
        Server {
            pid_file: server.pid_file.map(|p| self.resolve(&p)),
            runtime_dir: match server.runtime_dir {
                Some(dir) => self.resolve(&dir),
                None => self.machine.default_runtime_dir(),
            },
            graceful_timeout: self.duration(
                &path.key("graceful_timeout"),
                server.graceful_timeout.as_ref(),
                defaults::SERVER_GRACEFUL_TIMEOUT,
            ),
            watch_config: server.watch_config.unwrap_or(defaults::WATCH_CONFIG),
            trusted_proxies,
        }
    }

    fn admin(&mut self, path: &KeyPath, admin: file::Admin) -> Admin {
        let text = admin
            .listen
            .unwrap_or_else(|| defaults::ADMIN_LISTEN.to_owned());
        if text == "off" {
            return Admin { listen: None };
        }
        match net::socket_addr(&text) {
            Ok(addr) => Admin { listen: Some(addr) },
            Err(message) => {
                self.problem(&path.key("listen"), format!("{message}, or \"off\""));
                Admin { listen: None }
            }
        }
    }

    fn log(&mut self, path: &KeyPath, log: file::Log) -> Log {
        let level = log.level.unwrap_or_else(|| defaults::LOG_LEVEL.to_owned());
        if let Err(message) = check_log_level(&level) {
            self.problem(&path.key("level"), message);
        }
        let format = match log.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.problem(
                    &path.key("format"),
                    format!("unknown log format {other:?} (expected \"text\" or \"json\")"),
                );
                LogFormat::Text
            }
        };
        let access_log = match log.access_log.as_deref() {
            None | Some("-") => AccessLogTarget::Stdout,
            Some("off") => AccessLogTarget::Off,
            Some("") => {
                self.problem(
                    &path.key("access_log"),
                    "must not be empty (use \"-\" for stdout or \"off\")",
                );
                AccessLogTarget::Stdout
            }
            Some(file) => AccessLogTarget::File(self.resolve(Path::new(file))),
        };
        let access_format = match log.access_format {
            None => AccessFormat::Combined,
            Some(text) if text == "combined" => AccessFormat::Combined,
            Some(text) if text == "json" => AccessFormat::Json,
            Some(text) if text.contains("%(") => AccessFormat::Gunicorn(text),
            Some(text) => {
                self.problem(
                    &path.key("access_format"),
                    format!(
                        "unknown access log format {text:?} (expected \"combined\", \"json\" or a Gunicorn-style format with %(...)s fields)"
                    ),
                );
                AccessFormat::Combined
            }
        };
        Log {
            level,
            format,
            access_log,
            access_format,
        }
    }

    fn limits(&mut self, path: &KeyPath, limits: file::Limits) -> Limits {
        Limits {
            max_header_bytes: self.positive_size(
                &path.key("max_header_bytes"),
                limits.max_header_bytes.as_ref(),
                defaults::MAX_HEADER_BYTES,
            ),
            max_header_count: self.count(
                &path.key("max_header_count"),
                limits.max_header_count,
                defaults::MAX_HEADER_COUNT,
                1,
            ),
            max_body_size: self.positive_size(
                &path.key("max_body_size"),
                limits.max_body_size.as_ref(),
                defaults::MAX_BODY_SIZE,
            ),
            header_timeout: self.positive_duration(
                &path.key("header_timeout"),
                limits.header_timeout.as_ref(),
                defaults::HEADER_TIMEOUT,
            ),
            keepalive_timeout: self.duration(
                &path.key("keepalive_timeout"),
                limits.keepalive_timeout.as_ref(),
                defaults::KEEPALIVE_TIMEOUT,
            ),
            websocket_idle_timeout: Some(self.duration(
                &path.key("websocket_idle_timeout"),
                limits.websocket_idle_timeout.as_ref(),
                defaults::WEBSOCKET_IDLE_TIMEOUT,
            ))
            .filter(|timeout| !timeout.is_zero()),
            max_connections: self.count(
                &path.key("max_connections"),
                limits.max_connections,
                defaults::MAX_CONNECTIONS,
                1,
            ),
        }
    }

    fn listeners(&mut self, path: &KeyPath, listeners: Vec<file::Listener>) -> Vec<Listener> {
        if listeners.is_empty() {
            self.problem(path, "at least one [[listener]] is required");
        }
        let mut seen: HashMap<ListenAddress, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let path = path.index(i);
            let address_path = path.key("address");
            let address = self
                .required(&address_path, listener.address)
                .and_then(|text| match net::listen_address(&text, self.base) {
                    Ok(address) => Some(address),
                    Err(message) => {
                        self.problem(&address_path, message);
                        None
                    }
                });
            if let Some(redirect) = &listener.redirect_https {
                if let Err(message) = check_redirect_prefix(redirect) {
                    self.problem(&path.key("redirect_https"), message);
                }
            }
            let tls = listener.tls.map(|tls| self.tls(&path.key("tls"), tls));
            let Some(address) = address else { continue };
            // Port 0 asks the kernel for a fresh port each time, so it never collides.
            let ephemeral = matches!(&address, ListenAddress::Tcp(socket) if socket.port() == 0);
            if let Some(first) = seen.get(&address).filter(|_| !ephemeral) {
                self.problem(
                    &address_path,
                    format!("duplicate listener address {address} (also listener[{first}])"),
                );
                continue;
            }
            seen.insert(address.clone(), i);
            out.push(Listener {
                address,
                http2: listener.http2.unwrap_or(defaults::LISTENER_HTTP2),
                redirect_https: listener.redirect_https,
                tls,
            });
        }
        out
    }
}

/// A tracing filter: comma-separated `level` or `target=level` directives. Span filters
/// (`target[span]=level`) are passed through; a bare word must be a level, to catch typos.
fn check_log_level(text: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |s: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s.trim()));
    if text.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    for directive in text.split(',') {
        let ok = if directive.contains('[') {
            true
        } else if let Some((target, level)) = directive.rsplit_once('=') {
            !target.trim().is_empty() && is_level(level)
        } else {
            is_level(directive)
        };
        if !ok {
            return Err(format!(
                "invalid log level {directive:?} (expected trace, debug, info, warn, error or off, or target=level directives)"
            ));
        }
    }
    Ok(())
}

/// `redirect_https`: the prefix the request's path and query are appended to.
fn check_redirect_prefix(text: &str) -> Result<(), String> {
    if !(text.starts_with("https://") || text.starts_with("http://")) {
        return Err(format!(
            "invalid redirect {text:?} (expected a URL prefix like \"https://{{host}}:8443\")"
        ));
    }
    if text.ends_with('/') {
        return Err(
            "must not end with '/': the request path, which starts with '/', is appended"
                .to_owned(),
        );
    }
    check_placeholders(text, &["host"])
}

/// Only the named `{placeholders}` may appear.
fn check_placeholders(text: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed '{{' in {text:?}"));
        };
        let name = &after[..end];
        if !known.contains(&name) {
            let known: Vec<String> = known.iter().map(|k| format!("{{{k}}}")).collect();
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {})",
                known.join(", ")
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        for ok in [
            "info",
            "WARN",
            "gatehouse=debug,hyper=warn",
            "info,my[span]=trace",
        ] {
            assert_eq!(check_log_level(ok), Ok(()), "{ok}");
        }
        for bad in ["", "inf", "gatehouse=loud", "=debug"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            check_placeholders("https://{host}{uri}", &["host", "uri"]),
            Ok(())
        );
        assert_eq!(
            check_placeholders("https://{hots}", &["host", "uri"]),
            Err("unknown placeholder {hots} (known: {host}, {uri})".to_owned())
        );
        assert!(check_placeholders("https://{host", &["host"]).is_err());
    }
}
