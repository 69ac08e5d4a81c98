//! Checking `[[app]]` (worker pools gatehouse launches), `[[upstream]]` (servers it only proxies
//! to) and the one namespace their names share.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{net, Kind, Validator};
use crate::defaults;
use crate::file;
use crate::location::KeyPath;
use crate::model::{App, Health, Launch, Upstream};

impl Validator<'_> {
    /// Every app and upstream name, checked for shape and uniqueness across both kinds.
    pub(super) fn names(
        &mut self,
        apps: &[file::App],
        upstreams: &[file::Upstream],
    ) -> HashMap<String, Kind> {
        let mut names: HashMap<String, (Kind, usize)> = HashMap::new();
        let all = apps
            .iter()
            .map(|app| (Kind::App, &app.name))
            .enumerate()
            .chain(
                upstreams
                    .iter()
                    .map(|upstream| (Kind::Upstream, &upstream.name))
                    .enumerate(),
            );
        for (i, (kind, name)) in all {
            let path = section(kind).index(i).key("name");
            let Some(name) = self.required(&path, name.clone()) else {
                continue;
            };
            if let Err(message) = check_name(&name) {
                self.problem(&path, message);
                continue;
            }
            if let Some((other, j)) = names.get(&name) {
                self.problem(
                    &path,
                    format!(
                        "name {name:?} is already used by {}[{j}] (apps and upstreams share one namespace)",
                        section_name(*other)
                    ),
                );
                continue;
            }
            names.insert(name, (kind, i));
        }
        names
            .into_iter()
            .map(|(name, (kind, _))| (name, kind))
            .collect()
    }

    pub(super) fn app(&mut self, path: &KeyPath, app: file::App) -> App {
        let directory = match &app.directory {
            None => self.base.to_path_buf(),
            Some(dir) => {
                let dir = self.resolve(dir);
                if !dir.is_dir() {
                    self.problem(&path.key("directory"), directory_problem(&dir));
                }
                dir
            }
        };
        let launch = self.launch(path, &app, &directory);
        let env = self.env(&path.key("env"), app.env);
        let workers = match app.workers {
            None => defaults::APP_WORKERS,
            Some(file::Workers::Text(text)) if text == "auto" => {
                defaults::auto_workers(self.machine.cores)
            }
            Some(file::Workers::Count(n)) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => {
                self.problem(&path.key("workers"), "must be at least 1, or \"auto\"");
                defaults::APP_WORKERS
            }
        };
        let concurrency = self.count(
            &path.key("concurrency"),
            app.concurrency,
            defaults::APP_CONCURRENCY,
            1,
        );
        let max_requests = self.count(&path.key("max_requests"), app.max_requests, 0, 0) as u64;
        let jitter_path = path.key("max_requests_jitter");
        let mut max_requests_jitter =
            self.count(&jitter_path, app.max_requests_jitter, 0, 0) as u64;
        if max_requests_jitter > 0 && max_requests == 0 {
            self.problem(&jitter_path, "needs max_requests to be set");
            max_requests_jitter = 0;
        } else if max_requests_jitter > max_requests {
            self.problem(
                &jitter_path,
                format!("must not exceed max_requests ({max_requests})"),
            );
            max_requests_jitter = 0;
        }
        let max_memory = app
            .max_memory
            .as_ref()
            .map(|size| self.positive_size(&path.key("max_memory"), Some(size), u64::MAX));
        let root_path = app.root_path.filter(|root| {
            let ok = root.starts_with('/') && !root.ends_with('/');
            if !ok {
                self.problem(
                    &path.key("root_path"),
                    "must start with '/' and not end with '/' (e.g. \"/app\")",
                );
            }
            ok
        });
        let user = self.optional_name(&path.key("user"), app.user);
        let group = self.optional_name(&path.key("group"), app.group);
        let buffering = match (&launch, app.buffering) {
            // The built-in worker reads bodies by Content-Length only (gatehouse buffers the
            // upload, so a chunked one arrives with its length) and gets its whole response
            // buffered like any sync worker's.
            (Launch::Wsgi { .. }, Some(false)) => {
                self.problem(
                    &path.key("buffering"),
                    "the built-in WSGI worker needs buffering (it reads request bodies by Content-Length); remove `buffering = false`",
                );
                true
            }
            (Launch::Wsgi { .. }, _) => true,
            // Sync workers (one request at a time) must not wait on slow clients: buffer for them.
            (Launch::Command(_), buffering) => buffering.unwrap_or(concurrency == 1),
        };
        App {
            name: app.name.unwrap_or_default(),
            launch,
            directory,
            env,
            workers,
            concurrency,
            timeout: self.positive_duration(
                &path.key("timeout"),
                app.timeout.as_ref(),
                defaults::APP_TIMEOUT,
            ),
            graceful_timeout: self.duration(
                &path.key("graceful_timeout"),
                app.graceful_timeout.as_ref(),
                defaults::APP_GRACEFUL_TIMEOUT,
            ),
            max_requests,
            max_requests_jitter,
            max_memory,
            startup_timeout: self.positive_duration(
                &path.key("startup_timeout"),
                app.startup_timeout.as_ref(),
                defaults::APP_STARTUP_TIMEOUT,
            ),
            queue_size: self.count(
                &path.key("queue_size"),
                app.queue_size,
                defaults::APP_QUEUE_SIZE,
                0,
            ),
            queue_timeout: self.positive_duration(
                &path.key("queue_timeout"),
                app.queue_timeout.as_ref(),
                defaults::APP_QUEUE_TIMEOUT,
            ),
            health: app.health.map(|h| self.health(&path.key("health"), h)),
            user,
            group,
            root_path,
            buffering,
        }
    }

    /// `command` or `wsgi` (+ `python`): exactly one way to start a worker.
    fn launch(&mut self, path: &KeyPath, app: &file::App, directory: &Path) -> Launch {
        if app.python.is_some() && app.wsgi.is_none() {
            self.problem(
                &path.key("python"),
                "python applies only to the built-in WSGI worker (wsgi = \"module:app\")",
            );
        }
        match (&app.command, &app.wsgi) {
            (Some(_), Some(_)) => {
                self.problem(
                    &path.key("wsgi"),
                    "command and wsgi are mutually exclusive; set one",
                );
                Launch::Command(Vec::new())
            }
            (None, None) => {
                self.problem(
                    path,
                    "no way to start workers: set command = [...] or wsgi = \"module:app\"",
                );
                Launch::Command(Vec::new())
            }
            (Some(command), None) => {
                let program = command.first().map(String::as_str).unwrap_or_default();
                if program.trim().is_empty() {
                    self.problem(
                        &path.key("command"),
                        "must start with a program, e.g. [\"gunicorn\", ...]",
                    );
                }
                let mut argv = command.clone();
                if let Some(first) = argv.first_mut() {
                    *first = program_path(first, directory);
                }
                Launch::Command(argv)
            }
            (None, Some(target)) => {
                let valid = target.split(':').count() <= 2
                    && target
                        .split(':')
                        .all(|part| !part.is_empty() && !part.chars().any(char::is_whitespace));
                if !valid {
                    self.problem(
                        &path.key("wsgi"),
                        format!("invalid WSGI target {target:?} (expected \"module:callable\", e.g. \"run:app\")"),
                    );
                }
                let python = match &app.python {
                    None => PathBuf::from(defaults::APP_PYTHON),
                    Some(python) if python.trim().is_empty() => {
                        self.problem(&path.key("python"), "must not be empty");
                        PathBuf::from(defaults::APP_PYTHON)
                    }
                    Some(python) => PathBuf::from(program_path(python, directory)),
                };
                Launch::Wsgi {
                    target: target.clone(),
                    python,
                }
            }
        }
    }

    fn env(
        &mut self,
        path: &KeyPath,
        env: Option<BTreeMap<String, file::EnvValue>>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, file::EnvValue(value)) in env.unwrap_or_default() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.problem(
                    &path.key(&name),
                    "invalid variable name (empty, or contains '=' or NUL)",
                );
            } else if value.contains('\0') {
                self.problem(&path.key(&name), "value must not contain NUL");
            } else {
                out.insert(name, value);
            }
        }
        out
    }

    fn optional_name(&mut self, path: &KeyPath, value: Option<String>) -> Option<String> {
        let value = value?;
        if value.trim().is_empty() {
            self.problem(path, "must not be empty");
            return None;
        }
        Some(value)
    }

    pub(super) fn upstream(&mut self, path: &KeyPath, upstream: file::Upstream) -> Upstream {
        let servers_path = path.key("servers");
        let mut servers = Vec::new();
        match upstream.servers {
            None => self.problem(&servers_path, "required key is missing"),
            Some(list) if list.is_empty() => {
                self.problem(&servers_path, "must list at least one server")
            }
            Some(list) => {
                for (i, text) in list.iter().enumerate() {
                    match net::endpoint(text, self.base) {
                        Ok(endpoint) => servers.push(endpoint),
                        Err(message) => self.problem(&servers_path.index(i), message),
                    }
                }
            }
        }
        Upstream {
            name: upstream.name.unwrap_or_default(),
            servers,
            connect_timeout: self.positive_duration(
                &path.key("connect_timeout"),
                upstream.connect_timeout.as_ref(),
                defaults::UPSTREAM_CONNECT_TIMEOUT,
            ),
            timeout: self.positive_duration(
                &path.key("timeout"),
                upstream.timeout.as_ref(),
                defaults::UPSTREAM_TIMEOUT,
            ),
            health: upstream.health.map(|h| self.health(&path.key("health"), h)),
        }
    }

    fn health(&mut self, path: &KeyPath, health: file::Health) -> Health {
        if let Some(probe) = &health.path {
            if !probe.starts_with('/') {
                self.problem(&path.key("path"), "must start with '/'");
            }
        }
        let failures = self.count(
            &path.key("failures"),
            health.failures,
            defaults::HEALTH_FAILURES as usize,
            1,
        );
        Health {
            path: health.path,
            interval: self.positive_duration(
                &path.key("interval"),
                health.interval.as_ref(),
                defaults::HEALTH_INTERVAL,
            ),
            timeout: self.positive_duration(
                &path.key("timeout"),
                health.timeout.as_ref(),
                defaults::HEALTH_TIMEOUT,
            ),
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
        }
    }
}

fn section(kind: Kind) -> KeyPath {
    KeyPath::root().key(section_name(kind))
}

fn section_name(kind: Kind) -> &'static str {
    match kind {
        Kind::App => "app",
        Kind::Upstream => "upstream",
    }
}

/// Names end up in metric labels, log lines and worker socket file names: keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain || name.starts_with('.') || name.len() > 64 {
        return Err(format!(
            "invalid name {name:?} (up to 64 letters, digits, '-', '_' or '.', not starting with '.')"
        ));
    }
    Ok(())
}

/// A program given as a relative path with a slash (`.venv/bin/gunicorn`) is relative to the
/// app's directory, where it would be found by hand; a bare name is left for a PATH lookup.
/// (Spawning resolves relative programs against gatehouse's own directory on some platforms.)
fn program_path(program: &str, directory: &Path) -> String {
    if program.contains('/') && !program.starts_with('/') {
        directory.join(program).to_string_lossy().into_owned()
    } else {
        program.to_owned()
    }
}

/// Why a configured directory cannot be used.
pub(super) fn directory_problem(dir: &Path) -> String {
    if dir.exists() {
        "not a directory".to_owned()
    } else {
        "directory does not exist".to_owned()
    }
}
