//! What changed between the running config and a newly loaded one, so that a reload applies only
//! that: listeners by address, apps by name (and, per app, whether the change needs new workers,
//! only a different worker count, or only new pool settings), routes by host and path, and the
//! keys that are read once at start and so cannot change while gatehouse runs.
//!
//! [`Changes::summary`] is the one line a reload logs, e.g.
//! `route /api added; listener 127.0.0.1:8081 added; app web scaled 3 -> 5`.

use std::collections::BTreeSet;

use crate::model::{App, Config, HostPattern, Launch, ListenAddress, Listener, Route};

/// Everything that differs between two configs, grouped by what applying it takes.
#[derive(Debug, Default)]
pub struct Changes {
    /// Keys that changed but are only read at start (`server.runtime_dir`, `admin.listen`, ...).
    /// A reload that changes any of them is rejected, naming them.
    pub fixed: Vec<&'static str>,
    /// Listeners that are new: bind them.
    pub listeners_added: Vec<(ListenerKey, Listener)>,
    /// Listeners no longer configured: stop accepting there and drain.
    pub listeners_removed: Vec<ListenerKey>,
    /// Same listener, other settings (TLS, HTTP/2, redirect): swapped in place.
    pub listeners_changed: Vec<(ListenerKey, Listener)>,
    pub apps: Vec<AppChange>,
    /// Changes applied by swapping the routing table (routes, upstreams, limits, server settings),
    /// as summary items.
    pub site: Vec<String>,
    /// `log.access_log` or `log.access_format` changed: open the new access log.
    pub access_log: bool,
    /// `log.level` changed: swap the diagnostic log's filter.
    pub log_level: bool,
}

/// A listener's identity across reloads: its address, and which of the listeners configured at
/// that address it is (only port 0 may be configured more than once).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListenerKey {
    pub address: ListenAddress,
    pub nth: usize,
}

impl std::fmt::Display for ListenerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.nth {
            0 => write!(f, "{}", self.address),
            nth => write!(f, "{} (#{})", self.address, nth + 1),
        }
    }
}

/// The keys of `listeners`, in order.
pub fn listener_keys(listeners: &[Listener]) -> Vec<ListenerKey> {
    listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| ListenerKey {
            address: listener.address.clone(),
            nth: listeners[..index]
                .iter()
                .filter(|earlier| earlier.address == listener.address)
                .count(),
        })
        .collect()
}

/// One `[[app]]` that was added, removed or changed.
#[derive(Debug)]
pub enum AppChange {
    Added(App),
    Removed(String),
    Changed {
        app: App,
        /// `Some((from, to))` when `workers` changed.
        workers: Option<(usize, usize)>,
        /// Changed keys that need a new generation of workers (command, env, ...).
        restart: Vec<&'static str>,
        /// Changed keys that only the proxy's pool reads (queue, timeout, buffering, concurrency).
        retune: Vec<&'static str>,
    },
}

impl Changes {
    /// Compares the running config `old` with the newly loaded `new`.
    pub fn between(old: &Config, new: &Config) -> Changes {
        let mut changes = Changes {
            fixed: fixed_keys(old, new),
            access_log: old.log.access_log != new.log.access_log
                || old.log.access_format != new.log.access_format,
            log_level: old.log.level != new.log.level,
            ..Changes::default()
        };
        changes.diff_listeners(old, new);
        changes.diff_apps(old, new);
        changes.diff_site(old, new);
        changes
    }

    /// True when applying these changes would do nothing.
    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty()
            && self.listeners_added.is_empty()
            && self.listeners_removed.is_empty()
            && self.listeners_changed.is_empty()
            && self.apps.is_empty()
            && self.site.is_empty()
            && !self.access_log
            && !self.log_level
    }

    /// One line naming every change, for the log (`no changes` when there are none).
    pub fn summary(&self) -> String {
        let mut items: Vec<String> = self.site.clone();
        items.extend(
            self.listeners_added
                .iter()
                .map(|(key, _)| format!("listener {key} added")),
        );
        items.extend(
            self.listeners_removed
                .iter()
                .map(|key| format!("listener {key} removed")),
        );
        items.extend(
            self.listeners_changed
                .iter()
                .map(|(key, _)| format!("listener {key} changed")),
        );
        for app in &self.apps {
            match app {
                AppChange::Added(app) => items.push(format!("app {} added", app.name)),
                AppChange::Removed(name) => items.push(format!("app {name} removed")),
                AppChange::Changed {
                    app,
                    workers,
                    restart,
                    retune,
                } => {
                    if let Some((from, to)) = workers {
                        items.push(format!("app {} scaled {from} -> {to}", app.name));
                    }
                    if !restart.is_empty() {
                        items.push(format!(
                            "app {} restarted ({} changed)",
                            app.name,
                            restart.join(", ")
                        ));
                    }
                    if !retune.is_empty() {
                        items.push(format!("app {} {} changed", app.name, retune.join(", ")));
                    }
                }
            }
        }
        if self.access_log {
            items.push("access log changed".to_owned());
        }
        if self.log_level {
            items.push("log.level changed".to_owned());
        }
        if items.is_empty() {
            "no changes".to_owned()
        } else {
            items.join("; ")
        }
    }

    fn diff_listeners(&mut self, old: &Config, new: &Config) {
        let old_keys = listener_keys(&old.listeners);
        let new_keys = listener_keys(&new.listeners);
        for (key, listener) in new_keys.iter().zip(&new.listeners) {
            match old_keys.iter().position(|running| running == key) {
                None => self.listeners_added.push((key.clone(), listener.clone())),
                Some(index) if old.listeners[index] != *listener => {
                    self.listeners_changed.push((key.clone(), listener.clone()))
                }
                Some(_) => {}
            }
        }
        self.listeners_removed.extend(
            old_keys
                .into_iter()
                .filter(|running| !new_keys.contains(running)),
        );
    }

    fn diff_apps(&mut self, old: &Config, new: &Config) {
        for app in &new.apps {
            let Some(running) = old.apps.iter().find(|running| running.name == app.name) else {
                self.apps.push(AppChange::Added(app.clone()));
                continue;
            };
            if running == app {
                continue;
            }
            let (restart, retune) = classify(running, app);
            let workers =
                (running.workers != app.workers).then_some((running.workers, app.workers));
            self.apps.push(AppChange::Changed {
                app: app.clone(),
                workers,
                restart,
                retune,
            });
        }
        for running in &old.apps {
            if !new.apps.iter().any(|app| app.name == running.name) {
                self.apps.push(AppChange::Removed(running.name.clone()));
            }
        }
    }

    fn diff_site(&mut self, old: &Config, new: &Config) {
        let key = |route: &Route| (route.host.as_ref().map(host_text), route.path.clone());
        let old_routes: BTreeSet<_> = old.routes.iter().map(key).collect();
        let new_routes: BTreeSet<_> = new.routes.iter().map(key).collect();
        let name = |(host, path): &(Option<String>, String)| match host {
            Some(host) => format!("route {host}{path}"),
            None => format!("route {path}"),
        };
        for route in &new.routes {
            let route_key = key(route);
            match old.routes.iter().find(|running| key(running) == route_key) {
                None => self.site.push(format!("{} added", name(&route_key))),
                Some(running) if running != route => {
                    self.site.push(format!("{} changed", name(&route_key)))
                }
                Some(_) => {}
            }
        }
        for removed in old_routes.difference(&new_routes) {
            self.site.push(format!("{} removed", name(removed)));
        }
        // Route order decides nothing (the longest prefix wins), but equal sets in another order
        // are not worth a line.
        for upstream in &new.upstreams {
            match old
                .upstreams
                .iter()
                .find(|running| running.name == upstream.name)
            {
                None => self.site.push(format!("upstream {} added", upstream.name)),
                Some(running) if running != upstream => self
                    .site
                    .push(format!("upstream {} changed", upstream.name)),
                Some(_) => {}
            }
        }
        for running in &old.upstreams {
            if !new
                .upstreams
                .iter()
                .any(|upstream| upstream.name == running.name)
            {
                self.site.push(format!("upstream {} removed", running.name));
            }
        }
        let limits = [
            (
                "limits.max_header_bytes",
                old.limits.max_header_bytes != new.limits.max_header_bytes,
            ),
            (
                "limits.max_header_count",
                old.limits.max_header_count != new.limits.max_header_count,
            ),
            (
                "limits.max_body_size",
                old.limits.max_body_size != new.limits.max_body_size,
            ),
            (
                "limits.header_timeout",
                old.limits.header_timeout != new.limits.header_timeout,
            ),
            (
                "limits.keepalive_timeout",
                old.limits.keepalive_timeout != new.limits.keepalive_timeout,
            ),
            (
                "limits.websocket_idle_timeout",
                old.limits.websocket_idle_timeout != new.limits.websocket_idle_timeout,
            ),
            (
                "server.trusted_proxies",
                old.server.trusted_proxies != new.server.trusted_proxies,
            ),
            (
                "server.graceful_timeout",
                old.server.graceful_timeout != new.server.graceful_timeout,
            ),
            (
                "server.watch_config",
                old.server.watch_config != new.server.watch_config,
            ),
        ];
        self.site.extend(
            limits
                .iter()
                .filter(|(_, changed)| *changed)
                .map(|(key, _)| format!("{key} changed")),
        );
    }
}

/// Keys read once at start. Changing them needs a restart; a reload that does is rejected.
fn fixed_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        (
            "server.pid_file",
            old.server.pid_file != new.server.pid_file,
        ),
        (
            "server.runtime_dir",
            old.server.runtime_dir != new.server.runtime_dir,
        ),
        ("admin.listen", old.admin.listen != new.admin.listen),
        ("log.format", old.log.format != new.log.format),
        (
            "limits.max_connections",
            old.limits.max_connections != new.limits.max_connections,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// Splits an app's changed keys (other than `workers`) into those that need new workers and
/// those only the proxy's pool reads.
fn classify(old: &App, new: &App) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut restart = Vec::new();
    let mut retune = Vec::new();
    let launch_key = match new.launch {
        Launch::Command(_) => "command",
        Launch::Wsgi { .. } => "wsgi",
    };
    let worker_side = [
        (launch_key, old.launch != new.launch),
        ("directory", old.directory != new.directory),
        ("env", old.env != new.env),
        (
            "graceful_timeout",
            old.graceful_timeout != new.graceful_timeout,
        ),
        ("max_requests", old.max_requests != new.max_requests),
        (
            "max_requests_jitter",
            old.max_requests_jitter != new.max_requests_jitter,
        ),
        ("max_memory", old.max_memory != new.max_memory),
        (
            "startup_timeout",
            old.startup_timeout != new.startup_timeout,
        ),
        ("health", old.health != new.health),
        ("user", old.user != new.user),
        ("group", old.group != new.group),
        ("root_path", old.root_path != new.root_path),
    ];
    restart.extend(
        worker_side
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| *key),
    );
    let pool_side = [
        ("timeout", old.timeout != new.timeout),
        ("queue_size", old.queue_size != new.queue_size),
        ("queue_timeout", old.queue_timeout != new.queue_timeout),
        ("buffering", old.buffering != new.buffering),
        ("concurrency", old.concurrency != new.concurrency),
    ];
    retune.extend(
        pool_side
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| *key),
    );
    // The built-in worker runs `concurrency` threads, and the supervisor's health checks judge
    // a worker busy by it: new workers take the new value.
    if old.concurrency != new.concurrency {
        restart.push("concurrency");
    }
    (restart, retune)
}

fn host_text(host: &HostPattern) -> String {
    match host {
        HostPattern::Exact(name) => name.clone(),
        HostPattern::Suffix(suffix) => format!("*{suffix}"),
    }
}
