//! Reloading the config while serving, in two steps:
//!
//! 1. [`prepare`] reads and validates the whole file, computes what changed
//!    ([`gatehouse_config::Changes`]), and does everything that can fail before anything running
//!    is touched: binds new listeners, reads changed certificates, opens a changed access log,
//!    starts added apps and waits for their first ready worker. Any failure rejects the reload;
//!    whatever it made is dropped and the running config keeps serving.
//! 2. [`apply`] cannot fail: it swaps the routing table, starts serving the new listeners, drains
//!    removed ones, scales, retunes or rolls changed apps, stops removed apps, and logs one line
//!    naming every change. Apps and listeners that did not change are not touched.
//!
//! `prepare` owns everything it reads, so the serving loop keeps handling signals and worker
//! events while a reload waits for new workers. Also here: `gatehouse reload` (the CLI), which
//! sends HUP to the pid in `[server] pid_file`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use gatehouse_config::{AppChange, Changes, Config, ListenerKey};
use gatehouse_proxy::{AccessLog, Listener, ListenerHandle, ListenerSettings};
use sha2::{Digest as _, Sha256};
use tracing_subscriber::EnvFilter;

use crate::apps::{App, Starter};
use crate::run::Instance;
use crate::{check, logging, EXIT_CONFIG_ERROR, EXIT_RUNTIME_FAILURE};

/// The SHA-256 of a config file's bytes.
pub type Digest = [u8; 32];

pub fn digest(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    /// The watched file changed: apply the changes only.
    FileChanged,
    /// SIGHUP (or `gatehouse reload`): apply the changes, then roll every app's workers, as
    /// Gunicorn's HUP does, so that new application code is loaded.
    Hangup,
}

/// A reload ready to be applied: everything that could fail has been done.
pub struct Prepared {
    config: Config,
    changes: Changes,
    trigger: Trigger,
    listeners: Vec<(ListenerKey, Listener)>,
    listener_settings: Vec<(ListenerHandle, ListenerSettings)>,
    access_log: Option<AccessLog>,
    log_filter: Option<EnvFilter>,
    apps: Vec<Arc<App>>,
}

/// Why a reload was not applied, for the log, the metrics and `/status`.
pub struct Rejected {
    pub reason: String,
}

/// What `prepare` needs from the running instance, owned so that the serving loop can go on.
pub struct Running {
    pub config: Arc<Config>,
    pub listeners: Vec<(ListenerKey, ListenerHandle)>,
    pub starter: Starter,
}

/// The outcome of [`prepare`], with the digest of the file it read (when it could read it), so
/// that the watcher does not retry a content it has already tried.
pub struct Attempt {
    pub digest: Option<Digest>,
    pub result: Result<Prepared, Rejected>,
}

/// Step 1: everything that can fail. See the module comment.
pub async fn prepare(path: PathBuf, running: Running, trigger: Trigger) -> Attempt {
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return Attempt {
                digest: None,
                result: Err(Rejected {
                    reason: format!("cannot read {}: {error}", path.display()),
                }),
            }
        }
    };
    let digest = digest(&bytes);
    let result = prepare_bytes(path, bytes, running, trigger).await;
    Attempt {
        digest: Some(digest),
        result,
    }
}

async fn prepare_bytes(
    path: PathBuf,
    bytes: Vec<u8>,
    running: Running,
    trigger: Trigger,
) -> Result<Prepared, Rejected> {
    let reject = |reason: String| Rejected { reason };
    let text = String::from_utf8(bytes)
        .map_err(|_| reject(format!("{}: the file is not UTF-8", path.display())))?;
    // Certificates are read and keys parsed: off the async threads.
    let parse_path = path.clone();
    let parse_text = text.clone();
    let config =
        tokio::task::spawn_blocking(move || gatehouse_config::parse(&parse_path, &parse_text))
            .await
            .map_err(|error| reject(format!("validation failed: {error}")))?
            .map_err(|error| reject(check::describe(&error)))?;
    let changes = Changes::between(&running.config, &config);
    if !changes.fixed.is_empty() {
        let reasons: Vec<String> = changes
            .fixed
            .iter()
            .map(|key| {
                let message = "cannot change while gatehouse runs; restart gatehouse to apply it";
                gatehouse_config::locate_key(&path, &text, key, message.to_owned()).to_string()
            })
            .collect();
        return Err(reject(reasons.join("\n")));
    }

    let mut listeners = Vec::with_capacity(changes.listeners_added.len());
    for (key, listener) in &changes.listeners_added {
        let bound = Listener::bind(listener)
            .map_err(|error| reject(format!("cannot listen on {}: {error}", listener.address)))?;
        listeners.push((key.clone(), bound));
    }
    let mut listener_settings = Vec::with_capacity(changes.listeners_changed.len());
    for (key, listener) in &changes.listeners_changed {
        let Some((_, handle)) = running.listeners.iter().find(|(running, _)| running == key) else {
            continue;
        };
        let settings = handle
            .prepare(listener)
            .map_err(|error| reject(format!("listener {key}: {error}")))?;
        listener_settings.push((handle.clone(), settings));
    }
    let access_log = if changes.access_log {
        let opened = AccessLog::start(&config.log.access_log, &config.log.access_format)
            .map_err(|error| reject(format!("cannot open the access log: {error}")))?;
        Some(opened)
    } else {
        None
    };
    let log_filter = if changes.log_level {
        Some(logging::filter(&config.log.level).map_err(reject)?)
    } else {
        None
    };
    let apps = start_apps(&changes, &running.starter).await?;
    Ok(Prepared {
        config,
        changes,
        trigger,
        listeners,
        listener_settings,
        access_log,
        log_filter,
        apps,
    })
}

/// Starts the added apps and waits until each has a ready worker (within its
/// `startup_timeout`), so that routes to them never see a 503 after the reload. If one fails,
/// all are stopped and the reload is rejected.
async fn start_apps(changes: &Changes, starter: &Starter) -> Result<Vec<Arc<App>>, Rejected> {
    let added: Vec<&gatehouse_config::model::App> = changes
        .apps
        .iter()
        .filter_map(|change| match change {
            AppChange::Added(app) => Some(app),
            _ => None,
        })
        .collect();
    let mut started = Vec::with_capacity(added.len());
    let mut failure = None;
    for app in &added {
        match starter.start(app) {
            Ok(app) => started.push(app),
            Err(error) => {
                failure = Some(format!("{error:#}"));
                break;
            }
        }
    }
    if failure.is_none() {
        let waits = started
            .iter()
            .zip(&added)
            .map(|(app, config)| app.ready_within(config.startup_timeout));
        let ready = futures_util::future::join_all(waits).await;
        if let Some(index) = ready.iter().position(|ready| !ready) {
            failure = Some(format!(
                "app {}: no worker became ready within {:?} (see its output above)",
                added[index].name, added[index].startup_timeout
            ));
        }
    }
    match failure {
        None => Ok(started),
        Some(reason) => {
            futures_util::future::join_all(started.iter().map(|app| app.stop(false))).await;
            Err(Rejected { reason })
        }
    }
}

/// Step 2: makes the prepared config the running one. Returns the summary line's content.
pub fn apply(prepared: Prepared, instance: &mut Instance) -> String {
    let Prepared {
        config,
        changes,
        trigger,
        listeners,
        listener_settings,
        access_log,
        log_filter,
        apps: started,
    } = prepared;

    if let Some(filter) = log_filter {
        logging::set_level(filter);
    }

    // Apps first, so that the new routing table sees the added ones and not the removed ones.
    for app in started {
        instance.apps.insert(app);
    }
    let mut removed = Vec::new();
    for change in &changes.apps {
        if let AppChange::Removed(name) = change {
            removed.extend(instance.apps.remove(name));
        }
    }
    // In-flight requests finish on the table they started with.
    let site = instance.proxy.site().next(&config, &instance.apps.pools());
    instance.proxy.replace_site(site);
    if let Some(access_log) = access_log {
        instance.proxy.replace_access_log(access_log);
    }
    for app in removed {
        tokio::spawn(async move {
            app.stop(true).await;
            tracing::info!(app = app.name(), "removed app stopped");
        });
    }

    for (key, listener) in listeners {
        instance.listeners.serve(key, listener, &instance.proxy);
    }
    for (handle, settings) in listener_settings {
        handle.apply(settings);
    }
    for key in &changes.listeners_removed {
        instance.listeners.remove(key);
    }

    let mut rolled = Vec::new();
    for change in &changes.apps {
        let AppChange::Changed {
            app: settings,
            workers,
            restart,
            retune,
        } = change
        else {
            continue;
        };
        let Some(app) = instance.apps.get(&settings.name) else {
            continue;
        };
        if !retune.is_empty() {
            app.pool().retune(settings);
        }
        if !restart.is_empty() {
            app.roll(settings.clone());
            rolled.push(settings.name.clone());
        } else if let Some((_, to)) = workers {
            app.supervisor().scale_to(*to);
        }
    }
    if trigger == Trigger::Hangup {
        for settings in &config.apps {
            let added = changes
                .apps
                .iter()
                .any(|change| matches!(change, AppChange::Added(app) if app.name == settings.name));
            if added || rolled.contains(&settings.name) {
                continue;
            }
            if let Some(app) = instance.apps.get(&settings.name) {
                app.roll(settings.clone());
            }
        }
    }

    instance.admin.set_apps(instance.apps.views());
    instance.admin.set_tls(instance.listeners.tls());
    instance.admin.reloaded(Ok(&config));
    let summary = changes.summary();
    instance.config = Arc::new(config);
    if trigger == Trigger::Hangup {
        format!("{summary}; rolling every app's workers (HUP)")
    } else {
        summary
    }
}

/// `gatehouse reload`: sends HUP to the pid in the config's `[server] pid_file`.
pub fn signal(path: &Path) -> ExitCode {
    let config = match gatehouse_config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}", check::describe(&error));
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    let Some(pid_file) = config.server.pid_file else {
        eprintln!(
            "{}: server.pid_file is not set, so the running instance cannot be found; \
             set it, or send SIGHUP to gatehouse yourself",
            path.display()
        );
        return ExitCode::from(EXIT_CONFIG_ERROR);
    };
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0);
    let Some(pid) = pid else {
        eprintln!(
            "cannot read a process id from {} (is gatehouse running?)",
            pid_file.display()
        );
        return ExitCode::from(EXIT_RUNTIME_FAILURE);
    };
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    ) {
        Ok(()) => {
            println!("reload requested (HUP sent to pid {pid})");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "cannot signal pid {pid} from {}: {error}",
                pid_file.display()
            );
            ExitCode::from(EXIT_RUNTIME_FAILURE)
        }
    }
}
